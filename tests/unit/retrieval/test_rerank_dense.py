"""The default rerank step: the top fused candidates re-scored with their raw dense cosine."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from jisik.retrieval.hybrid import HybridRetriever
from jisik.retrieval.rerank import blend_dense


def _never(keys: list[int]) -> np.ndarray:
    raise AssertionError(f"no vector lookup expected, got {keys}")


def test_near_ties_are_broken_by_the_dense_cosine() -> None:
    keys = np.asarray([7, 3, 9, 1], dtype=np.int64)
    fused = np.asarray([1.0, 0.99, 0.6, 0.5])
    dense = {7: 0.80, 3: 0.90, 9: 0.95, 1: 0.70}
    out_keys, out_scores = blend_dense(keys, fused, dense, _never, weight=0.4, candidates=3)
    # 3 overtakes 7 (a 1% fused gap, a 0.10 cosine gap); 9 stays third (its fused gap is too large)
    assert out_keys.tolist() == [3, 7, 9, 1]
    expected = {k: 0.6 * f + 0.4 * dense[k] for k, f in zip([7, 3, 9], fused[:3].tolist(), strict=True)}
    assert out_scores[:3].tolist() == pytest.approx([expected[3], expected[7], expected[9]])
    # the tail keeps its order, scored with the head's smallest cosine: never above the head
    assert out_scores[3] == pytest.approx(0.6 * 0.5 + 0.4 * 0.80)
    assert all(a >= b for a, b in itertools.pairwise(out_scores.tolist()))


def test_candidates_without_a_dense_score_use_their_own_vector() -> None:
    keys = np.asarray([5, 6], dtype=np.int64)
    asked: list[list[int]] = []

    def cosine(ks: list[int]) -> np.ndarray:
        asked.append(ks)
        return np.asarray([0.99], dtype=np.float32)

    out_keys, _ = blend_dense(keys, np.asarray([1.0, 0.98]), {5: 0.7}, cosine, weight=0.4, candidates=5)
    assert asked == [[6]] and out_keys.tolist() == [6, 5]


def test_nothing_to_do_returns_the_input() -> None:
    keys, scores = np.asarray([1, 2], dtype=np.int64), np.asarray([0.9, 0.8])
    k, s = blend_dense(keys, scores, {1: 0.1, 2: 0.9}, _never, weight=0.0, candidates=5)
    assert k is keys and s is scores  # weight 0: the fused order as it was
    k, s = blend_dense(keys[:0], scores[:0], {}, _never, weight=0.4, candidates=5)
    assert k.size == 0 and s.size == 0


def test_the_retriever_reranks_by_default_and_can_turn_it_off(kb: HybridRetriever) -> None:
    on = kb.retrieve("정산 계좌를 바꾸려면 어디서 하나요?", "faq", top_k=3)
    off = kb.retrieve("정산 계좌를 바꾸려면 어디서 하나요?", "faq", top_k=3, overrides={"rerank": "none"})
    assert on.hits[0].chunk.doc_id == off.hits[0].chunk.doc_id == "settle"
    assert "rerank" in on.timings_ms and "rerank" not in off.timings_ms
    # the reported score is the blended one: (1 - w) * fused / best + w * dense cosine
    top = on.hits[0]
    assert top.score == pytest.approx(0.6 * top.scores["fused"] / off.hits[0].scores["fused"]
                                      + 0.4 * top.scores["dense"], abs=1e-6)
    # one signal only: nothing to blend
    lexical = kb.retrieve("정산 계좌", "faq", top_k=3, overrides={"mode": "lexical"})
    assert "rerank" not in lexical.timings_ms
