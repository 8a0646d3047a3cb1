import pytest

from jisik.eval.metrics import ndcg_at, recall_at, reciprocal_rank, summarise


def test_recall_groups_are_any_of() -> None:
    gold = [["a", "b"], ["c"]]
    assert recall_at(["b", "x", "c"], gold, 1) == 0.5
    assert recall_at(["b", "x", "c"], gold, 3) == 1.0


def test_mrr_and_ndcg() -> None:
    assert reciprocal_rank(["x", "y", "a"], [["a"]]) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x"], [["a"]]) == 0.0
    assert ndcg_at(["a"], [["a"]], 10) == 1.0
    assert 0 < ndcg_at(["x", "a"], [["a"]], 10) < 1


def test_summary_keys_exact() -> None:
    out = summarise([["a"], ["x", "b"]], [[["a"]], [["b"]]])
    assert list(out) == ["recall@1", "recall@5", "recall@10", "mrr", "ndcg@10"]
    assert out["recall@1"] == 0.5 and out["mrr"] == 0.75
