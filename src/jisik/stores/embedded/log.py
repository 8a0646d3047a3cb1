"""SQLite source of truth for one collection: chunk rows with MVCC version columns.

A row is visible at version V iff ``added_version <= V`` and ``removed_version`` is NULL or
greater than V. A batch writes inside one SQLite transaction, so an interrupted batch simply
never happened; in committed state the current rows are exactly those with NULL
``removed_version`` (rollback physically removes rows of rolled-back versions).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from jisik.core.errors import CorruptData
from jisik.core.types import Chunk
from jisik.stores.embedded.snapshot import SnapshotData

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS versions(
  version INTEGER PRIMARY KEY, created_at TEXT NOT NULL, status TEXT NOT NULL,
  documents INTEGER NOT NULL DEFAULT 0, chunks INTEGER NOT NULL DEFAULT 0,
  added_docs INTEGER NOT NULL DEFAULT 0, removed_docs INTEGER NOT NULL DEFAULT 0, note TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS chunks(
  key INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL, chunk_id TEXT NOT NULL, seq INTEGER NOT NULL,
  text TEXT NOT NULL, title TEXT NOT NULL, source_uri TEXT NOT NULL, locator TEXT NOT NULL,
  metadata TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, fingerprint TEXT NOT NULL,
  tokens TEXT NOT NULL, vector BLOB NOT NULL, added_version INTEGER NOT NULL, removed_version INTEGER);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, removed_version);
CREATE INDEX IF NOT EXISTS chunks_removed ON chunks(removed_version);
CREATE INDEX IF NOT EXISTS chunks_added ON chunks(added_version);
"""
TOKEN_SEP = "\x1f"
CHUNK_COLS = 'key, doc_id, chunk_id, seq, text, title, source_uri, locator, metadata, start, "end"'


def connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(SCHEMA)
    except sqlite3.DatabaseError as exc:
        raise CorruptData(
            f"색인 데이터베이스가 손상되었거나 SQLite 파일이 아닙니다: {path}",
            f"Index database is corrupt or not an SQLite file: {path} ({exc})",
            hint="백업에서 복원하거나 컬렉션을 삭제 후 다시 색인하세요 (jisik index drop / jisik ingest).",
        ) from exc
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    else:
        conn.execute("COMMIT")


def get_meta(conn: sqlite3.Connection) -> dict[str, str]:
    return dict(conn.execute("SELECT key, value FROM meta").fetchall())


def set_meta(conn: sqlite3.Connection, **values: Any) -> None:
    conn.executemany(
        "INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        [(k, str(v)) for k, v in values.items()],
    )


def visible_clause(version: int | None) -> tuple[str, tuple[int, ...]]:
    if version is None:
        return "removed_version IS NULL", ()
    return "added_version <= ? AND (removed_version IS NULL OR removed_version > ?)", (version, version)


def insert_chunks(
    conn: sqlite3.Connection, version: int, fingerprint: str, chunks: Sequence[Chunk],
    vectors: np.ndarray, tokens: Sequence[Sequence[str]],
) -> None:
    conn.executemany(
        'INSERT INTO chunks(doc_id, chunk_id, seq, text, title, source_uri, locator, metadata, start, "end", '
        "fingerprint, tokens, vector, added_version) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            (c.doc_id, c.chunk_id, c.seq, c.text, c.title, c.source_uri,
             json.dumps(c.locator, ensure_ascii=False), json.dumps(c.metadata, ensure_ascii=False),
             c.start, c.end, fingerprint, TOKEN_SEP.join(toks),
             np.ascontiguousarray(vec, dtype=np.float32).tobytes(), version)
            for c, vec, toks in zip(chunks, vectors, tokens, strict=True)
        ],
    )


def read_snapshot_data(conn: sqlite3.Connection, dim: int, version: int | None = None) -> SnapshotData:
    where, params = visible_clause(version)
    rows = conn.execute(
        f"SELECT key, doc_id, metadata, tokens, vector FROM chunks WHERE {where} ORDER BY key", params
    ).fetchall()
    keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(r[4] for r in rows), dtype=np.float32).reshape(len(rows), dim)
    tokens = [r[3].split(TOKEN_SEP) if r[3] else [] for r in rows]
    return SnapshotData(keys=keys, vectors=vectors, tokens=tokens, doc_ids=[r[1] for r in rows],
                        metadata=[json.loads(r[2]) for r in rows])


def row_to_chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(
        chunk_id=row[2], doc_id=row[1], seq=row[3], text=row[4], title=row[5], source_uri=row[6],
        locator=json.loads(row[7]), metadata=json.loads(row[8]), start=row[9], end=row[10],
    )
