"""Schema drift: a source's table changed shape between runs.

The runner compares the schema of every tabular object a source extracted (``Extracted.schema``,
by object name) with the schema it accepted last time, *before* anything is landed. Drift fails
the source's extract stage with :class:`SchemaDrift` (nothing lands, the cursor does not move, the
index keeps serving the previous version) unless the source's config says
``allow_schema_drift: true``.

What counts as drift:

* a column of the previous schema is missing (dropped or renamed);
* a column's type changed — except ``integer`` <-> ``float`` (numeric widening), a previous
  ``string`` becoming typed (an all-empty column is reported as ``string``), and a column reported
  ``string`` now only because every value of this run is empty (checked in the staging file).

New columns are not drift. The accepted schema (merged, so a column empty in one run keeps its
type) is stored per (source, object) in a small SQLite table once the objects have landed.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from jisik.core.errors import Conflict
from jisik.pipeline.manifest import ColumnSchema, Extracted

_NUMERIC = {"integer", "float"}


class SchemaDrift(Conflict):
    code = "schema_drift"


def _compatible(old: str, new: str) -> bool:
    return old == new or old == "string" or {old, new} <= _NUMERIC


def _column_empty(path: Path, fmt: str, column: str, encoding: str | None) -> bool:
    """True when every value of ``column`` in the staging file is empty / NULL."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        col = pq.read_table(path, columns=[column]).column(column)
        return bool(col.null_count == len(col))
    if fmt == "csv":
        from jisik.pipeline.sources.files import detect_encoding

        with path.open(encoding=detect_encoding(path, encoding), newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            if column not in header:
                return True
            i = header.index(column)
            return not any(len(row) > i and row[i].strip() for row in reader)
    return False


def find_drift(previous: list[ColumnSchema], extracted: Extracted) -> list[str]:
    """Human-readable changes from ``previous`` to the extracted object's schema (empty = none)."""
    now = {c.name: c.type for c in extracted.schema}
    problems: list[str] = []
    for col in previous:
        if col.name not in now:
            problems.append(f"column '{col.name}' ({col.type}) is missing")
            continue
        new = now[col.name]
        if _compatible(col.type, new):
            continue
        if new == "string" and _column_empty(extracted.path, extracted.fmt, col.name,
                                             extracted.params.get("_encoding")):
            continue
        problems.append(f"column '{col.name}' changed type {col.type} -> {new}")
    return problems


def merged(previous: list[ColumnSchema], extracted: Extracted) -> list[ColumnSchema]:
    """The schema to remember: the current one, keeping the known type of columns empty this run."""
    old = {c.name: c.type for c in previous}
    out = []
    for c in extracted.schema:
        keep = c.type == "string" and old.get(c.name, "string") != "string" and _column_empty(
            extracted.path, extracted.fmt, c.name, extracted.params.get("_encoding"))
        out.append(ColumnSchema(name=c.name, type=old[c.name] if keep else c.type))
    return out


class SchemaHistory:
    """The last accepted schema per (source, object name), in a SQLite file (safe across processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS schemas (source TEXT NOT NULL, object TEXT NOT NULL, "
                       "columns TEXT NOT NULL, run_id TEXT NOT NULL, updated_at TEXT NOT NULL, "
                       "PRIMARY KEY (source, object))")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30.0, isolation_level=None)) as db:
            yield db

    def get(self, source: str, name: str) -> list[ColumnSchema] | None:
        with self._db() as db:
            row = db.execute("SELECT columns FROM schemas WHERE source = ? AND object = ?", (source, name)).fetchone()
        return [ColumnSchema.model_validate(c) for c in json.loads(row[0])] if row else None

    def check(self, source: str, extracted: list[Extracted]) -> None:
        """Raise :class:`SchemaDrift` naming every changed object and column."""
        found: dict[str, list[str]] = {}
        for e in extracted:
            previous = self.get(source, e.name) if e.schema else None
            if previous and (problems := find_drift(previous, e)):
                found[e.name] = problems
        if found:
            text = "; ".join(f"{name}: {', '.join(p)}" for name, p in found.items())
            raise SchemaDrift(
                f"소스 '{source}'의 스키마가 지난 실행과 다릅니다 (적재하지 않았습니다): {text}",
                f"Schema drift in source '{source}' since the last run (nothing landed): {text}",
                hint="fix the source or the query, or set allow_schema_drift: true on the source to accept it",
                details={"source": source, "objects": found},
            )

    def record(self, source: str, extracted: list[Extracted], run_id: str) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._db() as db:
            for e in extracted:
                if not e.schema:
                    continue
                columns = merged(self.get(source, e.name) or [], e)
                db.execute(
                    "INSERT INTO schemas (source, object, columns, run_id, updated_at) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT(source, object) DO UPDATE SET columns = excluded.columns, "
                    "run_id = excluded.run_id, updated_at = excluded.updated_at",
                    (source, e.name, json.dumps([c.model_dump() for c in columns]), run_id, now))
