"""Rerank step (pluggable). No cross-encoder ships offline, so the default reranker rescores the
fused candidates with the embedder at a finer grain: the best-matching sentence window of
each candidate chunk against the query, blended with the fused score."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from jisik.core.types import Hit
from jisik.models.embedders import Embedder
from jisik.text.sentences import split_sentences


class Reranker(Protocol):
    def rerank(
        self, query: str, query_vector: npt.NDArray[np.float32], hits: Sequence[Hit],
        vectors: npt.NDArray[np.float32] | None,
    ) -> tuple[list[Hit], npt.NDArray[np.float32] | None]:
        """Return the hits reordered (and their vectors in the same order)."""


class EmbedderReranker:
    def __init__(self, embedder: Embedder, *, weight: float = 0.3, window: int = 2, max_candidates: int = 30) -> None:
        self.embedder = embedder
        self.weight = weight
        self.window = window
        self.max_candidates = max_candidates

    def rerank(
        self, query: str, query_vector: npt.NDArray[np.float32], hits: Sequence[Hit],
        vectors: npt.NDArray[np.float32] | None,
    ) -> tuple[list[Hit], npt.NDArray[np.float32] | None]:
        head = list(hits[: self.max_candidates])
        windows: list[str] = []
        owners: list[int] = []
        for i, h in enumerate(head):
            spans = split_sentences(h.chunk.text)
            texts = [h.chunk.text[s:e] for s, e in spans] or [h.chunk.text]
            for j in range(0, max(1, len(texts) - self.window + 1)):
                windows.append(" ".join(texts[j : j + self.window]))
                owners.append(i)
        wv = self.embedder.embed_passages(windows)
        sims = wv @ query_vector
        best = np.full(len(head), -1.0)
        for o, s in zip(owners, sims.tolist(), strict=True):
            best[o] = max(best[o], s)
        fused = np.asarray([h.score for h in head])
        fmax = fused.max() if fused.size else 1.0
        score = (1 - self.weight) * (fused / (fmax or 1.0)) + self.weight * best
        order = np.argsort(-score, kind="stable")
        out: list[Hit] = []
        for idx in order.tolist():
            h = head[idx]
            h.scores["rerank"] = float(best[idx])
            h.score = float(score[idx])
            out.append(h)
        out.extend(hits[self.max_candidates :])
        if vectors is None:
            return out, None
        perm = np.concatenate([order, np.arange(len(head), len(hits))]).astype(int)
        return out, vectors[perm]
