"""Embedded-store specifics: HNSW path, snapshot corruption, crash safety, multi-process refresh."""

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from jisik.core.errors import CorruptData, InvalidInput, NotFound
from jisik.core.types import Chunk
from jisik.retrieval.filters import parse_filter
from jisik.stores.embedded import EmbeddedIndexStore

NOFILTER = parse_filter(None)


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill(store: EmbeddedIndexStore, name: str, n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vecs = unit(rng, n, dim)
    store.ensure_collection(name, dim=dim, embedder_id="test")
    with store.open_batch(name) as b:
        for i in range(n):
            chunk = Chunk(chunk_id=f"c{i}", doc_id=f"d{i}", text=f"문서 {i} 내용", metadata={"n": i, "odd": i % 2 == 1})
            b.upsert_document(f"d{i}", f"fp{i}", [chunk], vecs[i : i + 1], [["문서", f"w{i}"]])
    return vecs


def test_hnsw_matches_exact_search(tmp_path: Path) -> None:
    exact = EmbeddedIndexStore(tmp_path / "exact", hnsw_min_rows=10**9)
    approx = EmbeddedIndexStore(tmp_path / "approx", hnsw_min_rows=100)
    vecs = fill(exact, "c", 2000)
    fill(approx, "c", 2000)
    agree = 0
    for q in vecs[:50]:
        ke, _ = exact.search_dense("c", q, 10, NOFILTER)
        ka, _ = approx.search_dense("c", q, 10, NOFILTER)
        agree += len(set(ke.tolist()) & set(ka.tolist()))
    assert agree / 500 >= 0.95
    # filtered search through the HNSW path only returns allowed rows
    flt = parse_filter({"odd": True})
    keys, _ = approx.search_dense("c", vecs[3], 10, flt)
    assert [c.metadata["odd"] for c in approx.fetch("c", keys.tolist())] == [True] * 10


def test_incremental_hnsw_after_delete_and_add(tmp_path: Path) -> None:
    store = EmbeddedIndexStore(tmp_path, hnsw_min_rows=100)
    vecs = fill(store, "c", 300)
    rng = np.random.default_rng(9)
    new = unit(rng, 1, 16)
    with store.open_batch("c") as b:
        b.delete_document("d5")
        b.upsert_document("new", "fp", [Chunk(chunk_id="n", doc_id="new", text="새 문서")], new, [["새"]])
    keys, _ = store.search_dense("c", vecs[5], 3, NOFILTER)
    assert "d5" not in [c.doc_id for c in store.fetch("c", keys.tolist())]
    keys, scores = store.search_dense("c", new[0], 1, NOFILTER)
    assert store.fetch("c", keys.tolist())[0].doc_id == "new" and scores[0] > 0.99
    # a fresh process-equivalent (new store object) loads the saved graph and agrees
    again = EmbeddedIndexStore(tmp_path, hnsw_min_rows=100)
    k2, _ = again.search_dense("c", new[0], 1, NOFILTER)
    assert k2.tolist() == keys.tolist()


def test_corrupt_snapshot_is_rebuilt_from_log(tmp_path: Path) -> None:
    store = EmbeddedIndexStore(tmp_path)
    vecs = fill(store, "c", 50)
    before = store.search_dense("c", vecs[7], 5, NOFILTER)[0].tolist()
    snap = next((tmp_path / "c").glob("snap-*"))
    (snap / "vectors.npy").write_bytes(b"garbage")
    fresh = EmbeddedIndexStore(tmp_path)
    assert fresh.search_dense("c", vecs[7], 5, NOFILTER)[0].tolist() == before


def test_corrupt_database_gives_clear_error(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "store.sqlite3").write_bytes(b"this is not sqlite" * 100)
    store = EmbeddedIndexStore(tmp_path)
    with pytest.raises(CorruptData) as info:
        store.get_collection("c")
    assert "손상" in info.value.message_ko


def test_unknown_collection_and_bad_name(tmp_path: Path) -> None:
    store = EmbeddedIndexStore(tmp_path)
    with pytest.raises(NotFound):
        store.search_lexical("nope", ["a"], 5, NOFILTER)
    with pytest.raises(InvalidInput):
        store.ensure_collection("../etc", dim=4, embedder_id="x")


def test_other_process_sees_new_version_after_refresh(tmp_path: Path) -> None:
    writer = EmbeddedIndexStore(tmp_path)
    reader = EmbeddedIndexStore(tmp_path, refresh_interval_s=0.0)
    fill(writer, "c", 10)
    assert reader.search_lexical("c", ["w3"], 5, NOFILTER)[0].size == 1
    with writer.open_batch("c") as b:
        b.delete_document("d3")
    assert reader.search_lexical("c", ["w3"], 5, NOFILTER)[0].size == 0


KILL_SCRIPT = textwrap.dedent(
    """
    import sys, numpy as np
    from jisik.core.types import Chunk
    from jisik.stores.embedded import EmbeddedIndexStore
    store = EmbeddedIndexStore(sys.argv[1])
    rng = np.random.default_rng(1)
    b = store.open_batch("c")
    for i in range(100000):
        v = rng.normal(size=(1, 16)).astype(np.float32); v /= np.linalg.norm(v)
        b.upsert_document(f"x{i}", "fp", [Chunk(chunk_id=f"x{i}", doc_id=f"x{i}", text="중단")], v, [["중단"]])
        if i == 200:
            print("ready", flush=True)
    """
)


def test_sigkill_mid_batch_keeps_previous_version(tmp_path: Path) -> None:
    store = EmbeddedIndexStore(tmp_path)
    fill(store, "c", 20)
    before = store.versions("c")
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    after = EmbeddedIndexStore(tmp_path)
    assert [v.version for v in after.versions("c")] == [v.version for v in before]
    assert after.search_lexical("c", ["중단"], 5, NOFILTER)[0].size == 0
    assert after.get_collection("c").chunks == 20
    # and the next batch works and is numbered after the last published one
    with after.open_batch("c") as b:
        b.delete_document("d1")
    assert after.versions("c")[-1].version == before[-1].version + 1


def test_rollback_past_retention_is_refused(tmp_path: Path) -> None:
    store = EmbeddedIndexStore(tmp_path, keep_versions=2)
    fill(store, "c", 5)
    for i in range(3):
        with store.open_batch("c") as b:
            b.delete_document(f"d{i}")
    with pytest.raises(InvalidInput):
        store.rollback("c", 1)
    assert store.rollback("c", 3).version == 3  # v1: 5 docs, v2: 4, v3: 3, v4: 2
    assert store.get_collection("c").chunks == 3


def test_rows_of_old_versions_are_garbage_collected(tmp_path: Path) -> None:
    store = EmbeddedIndexStore(tmp_path, keep_versions=1)
    fill(store, "c", 5)
    with store.open_batch("c") as b:
        b.delete_document("d0")
    conn = sqlite3.connect(tmp_path / "c" / "store.sqlite3")
    assert conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == 4


def test_fetched_chunks_are_cached_copies_and_a_dropped_collection_leaves_nothing_stale(tmp_path: Path) -> None:
    store = EmbeddedIndexStore(tmp_path)
    fill(store, "c", 5)
    keys = store.search_lexical("c", ["문서"], 5, NOFILTER)[0].tolist()
    first = store.fetch("c", keys)
    # a second fetch is served from the handle's cache, without SQL
    store._open("c").conn.execute("UPDATE chunks SET text='바뀐 본문'")  # rows never change; here they do
    again = store.fetch("c", keys)
    assert [c.text for c in again] == [c.text for c in first] and all("내용" in c.text for c in again)
    # each caller gets its own Chunk objects
    again[0].text = "호출자가 고친 값"
    assert store.fetch("c", keys)[0].text == first[0].text
    # dropping and re-creating the collection restarts its keys: the new rows are read, not the old cache
    store.drop_collection("c")
    store.ensure_collection("c", dim=16, embedder_id="test")
    with store.open_batch("c") as b:
        b.upsert_document("new", "fp", [Chunk(chunk_id="n", doc_id="new", text="새 문서")],
                          unit(np.random.default_rng(1), 1, 16), [["새", "문서"]])
    key = store.search_lexical("c", ["새"], 1, NOFILTER)[0].tolist()
    assert key == [1] and 1 in keys  # AUTOINCREMENT starts over in the new file: key 1 again
    assert [c.doc_id for c in store.fetch("c", key)] == ["new"]


def test_the_chunk_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jisik.stores.embedded import store as store_mod

    monkeypatch.setattr(store_mod, "CHUNK_CACHE_SIZE", 3)
    store = EmbeddedIndexStore(tmp_path)
    fill(store, "c", 6)
    assert [c.doc_id for c in store.fetch("c", [1, 2, 3, 4, 5, 6])] == [f"d{i}" for i in range(6)]
    assert list(store._open("c").chunks) == [4, 5, 6]  # least recently used first out
    store.fetch("c", [4])
    assert list(store._open("c").chunks) == [5, 6, 4]
