import numpy as np

from jisik.retrieval.fusion import SignalResult, adaptive_weights, fuse


def sig(keys: list[int], scores: list[float], coverage: float | None = None) -> SignalResult:
    return SignalResult(np.asarray(keys, np.int64), np.asarray(scores, np.float32), coverage)


def test_rrf_prefers_items_ranked_by_both() -> None:
    fused = fuse({"lexical": sig([1, 2, 3], [3, 2, 1]), "dense": sig([2, 4, 1], [0.9, 0.8, 0.7])}, method="rrf")
    assert fused.keys[0] in (1, 2)
    assert set(fused.keys.tolist()) == {1, 2, 3, 4}


def test_weighted_respects_weights() -> None:
    signals = {"lexical": sig([1, 2], [1.0, 0.1]), "dense": sig([2, 1], [0.9, 0.1])}
    assert fuse(signals, method="weighted", lexical_weight=0.9).keys[0] == 1
    assert fuse(signals, method="weighted", lexical_weight=0.1).keys[0] == 2


def test_adaptive_leans_on_dense_when_lexical_coverage_is_low() -> None:
    low = adaptive_weights({"lexical": sig([1], [0.1], coverage=0.1)}, 0.5)
    high = adaptive_weights({"lexical": sig([1], [0.9], coverage=0.9)}, 0.5)
    assert low["lexical"] < 0.5 < high["lexical"]
    assert abs(low["lexical"] + low["dense"] - 1) < 1e-9


def test_empty_signals() -> None:
    fused = fuse({"lexical": sig([], []), "dense": sig([], [])}, method="adaptive")
    assert fused.keys.size == 0
