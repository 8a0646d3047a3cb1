"""Rerank step. No cross-encoder ships offline; two rescorers are built in:

* ``dense`` (the default, :func:`blend_dense`): the top fused candidates are re-scored by blending
  their raw dense cosine into the fused score. Fusion min-max-normalises the dense signal over its
  whole candidate list, which flattens the small cosine differences between near-tied lexical
  matches (neighbouring pages of one report); the blend lets semantic similarity break those ties.
  It costs no model call (the cosines are already known).
* ``embedder`` (:class:`EmbedderReranker`, opt-in): re-embeds sentence windows of the candidates at
  query time and blends the best window's similarity in; as good on the benchmarks but seconds
  per query on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from jisik.core.types import Hit
from jisik.models.embedders import Embedder
from jisik.text.sentences import split_sentences


def blend_dense(
    keys: npt.NDArray[np.int64], scores: npt.NDArray[np.float64], dense: Mapping[int, float],
    cosine: Callable[[list[int]], npt.NDArray[np.float32]], *, weight: float, candidates: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Re-score the first ``candidates`` of a fused ranking as ``(1 - weight) * fused / best_fused +
    weight * cosine``, where ``cosine`` is the candidate's dense score (``dense``) or, for one the
    dense search did not return, the cosine of its own vector (``cosine(keys)``).

    The rest keep their order below them: their score uses the smallest cosine of the head, so
    scores stay non-increasing down the list.
    """
    m = min(candidates, len(keys))
    if m == 0 or weight <= 0.0:
        return keys, scores
    head = keys[:m].tolist()
    cos = np.asarray([dense.get(k, np.nan) for k in head], dtype=np.float64)
    missing = np.flatnonzero(np.isnan(cos))
    if missing.size:
        cos[missing] = cosine([head[i] for i in missing.tolist()]).astype(np.float64)
    top = float(scores[0]) if scores[0] > 0 else 1.0
    blended = (1.0 - weight) * scores / top
    blended[:m] += weight * cos
    blended[m:] += weight * float(cos.min())
    order = np.argsort(-blended[:m], kind="stable")
    return (np.concatenate([keys[:m][order], keys[m:]]),
            np.concatenate([blended[:m][order], blended[m:]]))


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
