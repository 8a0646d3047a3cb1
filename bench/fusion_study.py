"""Offline study of fusion functions on both benchmark sets (needs the indexes retrieval_quality.py built).

Collects, once per query, the lexical (Kiwi BM25) and dense (e5-small) candidate lists the retriever
fuses, then scores fusion functions on them without re-running retrieval:

* the shipped ``adaptive`` fusion and its lexical-weight cap when the best two BM25 scores are close;
* a *learned* fusion: logistic regression on a few per-candidate features (normalised BM25 score,
  dense cosine, reciprocal ranks, the query's lexical coverage and interactions), evaluated with
  5-fold cross-validation grouped by query over BOTH sets at once (one model for both kinds of
  query), so every reported number comes from a model that never saw that query.

    python bench/fusion_study.py            # prints a table; writes bench/results/fusion_study.json
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import numpy as np
from common import datasets, write_result

from jisik.eval.autorag import load_qa
from jisik.eval.metrics import summarise
from jisik.eval.runner import scratch_collection
from jisik.retrieval.fusion import SignalResult, fuse
from jisik.runtime import Runtime

TOP_N = 100


@dataclass
class QueryData:
    dataset: str
    gold: Any
    lex: SignalResult
    dense: SignalResult
    doc_of: dict[int, str]
    use: dict[str, float] | None = None  # doc id -> best USE cosine (top USE_TOP docs)


USE_TOP = 100


def use_signal(rt: Runtime, ds: Any, queries: list[str]) -> list[dict[str, float]]:
    """USE multilingual (512-d) as a third signal: exact cosine over the same chunks, best per doc."""
    from jisik.eval.autorag import load_corpus
    from jisik.models.embedders import create_embedder
    from jisik.pipeline.indexing import _dense_text
    from jisik.text.chunking import make_chunker
    from jisik.text.normalize import normalize

    use = create_embedder("use-multilingual")
    chunker = make_chunker(ds.chunker)
    chunks = []
    for doc in load_corpus(ds.corpus):
        doc.text = normalize(doc.text)
        chunks.extend(chunker.chunk(doc))
    mat = use.embed_passages([_dense_text(c) for c in chunks])
    qv = use.embed_queries(queries)
    out = []
    for v in qv:
        sims = mat @ v
        best: dict[str, float] = {}
        for i in np.argsort(-sims)[: USE_TOP * 3]:
            d = chunks[int(i)].doc_id
            best[d] = max(best.get(d, -1.0), float(sims[i]))
        out.append(dict(sorted(best.items(), key=lambda kv: -kv[1])[:USE_TOP]))
    return out


def collect(rt: Runtime) -> list[QueryData]:
    out: list[QueryData] = []
    for name, ds in datasets().items():
        store, coll = scratch_collection(rt, ds.corpus, ds.chunker)
        items = load_qa(ds.qa)
        vecs = rt.embedder.embed_queries([i.query for i in items])
        use_scores = use_signal(rt, ds, [i.query for i in items])
        for item, vec, use in zip(items, vecs, use_scores, strict=True):
            toks = rt.tokenizer.tokens(rt.retriever.validate_query(item.query))
            lk, ls = store.search_lexical(coll, toks, TOP_N, None)
            dk, dsc = store.search_dense(coll, vec, TOP_N, None)
            bound = float(ls[0]) if ls.size else 0.0
            lex = SignalResult(lk, ls, coverage=min(bound, 1.0))
            keys = sorted(set(lk.tolist()) | set(dk.tolist()))
            doc_of = {k: c.doc_id for k, c in zip(keys, store.fetch(coll, keys), strict=True)}
            out.append(QueryData(name, item.gold, lex, SignalResult(dk, dsc), doc_of, use))
        store.close()
    return out


def ranking(q: QueryData, scores: dict[int, float]) -> list[str]:
    ranked = sorted(scores, key=lambda k: -scores[k])
    return list(dict.fromkeys(q.doc_of[k] for k in ranked))[:10]


def metrics(queries: list[QueryData], rankings: list[list[str]]) -> dict[str, dict[str, float]]:
    out = {}
    for name in sorted({q.dataset for q in queries}):
        idx = [i for i, q in enumerate(queries) if q.dataset == name]
        out[name] = summarise([rankings[i] for i in idx], [queries[i].gold for i in idx])
    return out


def shipped(q: QueryData, gap_cap: float | None = None) -> dict[int, float]:
    signals = {"lexical": q.lex, "dense": q.dense}
    fused = fuse(signals, method="adaptive", lexical_weight=0.5, rrf_k=60, floor=0.2, ceiling=0.95)
    if gap_cap is not None and q.lex.scores.size > 1:
        top = max(float(q.lex.scores[0]), 1.0)
        if (float(q.lex.scores[0]) - float(q.lex.scores[1])) / top < gap_cap:
            fused = fuse(signals, method="adaptive", lexical_weight=0.5, rrf_k=60, floor=0.2, ceiling=0.5)
    return dict(zip(fused.keys.tolist(), fused.scores.tolist(), strict=True))


FEATURES = ["lex", "lex_rr", "dense", "dense_mm", "dense_rr", "cov", "cov*lex", "(1-cov)*dense", "both", "bias"]
FEATURES_USE = [*FEATURES[:-1], "use", "use_rr", "(1-cov)*use", "bias"]


def features(q: QueryData, with_use: bool = False) -> tuple[list[int], np.ndarray]:
    lex = {int(k): float(s) for k, s in zip(q.lex.keys, q.lex.scores, strict=True)}
    lex_rank = {int(k): r for r, k in enumerate(q.lex.keys.tolist())}
    den = {int(k): float(s) for k, s in zip(q.dense.keys, q.dense.scores, strict=True)}
    den_rank = {int(k): r for r, k in enumerate(q.dense.keys.tolist())}
    top_lex = max(max(lex.values(), default=0.0), 1.0)
    d = np.array(list(den.values()) or [0.0])
    lo, hi = float(d.min()), float(d.max())
    cov = float(q.lex.coverage or 0.0)
    keys = sorted(set(lex) | set(den))
    use = q.use or {}
    use_rank = {d: r for r, d in enumerate(use)}
    use_lo = min(use.values(), default=0.0)
    rows = []
    for k in keys:
        lx = lex.get(k, 0.0) / top_lex
        dn = den.get(k, lo)
        mm = (dn - lo) / (hi - lo) if hi > lo else 1.0
        row = [lx, 1 / (1 + lex_rank.get(k, TOP_N)), dn, mm, 1 / (1 + den_rank.get(k, TOP_N)), cov,
               cov * lx, (1 - cov) * mm, float(k in lex and k in den)]
        if with_use:
            doc = q.doc_of[k]
            u = use.get(doc, use_lo)
            row += [u, 1 / (1 + use_rank.get(doc, USE_TOP)), (1 - cov) * u]
        rows.append([*row, 1.0])
    return keys, np.asarray(rows, dtype=np.float64)


def train_lr(x: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 300) -> np.ndarray:
    """Logistic regression by Newton's method (positives up-weighted to balance the classes)."""
    w = np.zeros(x.shape[1])
    sw = np.where(y > 0, (y == 0).sum() / max((y > 0).sum(), 1), 1.0)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (sw * (p - y)) + l2 * w
        hess = (x * (sw * p * (1 - p))[:, None]).T @ x + l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


def gold_docs(q: QueryData) -> set[str]:
    return {d for group in q.gold for d in group}


def learned_cv(queries: list[QueryData], folds: int = 5, seed: int = 0,
               with_use: bool = False) -> tuple[list[list[str]], np.ndarray]:
    data = [features(q, with_use) for q in queries]
    labels = [np.array([q.doc_of[k] in gold_docs(q) for k in keys], dtype=np.float64)
              for q, (keys, _) in zip(queries, data, strict=True)]
    order = np.random.default_rng(seed).permutation(len(queries))
    fold_of = np.empty(len(queries), int)
    fold_of[order] = np.arange(len(queries)) % folds
    rankings: list[list[str]] = [[] for _ in queries]
    for f in range(folds):
        train = [i for i in range(len(queries)) if fold_of[i] != f]
        w = train_lr(np.vstack([data[i][1] for i in train]), np.concatenate([labels[i] for i in train]))
        for i in np.where(fold_of == f)[0]:
            keys, x = data[i]
            rankings[i] = ranking(queries[i], dict(zip(keys, (x @ w).tolist(), strict=True)))
    full = train_lr(np.vstack([d[1] for d in data]), np.concatenate(labels))
    return rankings, full


def main() -> int:
    rt = Runtime()
    queries = collect(rt)
    results: dict[str, Any] = {}
    results["adaptive (shipped)"] = metrics(queries, [ranking(q, shipped(q)) for q in queries])
    for cap in (0.02, 0.05, 0.1):
        results[f"adaptive, ceiling 0.5 when BM25 top-2 gap < {cap}"] = metrics(
            queries, [ranking(q, shipped(q, cap)) for q in queries])
    results["USE multilingual alone (3rd signal)"] = metrics(queries, [list(q.use or {})[:10] for q in queries])
    cv_rankings, weights = learned_cv(queries)
    results["learned (logistic, 5-fold CV by query)"] = metrics(queries, cv_rankings)
    cv_use, _ = learned_cv(queries, with_use=True)
    results["learned + USE signal (logistic, 5-fold CV)"] = metrics(queries, cv_use)
    for label, per in results.items():
        cells = "  ".join(f"{ds}: R@1 {m['recall@1']:.3f} R@5 {m['recall@5']:.3f} MRR {m['mrr']:.3f}"
                          for ds, m in per.items())
        print(f"{label:58s} {cells}")
    print("learned weights (all data):", dict(zip(FEATURES, np.round(weights, 3).tolist(), strict=True)))
    print(write_result("fusion_study", {"results": results, "learned_weights": dict(zip(FEATURES, weights.tolist(),
                                                                                       strict=True))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
