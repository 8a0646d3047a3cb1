"""SqlSource against the real PostgreSQL (127.0.0.1:5432, psycopg) and MariaDB (127.0.0.1:3306,
pymysql) servers: a throw-away database per test run, dropped afterwards. A server that cannot be
reached FAILS these tests (never skips)."""

from __future__ import annotations

import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from jisik.core.errors import InvalidInput, Unavailable
from jisik.pipeline.sources import RunContext, SqliteStateStore, SqlSourceConfig
from jisik.pipeline.sources.base import expand_env
from jisik.pipeline.sources.sql import SqlSource

pytestmark = pytest.mark.integration

SERVERS = {
    "postgresql": ("postgresql+psycopg://postgres@127.0.0.1:5432", "postgres"),
    "mariadb": ("mysql+pymysql://root:${JISIK_TEST_MARIADB_PASSWORD:}@127.0.0.1:3306", ""),
}
SCHEMA = {
    "postgresql": "CREATE TABLE customers (id SERIAL PRIMARY KEY, name TEXT NOT NULL, phone TEXT, "
                  "balance NUMERIC(12, 2), vip BOOLEAN, joined DATE, updated_at TIMESTAMPTZ NOT NULL)",
    "mariadb": "CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(50) NOT NULL, "
               "phone VARCHAR(20), balance DECIMAL(12, 2), vip BOOLEAN, joined DATE, updated_at DATETIME(6) NOT NULL)"
               " CHARACTER SET utf8mb4",
}
INSERT = "INSERT INTO customers (name, phone, balance, vip, joined, updated_at) VALUES (:n, :p, :b, :v, :j, :u)"
ROWS = [
    {"n": "김민수", "p": "010-1111-2222", "b": 1200.5, "v": True, "j": "2023-05-01", "u": "2024-01-01 09:00:00+00"},
    {"n": "이영희", "p": "010-3333-4444", "b": 80, "v": False, "j": "2023-06-01", "u": "2024-01-02 09:00:00+00"},
    {"n": "박철수", "p": None, "b": None, "v": None, "j": None, "u": "2024-01-03 09:00:00+00"},
]


def _admin_url(kind: str) -> str:
    base, db = SERVERS[kind]
    return expand_env(f"{base}/{db}")


@pytest.fixture(params=["postgresql", "mariadb"])
def database(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, Engine]]:
    """(kind, source URL, engine) of a fresh database holding ``customers``."""
    kind = request.param
    name = f"jisik_src_{uuid.uuid4().hex[:10]}"
    admin = create_engine(_admin_url(kind), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"{kind} at {SERVERS[kind][0].rsplit('@', 1)[1]} is not reachable: {exc}", pytrace=False)
    url = f"{SERVERS[kind][0]}/{name}" + ("?charset=utf8mb4" if kind == "mariadb" else "")
    engine = create_engine(expand_env(url))
    with engine.begin() as conn:
        conn.execute(text(SCHEMA[kind]))
        conn.execute(text(INSERT), [_row(kind, r) for r in ROWS])
    try:
        yield kind, url, engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name}" + (" WITH (FORCE)" if kind == "postgresql" else "")))
        admin.dispose()


def _row(kind: str, row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "u": row["u"].removesuffix("+00")} if kind == "mariadb" else row


def _source(url: str, **kw: Any) -> SqlSource:
    return SqlSource(SqlSourceConfig.model_validate({"name": "crm", "url": url, "query": "SELECT * FROM customers",
                                                     "table": "customers", **kw}))


def _run(tmp_path: Path, state: SqliteStateStore) -> RunContext:
    return RunContext.create(tmp_path / "staging", state)


@pytest.fixture()
def state(tmp_path: Path) -> SqliteStateStore:
    return SqliteStateStore(tmp_path / "state.db")


@pytest.mark.parametrize("cursor", ["id", "updated_at"])
def test_incremental_second_run_picks_up_only_new_rows(database: tuple[str, str, Engine], cursor: str,
                                                       tmp_path: Path, state: SqliteStateStore) -> None:
    kind, url, engine = database
    source = _source(url, cursor_column=cursor, cursor_type="id" if cursor == "id" else "timestamp",
                     mask_columns=["phone"], batch_size=2)
    run = _run(tmp_path, state)
    [first] = source.extract(run)
    assert first.row_count == 3 and first.cursor is not None and first.cursor.start is None
    table = pq.read_table(first.path)
    assert table.column("name").to_pylist() == ["김민수", "이영희", "박철수"]
    assert "010-1111-2222" not in table.column("phone").to_pylist()
    types = {c.name: c.type for c in first.schema}
    assert types["id"] == "integer" and types["balance"] == "float" and types["updated_at"] == "datetime"
    assert types["joined"] == "date" and types["vip"] == ("boolean" if kind == "postgresql" else "integer")
    assert table.column("balance").to_pylist() == [1200.5, 80.0, None]
    state.commit_cursor("crm", first.cursor, run_id=run.run_id)

    assert source.extract(_run(tmp_path, state)) == []
    with engine.begin() as conn:
        conn.execute(text(INSERT), [_row(kind, {"n": "최지우", "p": "010-5", "b": 5, "v": True, "j": None,
                                                "u": "2024-02-01 00:00:00+00"}),
                                    _row(kind, {"n": "정우성", "p": None, "b": 6, "v": False, "j": None,
                                                "u": "2024-02-02 00:00:00+00"})])
    run2 = _run(tmp_path, state)
    [second] = source.extract(run2)
    assert second.row_count == 2 and second.cursor is not None and second.cursor.start == first.cursor.end
    assert pq.read_table(second.path).column("name").to_pylist() == ["최지우", "정우성"]
    state.commit_cursor("crm", second.cursor, run_id=run2.run_id)
    assert source.extract(_run(tmp_path, state)) == []


def test_streams_through_a_server_side_cursor(database: tuple[str, str, Engine], tmp_path: Path,
                                              state: SqliteStateStore) -> None:
    """Generated rows in 20 batches: a server-side cursor, and Python memory of a few batches."""
    kind, url, _ = database
    rows = 100_000 if kind == "postgresql" else 40_000  # pymysql is pure Python: keep the run short
    generated = ("SELECT g AS id, repeat('가', 60) || g AS body FROM generate_series(1, :n) AS g"
                 if kind == "postgresql" else
                 "SELECT seq AS id, CONCAT(REPEAT('가', 60), seq) AS body FROM seq_1_to_200000 WHERE seq <= :n")
    cursors: list[str] = []

    def seen(conn: Any, cursor: Any, *args: Any) -> None:
        cursors.append(type(cursor).__name__)

    event.listen(Engine, "before_cursor_execute", seen)
    tracemalloc.start()
    try:
        [e] = _source(url, query=generated, params={"n": rows}, cursor_column="id", batch_size=rows // 20,
                      fmt="csv").extract(_run(tmp_path, state))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        event.remove(Engine, "before_cursor_execute", seen)
    assert e.row_count == rows and e.cursor is not None and e.cursor.end == str(rows)
    assert cursors[-1] == ("ServerCursor" if kind == "postgresql" else "SSCursor")
    table_bytes = rows * (74 + 2 * 66 + 28 + 56)  # lower bound of the rows as Python objects
    assert peak < table_bytes / 5, f"peak {peak} B for a {table_bytes} B table in 20 batches"


def test_bound_parameters_and_errors_on_real_servers(database: tuple[str, str, Engine], tmp_path: Path,
                                                     state: SqliteStateStore) -> None:
    _, url, _ = database
    run = _run(tmp_path, state)
    [e] = _source(url, query="SELECT id, name FROM customers WHERE name = :n", params={"n": "이영희"},
                  fmt="csv").extract(run)
    assert e.row_count == 1 and e.path.read_text("utf-8").splitlines() == ["id,name", "2,이영희"]
    assert _source(url, query="SELECT id FROM customers WHERE name = :n", params={"n": "x' OR '1'='1"}).extract(
        run) == []
    with pytest.raises(InvalidInput):
        _source(url, query="SELECT * FROM no_such_table").extract(run)
    dead = url.replace(":5432/", ":1/").replace(":3306/", ":1/")
    with pytest.raises(Unavailable):
        _source(dead).extract(run)
