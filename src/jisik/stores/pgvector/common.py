"""Shared pieces of the PostgreSQL store: optional dependencies, limits, value checks and
table naming (:class:`_Coll`)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from jisik.core.errors import InvalidInput, Unavailable
from jisik.core.logging import get_logger

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

logger = get_logger("jisik.stores.pgvector")  # the name it had as a single module
LAYOUT_VERSION = "2"  # 2: window vectors (c<id>_windows, collections.live_windows); 1 is migrated
MAX_DIM = 16000  # pgvector's limit for the vector type
HNSW_MAX_DIM = 2000  # vector HNSW limit; up to 4000 we index a halfvec expression instead
HALFVEC_MAX_DIM = 4000
MAX_TOKEN_CHARS = 200  # btree entries must stay well under 2.7 kB
# same rule as the embedded store, so a collection can move between the two
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


class _Retry(Exception):
    pass


__all__ = [
    "HALFVEC_MAX_DIM", "HNSW_MAX_DIM", "LAYOUT_VERSION", "MAX_DIM", "MAX_TOKEN_CHARS", "_COLUMN_FIELDS",
    "_SCHEMA_RE", "Conn", "Jsonb", "TypeInfo", "Vector", "_Coll", "_Retry",
    "_clean_tokens", "_finite_vectors", "_has_nul", "_identity", "_iso", "_json_text", "_jsonb", "_mask",
    "_normalise_dsn", "_unavailable", "logger", "pg_errors", "psycopg", "register_vector_info", "sql",
]
