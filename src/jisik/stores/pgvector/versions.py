"""Versions of the PostgreSQL store: opening batches, version rows, rollback and the current-version
structures (postings, df, live) that commit and rollback maintain."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from jisik.core.errors import CorruptData, InvalidInput, NotFound
from jisik.stores.index_base import VersionInfo, check_collection_name
from jisik.stores.pgvector.base import _StoreBase
from jisik.stores.pgvector.batch import PgBatch
from jisik.stores.pgvector.common import (
    HALFVEC_MAX_DIM,
    HNSW_MAX_DIM,
    Conn,
    _Coll,
    _iso,
    sql,
)

if TYPE_CHECKING:
    from jisik.stores.pgvector.store import PgVectorStore


class _VersionsMixin(_StoreBase):
    """Batches, versions, rollback and the bookkeeping commit relies on."""

    def open_batch(self, name: str, *, note: str = "") -> PgBatch:
        check_collection_name(name)
        conn = self._connect(autocommit=False)
        try:
            with self._errors():
                self._set_lock_timeout(conn)
                coll = self._coll(conn, name, lock=True)
                row = conn.execute(
                    sql.SQL("SELECT current_version, last_version FROM {} WHERE id = %s").format(
                        self._t("collections")
                    ),
                    (coll.id,),
                ).fetchone()
                assert row is not None
                conn.execute("SELECT set_config('lock_timeout', '0', true)")
        except BaseException:
            with contextlib.suppress(Exception):
                conn.close()
            raise
        store = cast("PgVectorStore", self)  # open_batch is only reached through PgVectorStore
        return PgBatch(store, conn, coll, base_version=int(row[0]), version=int(row[1]) + 1, note=str(note))

    def _version_info(self, row: Sequence[Any], current: int) -> VersionInfo:
        version = int(row[0])
        status = "current" if version == current else str(row[2])
        return VersionInfo(
            version=version, created_at=_iso(row[1]), status=status, documents=int(row[3]),
            chunks=int(row[4]), added_docs=int(row[6]), removed_docs=int(row[7]), note=row[9],
            extra={"tokens": int(row[5]), "replaced_docs": int(row[8])},
        )

    _VERSION_NAMES = (
        "version", "created_at", "status", "documents", "chunks", "tokens",
        "added_docs", "removed_docs", "replaced_docs", "note",
    )
    _VERSION_COLS = sql.SQL(", ").join(sql.Identifier(x) for x in _VERSION_NAMES)

    def _current_info(self, conn: Conn, coll: _Coll) -> VersionInfo:
        row = conn.execute(
            sql.SQL("SELECT current_version FROM {} WHERE id = %s").format(self._t("collections")), (coll.id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"컬렉션 '{coll.name}'이(가) 없습니다.", f"Collection '{coll.name}' does not exist.")
        current = int(row[0])
        if current == 0:
            return VersionInfo(version=0, created_at="", status="current", documents=0, chunks=0)
        vrow = conn.execute(
            sql.SQL("SELECT {} FROM {} WHERE collection_id = %s AND version = %s").format(
                self._VERSION_COLS, self._t("versions")
            ),
            (coll.id, current),
        ).fetchone()
        if vrow is None:  # pragma: no cover - would be a bug
            raise CorruptData("현재 버전 기록이 없습니다.", f"Version row {current} of '{coll.name}' is missing.")
        return self._version_info(vrow, current)

    def versions(self, name: str) -> list[VersionInfo]:
        def go(conn: Conn) -> list[VersionInfo]:
            coll = self._coll(conn, name)
            rows = conn.execute(
                sql.SQL(
                    "SELECT c.current_version, {cols} FROM {c} c LEFT JOIN {v} v ON v.collection_id = c.id "
                    "WHERE c.id = %s ORDER BY v.version"
                ).format(
                    cols=sql.SQL(", ").join(sql.Identifier("v", x) for x in self._VERSION_NAMES),
                    c=self._t("collections"), v=self._t("versions"),
                ),
                (coll.id,),
            ).fetchall()
            if not rows:
                with self._cache_lock:
                    self._cache.pop(name, None)
                raise NotFound(f"컬렉션 '{name}'이(가) 없습니다.", f"Collection '{name}' does not exist.")
            return [self._version_info(r[1:], int(r[0])) for r in rows if r[1] is not None]

        result: list[VersionInfo] = self._run(go)
        return result

    def rollback(self, name: str, version: int) -> VersionInfo:
        if isinstance(version, bool) or not isinstance(version, int | np.integer):
            raise InvalidInput("버전은 정수여야 합니다.", f"Version must be an integer (got {version!r}).")
        w = int(version)

        def go(conn: Conn) -> VersionInfo:
            with conn.transaction():
                self._set_lock_timeout(conn)
                coll = self._coll(conn, name, lock=True)
                (current,) = conn.execute(  # type: ignore[misc]
                    sql.SQL("SELECT current_version FROM {} WHERE id = %s").format(self._t("collections")),
                    (coll.id,),
                ).fetchone()
                vrow = conn.execute(
                    sql.SQL("SELECT {} FROM {} WHERE collection_id = %s AND version = %s").format(
                        self._VERSION_COLS, self._t("versions")
                    ),
                    (coll.id, w),
                ).fetchone()
                if vrow is None or vrow[2] != "published" or w > current:
                    restorable = [
                        int(r[0]) for r in conn.execute(
                            sql.SQL(
                                "SELECT version FROM {} WHERE collection_id = %s AND status = 'published' "
                                "ORDER BY version"
                            ).format(self._t("versions")),
                            (coll.id,),
                        ).fetchall()
                    ]
                    why = "unknown" if vrow is None else str(vrow[2])
                    raise InvalidInput(
                        f"버전 {w}(으)로 되돌릴 수 없습니다 ({why}). 가능한 버전: {restorable}",
                        f"Cannot roll back to version {w} ({why}); restorable versions: {restorable}",
                    )
                if w == current:
                    return self._version_info(vrow, current)
                self._rollback_rows(conn, coll, w)
                conn.execute(
                    sql.SQL(
                        "UPDATE {} SET status = 'rolled_back' "
                        "WHERE collection_id = %s AND version > %s AND status = 'published'"
                    ).format(self._t("versions")),
                    (coll.id, w),
                )
                conn.execute(
                    sql.SQL(
                        "UPDATE {} SET current_version = %s, live_docs = %s, live_chunks = %s, total_tokens = %s, "
                        "live_windows = (SELECT count(*) FROM {} WHERE removed_version IS NULL) WHERE id = %s"
                    ).format(self._t("collections"), coll.table(self.schema, "windows")),
                    (w, vrow[3], vrow[4], vrow[5], coll.id),
                )
                return self._version_info(vrow, w)

        result: VersionInfo = self._run(go)
        return result

    def _rollback_rows(self, conn: Conn, coll: _Coll, w: int) -> None:
        t = lambda kind: coll.table(self.schema, kind)  # noqa: E731
        # current-version structures: live rows added after W leave, rows removed after W come back
        self._update_current(
            conn, coll,
            entering=sql.SQL("c.added_version <= %(w)s AND c.removed_version > %(w)s"),
            leaving=sql.SQL("c.added_version > %(w)s AND c.removed_version IS NULL"),
            params={"w": w},
        )
        for kind in ("chunks", "docs", "windows"):
            conn.execute(sql.SQL("DELETE FROM {} WHERE added_version > %s").format(t(kind)), (w,))
            conn.execute(
                sql.SQL("UPDATE {} SET removed_version = NULL WHERE removed_version > %s").format(t(kind)), (w,)
            )

    def _update_current(
        self, conn: Conn, coll: _Coll, *, entering: sql.Composable, leaving: sql.Composable, params: dict[str, Any]
    ) -> None:
        """Move chunk rows into/out of the current-version structures: postings, df and live.

        ``entering``/``leaving`` are conditions over ``c`` (the chunks table) evaluated on the
        rows as they are now; called inside the commit or rollback transaction.
        """
        t = lambda kind: coll.table(self.schema, kind)  # noqa: E731
        ch = t("chunks")
        self._apply_df_delta(
            conn, coll,
            sql.SQL(
                "SELECT tok.token, sum(CASE WHEN {entering} THEN 1 ELSE -1 END) AS d "
                "FROM {ch} c CROSS JOIN LATERAL (SELECT DISTINCT u FROM unnest(c.tokens) u) AS tok(token) "
                "WHERE ({entering}) OR ({leaving}) GROUP BY tok.token"
            ).format(ch=ch, entering=entering, leaving=leaving),
            params,
        )
        conn.execute(
            sql.SQL(
                "DELETE FROM {p} p USING (SELECT DISTINCT c.key, u AS token FROM {ch} c, unnest(c.tokens) u "
                "WHERE {leaving}) r WHERE p.token = r.token AND p.key = r.key"
            ).format(p=t("postings"), ch=ch, leaving=leaving),
            params,
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {p} (token, key, tf, dl) "
                "SELECT u, c.key, count(*), c.ntokens FROM {ch} c CROSS JOIN LATERAL unnest(c.tokens) u "
                "WHERE {entering} GROUP BY c.key, u, c.ntokens"
            ).format(p=t("postings"), ch=ch, entering=entering),
            params,
        )
        conn.execute(
            sql.SQL("DELETE FROM {live} WHERE key IN (SELECT c.key FROM {ch} c WHERE {leaving})").format(
                live=t("live"), ch=ch, leaving=leaving
            ),
            params,
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {live} (key, doc_id, metadata) SELECT c.key, c.doc_id, c.metadata FROM {ch} c "
                "WHERE {entering}"
            ).format(live=t("live"), ch=ch, entering=entering),
            params,
        )

    def _expire_old_versions(self, conn: Conn, coll: _Coll) -> None:
        """Keep the newest ``keep_versions`` published versions restorable; delete older history rows."""
        if self.keep_versions is None:
            return
        row = conn.execute(
            sql.SQL(
                "SELECT min(version) FROM (SELECT version FROM {} WHERE collection_id = %s AND status = 'published' "
                "ORDER BY version DESC LIMIT %s) k"
            ).format(self._t("versions")),
            (coll.id, self.keep_versions),
        ).fetchone()
        if row is None or row[0] is None:
            return
        oldest = int(row[0])
        # rows removed at or before the oldest kept version are invisible in every kept version
        for kind in ("chunks", "docs", "windows"):
            conn.execute(
                sql.SQL("DELETE FROM {} WHERE removed_version IS NOT NULL AND removed_version <= %s").format(
                    coll.table(self.schema, kind)
                ),
                (oldest,),
            )
        conn.execute(
            sql.SQL(
                "UPDATE {} SET status = 'expired' WHERE collection_id = %s AND status = 'published' AND version < %s"
            ).format(self._t("versions")),
            (coll.id, oldest),
        )

    @staticmethod
    def _large_change(changed: int, live: int) -> bool:
        return changed >= 500 and changed * 5 >= live

    def _analyze_if_needed(self, conn: Conn, coll: _Coll, changed: int, live: int) -> None:
        """Refresh planner statistics inside the commit after large changes.

        Without them a freshly loaded collection looks empty to the planner until autovacuum
        runs, and it would scan instead of using the HNSW/GIN/postings indexes. ANALYZE in the
        transaction sees the batch's own rows and its statistics commit with the version.
        """
        if not self._large_change(changed, live):
            return
        for kind in ("chunks", "postings", "live", "df", "windows"):
            conn.execute(sql.SQL("ANALYZE {}").format(coll.table(self.schema, kind)))

    def _ensure_ann_index(self, conn: Conn, coll: _Coll, live_chunks: int, live_windows: int = 0) -> None:
        """Build the HNSW indexes in bulk once the collection is big enough (inside the commit):
        on the chunk vectors from ``hnsw_min_rows`` live chunks on, on the window vectors from
        ``hnsw_min_rows`` live windows on.

        Bulk builds are many times faster than row-by-row inserts, so the first large batch
        pays seconds instead of minutes; smaller collections are searched exactly. CREATE INDEX
        takes a SHARE lock: readers keep going, other writers are excluded anyway.
        """
        if coll.dim > HALFVEC_MAX_DIM:
            return
        for kind, name, live in (("chunks", f"c{coll.id}_hnsw", live_chunks),
                                 ("windows", f"c{coll.id}_whnsw", live_windows)):
            if live < self.hnsw_min_rows:
                continue
            exists = conn.execute(
                "SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = %s", (self.schema, name)
            ).fetchone()
            if exists:
                continue
            opclass = "vector_cosine_ops" if coll.dim <= HNSW_MAX_DIM else "halfvec_cosine_ops"
            conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (self._build_mem,))
            conn.execute(
                sql.SQL(
                    "CREATE INDEX {name} ON {tbl} USING hnsw ({expr} {ops}) WITH (m = {m}, ef_construction = {efc}) "
                    "WHERE removed_version IS NULL"
                ).format(
                    name=sql.Identifier(name), tbl=coll.table(self.schema, kind),
                    expr=coll.ann_expr(sql.Identifier("embedding")), ops=sql.SQL(opclass),
                    m=sql.Literal(self._hnsw_m), efc=sql.Literal(self._hnsw_efc),
                )
            )

    def _apply_df_delta(self, conn: Conn, coll: _Coll, delta: sql.Composable, params: dict[str, Any]) -> None:
        df = coll.table(self.schema, "df")
        rows = conn.execute(
            sql.SQL(
                "INSERT INTO {df} AS df (token, n) SELECT token, d FROM ({delta}) AS x WHERE d <> 0 "
                "ON CONFLICT (token) DO UPDATE SET n = df.n + EXCLUDED.n RETURNING token, n"
            ).format(df=df, delta=delta),
            params,
        ).fetchall()
        gone = [r[0] for r in rows if r[1] <= 0]
        if gone:
            conn.execute(sql.SQL("DELETE FROM {} WHERE token = ANY(%s)").format(df), (gone,))
