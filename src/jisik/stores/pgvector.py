"""PostgreSQL + pgvector implementation of :class:`~jisik.stores.index_base.IndexStore`.

Layout (all inside one schema, ``jisik`` by default)::

    meta(key, value)                         layout version
    collections(id, name, dim, embedder_id, current_version, last_version,
                live_docs, live_chunks, total_tokens, created_at)
    versions(collection_id, version, created_at, status, documents, chunks, tokens,
             added_docs, removed_docs, replaced_docs, note)
    c<id>_chunks(key, doc_id, chunk_id, seq, text, title, source_uri, locator, metadata,
                 char_start, char_end, tokens text[], ntokens, embedding vector(dim),
                 added_version, removed_version)               every row of every kept version
    c<id>_docs(doc_id, fingerprint, chunks, added_version, removed_version)
    c<id>_postings(token, key, tf, dl)       inverted index of the *current* version (BM25)
    c<id>_df(token, n)                       document frequencies of the *current* version
    c<id>_live(key, doc_id, metadata)        filterable columns of the *current* version

Versions (MVCC): a row is part of version V iff ``added_version <= V`` and
(``removed_version`` is NULL or ``> V``). A batch is one PostgreSQL transaction on its own
connection, holding the collection row lock (one writer per collection): it inserts rows with
``added_version = V+1`` and stamps replaced/deleted rows ``removed_version = V+1``; commit then
updates postings/df/live/statistics, writes the versions row and sets ``current_version`` in
the same transaction, so readers switch from V to V+1 atomically and an interrupted batch
(exception, SIGKILL, lost connection) is rolled back by the server: nothing to clean up.

Invariant kept by commit and rollback: the rows of the *current* version are exactly those
with ``removed_version IS NULL``. Rollback to W physically deletes rows added after W and
clears ``removed_version`` on rows removed after W (rolled-back versions can never come back).
The newest ``keep_versions`` published versions stay restorable; rows only older versions
could see are deleted at commit (those versions become ``expired``), as in the embedded store.

Dense search: HNSW (``vector_cosine_ops``; a ``halfvec`` expression index for 2000 < dim <=
4000), partial on ``removed_version IS NULL``, built in bulk by the first commit that reaches
``hnsw_min_rows`` (smaller collections are scanned exactly). Filtered queries use pgvector
0.8 iterative scans; when the index yields fewer than ``top_n`` rows an exact scan over the
rows passing the filter answers instead, so selective filters never lose results.

Lexical search: Okapi BM25 (Lucene's idf ``ln(1 + (N - df + 0.5) / (df + 0.5))``, k1=1.2,
b=0.75) over the Kiwi tokens the caller passes, computed exactly in SQL from the postings and
df tables, normalised by the query's upper bound like the embedded store (identical scores).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from types import TracebackType
from typing import Any

import numpy as np

from jisik.core.errors import Conflict, CorruptData, InvalidInput, JisikError, NotFound, Unavailable
from jisik.core.logging import get_logger
from jisik.core.types import Chunk
from jisik.retrieval.filters import Condition, Filter
from jisik.stores.index_base import CollectionInfo, FloatArray, KeyArray, VersionInfo

try:
    import psycopg
    from pgvector import Vector
    from pgvector.psycopg.vector import register_vector_info
    from psycopg import errors as pg_errors
    from psycopg import sql
    from psycopg.types import TypeInfo
    from psycopg.types.json import Jsonb
except ImportError as _e:  # pragma: no cover - depends on the environment
    raise Unavailable(
        "PostgreSQL 저장소에 필요한 패키지(psycopg, pgvector)가 설치되어 있지 않습니다.",
        "The PostgreSQL store needs psycopg and pgvector.",
        hint="pip install 'jisik[postgres]'",
    ) from _e

logger = get_logger(__name__)
LAYOUT_VERSION = "1"
MAX_DIM = 16000  # pgvector's limit for the vector type
HNSW_MAX_DIM = 2000  # vector HNSW limit; up to 4000 we index a halfvec expression instead
HALFVEC_MAX_DIM = 4000
MAX_TOKEN_CHARS = 200  # btree entries must stay well under 2.7 kB
# same rule as the embedded store, so a collection can move between the two
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_COLUMN_FIELDS = ("doc_id",)  # filter fields that are columns, not metadata keys

Conn = psycopg.Connection[tuple[Any, ...]]


def _mask(dsn: str) -> str:
    dsn = re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", dsn)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", dsn)


def _normalise_dsn(dsn: str) -> str:
    # accept SQLAlchemy-style URLs (postgresql+psycopg://...)
    return re.sub(r"^(postgres(?:ql)?)\+[a-z0-9_]+://", r"\1://", dsn.strip())


def _unavailable(e: BaseException, url: str) -> Unavailable:
    state = getattr(e, "sqlstate", None)
    if state and not state.startswith("08"):  # the server answered, with an error (resources, timeout, ...)
        return Unavailable(
            f"PostgreSQL 서버가 요청을 처리하지 못했습니다 (SQLSTATE {state}).",
            f"The PostgreSQL server at {url} could not process the request (SQLSTATE {state}): {str(e).strip()}",
            hint="retry later; check the server log (disk, memory, timeouts)",
        )
    return Unavailable(
        f"PostgreSQL 서버에 연결할 수 없습니다 ({url}).",
        f"Cannot reach the PostgreSQL server at {url}: {str(e).strip() or type(e).__name__}",
        hint="check that the server is running and the URL (host, port, user, database) is right",
    )


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InvalidInput(
            f"컬렉션 이름이 올바르지 않습니다: {name!r} (영문 소문자, 숫자, _, - 로 64자 이내)",
            f"Invalid collection name {name!r}: use lowercase letters, digits, _ and -, max 64 chars.",
        )
    return name


def _clean_tokens(tokens: Sequence[str]) -> list[str]:
    if isinstance(tokens, str):
        raise InvalidInput("토큰은 문자열 목록이어야 합니다.", "Tokens must be a list of strings, not one string.")
    out: list[str] = []
    for t in tokens:
        if not isinstance(t, str):
            raise InvalidInput("토큰은 문자열이어야 합니다.", f"Tokens must be strings (got {type(t).__name__}).")
        t = t.replace("\x00", "")[:MAX_TOKEN_CHARS]
        if t:
            out.append(t)
    return out


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _json_text(value: Any, what: str) -> str:
    if _has_nul(value):
        raise InvalidInput(
            f"{what}에 NUL 문자(\\x00)가 있어 PostgreSQL에 저장할 수 없습니다.",
            f"{what} contains a NUL character, which PostgreSQL cannot store.",
        )
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as e:
        raise InvalidInput(
            f"{what} 값은 JSON으로 저장할 수 있어야 합니다 (NaN/무한대 불가).",
            f"{what} must be JSON-serialisable without NaN/Infinity: {e}",
        ) from e


def _identity(s: Any) -> str:
    return str(s)


def _jsonb(text: str) -> Jsonb:
    return Jsonb(text, dumps=_identity)


def _finite_vectors(vectors: Any, dim: int, rows: int | None, what: str) -> np.ndarray:
    try:
        arr = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{what}: 벡터를 숫자 배열로 바꿀 수 없습니다.", f"{what}: not a numeric array.") from e
    if rows is None:
        if arr.ndim == 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 1 or arr.shape[0] != dim:
            raise InvalidInput(
                f"{what}: 벡터 차원이 {dim}이어야 합니다 (받은 모양 {arr.shape}).",
                f"{what}: expected a vector of dimension {dim}, got shape {arr.shape}.",
            )
    else:
        if rows == 0 and arr.size == 0:
            return np.zeros((0, dim), dtype=np.float32)
        if arr.ndim != 2 or arr.shape != (rows, dim):
            raise InvalidInput(
                f"{what}: 벡터 배열 모양이 ({rows}, {dim})이어야 합니다 (받은 모양 {arr.shape}).",
                f"{what}: expected vectors of shape ({rows}, {dim}), got {arr.shape}.",
            )
    if not np.isfinite(arr).all():
        raise InvalidInput(f"{what}: 벡터에 NaN/무한대가 있습니다.", f"{what}: vectors contain NaN or infinity.")
    return arr


def _iso(ts: datetime | None) -> str:
    if ts is None:
        return ""
    return ts.astimezone(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class _Coll:
    id: int
    name: str
    dim: int

    def table(self, schema: str, kind: str) -> sql.Identifier:
        return sql.Identifier(schema, f"c{self.id}_{kind}")

    def ann_expr(self, column: sql.Composable) -> sql.Composable:
        """The expression the HNSW index is built on (halfvec for 2000 < dim <= 4000)."""
        if self.dim <= HNSW_MAX_DIM:
            return column
        return sql.SQL("({}::halfvec({}))").format(column, sql.Literal(self.dim))

    def ann_query(self, placeholder: sql.Composable) -> sql.Composable:
        if self.dim <= HNSW_MAX_DIM:
            return placeholder
        return sql.SQL("{}::halfvec({})").format(placeholder, sql.Literal(self.dim))


# --------------------------------------------------------------------------- filters


class _FilterSQL:
    """Translate a :class:`Filter` to SQL over alias ``c`` with named parameters.

    Semantics follow :meth:`Condition.matches`: a missing (or JSON null) field only satisfies
    ``ne``; comparing values of different types is false; strings compare by code point
    (``COLLATE "C"``), numbers numerically.
    """

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self._n = 0

    def _p(self, value: Any) -> sql.Composable:
        name = f"f{self._n}"
        self._n += 1
        self.params[name] = value
        return sql.Placeholder(name)

    def build(self, flt: Filter) -> sql.Composable:
        if not isinstance(flt, Filter):
            raise InvalidInput("필터 형식이 올바르지 않습니다.", f"Expected a Filter, got {type(flt).__name__}.")
        parts = [self._cond(c) for c in flt.conditions]
        if not parts:
            return sql.SQL("TRUE")
        return sql.SQL(" AND ").join(sql.SQL("({})").format(p) for p in parts)

    @staticmethod
    def _is_number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    def _cond(self, c: Condition) -> sql.Composable:
        if c.field in _COLUMN_FIELDS:
            return self._column(c)
        return self._metadata(c)

    def _column(self, c: Condition) -> sql.Composable:
        col = sql.SQL("c.{}").format(sql.Identifier(c.field))
        v = c.value
        if c.op == "in":
            strs = [x for x in v if isinstance(x, str)] if isinstance(v, tuple) else []
            if not strs:
                return sql.SQL("FALSE")
            return sql.SQL("{} = ANY({}::text[])").format(col, self._p(strs))
        if not isinstance(v, str):
            return sql.SQL("TRUE" if c.op == "ne" else "FALSE")
        if c.op in ("eq", "ne"):
            return sql.SQL("{} {} {}").format(col, sql.SQL("=" if c.op == "eq" else "<>"), self._p(v))
        ops = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        return sql.SQL('{} COLLATE "C" {} {}').format(col, sql.SQL(ops[c.op]), self._p(v))

    def _equal(self, field: str, value: Any) -> sql.Composable:
        """``metadata[field] == value`` with Python's rules (1 == 1.0 == True), via GIN-able ``@>``."""
        alts: list[Any] = []
        if isinstance(value, bool):
            alts = [value, int(value)]
        elif isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                return sql.SQL("FALSE")  # JSON cannot hold NaN/inf, so nothing stored equals it
            alts = [value] + ([bool(value)] if value in (0, 1) else [])
        else:
            alts = [value]
        parts = [
            sql.SQL("c.metadata @> {}").format(self._p(_jsonb(_json_text({field: a}, "filter")))) for a in alts
        ]
        return sql.SQL(" OR ").join(parts) if len(parts) > 1 else parts[0]

    def _metadata(self, c: Condition) -> sql.Composable:
        v = c.value
        if c.op == "eq":
            return self._equal(c.field, v)
        if c.op == "ne":
            return sql.SQL("NOT ({})").format(self._equal(c.field, v))
        if c.op == "in":
            values = v if isinstance(v, tuple) else (v,)
            return sql.SQL(" OR ").join(sql.SQL("({})").format(self._equal(c.field, x)) for x in values)
        op = sql.SQL({"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[c.op])
        key = self._p(c.field)
        if self._is_number(v):
            assert isinstance(v, int | float)
            if isinstance(v, float) and math.isnan(v):
                return sql.SQL("FALSE")
            num: int | Decimal = v if isinstance(v, int) else Decimal(repr(v))
            return sql.SQL(
                "CASE jsonb_typeof(c.metadata -> {k}) "
                "WHEN 'number' THEN (c.metadata ->> {k})::numeric {op} {v}::numeric "
                "WHEN 'boolean' THEN (CASE WHEN c.metadata -> {k} = 'true'::jsonb THEN 1 ELSE 0 END) {op} {v}::numeric "
                "ELSE FALSE END"
            ).format(k=key, op=op, v=self._p(num))
        if isinstance(v, str):
            return sql.SQL(
                "CASE WHEN jsonb_typeof(c.metadata -> {k}) = 'string' "
                "THEN (c.metadata ->> {k}) COLLATE \"C\" {op} {v} ELSE FALSE END"
            ).format(k=key, op=op, v=self._p(v))
        return sql.SQL("FALSE")


# --------------------------------------------------------------------------- connections


class _Pool:
    """A tiny thread-safe pool of autocommit connections (reads and DDL)."""

    def __init__(self, connect: Any, max_idle: int) -> None:
        self._connect = connect
        self._max_idle = max_idle
        self._idle: list[Conn] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[tuple[Conn, bool]]:
        """Yield (connection, reused) — ``reused`` tells callers a failure may be a stale socket."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        if conn is None:
            conn = self._connect(autocommit=True)
        assert conn is not None
        try:
            yield conn, reused
        finally:
            # errors raised by our own checks leave the connection idle and reusable
            good = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            with self._lock:
                if good and not self._closed and len(self._idle) < self._max_idle:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                with contextlib.suppress(Exception):
                    conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for c in idle:
            with contextlib.suppress(Exception):
                c.close()


# --------------------------------------------------------------------------- the store


class PgVectorStore:
    """Hybrid chunk index in PostgreSQL (pgvector HNSW + SQL BM25 + jsonb metadata), versioned.

    ``dsn`` is a libpq URL or key/value string (``postgresql+psycopg://`` is accepted too).
    The server needs the ``vector`` extension (pgvector >= 0.8 recommended); it is created
    when missing and we are allowed to. ``lock_timeout_s`` bounds how long opening a batch,
    rolling back or dropping waits for another writer of the same collection (then Conflict).
    """

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
                if row is None or row[0] != LAYOUT_VERSION:
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
                        created_at timestamptz NOT NULL DEFAULT now())"""
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
            info = TypeInfo.fetch(conn, "vector")
            if info is None:  # pragma: no cover - extension just created
                raise Unavailable("pgvector 타입을 찾을 수 없습니다.", "The vector type is not visible (search_path?).")
            self._vector_info = info
            register_vector_info(conn, info)

        self._run(go)

    def _coll(self, conn: Conn, name: str, *, lock: bool = False) -> _Coll:
        _check_name(name)
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

    @staticmethod
    def _info(row: Sequence[Any]) -> CollectionInfo:
        return CollectionInfo(
            name=row[0], dim=int(row[1]), embedder_id=row[2], version=int(row[3]),
            documents=int(row[4]), chunks=int(row[5]),
        )

    _INFO_COLS = sql.SQL("name, dim, embedder_id, current_version, live_docs, live_chunks")

    # -- collections ----------------------------------------------------------

    def list_collections(self) -> list[CollectionInfo]:
        def go(conn: Conn) -> list[CollectionInfo]:
            rows = conn.execute(
                sql.SQL("SELECT {} FROM {} ORDER BY name").format(self._INFO_COLS, self._t("collections"))
            ).fetchall()
            return [self._info(r) for r in rows]

        result: list[CollectionInfo] = self._run(go)
        return result

    def get_collection(self, name: str) -> CollectionInfo:
        _check_name(name)

        def go(conn: Conn) -> CollectionInfo:
            row = conn.execute(
                sql.SQL("SELECT {} FROM {} WHERE name = %s").format(self._INFO_COLS, self._t("collections")),
                (name,),
            ).fetchone()
            if row is None:
                raise NotFound(f"컬렉션 '{name}'이(가) 없습니다.", f"Collection '{name}' does not exist.")
            return self._info(row)

        result: CollectionInfo = self._run(go)
        return result

    def ensure_collection(self, name: str, *, dim: int, embedder_id: str) -> CollectionInfo:
        _check_name(name)
        if isinstance(dim, bool) or not isinstance(dim, int | np.integer) or not 1 <= int(dim) <= MAX_DIM:
            raise InvalidInput(
                f"벡터 차원은 1~{MAX_DIM} 사이의 정수여야 합니다 (받은 값: {dim!r}).",
                f"Vector dimension must be an integer in 1..{MAX_DIM} (got {dim!r}).",
            )
        dim = int(dim)
        if not isinstance(embedder_id, str) or not embedder_id.strip():
            raise InvalidInput("임베더 ID가 비어 있습니다.", "embedder_id must be a non-empty string.")

        def go(conn: Conn) -> CollectionInfo:
            with conn.transaction():
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", (f"jisik:{self.schema}:{name}",)
                )
                row = conn.execute(
                    sql.SQL("SELECT {} FROM {} WHERE name = %s").format(self._INFO_COLS, self._t("collections")),
                    (name,),
                ).fetchone()
                if row is not None:
                    info = self._info(row)
                    if info.dim != dim or info.embedder_id != embedder_id:
                        raise Conflict(
                            f"컬렉션 '{name}'은(는) 이미 다른 설정으로 있습니다 "
                            f"(차원 {info.dim}, 임베더 {info.embedder_id}).",
                            f"Collection '{name}' exists with dim={info.dim}, embedder={info.embedder_id!r}; "
                            f"requested dim={dim}, embedder={embedder_id!r}.",
                            hint="use another collection name or drop the old one",
                        )
                    return info
                (cid,) = conn.execute(  # type: ignore[misc]
                    sql.SQL("INSERT INTO {} (name, dim, embedder_id) VALUES (%s, %s, %s) RETURNING id").format(
                        self._t("collections")
                    ),
                    (name, dim, embedder_id),
                ).fetchone()
                self._create_tables(conn, _Coll(int(cid), name, dim))
            return CollectionInfo(name=name, dim=dim, embedder_id=embedder_id, version=0)

        result: CollectionInfo = self._run(go)
        return result

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

    def drop_collection(self, name: str) -> None:
        _check_name(name)

        def go(conn: Conn) -> None:
            with conn.transaction():
                self._set_lock_timeout(conn)
                coll = self._coll(conn, name, lock=True)
                for kind in ("chunks", "docs", "postings", "df", "live"):
                    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(coll.table(self.schema, kind)))
                conn.execute(sql.SQL("DELETE FROM {} WHERE id = %s").format(self._t("collections")), (coll.id,))
            with self._cache_lock:
                self._cache.pop(name, None)

        self._run(go)

    # -- batches & versions ---------------------------------------------------

    def open_batch(self, name: str, *, note: str = "") -> PgBatch:
        _check_name(name)
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
        return PgBatch(self, conn, coll, base_version=int(row[0]), version=int(row[1]) + 1, note=str(note))

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
                        "UPDATE {} SET current_version = %s, live_docs = %s, live_chunks = %s, total_tokens = %s "
                        "WHERE id = %s"
                    ).format(self._t("collections")),
                    (w, vrow[3], vrow[4], vrow[5], coll.id),
                )
                return self._version_info(vrow, w)

        result: VersionInfo = self._run(go)
        return result

    def _rollback_rows(self, conn: Conn, coll: _Coll, w: int) -> None:
        t = lambda kind: coll.table(self.schema, kind)  # noqa: E731
        ch = t("chunks")
        # current-version structures: live rows added after W leave, rows removed after W come back
        self._update_current(
            conn, coll,
            entering=sql.SQL("c.added_version <= %(w)s AND c.removed_version > %(w)s"),
            leaving=sql.SQL("c.added_version > %(w)s AND c.removed_version IS NULL"),
            params={"w": w},
        )
        conn.execute(sql.SQL("DELETE FROM {} WHERE added_version > %s").format(ch), (w,))
        conn.execute(sql.SQL("UPDATE {} SET removed_version = NULL WHERE removed_version > %s").format(ch), (w,))
        conn.execute(sql.SQL("DELETE FROM {} WHERE added_version > %s").format(t("docs")), (w,))
        conn.execute(
            sql.SQL("UPDATE {} SET removed_version = NULL WHERE removed_version > %s").format(t("docs")), (w,)
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
        for kind in ("chunks", "docs"):
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
        for kind in ("chunks", "postings", "live", "df"):
            conn.execute(sql.SQL("ANALYZE {}").format(coll.table(self.schema, kind)))

    def _ensure_ann_index(self, conn: Conn, coll: _Coll, live_chunks: int) -> None:
        """Build the HNSW index in bulk once the collection is big enough (inside the commit).

        Bulk builds are many times faster than row-by-row inserts, so the first large batch
        pays seconds instead of minutes; smaller collections are searched exactly. CREATE INDEX
        takes a SHARE lock: readers keep going, other writers are excluded anyway.
        """
        if coll.dim > HALFVEC_MAX_DIM or live_chunks < self.hnsw_min_rows:
            return
        name = f"c{coll.id}_hnsw"
        exists = conn.execute(
            "SELECT 1 FROM pg_indexes WHERE schemaname = %s AND indexname = %s", (self.schema, name)
        ).fetchone()
        if exists:
            return
        opclass = "vector_cosine_ops" if coll.dim <= HNSW_MAX_DIM else "halfvec_cosine_ops"
        conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (self._build_mem,))
        conn.execute(
            sql.SQL(
                "CREATE INDEX {name} ON {ch} USING hnsw ({expr} {ops}) WITH (m = {m}, ef_construction = {efc}) "
                "WHERE removed_version IS NULL"
            ).format(
                name=sql.Identifier(name), ch=coll.table(self.schema, "chunks"),
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

    def doc_fingerprints(self, name: str) -> dict[str, str]:
        def go(conn: Conn) -> dict[str, str]:
            coll = self._coll(conn, name)
            rows = conn.execute(
                sql.SQL("SELECT doc_id, fingerprint FROM {} WHERE removed_version IS NULL").format(
                    coll.table(self.schema, "docs")
                )
            ).fetchall()
            return {r[0]: r[1] for r in rows}

        result: dict[str, str] = self._run(go)
        return result

    # -- search -----------------------------------------------------------------

    @staticmethod
    def _top_n(top_n: int) -> int:
        """Validated top_n; 0 or less means "nothing" (empty arrays), like the embedded store."""
        if isinstance(top_n, bool) or not isinstance(top_n, int | np.integer):
            raise InvalidInput("top_n은 정수여야 합니다.", f"top_n must be an integer (got {top_n!r}).")
        return max(0, int(top_n))

    @staticmethod
    def _empty() -> tuple[KeyArray, FloatArray]:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)

    @staticmethod
    def _arrays(rows: Sequence[Sequence[Any]]) -> tuple[KeyArray, FloatArray]:
        if not rows:
            return PgVectorStore._empty()
        keys = np.fromiter((int(r[0]) for r in rows), dtype=np.int64, count=len(rows))
        scores = np.fromiter((float(r[1]) for r in rows), dtype=np.float32, count=len(rows))
        return keys, scores

    def search_lexical(
        self, name: str, tokens: Sequence[str], top_n: int, flt: Filter
    ) -> tuple[KeyArray, FloatArray]:
        """Okapi BM25 over the current version, normalised by the query's upper bound.

        score(d) = sum over unique query tokens t in d of
        idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)), idf(t) = ln(1 + (N - df + 0.5) / (df + 0.5)),
        divided by sum of idf(t) over the unique query tokens (unknown tokens: df = 0, maximal idf).
        """
        n = self._top_n(top_n)
        toks = list(dict.fromkeys(_clean_tokens(tokens)))
        fsql = _FilterSQL()
        where = fsql.build(flt if flt is not None else Filter())

        def go(conn: Conn) -> tuple[KeyArray, FloatArray]:
            coll = self._coll(conn, name)
            if not toks or n == 0:
                return self._empty()
            with conn.transaction():
                # statistics and postings from one snapshot, even if a batch commits meanwhile
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                st = conn.execute(
                    sql.SQL("SELECT live_chunks, total_tokens FROM {} WHERE id = %s").format(self._t("collections")),
                    (coll.id,),
                ).fetchone()
                if st is None:  # dropped (and maybe re-created) since we cached its id
                    with self._cache_lock:
                        self._cache.pop(name, None)
                    raise _Retry()
                n_rows, total = int(st[0]), int(st[1])
                if n_rows == 0:
                    return self._empty()
                dfs: dict[str, int] = {
                    r[0]: int(r[1])
                    for r in conn.execute(
                        sql.SQL("SELECT token, n FROM {} WHERE token = ANY(%s::text[])").format(
                            coll.table(self.schema, "df")
                        ),
                        (toks,),
                    ).fetchall()
                }
                idf = {t: math.log1p((n_rows - dfs.get(t, 0) + 0.5) / (dfs.get(t, 0) + 0.5)) for t in toks}
                bound = sum(idf.values())
                known = [t for t in toks if t in dfs]
                if not known:
                    return self._empty()
                avgdl = total / n_rows if total > 0 else 1.0
                rows = self._bm25(conn, coll, known, idf, dfs, avgdl, n, flt, where, fsql.params)
            keys, scores = self._arrays(rows)
            return keys, (scores / np.float32(bound) if bound > 0 else scores).astype(np.float32)

        result: tuple[KeyArray, FloatArray] = self._run(go)
        return result

    def _bm25(
        self, conn: Conn, coll: _Coll, known: list[str], idf: dict[str, float], dfs: dict[str, int],
        avgdl: float, n: int, flt: Filter, where: sql.Composable, fparams: dict[str, Any],
    ) -> list[tuple[Any, ...]]:
        """Raw BM25 top-n ``(key, score)`` rows, best first (ties: smaller key first)."""
        p_t = coll.table(self.schema, "postings")
        live = coll.table(self.schema, "live")
        est = sum(dfs[t] for t in known)  # posting rows a full evaluation reads
        base: dict[str, Any] = {
            "toks": known, "idf": [idf[t] for t in known], "k1": self.k1, "b": self.b,
            "avgdl": float(avgdl), "n": n, **fparams,
        }
        score = sql.SQL(
            "sum(w.idf * p.tf * (%(k1)s + 1.0) / (p.tf + %(k1)s * (1.0 - %(b)s + %(b)s * p.dl / %(avgdl)s)))"
        )
        w = sql.SQL("unnest(%(toks)s::text[], %(idf)s::float8[]) AS w(token, idf)")
        # filters are evaluated on the narrow "live" table: per posting for short posting lists,
        # as a hashed set of allowed keys when the query reads many postings
        with_allowed: sql.Composable = sql.SQL("")
        fjoin: sql.Composable = sql.SQL("")
        if flt:
            if est <= self._lex_join_max:
                fjoin = sql.SQL("JOIN {live} c ON c.key = p.key AND {where}").format(live=live, where=where)
            else:
                with_allowed = sql.SQL(
                    "WITH allowed AS MATERIALIZED (SELECT c.key FROM {live} c WHERE {where})"
                ).format(live=live, where=where)
                fjoin = sql.SQL("JOIN allowed a ON a.key = p.key")

        q = sql.SQL(
            """{with_allowed}
            SELECT p.key, {score} AS score
            FROM {p} p JOIN {w} ON w.token = p.token {fjoin}
            WHERE p.token = ANY(%(toks)s::text[])
            GROUP BY p.key ORDER BY score DESC, p.key LIMIT %(n)s"""
        ).format(with_allowed=with_allowed, score=score, p=p_t, w=w, fjoin=fjoin)
        return conn.execute(q, base).fetchall()

    def search_dense(
        self, name: str, vector: FloatArray, top_n: int, flt: Filter
    ) -> tuple[KeyArray, FloatArray]:
        n = self._top_n(top_n)
        fsql = _FilterSQL()
        where = fsql.build(flt if flt is not None else Filter())

        def go(conn: Conn) -> tuple[KeyArray, FloatArray]:
            coll = self._coll(conn, name)
            q = _finite_vectors(vector, coll.dim, None, "search_dense")
            if n == 0:
                return self._empty()
            params: dict[str, Any] = {"q": q, "n": n, **fsql.params}
            ch = coll.table(self.schema, "chunks")
            emb = sql.SQL("c.embedding")
            approx = sql.SQL(
                """SELECT key, 1.0 - dist AS score FROM (
                    SELECT c.key, c.embedding <=> %(q)s AS dist
                    FROM {ch} c WHERE c.removed_version IS NULL AND {where}
                    ORDER BY {ann} <=> {qa} LIMIT %(n)s) s
                ORDER BY dist, key"""
            ).format(ch=ch, where=where, ann=coll.ann_expr(emb), qa=coll.ann_query(sql.Placeholder("q")))
            if flt:  # evaluate the filter on the narrow live table, then score only what passed
                exact = sql.SQL(
                    """SELECT ch.key, 1.0 - (ch.embedding <=> %(q)s) AS score
                    FROM {ch} ch WHERE ch.removed_version IS NULL
                      AND ch.key IN (SELECT c.key FROM {live} c WHERE {where})
                    ORDER BY ch.embedding <=> %(q)s, ch.key LIMIT %(n)s"""
                ).format(ch=ch, live=coll.table(self.schema, "live"), where=where)
            else:
                exact = sql.SQL(
                    """SELECT c.key, 1.0 - (c.embedding <=> %(q)s) AS score
                    FROM {ch} c WHERE c.removed_version IS NULL
                    ORDER BY c.embedding <=> %(q)s, c.key LIMIT %(n)s"""
                ).format(ch=ch)
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")  # one snapshot for all steps
                if coll.dim <= HALFVEC_MAX_DIM:
                    conn.execute(
                        "SELECT set_config('hnsw.ef_search', %s, true), "
                        "set_config('hnsw.iterative_scan', %s, true), "
                        "set_config('hnsw.max_scan_tuples', %s, true)",
                        (str(min(1000, max(self._ef_search, n))), self._iterative, str(self._max_scan_tuples)),
                    )
                    rows = conn.execute(approx, params).fetchall()
                    if len(rows) >= n:
                        return self._arrays(rows)
                    # fewer than n: fine if that is every row passing the filter (cheap to check,
                    # at most n rows are counted)
                    allowed = conn.execute(
                        sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {live} c WHERE {where} LIMIT %(n)s) x").format(
                            live=coll.table(self.schema, "live"), where=where
                        ),
                        params,
                    ).fetchone()
                    if allowed is not None and len(rows) >= int(allowed[0]):
                        return self._arrays(rows)
                    # the ANN index ran dry (very selective filter or many history rows):
                    # an exact scan is cheap precisely when few rows match
                    conn.execute("SELECT set_config('enable_indexscan', 'off', true)")
                return self._arrays(conn.execute(exact, params).fetchall())

        result: tuple[KeyArray, FloatArray] = self._run(go)
        return result

    # -- fetch ------------------------------------------------------------------

    @staticmethod
    def _keys(keys: Sequence[int]) -> list[int]:
        try:
            out = [int(k) for k in keys]
        except (TypeError, ValueError) as e:
            raise InvalidInput("키는 정수여야 합니다.", "Keys must be integers.") from e
        return out

    def _missing(self, name: str, missing: Sequence[int]) -> NotFound:
        return NotFound(
            f"컬렉션 '{name}'에 없는 키입니다: {list(missing)[:10]} (다시 검색하세요).",
            f"Unknown keys for collection '{name}': {list(missing)[:10]} (search again).",
            details={"missing": list(missing)[:100]},
        )

    def fetch(self, name: str, keys: Sequence[int]) -> list[Chunk]:
        ks = self._keys(keys)

        def go(conn: Conn) -> list[Chunk]:
            coll = self._coll(conn, name)
            if not ks:
                return []
            rows = conn.execute(
                sql.SQL(
                    "SELECT key, chunk_id, doc_id, text, seq, char_start, char_end, title, source_uri, "
                    "locator, metadata FROM {} WHERE key = ANY(%s)"
                ).format(coll.table(self.schema, "chunks")),
                (ks,),
            ).fetchall()
            by_key = {
                int(r[0]): Chunk(
                    chunk_id=r[1], doc_id=r[2], text=r[3], seq=int(r[4]), start=int(r[5]), end=int(r[6]),
                    title=r[7], source_uri=r[8], locator=dict(r[9]), metadata=dict(r[10]),
                )
                for r in rows
            }
            missing = [k for k in ks if k not in by_key]
            if missing:
                raise self._missing(name, missing)
            return [by_key[k] for k in ks]

        result: list[Chunk] = self._run(go)
        return result

    def vectors(self, name: str, keys: Sequence[int]) -> FloatArray:
        ks = self._keys(keys)

        def go(conn: Conn) -> FloatArray:
            coll = self._coll(conn, name)
            if not ks:
                return np.zeros((0, coll.dim), dtype=np.float32)
            with conn.cursor(binary=True) as cur:
                rows = cur.execute(
                    sql.SQL("SELECT key, embedding FROM {} WHERE key = ANY(%s)").format(
                        coll.table(self.schema, "chunks")
                    ),
                    (ks,),
                ).fetchall()
            by_key: dict[int, Any] = {int(r[0]): r[1] for r in rows}
            missing = [k for k in ks if k not in by_key]
            if missing:
                raise self._missing(name, missing)
            out = np.empty((len(ks), coll.dim), dtype=np.float32)
            for i, k in enumerate(ks):
                v = by_key[k]
                out[i] = v.to_numpy() if isinstance(v, Vector) else np.asarray(v, dtype=np.float32)
            return out

        result: FloatArray = self._run(go)
        return result

    # -- maintenance ----------------------------------------------------------------

    def optimize(self, name: str) -> None:
        """VACUUM (ANALYZE) the collection's tables now instead of waiting for autovacuum.

        Sets the visibility map, so BM25 reads its postings with index-only scans (2-3x faster
        right after a large load). Runs automatically after commits that change >= 20% of a
        collection; safe to run any time (readers and writers are not blocked).
        """

        def go(conn: Conn) -> None:
            coll = self._coll(conn, name)
            kinds = ("chunks", "postings", "live", "df", "docs")
            tables = sql.SQL(", ").join(coll.table(self.schema, k) for k in kinds)
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(tables))

        self._run(go)

    # -- lifecycle ----------------------------------------------------------------

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> PgVectorStore:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PgVectorStore(url={self.url!r}, schema={self.schema!r})"


class _Retry(Exception):
    pass


# --------------------------------------------------------------------------- batches


class PgBatch:
    """One transaction on its own connection, holding the collection row lock until it ends.

    Leaving a ``with`` block normally commits (unless already committed/aborted); leaving it with
    an exception aborts. Readers see nothing of the batch until :meth:`commit` returns.
    Operations are validated at once and written in groups (a few set-based statements and
    COPYs per ``FLUSH_DOCS`` documents), so database errors may surface at a later call.
    """

    _CHUNK_COLUMNS = (
        "doc_id", "chunk_id", "seq", "text", "title", "source_uri", "locator", "metadata",
        "char_start", "char_end", "tokens", "ntokens", "embedding", "added_version",
    )
    _CHUNK_TYPES = (
        "text", "text", "int4", "text", "text", "text", "jsonb", "jsonb",
        "int4", "int4", "text[]", "int4", "vector", "int4",
    )

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
        # latest pending operation per document: (fingerprint, rows) to upsert, None to delete
        self._pending: dict[str, tuple[str, list[tuple[Any, ...]]] | None] = {}
        self._pending_rows = 0

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
        """Write the pending operations: a handful of set-based statements and two COPYs.

        For each pending document, rows this batch wrote earlier are deleted and the live older
        rows are stamped ``removed_version = V``; then the new rows are copied in.
        """
        if not self._pending:
            return
        pending, self._pending, self._pending_rows = self._pending, {}, 0
        ids = list(pending)
        p = {"ids": ids, "v": self.version}
        with self._guard() as conn:
            changed = 0
            for kind in ("chunks", "docs"):
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
            if upserts:
                with conn.cursor() as cur, cur.copy(
                    sql.SQL("COPY {} (doc_id, fingerprint, chunks, added_version) FROM STDIN (FORMAT BINARY)").format(
                        self._t("docs")
                    )
                ) as copy:
                    copy.set_types(["text", "text", "int4", "int4"])
                    for doc_id, (fingerprint, rows) in upserts:
                        copy.write_row((doc_id, fingerprint, len(rows), self.version))
                cols = sql.SQL(", ").join(sql.Identifier(c) for c in self._CHUNK_COLUMNS)
                with conn.cursor() as cur, cur.copy(
                    sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(self._t("chunks"), cols)
                ) as copy:
                    copy.set_types(list(self._CHUNK_TYPES))
                    for _doc_id, (_fp, rows) in upserts:
                        for r in rows:
                            copy.write_row(r)
            if upserts or changed:
                self._dirty = True

    def _queue(self, doc_id: str, op: tuple[str, list[tuple[Any, ...]]] | None) -> None:
        self._pending.pop(doc_id, None)  # keep the order of the latest operations
        self._pending[doc_id] = op
        self._pending_rows += len(op[1]) if op is not None else 0
        if len(self._pending) >= self.FLUSH_DOCS or self._pending_rows >= self.FLUSH_ROWS:
            self._flush()

    def upsert_document(
        self,
        doc_id: str,
        fingerprint: str,
        chunks: Sequence[Chunk],
        vectors: FloatArray,
        tokens: Sequence[Sequence[str]],
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
        self._queue(doc_id, (fingerprint, rows))

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
            crow = conn.execute(
                sql.SQL(
                    "UPDATE {c} SET current_version = %(v)s, last_version = %(v)s, "
                    "live_docs = live_docs + %(dd)s, live_chunks = live_chunks + %(dc)s, "
                    "total_tokens = total_tokens + %(dt)s WHERE id = %(id)s "
                    "RETURNING live_docs, live_chunks, total_tokens"
                ).format(c=store._t("collections")),
                {
                    "v": v, "id": self._coll.id, "dd": added_any - removed_any,
                    "dc": added_chunks - removed_chunks, "dt": added_tokens - removed_tokens,
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
            store._ensure_ann_index(conn, self._coll, int(crow[1]))
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


__all__ = ["PgBatch", "PgVectorStore"]
