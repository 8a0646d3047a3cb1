from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from jisik.core.errors import ConfigError, Conflict, CorruptData
from jisik.core.settings import get_settings
from jisik.pipeline.manifest import CursorRange
from jisik.pipeline.sources import (
    FileSourceConfig,
    FinlifeSourceConfig,
    ParseHints,
    RestSourceConfig,
    RunContext,
    Source,
    SqliteStateStore,
    SqlSourceConfig,
    build_source,
    load_source_config,
)
from jisik.pipeline.sources.base import default_state_path, expand_env
from jisik.pipeline.sources.config import TableHints


def test_state_store_lives_under_home_and_starts_empty() -> None:
    store = SqliteStateStore()
    assert store.path == get_settings().home / "pipeline" / "state.db" == default_state_path()
    assert store.path.exists()
    assert store.get_cursor("orders") is None


def test_commit_cursor_advances_only_from_the_runs_start(state: SqliteStateStore) -> None:
    state.commit_cursor("orders", CursorRange(column="id", start=None, end="10"), run_id="r1")
    saved = state.get_cursor("orders")
    assert saved is not None and (saved.column, saved.value, saved.run_id) == ("id", "10", "r1")
    # the same commit again (an orchestrator retry) is harmless
    state.commit_cursor("orders", CursorRange(column="id", start=None, end="10"), run_id="r1")
    # a run that started before r1 committed must not move the cursor (back)
    with pytest.raises(Conflict):
        state.commit_cursor("orders", CursorRange(column="id", start=None, end="7"), run_id="r0")
    state.commit_cursor("orders", CursorRange(column="id", start="10", end="20"), run_id="r2")
    assert state.get_cursor("orders").value == "20"  # type: ignore[union-attr]
    # a run that saw nothing leaves the cursor alone
    state.commit_cursor("orders", CursorRange(column="id", start="20", end=None), run_id="r3")
    assert state.get_cursor("orders").run_id == "r2"  # type: ignore[union-attr]
    state.reset_cursor("orders")
    assert state.get_cursor("orders") is None


def _commit(path: str, start: str | None, end: str, run_id: str, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    try:
        SqliteStateStore(Path(path)).commit_cursor("s", CursorRange(column="id", start=start, end=end), run_id=run_id)
        out.put("ok")
    except Conflict:
        out.put("conflict")


def test_two_processes_racing_from_the_same_start_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    SqliteStateStore(path)
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()  # type: ignore[type-arg]
    procs = [ctx.Process(target=_commit, args=(str(path), None, str(10 + i), f"r{i}", out)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert sorted(out.get(timeout=5) for _ in procs) == ["conflict", "ok"]


def test_corrupt_state_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CorruptData):
        SqliteStateStore(path)


def test_run_context_staging_per_run_and_source(tmp_path: Path, state: SqliteStateStore) -> None:
    run = RunContext.create(tmp_path, state)
    assert run.extracted_at.tzinfo is not None and run.extracted_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    staging = run.staging_for("orders")
    assert staging == tmp_path / run.run_id / "orders" and staging.is_dir()
    assert RunContext.create(tmp_path, state).run_id != run.run_id


def test_load_source_config_from_yaml_like_mappings() -> None:
    sql = load_source_config({"kind": "sql", "name": "orders", "url": "sqlite:///x.db", "query": "SELECT 1 AS id"})
    assert isinstance(sql, SqlSourceConfig) and sql.fmt == "parquet" and sql.batch_size == 10_000
    files = load_source_config({"kind": "file", "name": "docs", "paths": ["a/*.pdf"]})
    assert isinstance(files, FileSourceConfig)
    rest = load_source_config({"kind": "rest", "name": "api", "base_url": "http://x", "pagination": {"style": "page",
                               "max_page_field": "result.max_page_no"}, "auth": {"env": "K", "header": "X-Key"}})
    assert isinstance(rest, RestSourceConfig) and rest.pagination.style == "page"
    assert isinstance(load_source_config({"kind": "finlife", "name": "fss"}), FinlifeSourceConfig)
    for bad in ({"kind": "sql", "name": "x", "url": "u", "query": "q", "typo": 1},  # unknown key
                {"kind": "ftp", "name": "x"},  # unknown kind
                {"kind": "file", "name": "Bad Name", "paths": ["a"]},
                {"kind": "sql", "name": "x", "url": "u", "query": "q", "params": {"_cursor": 1}},  # reserved
                {"kind": "rest", "name": "x", "base_url": "u", "auth": {"env": "K"}}):  # neither param nor header
        with pytest.raises(ConfigError):
            load_source_config(bad)


def test_build_source_gives_the_component_of_each_kind() -> None:
    configs = [
        SqlSourceConfig(name="a", url="sqlite://", query="SELECT 1 AS id"),
        FileSourceConfig(name="b", paths=["x"]),
        RestSourceConfig(name="c", base_url="http://127.0.0.1"),
        FinlifeSourceConfig(name="d"),
    ]
    for cfg in configs:
        source = build_source(cfg)
        assert isinstance(source, Source)
        assert source.name == cfg.name and source.kind == cfg.kind


def test_expand_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_PASSWORD", "s3cret")
    assert expand_env("postgresql://u:${DB_PASSWORD}@h/${DB_NAME:jisik}") == "postgresql://u:s3cret@h/jisik"
    monkeypatch.delenv("DB_PASSWORD")
    with pytest.raises(ConfigError) as info:
        expand_env("postgresql://u:${DB_PASSWORD}@h/db")
    assert "DB_PASSWORD" in str(info.value)


def test_parse_hints_round_trip_through_params() -> None:
    hints = ParseHints.from_table(TableHints(key_columns=["id"], title_column="name", rows_per_doc=5),
                                  encoding="cp949")
    params = hints.to_params()
    assert params == {"_key_columns": ["id"], "_title_column": "name", "_encoding": "cp949", "_rows_per_doc": 5}
    assert ParseHints.from_params({"status": "active", **params}) == hints
    assert ParseHints().to_params() == {}
