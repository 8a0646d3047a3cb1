"""Connection plumbing of :class:`~jisik.stores.pgvector.PgVectorStore`: settings, pool, error mapping,
collection-id cache. The store's other parts (schema, versions, search) are mixins over this base."""

from __future__ import annotations

import contextlib
import math
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from jisik.core.errors import Conflict, InvalidInput, JisikError, NotFound
from jisik.stores.index_base import check_collection_name
from jisik.stores.pgvector.common import (
    _SCHEMA_RE,
    Conn,
    TypeInfo,
    _Coll,
    _mask,
    _normalise_dsn,
    _Retry,
    _unavailable,
    pg_errors,
    psycopg,
    register_vector_info,
    sql,
)
from jisik.stores.pgvector.pool import _Pool


class _StoreBase:
    """Settings, connections, error mapping and the collection-id cache shared by the store's parts."""

    if TYPE_CHECKING:

        def _bootstrap(self) -> None: ...

    def __init__(
        self,
        dsn: str,
        schema: str = "jisik",
        *,
        connect_timeout_s: float = 5.0,
        lock_timeout_s: float = 30.0,
        bm25_k1: float = 1.2,
        bm25_b: float = 0.75,
        hnsw_m: int = 16,
        hnsw_ef_construction: int = 64,
        hnsw_ef_search: int = 100,
        hnsw_max_scan_tuples: int = 20000,
        hnsw_iterative_scan: str = "relaxed_order",
        hnsw_min_rows: int = 1000,
        lexical_join_max_postings: int = 3000,
        index_build_memory: str = "256MB",
        pool_size: int = 8,
        keep_versions: int | None = 10,
    ) -> None:
        if not isinstance(schema, str) or not _SCHEMA_RE.match(schema):
            raise InvalidInput(
                f"스키마 이름이 올바르지 않습니다: {schema!r}",
                f"Invalid schema name {schema!r} (lowercase letters, digits, _).",
            )
        if not (bm25_k1 >= 0 and 0 <= bm25_b <= 1):
            raise InvalidInput("BM25 매개변수가 올바르지 않습니다.", "Invalid BM25 parameters (k1 >= 0, 0 <= b <= 1).")
        self._dsn = _normalise_dsn(dsn)
        self.url = _mask(self._dsn)
        self.schema = schema
        self._connect_timeout = max(1, math.ceil(connect_timeout_s))
        self._lock_timeout_ms = max(1, int(lock_timeout_s * 1000))
        self.k1 = float(bm25_k1)
        self.b = float(bm25_b)
        self.keep_versions = None if keep_versions is None else max(1, int(keep_versions))
        self._hnsw_m = int(hnsw_m)
        self._hnsw_efc = int(hnsw_ef_construction)
        self._ef_search = int(hnsw_ef_search)
        self._max_scan_tuples = int(hnsw_max_scan_tuples)
        if hnsw_iterative_scan not in ("off", "strict_order", "relaxed_order"):
            raise InvalidInput(
                "hnsw_iterative_scan 값이 올바르지 않습니다.", "hnsw_iterative_scan: off | strict_order | relaxed_order"
            )
        self._iterative = hnsw_iterative_scan
        self.hnsw_min_rows = max(0, int(hnsw_min_rows))
        self._lex_join_max = int(lexical_join_max_postings)
        if not re.match(r"^\d+\s*(kB|MB|GB)$", index_build_memory):
            raise InvalidInput(
                "index_build_memory 형식이 올바르지 않습니다.", "index_build_memory must look like '256MB'."
            )
        self._build_mem = index_build_memory
        self._vector_info: TypeInfo | None = None
        self._cache: dict[str, _Coll] = {}
        self._cache_lock = threading.Lock()
        self._pool = _Pool(self._connect, pool_size)
        self._bootstrap()

    # -- plumbing -----------------------------------------------------------

    def _connect(self, *, autocommit: bool) -> Conn:
        try:
            conn: Conn = psycopg.connect(
                self._dsn,
                autocommit=autocommit,
                prepare_threshold=None,  # we change planner settings per transaction
                connect_timeout=self._connect_timeout,
                application_name="jisik",
            )
        except psycopg.Error as e:
            raise _unavailable(e, self.url) from e
        if self._vector_info is not None:
            try:
                register_vector_info(conn, self._vector_info)
            except Exception:
                conn.close()
                raise
        return conn

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except JisikError:
            raise
        except pg_errors.LockNotAvailable as e:
            raise Conflict(
                "다른 작업(배치, 롤백, 삭제)이 이 컬렉션을 쓰고 있습니다. 잠시 후 다시 시도하세요.",
                "Another writer (batch, rollback or drop) holds this collection; try again later.",
            ) from e
        except pg_errors.UndefinedTable as e:
            self._cache.clear()
            raise NotFound(
                "컬렉션이 삭제되었습니다.", f"The collection was dropped concurrently: {e}"
            ) from e
        except psycopg.DataError as e:
            raise InvalidInput(
                "PostgreSQL이 저장할 수 없는 값입니다 (예: 문자열 속 NUL 문자, 범위를 벗어난 숫자).",
                f"PostgreSQL rejected a value: {str(e).strip()}",
            ) from e
        except (psycopg.OperationalError, psycopg.InterfaceError) as e:
            raise _unavailable(e, self.url) from e

    def _run(self, fn: Any) -> Any:
        """Run ``fn(conn)`` on a pooled connection; retry once if a reused connection went stale."""
        for attempt in (0, 1):
            try:
                with self._errors(), self._pool.connection() as (conn, reused):
                    try:
                        return fn(conn)
                    except (psycopg.OperationalError, psycopg.InterfaceError) as e:
                        if reused and attempt == 0 and conn.closed and not isinstance(
                            e, pg_errors.LockNotAvailable
                        ):
                            raise _Retry() from e
                        raise
                    except pg_errors.UndefinedTable:
                        if attempt == 0:
                            self._cache.clear()
                            raise _Retry() from None
                        raise
            except _Retry:
                continue
        raise NotFound(
            "컬렉션이 방금 바뀌었습니다. 다시 시도하세요.", "The collection changed concurrently; try again."
        )

    def _t(self, name: str) -> sql.Identifier:
        return sql.Identifier(self.schema, name)

    def _coll(self, conn: Conn, name: str, *, lock: bool = False) -> _Coll:
        check_collection_name(name)
        if not lock:
            with self._cache_lock:
                hit = self._cache.get(name)
            if hit is not None:
                return hit
        q = sql.SQL("SELECT id, dim FROM {} WHERE name = %s").format(self._t("collections"))
        if lock:
            q = q + sql.SQL(" FOR UPDATE")
        row = conn.execute(q, (name,)).fetchone()
        if row is None:
            with self._cache_lock:
                self._cache.pop(name, None)
            raise NotFound(f"컬렉션 '{name}'이(가) 없습니다.", f"Collection '{name}' does not exist.")
        coll = _Coll(int(row[0]), name, int(row[1]))
        with self._cache_lock:
            self._cache[name] = coll
        return coll

    def _set_lock_timeout(self, conn: Conn) -> None:
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (f"{self._lock_timeout_ms}ms",))
