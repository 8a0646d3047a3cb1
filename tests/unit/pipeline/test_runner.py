"""The pipeline runner on embedded defaults (SQLite warehouse, local landing/inbox dirs, SQLite receipts,
embedded index) with a real embedder: incremental indexing, sync, lineage and run reports."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from jisik.core.errors import ConfigError
from jisik.core.types import Chunk
from jisik.pipeline.config import parse_pipeline_config
from jisik.pipeline.landing import read_manifest
from jisik.pipeline.runner import Pipeline
from jisik.pipeline.sources.base import SqliteStateStore
from jisik.retrieval.filters import parse_filter
from jisik.stores.embedded import EmbeddedIndexStore
from pipeline_env import CountingEmbedder, RunnerRuntime, execute, make_pipeline, product, sql_source, warehouse

PRODUCTS = [{"collection": "products", "sources": ["products"], "chunker": "rows"}]


@pytest.fixture(scope="module")
def runtime() -> RunnerRuntime:
    return RunnerRuntime(CountingEmbedder())


def chunks_of(pipeline: Pipeline, collection: str) -> list[Chunk]:
    store = EmbeddedIndexStore(Path(pipeline.urls["index"].removeprefix("file://")))
    try:
        n = store.get_collection(collection).chunks
        probe = store.search_dense(collection, _unit(store, collection), max(n, 1), parse_filter(None))[0]
        return store.fetch(collection, probe.tolist())
    finally:
        store.close()


def _unit(store: EmbeddedIndexStore, collection: str):  # type: ignore[no-untyped-def]
    import numpy as np

    v = np.ones(store.get_collection(collection).dim, np.float32)
    return v / np.linalg.norm(v)


def index_stage(report):  # type: ignore[no-untyped-def]
    return next(s for s in report.stages if s.stage == "index")


def extract_stage(report):  # type: ignore[no-untyped-def]
    return next(s for s in report.stages if s.stage == "extract")


def test_first_run_indexes_and_an_unchanged_rerun_is_a_no_op(tmp_path: Path, runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(30)])
    p = make_pipeline(tmp_path / "home", [sql_source("products", url)], PRODUCTS)
    first = p.run(runtime=runtime)
    assert first.status == "ok", first.to_dict()
    ix = index_stage(first).counts
    assert (ix["version"], ix["added"], ix["chunks_indexed"]) == (1, 30, 30)
    embedded = runtime.embedder.passages

    again = p.run(runtime=runtime)
    assert again.status == "ok"
    extract = extract_stage(again).counts
    assert (extract["landed"], extract["unchanged"], extract["rows"]) == (0, 1, 30)
    ix = index_stage(again).counts
    assert (ix["version"], ix["added"], ix["updated"], ix["deleted"], ix["unchanged"]) == (1, 0, 0, 0, 30)
    assert runtime.embedder.passages == embedded  # nothing re-embedded
    store = EmbeddedIndexStore(tmp_path / "home" / "index")
    assert [v.version for v in store.versions("products")] == [1]  # no new version
    store.close()


def test_full_extract_adds_changes_and_deletes_rows(tmp_path: Path, runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(10)])
    p = make_pipeline(tmp_path / "home", [sql_source("products", url)], PRODUCTS)
    first = p.run(runtime=runtime)
    execute(url, "INSERT INTO products VALUES (?, ?, ?, ?)", product(10, "새로 나온 청년 적금 상품"))
    execute(url, "UPDATE products SET benefit = ? WHERE id = 3", ("해지 수수료가 면제되는 특별 혜택",))
    execute(url, "DELETE FROM products WHERE id = 7")
    before = runtime.embedder.passages

    second = p.run(runtime=runtime)
    ix = index_stage(second).counts
    assert (ix["version"], ix["added"], ix["updated"], ix["deleted"], ix["unchanged"]) == (2, 1, 1, 1, 8)
    assert runtime.embedder.passages - before == 2  # only the new and the changed row
    by_doc = {c.doc_id: c for c in chunks_of(p, "products")}
    assert "products/products/id=7" not in by_doc and len(by_doc) == 10
    assert "해지 수수료" in by_doc["products/products/id=3"].text
    # the changed and new rows carry the new run's lineage; unchanged rows keep the run that delivered them
    assert by_doc["products/products/id=3"].metadata["run_id"] == second.run_id
    assert by_doc["products/products/id=10"].metadata["run_id"] == second.run_id
    assert by_doc["products/products/id=0"].metadata["run_id"] == first.run_id


def test_incremental_cursor_source_indexes_new_rows_only(tmp_path: Path, runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(1, 6)])
    p = make_pipeline(tmp_path / "home", [sql_source("products", url, cursor_column="id")], PRODUCTS)
    first = p.run(runtime=runtime)
    assert index_stage(first).counts["added"] == 5
    execute(url, "DELETE FROM products WHERE id = 2")  # incremental: a deleted row is not noticed
    execute(url, "UPDATE products SET benefit = '바뀐 설명' WHERE id = 1")  # below the cursor: not re-read
    execute(url, "INSERT INTO products VALUES (?, ?, ?, ?)", product(6))
    execute(url, "INSERT INTO products VALUES (?, ?, ?, ?)", product(7))

    second = p.run(runtime=runtime)
    assert extract_stage(second).counts["rows"] == 2
    ix = index_stage(second).counts
    assert (ix["added"], ix["updated"], ix["deleted"], ix["unchanged"]) == (2, 0, 0, 0)
    docs = {c.doc_id: c for c in chunks_of(p, "products")}
    assert sorted(docs) == [f"products/products/id={i}" for i in range(1, 8)]
    assert "바뀐 설명" not in docs["products/products/id=1"].text
    cursor = SqliteStateStore(p.work / "state.sqlite3").get_cursor("products")
    assert cursor is not None and (cursor.value, cursor.run_id) == ("7", second.run_id)

    third = p.run(runtime=runtime)  # nothing new: no object, nothing indexed
    assert extract_stage(third).counts["objects"] == 0 and index_stage(third).status == "skipped"


def test_newest_extraction_wins_when_several_runs_are_pending(tmp_path: Path, runtime: RunnerRuntime) -> None:
    ddl = "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, benefit TEXT, updated_at TEXT)"
    url = warehouse(tmp_path / "wh.db", [(1, "예금", "첫 번째 설명", "2024-01-01T00:00:00"),
                                          (2, "적금", "적금 설명", "2024-01-01T00:00:01")], ddl=ddl)
    src = sql_source("products", url, cursor_column="updated_at", cursor_type="timestamp")
    p = make_pipeline(tmp_path / "home", [src], PRODUCTS)
    p.run(index=False, runtime=runtime)
    execute(url, "UPDATE products SET benefit = '두 번째 설명', updated_at = '2024-02-01T00:00:00' WHERE id = 1")
    p.run(index=False, runtime=runtime)
    assert len(p.receipts.pending()) == 2  # both extractions wait for the knowledge store

    [rep] = p.index_delivered(runtime=runtime)
    assert rep.status == "ok" and rep.counts["objects"] == 2
    docs = {c.doc_id: c for c in chunks_of(p, "products")}
    assert len(docs) == 2 and "두 번째 설명" in docs["products/products/id=1"].text
    assert p.receipts.pending() == []


def test_sync_deletes_only_the_sources_own_documents(tmp_path: Path, runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(3)])
    notes = tmp_path / "notes"
    notes.mkdir()
    for name, text in [("a", "# 예금자보호\n\n예금자보호 한도는 1억 원입니다."), ("b", "# 휴면계좌\n\n휴면계좌 조회 방법")]:
        (notes / f"{name}.md").write_text(text, encoding="utf-8")
    sources = [sql_source("products", url), {"kind": "file", "name": "notes", "paths": [str(notes)]}]
    p = make_pipeline(tmp_path / "home", sources, [{"collection": "kb", "sources": ["products", "notes"]}])
    assert p.run(runtime=runtime).status == "ok"
    assert len({c.doc_id for c in chunks_of(p, "kb")}) == 5

    (notes / "b.md").unlink()
    ix = index_stage(p.run(runtime=runtime)).counts
    assert (ix["deleted"], ix["unchanged"]) == (1, 4)
    execute(url, "DELETE FROM products WHERE id = 0")
    ix = index_stage(p.run(runtime=runtime)).counts
    assert (ix["deleted"], ix["unchanged"]) == (1, 3)
    assert sorted({c.doc_id for c in chunks_of(p, "kb")}) == [
        "notes/a", "products/products/id=1", "products/products/id=2"]


def test_lineage_in_chunks_and_citations(tmp_path: Path, runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(20)]
                    + [product(20, "해외 송금 수수료를 면제해 드리는 외화 통장")])
    p = make_pipeline(tmp_path / "home", [sql_source("products", url)], PRODUCTS)
    report = p.run(runtime=runtime)
    store = EmbeddedIndexStore(tmp_path / "home" / "index")
    hit = runtime.retriever(store).retrieve("해외 송금 수수료 면제", "products", top_k=1).hits[0]
    meta, cite = hit.chunk.metadata, hit.citation
    assert meta["source"] == "products" and meta["run_id"] == report.run_id
    key = meta["lineage_key"]
    assert key.startswith("raw/products/") and f"/{report.run_id}/" in key and key.endswith("/products.csv")
    manifest = read_manifest(p.landing, key)  # the chunk leads back to the landed object and its manifest
    assert manifest.run_id == report.run_id and manifest.row_count == 21 and "FROM products" in (manifest.query or "")
    assert cite.source_uri == key and cite.doc_id == "products/products/id=20"
    assert cite.locator == {"table": "products/products", "rows": [20, 20], "keys": {"id": 20}}
    store.close()


def test_run_reports_are_written_and_listed(tmp_path: Path, runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(3)])
    p = make_pipeline(tmp_path / "home", [sql_source("products", url)], PRODUCTS)
    first, second = p.run(runtime=runtime), p.run(runtime=runtime)
    saved = json.loads((tmp_path / "home" / "pipeline" / "runs" / f"{first.run_id}.json").read_text("utf-8"))
    assert saved == json.loads(json.dumps(first.to_dict()))
    assert saved["status"] == "ok" and saved["finished_at"]
    assert [s["stage"] for s in saved["stages"]] == ["sweep", "extract", "transfer", "index"]
    assert [r["run_id"] for r in p.reports()] == [second.run_id, first.run_id]  # newest first
    assert [r["run_id"] for r in p.reports(limit=1)] == [second.run_id]


def test_temp_dirs_of_killed_runs_are_swept(tmp_path: Path, runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(1)])
    p = make_pipeline(tmp_path / "home", [sql_source("products", url)], PRODUCTS)
    stale, fresh = p.work / "staging-dead", p.work / "batch-live"
    for d in (stale, fresh):
        (d / "x").mkdir(parents=True)
        (d / "x" / "f.csv").write_text("a\n1\n")
    old = time.time() - 2 * 24 * 3600
    for path in (stale / "x" / "f.csv", stale / "x", stale):
        os.utime(path, (old, old))
    sweep = p.run(runtime=runtime).stages[0]
    assert not stale.exists() and fresh.exists()
    assert (sweep.stage, sweep.status, sweep.counts["work_dirs"], sweep.details) == (
        "sweep", "ok", 1, {"work_dirs": ["staging-dead"]})


def test_sync_on_an_incremental_source_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="incremental"):
        parse_pipeline_config({"sources": [sql_source("products", "sqlite:///x.db", cursor_column="id")],
                               "targets": [{"collection": "p", "sources": ["products"], "sync": True}]})
