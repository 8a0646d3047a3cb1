"""What a run does so that crashes, bad extracts and bad objects cost nothing: the sweep of killed runs'
leftovers, the shrink guard on full extracts, and dead letters at index time (embedded defaults, the
real USE embedder)."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from jisik.core.errors import Unavailable
from jisik.core.settings import Settings
from jisik.pipeline.landing import run_record_key
from jisik.pipeline.runner import Pipeline, RunReport, StageReport
from jisik.stores.embedded import EmbeddedIndexStore
from pipeline_env import (
    EMBEDDER,
    CountingEmbedder,
    RunnerRuntime,
    execute,
    make_pipeline,
    product,
    sql_source,
    warehouse,
)

HANGUL = re.compile(r"[가-힣]")
PRODUCTS = [{"collection": "products", "sources": ["products"], "chunker": "rows"}]


@pytest.fixture(scope="module")
def runtime() -> RunnerRuntime:
    return RunnerRuntime(CountingEmbedder())


def stage(report: RunReport, kind: str, name: str | None = None) -> StageReport:
    return next(s for s in report.stages if s.stage == kind and name in (None, s.name))


def documents(p: Pipeline, collection: str) -> dict[str, str]:
    """doc id -> text of every chunk in the served version (one chunk per document here)."""
    store = EmbeddedIndexStore(Path(p.urls["index"].removeprefix("file://")))
    try:
        info = store.get_collection(collection)
        import numpy as np

        probe = np.ones(info.dim, np.float32) / np.sqrt(info.dim)
        keys, _ = store.search_dense(collection, probe, max(info.chunks, 1), _no_filter())
        return {c.doc_id: c.text for c in store.fetch(collection, keys.tolist())}
    finally:
        store.close()


def versions(p: Pipeline, collection: str) -> list[int]:
    store = EmbeddedIndexStore(Path(p.urls["index"].removeprefix("file://")))
    try:
        return [v.version for v in store.versions(collection)]
    finally:
        store.close()


def _no_filter() -> Any:
    from jisik.retrieval.filters import parse_filter

    return parse_filter(None)


# -- 1. the sweep -----------------------------------------------------------------------------------

def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_a_run_first_sweeps_what_killed_runs_left_after_the_grace_period(tmp_path: Path,
                                                                        runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(1)])
    home = tmp_path / "home"
    p = make_pipeline(home, [sql_source("products", url)], PRODUCTS)
    day = f"{datetime.now(UTC):%Y-%m-%d}"
    killed, in_flight = (f"raw/products/{day}/{run}/products.csv" for run in ("run-killed", "run-writing"))
    for key in (killed, in_flight):  # data objects whose manifest never came
        p.landing.put_bytes(key, b"id,name\n1,a\n")
    stray = home / "landing" / "raw" / "products" / ".jisik-tmp-0123"  # a local store write that died
    stray.write_bytes(b"partial")
    _age(home / "landing" / killed, 2 * 3600)
    _age(stray, 2 * 3600)

    report = p.run(runtime=runtime)
    sweep = report.stages[0]
    assert report.status == "ok" and (sweep.stage, sweep.status) == ("sweep", "ok")
    assert sweep.counts == {"incomplete": 1, "temp_files": 1, "work_dirs": 0}
    assert sweep.details == {"incomplete": [killed]}
    assert not p.landing.exists(killed) and not stray.exists()
    assert p.landing.exists(in_flight)  # younger than JISIK_PIPELINE_SWEEP_GRACE_S (1 h): maybe being landed

    impatient = Pipeline(p.config, Settings(home=home, embedder=EMBEDDER, pipeline_sweep_grace_s=0))
    assert impatient.run(runtime=runtime).stages[0].details == {"incomplete": [in_flight]}
    assert not p.landing.exists(in_flight)
    landed = [i.key for i in p.landing.list("raw/products/") if i.key.endswith(".csv")]
    assert len(landed) == 1  # the runs' own complete landing is never touched


# -- 2. the shrink guard ----------------------------------------------------------------------------

def test_an_empty_full_extract_is_refused_and_the_index_keeps_the_documents(tmp_path: Path,
                                                                           runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(5)])
    p = make_pipeline(tmp_path / "home", [sql_source("products", url)], PRODUCTS)
    first = p.run(runtime=runtime)
    assert first.status == "ok" and len(documents(p, "products")) == 5
    execute(url, "DELETE FROM products")  # e.g. a warehouse table truncated by a failed ETL job

    report = p.run(runtime=runtime)
    rep = stage(report, "extract")
    assert report.status == "failed" and rep.status == "failed" and rep.error is not None
    assert (rep.error["type"], rep.error["code"]) == ("ShrinkRefused", "extract_shrink")
    assert rep.error["details"] == {"source": "products", "rows": 0, "previous_rows": 5,
                                    "previous_run": first.run_id, "min_rows_pct": 0.0}
    assert HANGUL.search(rep.error["message_ko"]) and "--allow-shrink" in rep.error["hint"]
    assert "0 row(s) after 5" in rep.error["message_en"]
    assert not p.landing.exists(run_record_key("products", report.run_id))  # nothing of it landed
    assert stage(report, "index").counts["deleted"] == 0
    assert len(documents(p, "products")) == 5 and versions(p, "products") == [1]

    accepted = p.run(runtime=runtime, allow_shrink=True)  # the operator says the table really is empty
    assert accepted.status == "ok" and stage(accepted, "index").counts["deleted"] == 5
    assert documents(p, "products") == {}
    assert p.run(runtime=runtime).status == "ok"  # empty after empty: nothing left to protect


def test_min_rows_pct_refuses_a_large_shrink_unless_the_source_allows_it(tmp_path: Path,
                                                                        runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(10)])
    p = make_pipeline(tmp_path / "home", [sql_source("products", url, min_rows_pct=50)], PRODUCTS)
    assert p.run(runtime=runtime).status == "ok"
    execute(url, "DELETE FROM products WHERE id >= 5")  # 5 of 10: exactly the minimum
    assert stage(p.run(runtime=runtime), "index").counts["deleted"] == 5

    execute(url, "DELETE FROM products WHERE id >= 2")  # 2 of 5 = 40 %
    rep = stage(p.run(runtime=runtime), "extract")
    assert rep.status == "failed" and rep.error is not None
    assert "2 row(s) after 5" in rep.error["message_en"] and "40.0% of them (minimum 50%)" in rep.error["message_en"]
    assert len(documents(p, "products")) == 5

    allowed = make_pipeline(tmp_path / "home", [sql_source("products", url, min_rows_pct=50, allow_shrink=True)],
                            PRODUCTS)
    report = allowed.run(runtime=runtime)
    assert report.status == "ok" and stage(report, "index").counts["deleted"] == 3
    assert sorted(documents(p, "products")) == ["products/products/id=0", "products/products/id=1"]


def test_an_emptied_folder_is_refused_and_a_target_without_sync_needs_no_guard(tmp_path: Path,
                                                                              runtime: RunnerRuntime) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# 예금자보호\n\n예금자보호 한도는 1억 원입니다.", encoding="utf-8")
    source = {"kind": "file", "name": "notes", "paths": [str(notes)], "allow_empty": True}
    p = make_pipeline(tmp_path / "home", [source], [{"collection": "notes", "sources": ["notes"]}])
    assert p.run(runtime=runtime).status == "ok"
    (notes / "a.md").unlink()
    rep = stage(p.run(runtime=runtime), "extract")
    assert rep.status == "failed" and rep.error is not None and rep.error["type"] == "ShrinkRefused"
    assert list(documents(p, "notes")) == ["notes/a"]

    keeping = make_pipeline(tmp_path / "home", [source], [{"collection": "notes", "sources": ["notes"],
                                                           "sync": False}])
    report = keeping.run(runtime=runtime)  # sync: false never deletes, so an empty extract is harmless
    assert report.status == "ok" and list(documents(p, "notes")) == ["notes/a"]


# -- 3. dead letters at index time ------------------------------------------------------------------

def test_a_poisoned_object_fails_its_batch_and_later_runs_go_on_without_it(tmp_path: Path,
                                                                          runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(3)])
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# 예금자보호\n\n예금자보호 한도는 1억 원입니다.", encoding="utf-8")
    rates = notes / "rates.csv"
    rates.write_text("id,상품,금리\n1,정기예금,3.5\n2,적금,4.0\n", encoding="utf-8")
    sources = [sql_source("products", url, cursor_column="id"),
               {"kind": "file", "name": "notes", "paths": [str(notes)], "hints": {"key_columns": ["id"]}}]
    p = make_pipeline(tmp_path / "home", sources, [{"collection": "kb", "sources": ["products", "notes"],
                                                    "chunker": "whole"}])
    assert p.run(runtime=runtime).status == "ok" and len(documents(p, "kb")) == 6

    for i in (3, 4):  # new rows of the incremental source: a good object in the same batch
        execute(url, "INSERT INTO products VALUES (?, ?, ?, ?)", product(i))
    rates.write_text("id,상품,금리\n1,정기예금,3.6\n1,적금,4.0\n", encoding="utf-8")  # duplicate key: only the
    # index batch finds out (the extract reads a well-formed CSV)
    failed = p.run(runtime=runtime)
    assert stage(failed, "extract", "notes").status == "ok"
    rep = stage(failed, "index", "kb")
    assert failed.status == "failed" and rep.status == "failed" and rep.error is not None
    assert rep.error["type"] == "ObjectDeadLettered" and rep.error["details"]["error"] == "InvalidInput"
    assert "notes/rates/id=1" in rep.error["message_en"] and HANGUL.search(rep.error["message_ko"])
    assert rep.counts == {"objects": 3, "dead_letters": 1}  # new products rows, a.md, rates.csv
    assert versions(p, "kb") == [1] and "notes/rates/id=1" in documents(p, "kb")  # nothing published
    [dead] = p.transfer().dead_letters()
    assert dead.source == "notes" and dead.object_key == rep.error["details"]["key"]
    assert dead.object_key.endswith("/rates.csv") and (dead.last_error or "").startswith("index: InvalidInput")
    assert [r.source for r in p.receipts.pending()] == ["products"]  # the good object waits for the next batch

    again = p.run(runtime=runtime)  # nothing changed in the folder: the same (dead) object, skipped
    ix = stage(again, "index", "kb")
    assert again.status == "ok", again.to_dict()
    assert (ix.counts["added"], ix.counts["deleted"], ix.counts["dead_skipped"]) == (2, 0, 1)
    docs = documents(p, "kb")
    assert len(docs) == 8 and "3.5" in docs["notes/rates/id=1"]  # the dead object's documents are kept
    assert p.receipts.pending() == []

    rates.write_text("id,상품,금리\n1,정기예금,3.6\n3,적금,4.0\n", encoding="utf-8")  # fixed: a new checksum
    fixed = p.run(runtime=runtime)
    ix = stage(fixed, "index", "kb")
    assert fixed.status == "ok" and (ix.counts["added"], ix.counts["updated"], ix.counts["deleted"]) == (1, 1, 1)
    assert "dead_skipped" not in ix.counts
    docs = documents(p, "kb")
    assert "3.6" in docs["notes/rates/id=1"] and "notes/rates/id=2" not in docs and "notes/rates/id=3" in docs


def test_a_corrupted_inbox_copy_is_dead_lettered_and_requeue_brings_it_back(tmp_path: Path,
                                                                           runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(4)])
    p = make_pipeline(tmp_path / "home", [sql_source("products", url)], PRODUCTS)
    p.run(index=False, runtime=runtime)
    [receipt] = p.receipts.pending()
    assert receipt.inbox_key is not None
    p.inbox.put_bytes(receipt.inbox_key, b"id,name\n1,\xeb\xb0\x94\xeb\x80\x9c\n")  # bytes changed at rest

    [rep] = p.index_delivered(runtime=runtime)
    assert rep.status == "failed" and rep.error is not None and rep.error["details"]["error"] == "CorruptData"
    assert "differs from its manifest" in rep.error["message_en"]
    assert [d.manifest_key for d in p.transfer().dead_letters()] == [receipt.manifest_key]

    assert p.transfer().requeue(receipt.manifest_key).status == "delivered"  # copied again from landing
    [rep] = p.index_delivered(runtime=runtime)
    assert rep.status == "ok" and rep.counts["added"] == 4 and p.transfer().dead_letters() == []


class _PoisonChunker:
    """The real chunker, failing on documents that contain a marker (a chunker bug hit by one file)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __repr__(self) -> str:
        return repr(self.inner)

    def chunk(self, doc: Any) -> Any:
        if "처리불가" in doc.text:
            raise ValueError("chunker cannot split this text")
        return self.inner.chunk(doc)

    def chunk_many(self, docs: list[Any]) -> list[Any]:
        return [self.chunk(d) for d in docs]


def test_a_document_the_chunker_fails_on_dead_letters_its_object(tmp_path: Path, runtime: RunnerRuntime,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from jisik.pipeline import runner

    real = runner.make_chunker
    monkeypatch.setattr(runner, "make_chunker", lambda kind: _PoisonChunker(real(kind)))
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# 예금\n\n예금자보호 한도는 1억 원입니다.", encoding="utf-8")
    (notes / "b.md").write_text("# 처리불가\n\n이 문서는 청크로 나눌 수 없습니다.", encoding="utf-8")
    p = make_pipeline(tmp_path / "home", [{"kind": "file", "name": "notes", "paths": [str(notes)]}],
                      [{"collection": "notes", "sources": ["notes"]}])
    rep = stage(p.run(runtime=runtime), "index")
    assert rep.status == "failed" and rep.error is not None and rep.error["details"]["error"] == "DocumentFailed"
    assert "Cannot chunk document notes/b" in rep.error["message_en"]
    [dead] = p.transfer().dead_letters()
    assert dead.object_key.endswith("/b.md")

    rep = stage(p.run(runtime=runtime), "index")
    assert rep.status == "ok" and rep.counts["dead_skipped"] == 1 and list(documents(p, "notes")) == ["notes/a"]


def test_an_unavailable_inbox_is_not_the_objects_fault(tmp_path: Path, runtime: RunnerRuntime,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    url = warehouse(tmp_path / "wh.db", [product(1)])
    p = make_pipeline(tmp_path / "home", [sql_source("products", url)], PRODUCTS)
    p.run(index=False, runtime=runtime)

    def down(*_: Any) -> Path:
        raise Unavailable("수신함에 연결할 수 없습니다.", "Inbox unavailable")

    monkeypatch.setattr(p.inbox, "get_file", down)
    [rep] = p.index_delivered(runtime=runtime)
    assert rep.status == "failed" and rep.error is not None and rep.error["type"] == "Unavailable"
    assert p.transfer().dead_letters() == [] and len(p.receipts.pending()) == 1  # retried by the next run
