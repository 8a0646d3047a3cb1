"""What every source shares: the :class:`Source` protocol, the :class:`RunContext` of one run, the
per-source cursor :class:`StateStore`, parser hints recorded in manifests, and the factory.

A source only *reads* its cursor. The orchestrator calls :meth:`StateStore.commit_cursor` after the
extracted files landed, so a crash between extract and land re-extracts the same rows instead of
losing them (at-least-once; landing and the knowledge store are idempotent by key / doc id).
"""

from __future__ import annotations

import os
import re
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from jisik.core.errors import ConfigError, Conflict, CorruptData
from jisik.core.settings import get_settings
from jisik.pipeline.manifest import CursorRange, Extracted
from jisik.pipeline.sources.config import (
    FileSourceConfig,
    FinlifeSourceConfig,
    RestSourceConfig,
    SourceConfig,
    SqlSourceConfig,
    TableHints,
)

CONTENT_TYPES: dict[str, str] = {
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "pdf": "application/pdf",
    "md": "text/markdown",
    "html": "text/html",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "json": "application/json",
    "jsonl": "application/x-ndjson",
    "txt": "text/plain",
    "pkl": "application/x-python-pickle",
}


@runtime_checkable
class Source(Protocol):
    """A component that writes what it extracted to staging files and describes each one."""

    @property
    def name(self) -> str: ...

    @property
    def kind(self) -> str: ...

    def extract(self, run: RunContext) -> list[Extracted]: ...


@dataclass(frozen=True, slots=True)
class CursorState:
    source: str
    column: str
    value: str
    run_id: str
    updated_at: str


class StateStore(Protocol):
    def get_cursor(self, source: str) -> CursorState | None: ...

    def commit_cursor(self, source: str, cursor: CursorRange, *, run_id: str) -> None: ...

    def reset_cursor(self, source: str) -> None: ...


def default_state_path() -> Path:
    return get_settings().home / "pipeline" / "state.db"


class SqliteStateStore:
    """Cursors in one SQLite file (default ``{home}/pipeline/state.db``); safe across processes.

    ``commit_cursor`` is a compare-and-set: it only advances a cursor whose stored value is still
    the run's start value, so two overlapping runs cannot silently move it backwards.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_state_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS cursors (source TEXT PRIMARY KEY, column_name TEXT NOT NULL, "
                "value TEXT NOT NULL, run_id TEXT NOT NULL, updated_at TEXT NOT NULL)"
            )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise CorruptData(f"파이프라인 상태 파일을 열 수 없습니다: {self.path}",
                              f"Cannot open the pipeline state file {self.path}: {exc}") from exc
        with closing(conn):
            try:
                yield conn
            except sqlite3.DatabaseError as exc:
                if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                    raise
                raise CorruptData(f"파이프라인 상태 파일이 손상되었습니다: {self.path}",
                                  f"The pipeline state file {self.path} is unreadable: {exc}") from exc

    def get_cursor(self, source: str) -> CursorState | None:
        with self._connect() as db:
            row = db.execute("SELECT source, column_name, value, run_id, updated_at FROM cursors WHERE source = ?",
                             (source,)).fetchone()
        return CursorState(*row) if row else None

    def commit_cursor(self, source: str, cursor: CursorRange, *, run_id: str) -> None:
        if cursor.end is None:  # the run saw no rows: nothing to advance
            return
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute("SELECT column_name, value, run_id FROM cursors WHERE source = ?",
                                 (source,)).fetchone()
                if row is not None and row[1] == cursor.end and row[2] == run_id:
                    db.execute("ROLLBACK")  # the same commit again (a retried orchestrator step)
                    return
                current = None if row is None else row[1]
                if current != cursor.start or (row is not None and row[0] != cursor.column):
                    raise Conflict(
                        f"소스 '{source}'의 커서가 이 실행 이후 바뀌었습니다. 커서를 갱신하지 않았습니다.",
                        f"The cursor of source '{source}' changed since this run started; not advancing it.",
                        hint="another run committed first; run the source again",
                        details={"source": source, "run_id": run_id},
                    )
                db.execute(
                    "INSERT INTO cursors (source, column_name, value, run_id, updated_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(source) DO UPDATE SET column_name = excluded.column_name, value = excluded.value, "
                    "run_id = excluded.run_id, updated_at = excluded.updated_at",
                    (source, cursor.column, cursor.end, run_id, datetime.now(UTC).isoformat()),
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise

    def reset_cursor(self, source: str) -> None:
        with self._connect() as db:
            db.execute("DELETE FROM cursors WHERE source = ?", (source,))


def new_run_id(now: datetime | None = None) -> str:
    """Sortable (to the millisecond: runs of the same second keep their order) and unique:
    ``20250101T093000.123Z-1a2b3c4d``."""
    t = now or datetime.now(UTC)
    return f"{t:%Y%m%dT%H%M%S}.{t.microsecond // 1000:03d}Z-{secrets.token_hex(4)}"


@dataclass(slots=True)
class RunContext:
    """One pipeline run: its id, extraction time (UTC), staging directory and cursor state."""

    run_id: str
    extracted_at: datetime
    staging_dir: Path
    state: StateStore

    @classmethod
    def create(cls, staging_dir: Path, state: StateStore | None = None, run_id: str | None = None) -> RunContext:
        now = datetime.now(UTC)
        return cls(run_id or new_run_id(now), now, staging_dir, state or SqliteStateStore())

    def staging_for(self, source: str) -> Path:
        path = self.staging_dir / self.run_id / source
        path.mkdir(parents=True, exist_ok=True)
        return path


# -- parser hints: recorded in Extracted.params under keys starting with "_" ------------------------

@dataclass(slots=True)
class ParseHints:
    parser: str | None = None  # "finlife" | "faq" | None (by format)
    key_columns: list[str] = field(default_factory=list)
    title_column: str | None = None
    text_columns: list[str] | None = None
    rows_per_doc: int = 1
    encoding: str | None = None
    items_path: str | None = None

    def to_params(self) -> dict[str, Any]:
        """Only the hints that differ from the defaults (keeps manifests small)."""
        out: dict[str, Any] = {}
        for key, value in (("_parser", self.parser), ("_key_columns", self.key_columns),
                           ("_title_column", self.title_column), ("_text_columns", self.text_columns),
                           ("_encoding", self.encoding), ("_items_path", self.items_path)):
            if value:
                out[key] = list(value) if isinstance(value, list) else value
        if self.rows_per_doc != 1:
            out["_rows_per_doc"] = self.rows_per_doc
        return out

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ParseHints:
        return cls(
            parser=params.get("_parser"), key_columns=list(params.get("_key_columns") or []),
            title_column=params.get("_title_column"), text_columns=params.get("_text_columns"),
            rows_per_doc=int(params.get("_rows_per_doc") or 1), encoding=params.get("_encoding"),
            items_path=params.get("_items_path"),
        )

    @classmethod
    def from_table(cls, hints: TableHints, **extra: Any) -> ParseHints:
        return cls(key_columns=list(hints.key_columns), title_column=hints.title_column,
                   text_columns=list(hints.text_columns) if hints.text_columns is not None else None,
                   rows_per_doc=hints.rows_per_doc, **extra)


# -- secrets from the environment --------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


def expand_env(text: str) -> str:
    """Replace ``${NAME}`` / ``${NAME:default}`` by environment values (errors name the variable only)."""

    def sub(m: re.Match[str]) -> str:
        value = os.environ.get(m.group(1))
        if value is None:
            if m.group(2) is None:
                raise ConfigError(f"환경 변수 {m.group(1)}이(가) 설정되지 않았습니다.",
                                  f"The environment variable {m.group(1)} is not set.")
            return m.group(2)
        return value

    return _PLACEHOLDER.sub(sub, text)


def secret_from_env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ConfigError(f"{what}을(를) 환경 변수 {name}에서 찾을 수 없습니다.",
                          f"{what} not found: set the environment variable {name}.")
    return value


def build_source(config: SourceConfig) -> Source:
    """The source component for a validated config (see :func:`.config.load_source_config`);
    implementations are imported on demand (a file pipeline does not load SQLAlchemy or httpx)."""
    if isinstance(config, SqlSourceConfig):
        from jisik.pipeline.sources.sql import SqlSource

        return SqlSource(config)
    if isinstance(config, FileSourceConfig):
        from jisik.pipeline.sources.files import FileSource

        return FileSource(config)
    if isinstance(config, RestSourceConfig):
        from jisik.pipeline.sources.rest import RestSource

        return RestSource(config)
    if isinstance(config, FinlifeSourceConfig):
        from jisik.pipeline.sources.finlife import FinlifeSource

        return FinlifeSource(config)
    raise ConfigError(f"알 수 없는 소스 종류입니다: {type(config).__name__}", f"Unknown source config {config!r}")
