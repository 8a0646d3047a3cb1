"""EmbeddedIndexStore: the default knowledge store. No server; one directory per collection."""

from __future__ import annotations

import contextlib
import copy
import fcntl
import math
import shutil
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO

import numpy as np

from jisik.core.errors import Conflict, CorruptData, InvalidInput, NotFound
from jisik.core.logging import get_logger
from jisik.core.types import Chunk
from jisik.retrieval.filters import Filter
from jisik.stores.embedded import log as sqlog
from jisik.stores.embedded.snapshot import Snapshot, build_snapshot, load_snapshot, save_snapshot
from jisik.stores.index_base import (
    CollectionInfo,
    FloatArray,
    KeyArray,
    VersionInfo,
    check_collection_name,
    check_windows,
)

logger = get_logger(__name__)
@dataclass
class _Collection:
    name: str
    dir: Path
    conn: sqlite3.Connection
    dim: int
    embedder_id: str
    snapshot: Snapshot | None = None
    checked_at: float = 0.0
    lock: threading.RLock = field(default_factory=threading.RLock)
    # chunk rows by key: a key is never reused (AUTOINCREMENT) and its row never changes, so the
    # cache needs no invalidation; it goes with the handle when the collection is dropped
    chunks: OrderedDict[int, Chunk] = field(default_factory=OrderedDict)


CHUNK_CACHE_SIZE = 4096


class EmbeddedBatch:
    def __init__(self, store: EmbeddedIndexStore, col: _Collection, note: str) -> None:
        self._store, self._col, self._note = store, col, note
        self._lockfile: IO[str] | None = (col.dir / "write.lock").open("w")
        fcntl.flock(self._lockfile, fcntl.LOCK_EX)  # one writer per collection, across processes
        # a private connection: the open transaction must not be shared with readers
        self._conn = sqlog.connect(col.dir / "store.sqlite3")
        self._conn.execute("BEGIN IMMEDIATE")
        self._base = int(sqlog.get_meta(self._conn).get("current_version", "0"))
        row = self._conn.execute("SELECT COALESCE(MAX(version), 0) FROM versions").fetchone()
        self.version = int(row[0]) + 1
        self._touched: set[str] = set()
        self._added = 0
        self._removed = 0
        self._done = False

    def _check_open(self) -> None:
        if self._done:
            raise InvalidInput("이미 끝난 배치입니다.", "This batch is already committed or aborted.")

    def _remove_doc(self, doc_id: str) -> bool:
        if doc_id in self._touched:
            # rows this batch added for the same document; "+added_version" keeps SQLite on the
            # doc_id index (the added_version index would scan every row of the batch)
            self._conn.execute("DELETE FROM chunks WHERE doc_id=? AND +added_version=?", (doc_id, self.version))
        cur = self._conn.execute(
            "UPDATE chunks SET removed_version=? WHERE doc_id=? AND removed_version IS NULL",
            (self.version, doc_id),
        )
        return cur.rowcount > 0

    def upsert_document(
        self, doc_id: str, fingerprint: str, chunks: Sequence[Chunk], vectors: FloatArray,
        tokens: Sequence[Sequence[str]], *, windows: Sequence[FloatArray] | None = None,
    ) -> None:
        self._check_open()
        if not doc_id:
            raise InvalidInput("문서 ID가 비어 있습니다.", "Document id must not be empty.")
        vecs = np.asarray(vectors, dtype=np.float32)
        if len(chunks) != len(tokens) or (len(chunks) and vecs.shape != (len(chunks), self._col.dim)):
            raise InvalidInput(
                "청크, 벡터, 토큰의 개수나 차원이 맞지 않습니다.",
                f"chunks/vectors/tokens mismatch: {len(chunks)} chunks, vectors {vecs.shape}, "
                f"{len(tokens)} token lists, collection dim {self._col.dim}",
            )
        if len(chunks) and not np.isfinite(vecs).all():
            raise InvalidInput("벡터에 NaN/무한대 값이 있습니다.", "Vectors contain NaN or infinity.")
        if any(c.doc_id != doc_id for c in chunks):
            raise InvalidInput("청크의 문서 ID가 다릅니다.", "Every chunk must belong to the upserted document.")
        wins = check_windows(windows, len(chunks), self._col.dim, f"upsert_document({doc_id!r})")
        existed = self._remove_doc(doc_id)  # ON DELETE CASCADE takes this batch's earlier windows along
        if len(chunks):
            sqlog.insert_chunks(self._conn, self.version, fingerprint, chunks, vecs, tokens)
            if wins is not None:
                sqlog.insert_windows(self._conn, doc_id, self.version, wins)
        if doc_id not in self._touched:
            self._added += 0 if existed else 1
        self._touched.add(doc_id)

    def delete_document(self, doc_id: str) -> None:
        self._check_open()
        if self._remove_doc(doc_id):
            self._removed += 1
        self._touched.add(doc_id)

    def commit(self) -> VersionInfo:
        self._check_open()
        try:
            if not self._touched:
                self._conn.execute("ROLLBACK")
                self._done = True
                return self._store._current_version_info(self._col)
            info = self._store._publish(self._col, self._conn, self.version, self._note,
                                        self._added, self._removed)
            self._done = True
            return info
        except BaseException:
            self.abort()
            raise
        finally:
            self._release()

    def abort(self) -> None:
        if not self._done:
            self._done = True
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
        self._release()

    def _release(self) -> None:
        if self._lockfile is not None:
            fcntl.flock(self._lockfile, fcntl.LOCK_UN)
            self._lockfile.close()
            self._lockfile = None
            self._conn.close()

    def __enter__(self) -> EmbeddedBatch:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is None:
            if not self._done:
                self.commit()
        else:
            self.abort()


class EmbeddedIndexStore:
    """Hybrid chunk index in ``root/<collection>/``: SQLite log + immutable search snapshots.

    ``hnsw_min_rows``: from this many dense rows on (chunk vectors plus window vectors), dense
    search uses an HNSW graph (hnswlib); below it, exact inner products (faster and exact at
    that size). ``keep_versions``: how many published versions stay restorable by rollback.
    """

    def __init__(
        self, root: str | Path, *, hnsw_min_rows: int = 20000, keep_versions: int = 10,
        refresh_interval_s: float = 1.0,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.resolve().as_uri()
        self.hnsw_min_rows = hnsw_min_rows
        self.keep_versions = max(1, keep_versions)
        self.refresh_interval_s = refresh_interval_s
        self._cols: dict[str, _Collection] = {}
        self._lock = threading.Lock()

    # ---- collections -----------------------------------------------------------------
    def _open(self, name: str, *, create: tuple[int, str] | None = None) -> _Collection:
        check_collection_name(name)
        with self._lock:
            col = self._cols.get(name)
            if col is not None:
                return col
            d = self.root / name
            db = d / "store.sqlite3"
            if not db.exists() and create is None:
                raise NotFound(
                    f"컬렉션 '{name}'이(가) 없습니다. 사용 가능: {', '.join(self._names()) or '(없음)'}",
                    f"Unknown collection '{name}'. Available: {', '.join(self._names()) or '(none)'}",
                    hint="jisik ingest 로 먼저 색인하세요.",
                )
            d.mkdir(parents=True, exist_ok=True)
            conn = sqlog.connect(db)
            meta = sqlog.get_meta(conn)
            if "dim" not in meta:
                if create is None:
                    raise CorruptData(
                        f"컬렉션 '{name}'의 메타데이터가 없습니다.", f"Collection '{name}' has no metadata."
                    )
                with sqlog.transaction(conn):
                    sqlog.set_meta(conn, name=name, dim=create[0], embedder_id=create[1], current_version=0,
                                   format=1)
                meta = sqlog.get_meta(conn)
            col = _Collection(name, d, conn, int(meta["dim"]), meta["embedder_id"])
            self._cleanup_leftovers(col)
            self._cols[name] = col
            return col

    def _names(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob("*/store.sqlite3"))

    def list_collections(self) -> list[CollectionInfo]:
        return [self.get_collection(n) for n in self._names()]

    def get_collection(self, name: str) -> CollectionInfo:
        col = self._open(name)
        version = self._current(col)
        where, params = sqlog.visible_clause(None)
        docs, chunks = col.conn.execute(
            f"SELECT COUNT(DISTINCT doc_id), COUNT(*) FROM chunks WHERE {where}", params
        ).fetchone()
        windows = int(sqlog.get_meta(col.conn).get("windows", "0"))
        return CollectionInfo(name, col.dim, col.embedder_id, version, int(docs), int(chunks), windows)

    def ensure_collection(self, name: str, *, dim: int, embedder_id: str) -> CollectionInfo:
        if dim <= 0:
            raise InvalidInput("벡터 차원은 양수여야 합니다.", f"Vector dim must be positive (got {dim}).")
        col = self._open(name, create=(dim, embedder_id))
        if col.dim != dim or col.embedder_id != embedder_id:
            raise Conflict(
                f"컬렉션 '{name}'은(는) 다른 임베딩 모델({col.embedder_id}, {col.dim}차원)로 만들어졌습니다.",
                f"Collection '{name}' was built with {col.embedder_id} (dim {col.dim}), "
                f"not {embedder_id} (dim {dim}).",
                hint="다른 컬렉션 이름을 쓰거나 jisik index drop 후 다시 색인하세요.",
            )
        return self.get_collection(name)

    def drop_collection(self, name: str) -> None:
        col = self._open(name)
        with self._lock:
            col.conn.close()
            self._cols.pop(name, None)
        shutil.rmtree(col.dir)

    # ---- versions --------------------------------------------------------------------
    def _current(self, col: _Collection) -> int:
        return int(sqlog.get_meta(col.conn).get("current_version", "0"))

    def _cleanup_leftovers(self, col: _Collection) -> None:
        """Remove snapshot dirs of versions that were never published (interrupted commits).

        Only while no writer holds the collection's write lock: a commit in progress (maybe in
        another process) is writing exactly such dirs. Skipped leftovers go at a later open.
        """
        try:
            lockfile = (col.dir / "write.lock").open("a")
        except OSError:  # a read-only index: nothing to clean
            return
        with lockfile:
            try:
                fcntl.flock(lockfile, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return
            published = {v for (v,) in col.conn.execute("SELECT version FROM versions WHERE status='published'")}
            for p in col.dir.glob(".tmp-snap-*"):
                shutil.rmtree(p, ignore_errors=True)
            for p in col.dir.glob("snap-*"):
                try:
                    v = int(p.name.split("-")[1])
                except ValueError:
                    continue
                if v not in published:
                    shutil.rmtree(p, ignore_errors=True)

    def versions(self, name: str) -> list[VersionInfo]:
        col = self._open(name)
        current = self._current(col)
        rows = col.conn.execute(
            "SELECT version, created_at, status, documents, chunks, added_docs, removed_docs, note "
            "FROM versions ORDER BY version"
        ).fetchall()
        return [
            VersionInfo(v, c, "current" if v == current else s, d, n, a, r, note)
            for v, c, s, d, n, a, r, note in rows
        ]

    def _current_version_info(self, col: _Collection) -> VersionInfo:
        current = self._current(col)
        for v in self.versions(col.name):
            if v.version == current:
                return v
        return VersionInfo(0, "", "current", 0, 0)

    def open_batch(self, name: str, *, note: str = "") -> EmbeddedBatch:
        return EmbeddedBatch(self, self._open(name), note)

    def _publish(
        self, col: _Collection, conn: sqlite3.Connection, version: int, note: str, added: int, removed: int
    ) -> VersionInfo:
        docs, chunks = conn.execute(
            "SELECT COUNT(DISTINCT doc_id), COUNT(*) FROM chunks WHERE removed_version IS NULL"
        ).fetchone()
        data = sqlog.read_snapshot_data(conn, col.dim)
        previous = col.snapshot
        prev_dir = col.dir / f"snap-{previous.version:06d}" if previous is not None else None
        snap = build_snapshot(version, col.dim, data, hnsw_min_rows=self.hnsw_min_rows,
                              previous=previous, previous_dir=prev_dir)
        save_snapshot(snap, col.dir)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        conn.execute(
            "INSERT INTO versions(version, created_at, status, documents, chunks, added_docs, removed_docs, note) "
            "VALUES(?,?,?,?,?,?,?,?)", (version, created, "published", docs, chunks, added, removed, note),
        )
        sqlog.set_meta(conn, current_version=version, windows=snap.n_windows)
        conn.execute("COMMIT")
        with col.lock:
            col.snapshot = snap
            col.checked_at = time.monotonic()
        self._gc(col)
        logger.info("published version", extra={"collection": col.name, "version": version, "chunks": chunks,
                                                 "windows": snap.n_windows})
        return VersionInfo(version, created, "current", int(docs), int(chunks), added, removed, note)

    def _gc(self, col: _Collection) -> None:
        """Keep the newest ``keep_versions`` published versions restorable; drop older data."""
        kept = [v for (v,) in col.conn.execute(
            "SELECT version FROM versions WHERE status='published' ORDER BY version DESC LIMIT ?",
            (self.keep_versions,))]
        if not kept:
            return
        oldest = min(kept)
        with sqlog.transaction(col.conn):
            col.conn.execute("DELETE FROM chunks WHERE removed_version IS NOT NULL AND removed_version <= ?",
                             (oldest,))
            col.conn.execute("UPDATE versions SET status='expired' WHERE status='published' AND version < ?",
                             (oldest,))
        for p in col.dir.glob("snap-*"):
            try:
                v = int(p.name.split("-")[1])
            except ValueError:
                continue
            if v < oldest:
                shutil.rmtree(p, ignore_errors=True)

    def rollback(self, name: str, version: int) -> VersionInfo:
        col = self._open(name)
        with (col.dir / "write.lock").open("w") as lockfile:
            fcntl.flock(lockfile, fcntl.LOCK_EX)
            status = col.conn.execute("SELECT status FROM versions WHERE version=?", (version,)).fetchone()
            if status is None or status[0] != "published":
                restorable = [v.version for v in self.versions(name) if v.status in ("published", "current")]
                raise InvalidInput(
                    f"버전 {version}(으)로 되돌릴 수 없습니다. 가능한 버전: {restorable}",
                    f"Cannot roll back to version {version}; restorable versions: {restorable}",
                )
            with sqlog.transaction(col.conn):
                col.conn.execute("DELETE FROM chunks WHERE added_version > ?", (version,))
                col.conn.execute("UPDATE chunks SET removed_version=NULL WHERE removed_version > ?", (version,))
                col.conn.execute("UPDATE versions SET status='rolled_back' WHERE version > ? AND status='published'",
                                 (version,))
                sqlog.set_meta(col.conn, current_version=version, windows=sqlog.count_windows(col.conn))
            with col.lock:
                col.snapshot = None
            for p in col.dir.glob("snap-*"):
                if int(p.name.split("-")[1]) > version:
                    shutil.rmtree(p, ignore_errors=True)
        logger.info("rolled back", extra={"collection": name, "version": version})
        return self._current_version_info(col)

    # ---- reading ---------------------------------------------------------------------
    def _snapshot(self, name: str) -> Snapshot | None:
        col = self._open(name)
        now = time.monotonic()
        with col.lock:
            snap = col.snapshot
            if snap is not None and now - col.checked_at < self.refresh_interval_s:
                return snap
            current = self._current(col)
            col.checked_at = now
            if current == 0:
                col.snapshot = None
                return None
            if snap is not None and snap.version == current:
                return snap
            col.snapshot = self._load_or_rebuild(col, current)
            return col.snapshot

    def _load_or_rebuild(self, col: _Collection, version: int) -> Snapshot:
        path = col.dir / f"snap-{version:06d}"
        if path.exists():
            try:
                return load_snapshot(path)
            except CorruptData as exc:
                logger.warning("snapshot unreadable, rebuilding from the log",
                               extra={"collection": col.name, "version": version, "error": exc.message_en})
        return self.rebuild_snapshot(col.name, version)

    def rebuild_snapshot(self, name: str, version: int | None = None) -> Snapshot:
        col = self._open(name)
        v = version if version is not None else self._current(col)
        data = sqlog.read_snapshot_data(col.conn, col.dim, v)
        snap = build_snapshot(v, col.dim, data, hnsw_min_rows=self.hnsw_min_rows)
        save_snapshot(snap, col.dir)
        return snap

    def doc_fingerprints(self, name: str) -> dict[str, str]:
        col = self._open(name)
        return dict(col.conn.execute(
            "SELECT doc_id, MIN(fingerprint) FROM chunks WHERE removed_version IS NULL GROUP BY doc_id"
        ).fetchall())

    def search_lexical(self, name: str, tokens: Sequence[str], top_n: int, flt: Filter) -> tuple[KeyArray, FloatArray]:
        snap = self._snapshot(name)
        if snap is None or not tokens:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return snap.lexical(tokens, top_n, flt)

    def search_dense(self, name: str, vector: FloatArray, top_n: int, flt: Filter) -> tuple[KeyArray, FloatArray]:
        snap = self._snapshot(name)
        if snap is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        if vec.shape[0] != snap.dim or not math.isfinite(float(vec.sum())):
            raise InvalidInput(
                f"질의 벡터 차원({vec.shape[0]})이 컬렉션({snap.dim})과 다릅니다.",
                f"Query vector has dim {vec.shape[0]}, collection '{name}' has {snap.dim}.",
            )
        return snap.dense(vec, top_n, flt, exact_max_rows=self.hnsw_min_rows)

    def fetch(self, name: str, keys: Sequence[int]) -> list[Chunk]:
        col = self._open(name)
        ks = [int(k) for k in keys]
        if not ks:
            return []
        by_key: dict[int, Chunk] = {}
        with col.lock:
            cache = col.chunks
            for k in ks:
                hit = cache.get(k)
                if hit is not None:
                    cache.move_to_end(k)
                    by_key[k] = hit
            todo = [k for k in ks if k not in by_key]
            if todo:
                marks = ",".join("?" * len(todo))
                rows = col.conn.execute(f"SELECT {sqlog.CHUNK_COLS} FROM chunks WHERE key IN ({marks})",
                                        todo).fetchall()
                for r in rows:
                    by_key[r[0]] = cache[r[0]] = sqlog.row_to_chunk(r)
                while len(cache) > CHUNK_CACHE_SIZE:
                    cache.popitem(last=False)
        missing = [k for k in ks if k not in by_key]
        if missing:
            raise NotFound(f"청크를 찾을 수 없습니다: {missing[:5]}", f"Unknown chunk keys: {missing[:5]}")
        # callers get their own copies (shallow: locator and metadata are shared and read-only)
        return [copy.copy(by_key[k]) for k in ks]

    def vectors(self, name: str, keys: Sequence[int]) -> FloatArray:
        snap = self._snapshot(name)
        ks = np.asarray(list(keys), dtype=np.int64)
        if snap is None or ks.size == 0:
            return np.zeros((0, self._open(name).dim), np.float32)
        pos = np.searchsorted(snap.keys, ks)
        pos = np.clip(pos, 0, max(snap.size - 1, 0))
        if snap.size == 0 or not np.array_equal(snap.keys[pos], ks):
            raise NotFound("현재 버전에 없는 청크입니다.", "Some keys are not in the current version.")
        return np.asarray(snap.vectors[pos], dtype=np.float32)

    def close(self) -> None:
        with self._lock:
            for col in self._cols.values():
                col.conn.close()
            self._cols.clear()

    def disk_usage(self, name: str) -> int:
        col = self._open(name)
        return sum(f.stat().st_size for f in col.dir.rglob("*") if f.is_file())
