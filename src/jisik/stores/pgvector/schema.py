"""DDL of the PostgreSQL store: the schema-wide tables (bootstrap) and each collection's tables."""

from __future__ import annotations

from jisik.core.errors import CorruptData, Unavailable
from jisik.stores.pgvector.base import _StoreBase
from jisik.stores.pgvector.common import (
    LAYOUT_VERSION,
    Conn,
    TypeInfo,
    _Coll,
    pg_errors,
    register_vector_info,
    sql,
)


class _SchemaMixin(_StoreBase):
    """Creates the schema, its shared tables and the tables of each collection."""

    def _bootstrap(self) -> None:
        def go(conn: Conn) -> None:
            have = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            if have is None:
                avail = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
                if avail is None:
                    raise Unavailable(
                        "이 PostgreSQL 서버에는 pgvector 확장이 설치되어 있지 않습니다.",
                        f"The PostgreSQL server at {self.url} has no pgvector extension.",
                        hint="install pgvector (e.g. apt install postgresql-NN-pgvector) or use the "
                        "embedded server: jisik.stores.pg_server.start_embedded_postgres",
                    )
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", (f"jisik:{self.schema}",))
                if have is None:
                    try:
                        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                    except pg_errors.InsufficientPrivilege as e:
                        raise Unavailable(
                            "pgvector 확장을 만들 권한이 없습니다.",
                            "Not allowed to CREATE EXTENSION vector on this database.",
                            hint="ask an administrator to run: CREATE EXTENSION vector;",
                        ) from e
                s = sql.Identifier(self.schema)
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s))
                conn.execute(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {} (key text PRIMARY KEY, value text NOT NULL)").format(
                        self._t("meta")
                    )
                )
                conn.execute(
                    sql.SQL("INSERT INTO {} VALUES ('layout', %s) ON CONFLICT (key) DO NOTHING").format(
                        self._t("meta")
                    ),
                    (LAYOUT_VERSION,),
                )
                row = conn.execute(
                    sql.SQL("SELECT value FROM {} WHERE key = 'layout'").format(self._t("meta"))
                ).fetchone()
                migrate = row is not None and row[0] == "1"
                if row is None or (row[0] != LAYOUT_VERSION and not migrate):
                    raise CorruptData(
                        f"스키마 '{self.schema}'의 형식 버전({row and row[0]})을 이 jisik은 읽을 수 없습니다.",
                        f"Schema '{self.schema}' has layout {row and row[0]!r}; this jisik needs {LAYOUT_VERSION}.",
                    )
                conn.execute(
                    sql.SQL(
                        """CREATE TABLE IF NOT EXISTS {c} (
                        id integer GENERATED ALWAYS AS IDENTITY UNIQUE,
                        name text PRIMARY KEY,
                        dim integer NOT NULL,
                        embedder_id text NOT NULL,
                        current_version integer NOT NULL DEFAULT 0,
                        last_version integer NOT NULL DEFAULT 0,
                        live_docs bigint NOT NULL DEFAULT 0,
                        live_chunks bigint NOT NULL DEFAULT 0,
                        total_tokens bigint NOT NULL DEFAULT 0,
                        created_at timestamptz NOT NULL DEFAULT now(),
                        live_windows bigint NOT NULL DEFAULT 0)"""
                    ).format(c=self._t("collections"))
                )
                conn.execute(
                    sql.SQL(
                        """CREATE TABLE IF NOT EXISTS {v} (
                        collection_id integer NOT NULL REFERENCES {c}(id) ON DELETE CASCADE,
                        version integer NOT NULL,
                        created_at timestamptz NOT NULL DEFAULT now(),
                        status text NOT NULL,
                        documents bigint NOT NULL,
                        chunks bigint NOT NULL,
                        tokens bigint NOT NULL,
                        added_docs integer NOT NULL,
                        removed_docs integer NOT NULL,
                        replaced_docs integer NOT NULL,
                        note text NOT NULL DEFAULT '',
                        PRIMARY KEY (collection_id, version))"""
                    ).format(v=self._t("versions"), c=self._t("collections"))
                )
                if migrate:
                    self._migrate_layout_1(conn)
            info = TypeInfo.fetch(conn, "vector")
            if info is None:  # pragma: no cover - extension just created
                raise Unavailable("pgvector 타입을 찾을 수 없습니다.", "The vector type is not visible (search_path?).")
            self._vector_info = info
            register_vector_info(conn, info)

        self._run(go)

    def _create_tables(self, conn: Conn, coll: _Coll) -> None:
        t = lambda kind: coll.table(self.schema, kind)  # noqa: E731
        conn.execute(
            sql.SQL(
                """CREATE TABLE {ch} (
                key bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                doc_id text NOT NULL,
                chunk_id text NOT NULL,
                seq integer NOT NULL,
                text text NOT NULL,
                title text NOT NULL,
                source_uri text NOT NULL,
                locator jsonb NOT NULL,
                metadata jsonb NOT NULL,
                char_start integer NOT NULL,
                char_end integer NOT NULL,
                tokens text[] NOT NULL,
                ntokens integer NOT NULL,
                embedding vector({dim}) NOT NULL,
                added_version integer NOT NULL,
                removed_version integer)"""
            ).format(ch=t("chunks"), dim=sql.Literal(coll.dim))
        )
        conn.execute(sql.SQL("CREATE INDEX ON {} (doc_id) WHERE removed_version IS NULL").format(t("chunks")))
        conn.execute(sql.SQL("CREATE INDEX ON {} (added_version)").format(t("chunks")))
        conn.execute(
            sql.SQL("CREATE INDEX ON {} (removed_version) WHERE removed_version IS NOT NULL").format(t("chunks"))
        )
        conn.execute(
            sql.SQL("CREATE INDEX ON {} USING gin (metadata jsonb_path_ops) WHERE removed_version IS NULL").format(
                t("chunks")
            )
        )
        # the HNSW index is built in bulk by the first commit that reaches hnsw_min_rows (ensure_ann_index)
        conn.execute(
            sql.SQL(
                """CREATE TABLE {d} (
                doc_id text NOT NULL,
                fingerprint text NOT NULL,
                chunks integer NOT NULL,
                added_version integer NOT NULL,
                removed_version integer)"""
            ).format(d=t("docs"))
        )
        conn.execute(sql.SQL("CREATE UNIQUE INDEX ON {} (doc_id) WHERE removed_version IS NULL").format(t("docs")))
        conn.execute(sql.SQL("CREATE INDEX ON {} (added_version)").format(t("docs")))
        conn.execute(
            sql.SQL("CREATE INDEX ON {} (removed_version) WHERE removed_version IS NOT NULL").format(t("docs"))
        )
        conn.execute(
            sql.SQL(
                """CREATE TABLE {p} (
                token text NOT NULL,
                key bigint NOT NULL,
                tf integer NOT NULL,
                dl integer NOT NULL,
                PRIMARY KEY (token, key) INCLUDE (tf, dl))"""
            ).format(p=t("postings"))
        )
        conn.execute(sql.SQL("CREATE TABLE {} (token text PRIMARY KEY, n integer NOT NULL)").format(t("df")))
        # narrow copy of the filterable columns of the current version: filters scan this, not chunks
        conn.execute(
            sql.SQL("CREATE TABLE {} (key bigint PRIMARY KEY, doc_id text NOT NULL, metadata jsonb NOT NULL)").format(
                t("live")
            )
        )
        conn.execute(sql.SQL("CREATE INDEX ON {} (doc_id)").format(t("live")))
        conn.execute(sql.SQL("CREATE INDEX ON {} USING gin (metadata jsonb_path_ops)").format(t("live")))
        self._create_windows_table(conn, coll)

    def _create_windows_table(self, conn: Conn, coll: _Coll) -> None:
        """Window vectors of long chunks (multi-vector passages): owner chunk ``key``, versioned
        like the chunks table (same ``doc_id`` and version stamps, so they come and go together)."""
        w = coll.table(self.schema, "windows")
        conn.execute(
            sql.SQL(
                """CREATE TABLE IF NOT EXISTS {w} (
                wkey bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                key bigint NOT NULL,
                doc_id text NOT NULL,
                seq integer NOT NULL,
                embedding vector({dim}) NOT NULL,
                added_version integer NOT NULL,
                removed_version integer)"""
            ).format(w=w, dim=sql.Literal(coll.dim))
        )
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (key)").format(
            sql.Identifier(f"c{coll.id}_windows_key"), w))
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (doc_id) WHERE removed_version IS NULL").format(
            sql.Identifier(f"c{coll.id}_windows_doc"), w))
        conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (added_version)").format(
            sql.Identifier(f"c{coll.id}_windows_added"), w))
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (removed_version) WHERE removed_version IS NOT NULL").format(
                sql.Identifier(f"c{coll.id}_windows_removed"), w)
        )

    def _migrate_layout_1(self, conn: Conn) -> None:
        """Layout 1 -> 2 (inside the bootstrap transaction): every collection gets an empty
        windows table (its chunks simply have no windows until they are re-indexed)."""
        conn.execute(
            sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS live_windows bigint NOT NULL DEFAULT 0").format(
                self._t("collections")
            )
        )
        for cid, name, dim in conn.execute(
            sql.SQL("SELECT id, name, dim FROM {}").format(self._t("collections"))
        ).fetchall():
            self._create_windows_table(conn, _Coll(int(cid), name, int(dim)))
        conn.execute(
            sql.SQL("UPDATE {} SET value = %s WHERE key = 'layout'").format(self._t("meta")), (LAYOUT_VERSION,)
        )
