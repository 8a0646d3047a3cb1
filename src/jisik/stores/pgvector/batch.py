"""The write path of the PostgreSQL store: :class:`PgBatch` (one transaction per batch, commit, abort)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from jisik.core.errors import InvalidInput, JisikError
from jisik.core.types import Chunk
from jisik.stores.index_base import FloatArray, VersionInfo, check_windows
from jisik.stores.pgvector.common import (
    Conn,
    _clean_tokens,
    _Coll,
    _finite_vectors,
    _json_text,
    _jsonb,
    logger,
    sql,
)

if TYPE_CHECKING:
    from jisik.stores.pgvector.store import PgVectorStore

# a pending upsert: fingerprint, chunk rows (without key), window vectors per row (None: no windows)
_Op = tuple[str, list[tuple[Any, ...]], list[FloatArray] | None]


class PgBatch:
    """One transaction on its own connection, holding the collection row lock until it ends.

    Leaving a ``with`` block normally commits (unless already committed/aborted); leaving it with
    an exception aborts. Readers see nothing of the batch until :meth:`commit` returns.
    Operations are validated at once and written in groups (a few set-based statements and
    COPYs per ``FLUSH_DOCS`` documents), so database errors may surface at a later call.
    """

    # keys are drawn from the table's identity sequence before the COPY, so window rows can name their owner
    _CHUNK_COLUMNS = (
        "key", "doc_id", "chunk_id", "seq", "text", "title", "source_uri", "locator", "metadata",
        "char_start", "char_end", "tokens", "ntokens", "embedding", "added_version",
    )
    _CHUNK_TYPES = (
        "int8", "text", "text", "int4", "text", "text", "text", "jsonb", "jsonb",
        "int4", "int4", "text[]", "int4", "vector", "int4",
    )
    _WINDOW_COLUMNS = ("key", "doc_id", "seq", "embedding", "added_version")
    _WINDOW_TYPES = ("int8", "text", "int4", "vector", "int4")

    def __init__(
        self, store: PgVectorStore, conn: Conn, coll: _Coll, *, base_version: int, version: int, note: str
    ) -> None:
        self._store = store
        self._conn: Conn | None = conn
        self._coll = coll
        self.base_version = base_version
        self.version = version
        self.note = note
        self._dirty = False
        self._result: VersionInfo | None = None
        # latest pending operation per document: (fingerprint, rows, windows per row) to upsert, None to delete
        self._pending: dict[str, _Op | None] = {}
        self._pending_rows = 0
        self._key_seq: str | None = None  # the chunks table's identity sequence

    def _t(self, kind: str) -> sql.Identifier:
        return self._coll.table(self._store.schema, kind)

    def _live(self) -> Conn:
        if self._conn is None:
            raise InvalidInput(
                "이미 끝난 배치입니다 (commit 또는 abort 이후).",
                "This batch is finished (after commit or abort); open a new one.",
            )
        return self._conn

    @contextlib.contextmanager
    def _guard(self) -> Iterator[Conn]:
        conn = self._live()
        try:
            with self._store._errors():
                yield conn
        except BaseException:
            # any failure inside the transaction poisons it: give up the whole batch
            self.abort()
            raise

    FLUSH_DOCS = 500
    FLUSH_ROWS = 2000

    def _flush(self) -> None:
        """Write the pending operations: a handful of set-based statements and up to three COPYs.

        For each pending document, rows this batch wrote earlier (chunks, docs, windows) are
        deleted and the live older rows are stamped ``removed_version = V``; then the new rows
        are copied in.
        """
        if not self._pending:
            return
        pending, self._pending, self._pending_rows = self._pending, {}, 0
        ids = list(pending)
        p = {"ids": ids, "v": self.version}
        with self._guard() as conn:
            changed = 0
            for kind in ("chunks", "docs", "windows"):
                cur = conn.execute(
                    sql.SQL(
                        "DELETE FROM {} WHERE doc_id = ANY(%(ids)s::text[]) AND removed_version IS NULL "
                        "AND added_version = %(v)s"
                    ).format(self._t(kind)),
                    p,
                )
                changed += max(cur.rowcount, 0)
                cur = conn.execute(
                    sql.SQL(
                        "UPDATE {} SET removed_version = %(v)s "
                        "WHERE doc_id = ANY(%(ids)s::text[]) AND removed_version IS NULL"
                    ).format(self._t(kind)),
                    p,
                )
                changed += max(cur.rowcount, 0)
            upserts = [(doc_id, op) for doc_id, op in pending.items() if op is not None]
            n_rows = sum(len(op[1]) for _, op in upserts)
            keys = iter(self._new_keys(conn, n_rows)) if n_rows else iter(())
            if upserts:
                with conn.cursor() as cur, cur.copy(
                    sql.SQL("COPY {} (doc_id, fingerprint, chunks, added_version) FROM STDIN (FORMAT BINARY)").format(
                        self._t("docs")
                    )
                ) as copy:
                    copy.set_types(["text", "text", "int4", "int4"])
                    for doc_id, (fingerprint, rows, _wins) in upserts:
                        copy.write_row((doc_id, fingerprint, len(rows), self.version))
                windows: list[tuple[Any, ...]] = []
                cols = sql.SQL(", ").join(sql.Identifier(c) for c in self._CHUNK_COLUMNS)
                with conn.cursor() as cur, cur.copy(
                    sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(self._t("chunks"), cols)
                ) as copy:
                    copy.set_types(list(self._CHUNK_TYPES))
                    for doc_id, (_fp, rows, wins) in upserts:
                        for i, r in enumerate(rows):
                            key = next(keys)
                            copy.write_row((key, *r))
                            if wins is not None:
                                windows.extend((key, doc_id, seq, vec, self.version) for seq, vec in enumerate(wins[i]))
                if windows:
                    wcols = sql.SQL(", ").join(sql.Identifier(c) for c in self._WINDOW_COLUMNS)
                    with conn.cursor() as cur, cur.copy(
                        sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(self._t("windows"), wcols)
                    ) as copy:
                        copy.set_types(list(self._WINDOW_TYPES))
                        for row in windows:
                            copy.write_row(row)
            if upserts or changed:
                self._dirty = True

    def _new_keys(self, conn: Conn, n: int) -> list[int]:
        """``n`` fresh chunk keys from the chunks table's identity sequence."""
        if self._key_seq is None:
            table = self._t("chunks").as_string(conn)
            row = conn.execute("SELECT pg_get_serial_sequence(%s, 'key')", (table,)).fetchone()
            assert row is not None and row[0]
            self._key_seq = str(row[0])
        rows = conn.execute(
            "SELECT nextval(%s::regclass) FROM generate_series(1, %s)", (self._key_seq, n)
        ).fetchall()
        return [int(r[0]) for r in rows]

    def _queue(self, doc_id: str, op: _Op | None) -> None:
        self._pending.pop(doc_id, None)  # keep the order of the latest operations
        self._pending[doc_id] = op
        if op is not None:
            self._pending_rows += len(op[1]) + (sum(len(w) for w in op[2]) if op[2] is not None else 0)
        if len(self._pending) >= self.FLUSH_DOCS or self._pending_rows >= self.FLUSH_ROWS:
            self._flush()

    def upsert_document(
        self,
        doc_id: str,
        fingerprint: str,
        chunks: Sequence[Chunk],
        vectors: FloatArray,
        tokens: Sequence[Sequence[str]],
        *,
        windows: Sequence[FloatArray] | None = None,
    ) -> None:
        self._live()
        if not isinstance(doc_id, str) or not doc_id or "\x00" in doc_id:
            raise InvalidInput("doc_id가 비어 있거나 올바르지 않습니다.", f"Invalid doc_id {doc_id!r}.")
        if not isinstance(fingerprint, str) or "\x00" in fingerprint:
            raise InvalidInput("fingerprint는 문자열이어야 합니다.", "fingerprint must be a string (no NUL).")
        chunks = list(chunks)
        tokens = list(tokens)
        if len(tokens) != len(chunks):
            raise InvalidInput(
                f"청크 수({len(chunks)})와 토큰 목록 수({len(tokens)})가 다릅니다.",
                f"Got {len(chunks)} chunks but {len(tokens)} token lists.",
            )
        arr = _finite_vectors(vectors, self._coll.dim, len(chunks), f"upsert_document({doc_id!r})")
        wins = check_windows(windows, len(chunks), self._coll.dim, f"upsert_document({doc_id!r})")
        rows: list[tuple[Any, ...]] = []
        for ch, toks, vec in zip(chunks, tokens, arr, strict=True):
            if not isinstance(ch, Chunk):
                raise InvalidInput(
                    "청크 형식이 올바르지 않습니다.", f"Expected Chunk objects, got {type(ch).__name__}."
                )
            if ch.doc_id != doc_id:
                raise InvalidInput(
                    f"청크의 doc_id({ch.doc_id!r})가 문서({doc_id!r})와 다릅니다.",
                    f"Chunk {ch.chunk_id!r} has doc_id {ch.doc_id!r}, expected {doc_id!r}.",
                )
            for label, value in (("text", ch.text), ("title", ch.title), ("source_uri", ch.source_uri),
                                 ("chunk_id", ch.chunk_id)):
                if not isinstance(value, str) or "\x00" in value:
                    raise InvalidInput(
                        f"청크 {label}에 NUL 문자가 있거나 문자열이 아닙니다.",
                        f"Chunk {label} must be a string without NUL characters.",
                    )
            clean = _clean_tokens(toks)
            try:
                seq, start, end = int(ch.seq), int(ch.start), int(ch.end)
            except (TypeError, ValueError) as e:
                raise InvalidInput(
                    "청크의 seq/start/end는 정수여야 합니다.", f"Chunk {ch.chunk_id!r}: seq/start/end must be integers."
                ) from e
            rows.append((
                doc_id, ch.chunk_id, seq, ch.text, ch.title, ch.source_uri,
                _jsonb(_json_text(ch.locator or {}, "locator")), _jsonb(_json_text(ch.metadata or {}, "metadata")),
                start, end, clean, len(clean), vec, self.version,
            ))
        self._queue(doc_id, (fingerprint, rows, wins))

    def delete_document(self, doc_id: str) -> None:
        self._live()
        if not isinstance(doc_id, str) or not doc_id:
            raise InvalidInput("doc_id가 비어 있거나 올바르지 않습니다.", f"Invalid doc_id {doc_id!r}.")
        self._queue(doc_id, None)

    def commit(self) -> VersionInfo:
        if self._result is not None and self._conn is None:
            return self._result
        store = self._store
        v = self.version
        self._flush()
        with self._guard() as conn:
            if not self._dirty:
                info = store._current_info(conn, self._coll)
                conn.rollback()
                self._close()
                self._result = info
                return info
            ch = self._t("chunks")
            docs = self._t("docs")
            store._update_current(
                conn, self._coll,
                entering=sql.SQL("c.added_version = %(v)s AND c.removed_version IS NULL"),
                leaving=sql.SQL("c.removed_version = %(v)s"),
                params={"v": v},
            )
            srow = conn.execute(
                sql.SQL(
                    "SELECT count(*) FILTER (WHERE added_version = %(v)s), "
                    "coalesce(sum(ntokens) FILTER (WHERE added_version = %(v)s), 0), "
                    "count(*) FILTER (WHERE removed_version = %(v)s), "
                    "coalesce(sum(ntokens) FILTER (WHERE removed_version = %(v)s), 0) "
                    "FROM {ch} WHERE added_version = %(v)s OR removed_version = %(v)s"
                ).format(ch=ch),
                {"v": v},
            ).fetchone()
            drow = conn.execute(
                sql.SQL(
                    "SELECT (SELECT count(*) FROM {d} WHERE added_version = %(v)s), "
                    "(SELECT count(*) FROM {d} WHERE removed_version = %(v)s), "
                    "(SELECT count(*) FROM {d} o WHERE o.removed_version = %(v)s AND EXISTS "
                    "   (SELECT 1 FROM {d} n WHERE n.doc_id = o.doc_id AND n.added_version = %(v)s))"
                ).format(d=docs),
                {"v": v},
            ).fetchone()
            assert srow is not None and drow is not None
            added_chunks, added_tokens, removed_chunks, removed_tokens = (int(x) for x in srow)
            added_any, removed_any, replaced = (int(x) for x in drow)
            wrow = conn.execute(
                sql.SQL(
                    "SELECT count(*) FILTER (WHERE added_version = %(v)s), "
                    "count(*) FILTER (WHERE removed_version = %(v)s) "
                    "FROM {w} WHERE added_version = %(v)s OR removed_version = %(v)s"
                ).format(w=self._t("windows")),
                {"v": v},
            ).fetchone()
            assert wrow is not None
            added_windows, removed_windows = int(wrow[0]), int(wrow[1])
            crow = conn.execute(
                sql.SQL(
                    "UPDATE {c} SET current_version = %(v)s, last_version = %(v)s, "
                    "live_docs = live_docs + %(dd)s, live_chunks = live_chunks + %(dc)s, "
                    "total_tokens = total_tokens + %(dt)s, live_windows = live_windows + %(dw)s WHERE id = %(id)s "
                    "RETURNING live_docs, live_chunks, total_tokens, live_windows"
                ).format(c=store._t("collections")),
                {
                    "v": v, "id": self._coll.id, "dd": added_any - removed_any,
                    "dc": added_chunks - removed_chunks, "dt": added_tokens - removed_tokens,
                    "dw": added_windows - removed_windows,
                },
            ).fetchone()
            assert crow is not None
            vrow = conn.execute(
                sql.SQL(
                    "INSERT INTO {vt} (collection_id, version, status, documents, chunks, tokens, added_docs, "
                    "removed_docs, replaced_docs, note) VALUES (%s, %s, 'published', %s, %s, %s, %s, %s, %s, %s) "
                    "RETURNING {cols}"
                ).format(vt=store._t("versions"), cols=store._VERSION_COLS),
                # added = new documents, removed = deleted documents, replaced (extra) = changed ones
                (self._coll.id, v, crow[0], crow[1], crow[2], added_any - replaced, removed_any - replaced, replaced,
                 self.note),
            ).fetchone()
            assert vrow is not None
            store._expire_old_versions(conn, self._coll)
            store._ensure_ann_index(conn, self._coll, int(crow[1]), int(crow[3]))
            store._analyze_if_needed(conn, self._coll, added_chunks + removed_chunks, int(crow[1]))
            conn.commit()
        self._close()
        self._result = store._version_info(vrow, v)
        if store._large_change(added_chunks + removed_chunks, int(crow[1])):
            try:  # published already; this only speeds up the next searches
                store.optimize(self._coll.name)
            except JisikError as e:
                logger.warning("VACUUM after commit failed", extra={"collection": self._coll.name, "error": str(e)})
        return self._result

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def abort(self) -> None:
        self._pending, self._pending_rows = {}, 0
        conn = self._conn
        if conn is None:
            return
        with contextlib.suppress(Exception):
            conn.rollback()
        self._close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    def __enter__(self) -> PgBatch:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if et is not None:
            self.abort()
        elif self._conn is not None:
            self.commit()

    def __del__(self) -> None:
        # a forgotten batch must not keep the collection locked
        with contextlib.suppress(Exception):
            self._close()
