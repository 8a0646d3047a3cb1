"""SQLite source of truth for one collection: chunk rows with MVCC version columns.

A row is visible at version V iff ``added_version <= V`` and ``removed_version`` is NULL or
greater than V. A batch writes inside one SQLite transaction, so an interrupted batch simply
never happened; in committed state the current rows are exactly those with NULL
``removed_version`` (rollback physically removes rows of rolled-back versions).

Window vectors (multi-vector passages) live in ``windows``, keyed by their owner chunk's key:
a chunk row is never modified after insertion (a new version of a document inserts new rows),
so a window is visible exactly when its owner is, and ``ON DELETE CASCADE`` removes it with
its owner (same-batch replacement, rollback, expiry). Collections created before windows
existed get the empty table on open.
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
from jisik.stores.embedded.snapshot import SnapshotData, WindowRows

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
CREATE TABLE IF NOT EXISTS windows(
  wkey INTEGER PRIMARY KEY AUTOINCREMENT, key INTEGER NOT NULL REFERENCES chunks(key) ON DELETE CASCADE,
  seq INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS windows_key ON windows(key, seq);
"""
TOKEN_SEP = "\x1f"
CHUNK_COLS = 'key, doc_id, chunk_id, seq, text, title, source_uri, locator, metadata, start, "end"'


def connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        # reads of chunk rows at query time come from the OS page cache without read() calls
        conn.execute("PRAGMA mmap_size=268435456")
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


def insert_windows(
    conn: sqlite3.Connection, doc_id: str, version: int, windows: Sequence[np.ndarray]
) -> None:
    """Window vectors of the chunks just inserted for ``doc_id`` (``windows[i]`` belongs to the
    i-th of them; their keys are read back in insertion order)."""
    keys = [k for (k,) in conn.execute(
        "SELECT key FROM chunks WHERE doc_id=? AND +added_version=? AND removed_version IS NULL ORDER BY key",
        (doc_id, version),
    )]
    if len(keys) != len(windows):  # pragma: no cover - would be a bug
        raise CorruptData("윈도 벡터의 청크를 찾을 수 없습니다.", f"Window owners of {doc_id!r} not found.")
    conn.executemany(
        "INSERT INTO windows(key, seq, vector) VALUES(?,?,?)",
        [(key, seq, np.ascontiguousarray(vec, dtype=np.float32).tobytes())
         for key, w in zip(keys, windows, strict=True) for seq, vec in enumerate(w)],
    )


def count_windows(conn: sqlite3.Connection) -> int:
    """Window vectors of the current version's chunks."""
    (n,) = conn.execute(
        "SELECT COUNT(*) FROM windows w JOIN chunks c ON c.key = w.key WHERE c.removed_version IS NULL"
    ).fetchone()
    return int(n)


def read_snapshot_data(conn: sqlite3.Connection, dim: int, version: int | None = None) -> SnapshotData:
    where, params = visible_clause(version)
    rows = conn.execute(
        f"SELECT key, doc_id, metadata, tokens, vector FROM chunks WHERE {where} ORDER BY key", params
    ).fetchall()
    keys = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    vectors = np.frombuffer(b"".join(r[4] for r in rows), dtype=np.float32).reshape(len(rows), dim)
    tokens = [r[3].split(TOKEN_SEP) if r[3] else [] for r in rows]
    wrows = conn.execute(
        f"SELECT w.wkey, w.key, w.vector FROM windows w JOIN chunks c ON c.key = w.key WHERE {where} "
        "ORDER BY w.key, w.seq", params,
    ).fetchall()
    windows = WindowRows(
        np.fromiter((r[0] for r in wrows), dtype=np.int64, count=len(wrows)),
        np.fromiter((r[1] for r in wrows), dtype=np.int64, count=len(wrows)),
        np.frombuffer(b"".join(r[2] for r in wrows), dtype=np.float32).reshape(len(wrows), dim),
    ) if wrows else None
    return SnapshotData(keys=keys, vectors=vectors, tokens=tokens, doc_ids=[r[1] for r in rows],
                        metadata=[json.loads(r[2]) for r in rows], windows=windows)


def row_to_chunk(row: Sequence[Any]) -> Chunk:
    return Chunk(
        chunk_id=row[2], doc_id=row[1], seq=row[3], text=row[4], title=row[5], source_uri=row[6],
        locator=json.loads(row[7]), metadata=json.loads(row[8]), start=row[9], end=row[10],
    )
