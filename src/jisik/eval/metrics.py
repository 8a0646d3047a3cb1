"""Retrieval metrics over ranked document ids.

``gold`` follows AutoRAG's ``retrieval_gt``: a list of groups, each a list of acceptable ids.
Recall@k is the fraction of groups with at least one id in the top k; MRR uses the first
rank holding any gold id; nDCG@k uses binary relevance over all gold ids.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

KS = (1, 5, 10)


def recall_at(ranked: Sequence[str], gold: Sequence[Sequence[str]], k: int) -> float:
    groups = [set(g) for g in gold if g]
    if not groups:
        return 0.0
    top = set(ranked[:k])
    return sum(1 for g in groups if g & top) / len(groups)


def reciprocal_rank(ranked: Sequence[str], gold: Sequence[Sequence[str]]) -> float:
    relevant = {x for g in gold for x in g}
    for i, doc in enumerate(ranked):
        if doc in relevant:
            return 1.0 / (i + 1)
    return 0.0


def ndcg_at(ranked: Sequence[str], gold: Sequence[Sequence[str]], k: int) -> float:
    relevant = {x for g in gold for x in g}
    if not relevant:
        return 0.0
    dcg = sum(1.0 / math.log2(i + 2) for i, doc in enumerate(ranked[:k]) if doc in relevant)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(relevant), k)))
    return dcg / ideal


def summarise(rankings: Sequence[Sequence[str]], golds: Sequence[Sequence[Sequence[str]]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for k in KS:
        out[f"recall@{k}"] = float(np.mean([recall_at(r, g, k) for r, g in zip(rankings, golds, strict=True)]))
    out["mrr"] = float(np.mean([reciprocal_rank(r, g) for r, g in zip(rankings, golds, strict=True)]))
    out["ndcg@10"] = float(np.mean([ndcg_at(r, g, 10) for r, g in zip(rankings, golds, strict=True)]))
    return {k: round(v, 4) for k, v in out.items()}


def percentile_ms(samples_s: Sequence[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(samples_s) * 1000.0, q)), 3) if samples_s else 0.0
