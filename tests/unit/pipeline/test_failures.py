"""Failure modes of a pipeline run: each fails its own stage with a clear Korean + English error in the
run report, the run is ``failed``, the other sources still run, and nothing partial is published
(no landed object of the failed extraction, the collection's index version unchanged)."""

from __future__ import annotations

import os
import pickle
import re
import socket
from pathlib import Path
from typing import Any

import pytest

from jisik.pipeline.runner import Pipeline, RunReport, StageReport
from jisik.pipeline.sources.base import SqliteStateStore
from jisik.stores.embedded import EmbeddedIndexStore
from pipeline_env import CountingEmbedder, RunnerRuntime, execute, make_pipeline, product, sql_source, warehouse

HANGUL = re.compile(r"[가-힣]")


@pytest.fixture(scope="module")
def runtime() -> RunnerRuntime:
    return RunnerRuntime(CountingEmbedder())


@pytest.fixture
def good(tmp_path: Path) -> dict[str, Any]:
    """A healthy source next to the broken one: it must still run."""
    return sql_source("good", warehouse(tmp_path / "good.db", [product(i) for i in range(3)]))


def targets(*sources: str) -> list[dict[str, Any]]:
    return [{"collection": s, "sources": [s], "chunker": "rows" if s != "docs" else "whole"} for s in sources]


def versions(p: Pipeline, collection: str) -> list[int]:
    store = EmbeddedIndexStore(Path(p.urls["index"].removeprefix("file://")))
    try:
        return [v.version for v in store.versions(collection)] if collection in {
            c.name for c in store.list_collections()} else []
    finally:
        store.close()


def stage(report: RunReport, kind: str, name: str) -> StageReport:
    return next(s for s in report.stages if s.stage == kind and s.name == name)


def assert_failed_cleanly(p: Pipeline, report: RunReport, source: str, error_type: str, *needles: str) -> None:
    assert report.status == "failed"
    rep = stage(report, "extract", source)
    assert rep.status == "failed" and rep.error is not None, rep
    assert rep.error["type"] == error_type, rep.error
    ko, en = rep.error["message_ko"], rep.error["message_en"]
    assert HANGUL.search(ko) and ko != en
    for needle in needles:
        assert needle in en, (needle, en)
    # nothing of this run landed: no data object, manifest or run record (so nothing to transfer)
    landed = [i.key for i in p.landing.list(f"raw/{source}/")]
    assert not [k for k in landed if report.run_id in k], landed
    assert stage(report, "extract", "good").status == "ok"  # the other source still ran
    assert stage(report, "index", "good").status in ("ok", "skipped")


def test_ragged_csv_rows_fail_the_extract(tmp_path: Path, good: dict[str, Any], runtime: RunnerRuntime) -> None:
    data = tmp_path / "rates.csv"
    data.write_text("상품,금리\n정기예금,3.5\n적금,4.0\n", encoding="utf-8")
    p = make_pipeline(tmp_path / "home", [good, {"kind": "file", "name": "rates", "paths": [str(data)]}],
                      targets("good", "rates"))
    assert p.run(runtime=runtime).status == "ok"
    before = versions(p, "rates")

    data.write_text("상품,금리\n정기예금,3.5\n적금,4.0,우대 0.2\n", encoding="utf-8")  # line 3: one field too many
    report = p.run(runtime=runtime)
    assert_failed_cleanly(p, report, "rates", "CorruptData", "Malformed CSV rates.csv", "line 3 has 3 fields")
    assert versions(p, "rates") == before == [1]


def test_badly_encoded_csv_fails_the_extract(tmp_path: Path, good: dict[str, Any], runtime: RunnerRuntime) -> None:
    data = tmp_path / "broken.csv"
    data.write_bytes("상품,금리\n".encode() + b"\xff\xfe\xfa,3.5\n")  # neither UTF-8 nor CP949
    p = make_pipeline(tmp_path / "home", [good, {"kind": "file", "name": "broken", "paths": [str(data)]}],
                      targets("good", "broken"))
    report = p.run(runtime=runtime)
    assert_failed_cleanly(p, report, "broken", "CorruptData", "Cannot read the CSV file broken.csv", "decode")
    assert stage(report, "index", "broken").status == "skipped" and versions(p, "broken") == []


def test_a_dropped_column_is_schema_drift(tmp_path: Path, good: dict[str, Any], runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(4)])
    p = make_pipeline(tmp_path / "home", [good, sql_source("products", url, cursor_column="id")],
                      targets("good", "products"))
    assert p.run(runtime=runtime).status == "ok"
    cursor = SqliteStateStore(p.work / "state.sqlite3").get_cursor("products")
    execute(url, "ALTER TABLE products DROP COLUMN benefit")
    execute(url, "INSERT INTO products VALUES (9, '신상품', 3.9)")

    report = p.run(runtime=runtime)
    assert_failed_cleanly(p, report, "products", "SchemaDrift", "Schema drift in source 'products'",
                          "column 'benefit' (string) is missing")
    assert versions(p, "products") == [1]
    assert SqliteStateStore(p.work / "state.sqlite3").get_cursor("products") == cursor  # the rows are not skipped


def test_a_changed_column_type_is_schema_drift_unless_allowed(tmp_path: Path, good: dict[str, Any],
                                                              runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(4)])
    p = make_pipeline(tmp_path / "home", [good, sql_source("products", url)], targets("good", "products"))
    assert p.run(runtime=runtime).status == "ok"
    execute(url, "UPDATE products SET rate = '변동' WHERE id = 2")  # the float column now holds text

    report = p.run(runtime=runtime)
    assert_failed_cleanly(p, report, "products", "SchemaDrift", "column 'rate' changed type float -> string")
    hint = stage(report, "extract", "products").error["hint"]  # type: ignore[index]
    assert hint.endswith("set allow_schema_drift: true on the source to accept it")

    allowed = make_pipeline(tmp_path / "home", [good, sql_source("products", url, allow_schema_drift=True)],
                            targets("good", "products"))
    report = allowed.run(runtime=runtime)
    # accepted: the column is text now, so every row's "rate" metadata changed type
    assert report.status == "ok" and stage(report, "index", "products").counts["updated"] == 4


def test_an_empty_column_in_one_increment_is_not_drift(tmp_path: Path, good: dict[str, Any],
                                                       runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(i) for i in range(3)])
    p = make_pipeline(tmp_path / "home", [good, sql_source("products", url, cursor_column="id")],
                      targets("good", "products"))
    assert p.run(runtime=runtime).status == "ok"
    execute(url, "INSERT INTO products VALUES (5, '금리 미정 상품', '설명', NULL)")  # rate: no value this run
    assert p.run(runtime=runtime).status == "ok"
    execute(url, "INSERT INTO products VALUES (6, '다음 상품', '설명', 3.1)")
    report = p.run(runtime=runtime)
    assert report.status == "ok" and stage(report, "index", "products").counts["added"] == 1


def test_sql_errors_fail_the_extract(tmp_path: Path, good: dict[str, Any], runtime: RunnerRuntime) -> None:
    url = warehouse(tmp_path / "wh.db", [product(1)])
    sources = [good, sql_source("missing", url, query="SELECT * FROM no_such_table"),
               sql_source("syntax", url, query="SELEC id FROM products")]
    p = make_pipeline(tmp_path / "home", sources, targets("good", "missing", "syntax"))
    report = p.run(runtime=runtime)
    assert_failed_cleanly(p, report, "missing", "InvalidInput", "The SQL query failed", "no such table: no_such_table")
    assert_failed_cleanly(p, report, "syntax", "InvalidInput", "The SQL query failed", "syntax error")
    assert stage(report, "index", "good").counts["added"] == 3


def test_an_unreachable_api_fails_the_extract(tmp_path: Path, good: dict[str, Any], runtime: RunnerRuntime) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    api = {"kind": "rest", "name": "rates-api", "base_url": f"http://127.0.0.1:{port}", "path": "/v1/rates",
           "http": {"retries": 1, "backoff_base_s": 0.01, "timeout_s": 2}}
    p = make_pipeline(tmp_path / "home", [good, api], targets("good", "rates-api"))
    report = p.run(runtime=runtime)
    assert_failed_cleanly(p, report, "rates-api", "Unavailable", "failed 2 times", "connection error")
    assert stage(report, "extract", "rates-api").error["status"] == 503  # type: ignore[index]


class _Poison:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def test_a_poisoned_pickle_is_refused_and_never_run(tmp_path: Path, good: dict[str, Any],
                                                    runtime: RunnerRuntime) -> None:
    faq = tmp_path / "faq"
    faq.mkdir()
    (faq / "ok.pkl").write_bytes(pickle.dumps({"[가입] 회원가입은 어떻게 하나요?": "앱에서 가입하세요."}))
    p = make_pipeline(tmp_path / "home", [good, {"kind": "file", "name": "faq", "paths": [str(faq)]}],
                      targets("good", "faq"))
    assert p.run(runtime=runtime).status == "ok"

    marker = tmp_path / "pwned"
    (faq / "poison.pkl").write_bytes(pickle.dumps(_Poison(marker)))
    report = p.run(runtime=runtime)
    assert_failed_cleanly(p, report, "faq", "InvalidInput", "Unsafe pickle rejected", ".system'")
    assert not marker.exists()
    assert versions(p, "faq") == [1]  # the good pickle's documents are still served, untouched


def test_a_failed_index_batch_publishes_nothing(tmp_path: Path, good: dict[str, Any], runtime: RunnerRuntime) -> None:
    rows = [(i, f"C{i:04d}", f"코드 {i}번 상품 안내") for i in range(300)]
    ddl = "CREATE TABLE products (id INTEGER PRIMARY KEY, code TEXT, body TEXT)"
    url = warehouse(tmp_path / "wh.db", rows, ddl=ddl)
    src = sql_source("products", url, hints={"key_columns": ["code"]})
    p = make_pipeline(tmp_path / "home", [good, src], targets("good", "products"))
    assert p.run(runtime=runtime).status == "ok"
    execute(url, "UPDATE products SET code = 'C0001', body = '중복 코드' WHERE id = 290")  # after a full group
    execute(url, "UPDATE products SET body = '첫 행 변경' WHERE id = 0")

    report = p.run(runtime=runtime)
    assert report.status == "failed"
    assert stage(report, "extract", "products").status == "ok"
    rep = stage(report, "index", "products")
    assert rep.status == "failed" and rep.error is not None
    # detected only at index time (duplicate row keys): the object becomes a dead letter with the error
    assert rep.error["type"] == "ObjectDeadLettered" and rep.error["details"]["error"] == "InvalidInput"
    assert "products/products/code=C0001" in rep.error["message_en"]
    assert HANGUL.search(rep.error["message_ko"])
    assert versions(p, "products") == [1]  # the half-written batch was never published
    [dead] = p.transfer().dead_letters()
    assert p.receipts.pending() == [] and dead.source == "products"
    assert dead.last_error is not None and dead.last_error.startswith("index: InvalidInput")

    execute(url, "UPDATE products SET code = 'C0290' WHERE id = 290")
    fixed = p.run(runtime=runtime)
    assert fixed.status == "ok" and stage(fixed, "index", "products").counts["updated"] == 2
    assert versions(p, "products") == [1, 2] and p.receipts.pending() == []
