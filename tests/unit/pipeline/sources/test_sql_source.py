from __future__ import annotations

import csv
import sqlite3
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jisik.core.errors import ConfigError, InvalidInput, Unavailable
from jisik.pipeline.sources import RunContext, SqliteStateStore, SqlSourceConfig
from jisik.pipeline.sources.sql import SqlSource

PEOPLE = [
    (1, "김민수", "010-1111-2222", "2024-01-01 09:00:00", 1200.5, 1, b"\x00\x01"),
    (2, "이영희", "010-3333-4444", "2024-01-02 09:00:00", 80.0, 0, None),
    (3, "박철수", None, "2024-01-02 09:00:00", 99.25, 1, b"\x02"),
]


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    path = tmp_path / "src.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, phone TEXT, updated_at TEXT, "
                     "balance REAL, active BOOLEAN, photo BLOB)")
        conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, ?)", PEOPLE)
    return path


def _source(db: Path, **kw: object) -> SqlSource:
    base: dict[str, object] = {"name": "people", "url": f"sqlite:///{db}", "query": "SELECT * FROM people"}
    return SqlSource(SqlSourceConfig.model_validate({**base, **kw}))


def _insert(db: Path, rows: list[tuple[object, ...]]) -> None:
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO people VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _column(path: Path, name: str) -> list[str]:
    with path.open(encoding="utf-8", newline="") as f:
        return [row[name] for row in csv.DictReader(f)]


def test_full_extract_to_parquet_with_portable_schema(db: Path, run: RunContext) -> None:
    [e] = _source(db, batch_size=2).extract(run)
    assert (e.source, e.source_kind, e.fmt, e.name, e.row_count) == ("people", "sql", "parquet", "people", 3)
    assert e.path.parent == run.staging_for("people") and e.cursor is None
    assert {c.name: c.type for c in e.schema} == {"id": "integer", "name": "string", "phone": "string",
                                                 "updated_at": "string", "balance": "float", "active": "integer",
                                                 "photo": "binary"}
    table = pq.read_table(e.path)
    assert table.num_rows == 3 and pq.ParquetFile(e.path).metadata.num_row_groups == 2  # one per batch
    assert table.column("name").to_pylist() == ["김민수", "이영희", "박철수"]
    assert table.column("photo").to_pylist() == [b"\x00\x01", None, b"\x02"]


def test_bound_parameters_and_csv_output(db: Path, run: RunContext) -> None:
    source = _source(db, query="SELECT id, name, balance FROM people WHERE balance > :min_balance;",
                     params={"min_balance": 90}, fmt="csv")
    [e] = source.extract(run)
    assert e.params["min_balance"] == 90 and e.content_type == "text/csv"
    with e.path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["id", "name", "balance"], ["1", "김민수", "1200.5"], ["3", "박철수", "99.25"]]
    assert [c.type for c in e.schema] == ["integer", "string", "float"]
    # the value travels as a bound parameter: text that looks like SQL is just a value
    evil = _source(db, query="SELECT id FROM people WHERE name = :n", params={"n": "x' OR '1'='1"})
    assert evil.extract(run) == []


def test_masked_columns_never_reach_the_file(db: Path, run: RunContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JISIK_MASK_SALT", "pepper")
    [e] = _source(db, mask_columns=["PHONE"], fmt="csv").extract(run)
    text = e.path.read_text("utf-8")
    assert "010-1111-2222" not in text and "3333" not in text
    assert e.masked_columns == ["PHONE"]
    phones = _column(e.path, "phone")
    assert len(phones[0]) == 16 and phones[0] != phones[1] and phones[2] == ""  # NULL stays NULL
    # hashing is stable for one salt (joins still work), different for another
    [again] = _source(db, mask_columns=["phone"], fmt="csv").extract(run)
    assert _column(again.path, "phone") == phones
    monkeypatch.setenv("JISIK_MASK_SALT", "other")
    [other] = _source(db, mask_columns=["phone"], fmt="csv").extract(run)
    assert _column(other.path, "phone")[0] != phones[0]
    [redacted] = _source(db, mask_columns=["phone", "name"], mask="redact").extract(run)
    assert set(pq.read_table(redacted.path).column("name").to_pylist()) == {"***"}


def test_mask_salt_defaults_to_a_private_per_installation_file(db: Path, run: RunContext,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from jisik.core.settings import get_settings

    monkeypatch.delenv("JISIK_MASK_SALT", raising=False)
    _source(db, mask_columns=["phone"]).extract(run)
    salt = get_settings().home / "pipeline" / "mask.salt"
    assert salt.stat().st_mode & 0o777 == 0o600 and len(salt.read_bytes()) == 64


def test_mask_or_cursor_column_missing_from_result_is_an_error(db: Path, run: RunContext) -> None:
    with pytest.raises(InvalidInput, match="phone_number"):
        _source(db, mask_columns=["phone_number"]).extract(run)
    with pytest.raises(InvalidInput):
        _source(db, query="SELECT name FROM people", cursor_column="id").extract(run)
    with pytest.raises(InvalidInput):
        _source(db, cursor_column="phone", mask_columns=["phone"])


@pytest.mark.parametrize("column", ["id; DROP TABLE people", "id) --", "1id", "a.b", ""])
def test_cursor_column_must_be_an_identifier(db: Path, column: str) -> None:
    with pytest.raises(InvalidInput):
        _source(db, cursor_column=column)


def test_incremental_by_id_only_after_commit(db: Path, new_run: Callable[[], RunContext],
                                             state: SqliteStateStore) -> None:
    source = _source(db, cursor_column="id", batch_size=2)
    run1 = new_run()
    [first] = source.extract(run1)
    assert first.row_count == 3 and first.cursor is not None
    assert (first.cursor.column, first.cursor.start, first.cursor.end) == ("id", None, "3")
    assert first.params["_key_columns"] == ["id"]  # an id cursor identifies rows for stable doc ids
    assert "WHERE src.id IS NOT NULL ORDER BY src.id" in (first.query or "")
    # a crash before landing: nothing committed, the next run extracts the same rows again
    [again] = source.extract(new_run())
    assert again.row_count == 3
    state.commit_cursor("people", first.cursor, run_id=run1.run_id)
    assert source.extract(new_run()) == []  # nothing new
    _insert(db, [(4, "최지우", "010-5555-6666", "2024-01-03 10:00:00", 5.0, 1, None),
                 (5, "정우성", None, "2024-01-04 10:00:00", 6.0, 0, None)])
    run3 = new_run()
    [new] = source.extract(run3)
    assert new.row_count == 2 and new.cursor is not None and (new.cursor.start, new.cursor.end) == ("3", "5")
    assert pq.read_table(new.path).column("id").to_pylist() == [4, 5]


def test_incremental_by_text_timestamp_on_sqlite(db: Path, new_run: Callable[[], RunContext],
                                                 state: SqliteStateStore) -> None:
    source = _source(db, cursor_column="updated_at", cursor_type="timestamp", fmt="csv")
    run = new_run()
    [e] = source.extract(run)
    assert e.cursor is not None and e.cursor.end == "2024-01-02 09:00:00"
    assert "_key_columns" not in e.params  # a timestamp does not identify a row
    state.commit_cursor("people", e.cursor, run_id=run.run_id)
    _insert(db, [(9, "한가인", None, "2024-02-01 00:00:00", 1.0, 1, None)])
    [e2] = source.extract(new_run())
    assert e2.row_count == 1 and e2.cursor is not None and e2.cursor.end == "2024-02-01 00:00:00"


def test_changed_cursor_column_is_refused(db: Path, new_run: Callable[[], RunContext],
                                          state: SqliteStateStore) -> None:
    run = new_run()
    [e] = _source(db, cursor_column="id").extract(run)
    state.commit_cursor("people", e.cursor, run_id=run.run_id)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        _source(db, cursor_column="updated_at", cursor_type="timestamp").extract(new_run())


def test_max_rows_keeps_rows_that_tie_on_the_cursor(db: Path, run: RunContext) -> None:
    # rows 2 and 3 share updated_at: stopping between them would lose row 3 for good
    [e] = _source(db, cursor_column="updated_at", cursor_type="timestamp", max_rows=2, batch_size=1).extract(run)
    assert e.row_count == 3
    [e1] = _source(db, cursor_column="id", max_rows=2).extract(run)
    assert e1.row_count == 2 and e1.cursor is not None and e1.cursor.end == "2"


def test_database_problems_are_typed_errors(tmp_path: Path, db: Path, run: RunContext) -> None:
    with pytest.raises(Unavailable):
        SqlSource(SqlSourceConfig(name="x", url=f"sqlite:///{tmp_path}/no/such/dir/db.sqlite3",
                                  query="SELECT 1 AS id")).extract(run)
    with pytest.raises(InvalidInput, match="no_such_table"):
        _source(db, query="SELECT * FROM no_such_table").extract(run)
    with pytest.raises(InvalidInput):
        _source(db, query="SELECT * FROM people WHERE id = :missing").extract(run)
    with pytest.raises(ConfigError) as info:
        SqlSource(SqlSourceConfig(name="x", url="nosuchdb://user:hunter2@host/db", query="SELECT 1")).extract(run)
    assert "hunter2" not in str(info.value)
    with pytest.raises(ConfigError, match="JISIK_TEST_UNSET_PASSWORD"):
        SqlSource(SqlSourceConfig(name="x", url="postgresql://u:${JISIK_TEST_UNSET_PASSWORD}@h/db",
                                  query="SELECT 1")).extract(run)
    assert not list(run.staging_for("people").iterdir())  # failed runs leave no partial files


def test_parquet_type_change_after_the_first_batch_names_the_column(tmp_path: Path, run: RunContext) -> None:
    path = tmp_path / "mixed.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, v)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, 10), (2, 2.5), (3, "text")])
    source = SqlSource(SqlSourceConfig(name="t", url=f"sqlite:///{path}", query="SELECT * FROM t", batch_size=2))
    with pytest.raises(InvalidInput, match="'v'"):
        source.extract(run)  # first batch: int + float -> float; "text" cannot be a float
    csv_source = SqlSource(SqlSourceConfig(name="t", url=f"sqlite:///{path}", query="SELECT * FROM t", fmt="csv"))
    [e] = csv_source.extract(run)
    assert [c.type for c in e.schema] == ["integer", "string"]


def test_streams_in_bounded_batches(tmp_path: Path, run: RunContext) -> None:
    """200k rows of ~300 bytes in 20 batches: Python memory peaks at a few batches, not the table."""
    path = tmp_path / "big.sqlite3"
    payload = "가" * 60
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, body TEXT, x REAL)")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
            "INSERT INTO big SELECT i, ? || i, i * 0.5 FROM n", (payload,))
    row_bytes = (74 + 2 * len(payload)) + 28 + 24 + 56  # lower bound: str + int + float + tuple
    # (fmt, rows, batch): CSV on a quarter of the table to keep the traced run short
    for fmt, rows, batch in (("parquet", 200_000, 10_000), ("csv", 50_000, 2_500)):
        source = SqlSource(SqlSourceConfig(name="big", url=f"sqlite:///{path}", fmt=fmt, batch_size=batch,
                                           query="SELECT * FROM big WHERE id <= :n", params={"n": rows},
                                           cursor_column="id"))
        tracemalloc.start()
        try:
            [e] = source.extract(run)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert e.row_count == rows and e.cursor is not None and e.cursor.end == str(rows)
        table_bytes = rows * row_bytes
        assert peak < table_bytes / 6, f"{fmt}: peak {peak} B for a {table_bytes} B table in 20 batches"
