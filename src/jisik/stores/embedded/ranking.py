"""Top-n selection helpers shared by the lexical and dense paths."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def top_n(
    scores: npt.NDArray[np.float32], n: int, candidates: npt.NDArray[np.int64] | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Positions and scores of the ``n`` best entries, best first.

    ``candidates`` restricts the choice to those positions (a filter's allowed rows).
    """
    if candidates is not None:
        sub = scores[candidates]
        pos, val = top_n(sub, n)
        return candidates[pos], val
    m = scores.shape[0]
    if m == 0 or n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    part = np.argpartition(-scores, n - 1)[:n] if n < m else np.arange(m)
    order = part[np.argsort(-scores[part], kind="stable")]
    return order.astype(np.int64), scores[order].astype(np.float32)
