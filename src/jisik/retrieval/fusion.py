"""Fusion of ranked candidate lists from several signals.

* ``rrf``: reciprocal rank fusion, ``sum_s w_s / (k + rank_s)``.
* ``weighted``: convex combination of per-signal normalised scores
  (lexical: divided by the query's best lexical score; dense: min-max over the candidates).
* ``adaptive``: ``weighted``, with the lexical weight scaled per query by how much of the
  query the best lexical match covers (BM25 score / the query's maximal attainable score).
  A query whose words barely occur in the corpus (a colloquial paraphrase) leans on the dense
  signal; a query with a strong, specific lexical match leans on BM25.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(slots=True)
class SignalResult:
    """One signal's candidates, best first. ``coverage`` in [0, 1] (lexical only) tells how
    strongly the best candidate matches the query relative to the best possible match."""

    keys: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]
    coverage: float | None = None


@dataclass(slots=True)
class Fused:
    keys: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float64]
    per_signal: dict[str, dict[int, float]]  # signal -> key -> raw score
    weights: dict[str, float]


def _accumulate(parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]) -> tuple[
        npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Sum of per-signal contributions by key (vectorised): unique keys and their totals."""
    parts = [(k, v) for k, v in parts if k.size]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0)
    keys, inverse = np.unique(np.concatenate([k for k, _ in parts]), return_inverse=True)
    totals = np.bincount(inverse, weights=np.concatenate([v for _, v in parts]), minlength=keys.size)
    return keys, totals.astype(np.float64, copy=False)


def rrf(
    signals: Mapping[str, SignalResult], weights: Mapping[str, float], k: int = 60
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    return _accumulate([
        (sig.keys, weights.get(name, 1.0) / (k + np.arange(1, sig.keys.size + 1, dtype=np.float64)))
        for name, sig in signals.items()
    ])


def _normalise(sig: SignalResult, name: str) -> npt.NDArray[np.float64]:
    s = sig.scores.astype(np.float64)
    if s.size == 0:
        return s
    if name == "lexical":
        # scores are already relative to the query's ideal match (~1.0 = every word once);
        # a better-than-ideal top match (repeated terms, short chunk) rescales instead of
        # being capped, so the order among the strongest lexical candidates survives
        return s / max(float(s.max()), 1.0)
    lo, hi = float(s.min()), float(s.max())
    return (s - lo) / (hi - lo) if hi > lo else np.ones_like(s)


def weighted(
    signals: Mapping[str, SignalResult], weights: Mapping[str, float]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    return _accumulate([(sig.keys, weights.get(name, 0.0) * _normalise(sig, name)) for name, sig in signals.items()])


def adaptive_weights(
    signals: Mapping[str, SignalResult], lexical_weight: float, *, gain: float | None = None,
    floor: float = 0.2, ceiling: float = 0.9,
) -> dict[str, float]:
    """Lexical weight proportional to the best lexical match's coverage of the query:
    ``clip(gain * coverage, floor, ceiling)``, with ``gain = 2 * lexical_weight`` by default
    (so a half-covered query gets the configured weight)."""
    lex = signals.get("lexical")
    cov = lex.coverage if lex is not None and lex.coverage is not None else 0.5
    g = 2.0 * lexical_weight if gain is None else gain
    w = min(max(g * max(cov, 0.0), floor), ceiling)
    return {"lexical": w, "dense": 1.0 - w}


def fuse(
    signals: Mapping[str, SignalResult], *, method: str, lexical_weight: float = 0.5, rrf_k: int = 60,
    floor: float = 0.2, ceiling: float = 0.9,
) -> Fused:
    if method == "rrf":
        weights = {name: 1.0 for name in signals}
        keys, vals = rrf(signals, weights, rrf_k)
    elif method == "weighted":
        weights = {"lexical": lexical_weight, "dense": 1.0 - lexical_weight}
        keys, vals = weighted(signals, weights)
    elif method == "adaptive":
        weights = adaptive_weights(signals, lexical_weight, floor=floor, ceiling=ceiling)
        keys, vals = weighted(signals, weights)
    else:
        raise ValueError(f"unknown fusion method {method!r}")
    per_signal = {
        name: dict(zip(sig.keys.tolist(), sig.scores.astype(float).tolist(), strict=True))
        for name, sig in signals.items()
    }
    if not keys.size:
        return Fused(np.zeros(0, np.int64), np.zeros(0), per_signal, weights)
    order = np.lexsort((keys, -vals))  # score desc, key asc for determinism
    return Fused(keys[order], vals[order], per_signal, weights)
