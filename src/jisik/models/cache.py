"""Persistent embedding cache (SQLite) and an embedder wrapper that uses it.

Rows are keyed by ``(model_id, kind, content_hash(text))`` and hold the exact float32 bytes
the model produced, so a cache hit is bit-identical to recomputing. Texts themselves are not
stored. The database runs in WAL mode with a busy timeout, so several processes (API
workers, an ingestion job) can share one file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from jisik.core.errors import InvalidInput
from jisik.core.hashing import content_hash
from jisik.core.logging import get_logger
from jisik.core.settings import Settings, get_settings

from .base import Embedder, Kind, check_texts, empty
from .embedders import create_embedder

log = get_logger("jisik.models.cache")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS embeddings (
    model_id TEXT NOT NULL,
    kind     TEXT NOT NULL CHECK (kind IN ('q', 'p')),
    key      TEXT NOT NULL,
    dim      INTEGER NOT NULL,
    vec      BLOB NOT NULL,
    PRIMARY KEY (model_id, kind, key)
) WITHOUT ROWID
"""
_MAX_IN = 500  # keys per "IN (...)" query; well under SQLite's host-parameter limit


def text_key(text: str) -> str:
    """The cache key of a text (a stable content hash; the text is not stored)."""
    return content_hash(text)


class EmbeddingCache:
    """float32 vectors in SQLite, looked up and stored in batches. Thread-safe."""

    def __init__(self, path: str | Path, *, timeout_s: float = 30.0) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            str(path), timeout=timeout_s, check_same_thread=False, isolation_level=None
        )
        self._conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute(_SCHEMA)

    # -- batched access ----------------------------------------------------------------------
    def get_many(self, model_id: str, kind: Kind, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """Vectors found for ``keys`` (missing keys are simply absent from the result)."""
        _check_kind(kind)
        found: dict[str, np.ndarray] = {}
        unique = list(dict.fromkeys(keys))
        with self._lock:
            for start in range(0, len(unique), _MAX_IN):
                chunk = unique[start:start + _MAX_IN]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, dim, vec FROM embeddings WHERE model_id = ? AND kind = ? AND key IN ({marks})",
                    (model_id, kind, *chunk),
                ).fetchall()
                for key, dim, blob in rows:
                    if len(blob) != 4 * dim:  # torn or foreign row: treat as a miss
                        log.warning("ignoring malformed cache row", extra={"model_id": model_id})
                        continue
                    found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def put_many(self, model_id: str, kind: Kind, items: Iterable[tuple[str, np.ndarray]]) -> int:
        """Store ``(key, vector)`` pairs in one transaction; returns how many were written."""
        _check_kind(kind)
        rows = []
        for key, vec in items:
            arr = np.ascontiguousarray(vec, dtype=np.float32).reshape(-1)
            rows.append((model_id, kind, key, int(arr.shape[0]), arr.tobytes()))
        if not rows:
            return 0
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO embeddings (model_id, kind, key, dim, vec) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        return len(rows)

    def count(self, model_id: str | None = None) -> int:
        with self._lock:
            if model_id is None:
                row = self._conn.execute("SELECT COUNT(*) FROM embeddings").fetchone()
            else:
                row = self._conn.execute(
                    "SELECT COUNT(*) FROM embeddings WHERE model_id = ?", (model_id,)
                ).fetchone()
        return int(row[0])

    def clear(self, model_id: str | None = None) -> None:
        with self._lock:
            if model_id is None:
                self._conn.execute("DELETE FROM embeddings")
            else:
                self._conn.execute("DELETE FROM embeddings WHERE model_id = ?", (model_id,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.path)!r})"


class CachedEmbedder:
    """Wraps an embedder: cached texts are read back, only the misses are embedded.

    Misses of one call go to the inner embedder in a single call (duplicates embedded once),
    then are stored. Queries additionally go through an in-process LRU of
    ``query_lru_size`` entries (0 disables it), so a repeated query touches neither SQLite
    nor the model. Window texts of long chunks (multi-vector passages) are passages like any
    other, so they are cached by content hash the same way. ``token_count`` is the inner
    embedder's, when it has one (absent otherwise, like on the inner embedder).
    """

    token_count: Callable[..., int]

    def __init__(self, inner: Embedder, cache: EmbeddingCache, *, query_lru_size: int = 2048) -> None:
        if query_lru_size < 0:
            raise InvalidInput("query_lru_size는 0 이상이어야 합니다.", "query_lru_size must be >= 0.")
        self.inner = inner
        self.cache = cache
        self.query_lru_size = query_lru_size
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lru_lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        count = getattr(inner, "token_count", None)
        if callable(count):
            self.token_count = count

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    @property
    def dim(self) -> int:
        return self.inner.dim

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(check_texts(texts), "q")

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(check_texts(texts), "p")

    def _embed(self, texts: list[str], kind: Kind) -> np.ndarray:
        if not texts:
            return empty(self.dim)
        # query vectors may come from a different variant of the model (e.g. int8 queries)
        model_id = getattr(self.inner, "query_model_id", self.model_id) if kind == "q" else self.model_id
        keys = [text_key(t) for t in texts]
        found: dict[str, np.ndarray] = self._lru_get(keys) if kind == "q" else {}
        rest = [k for k in dict.fromkeys(keys) if k not in found]
        if rest:
            from_db = self.cache.get_many(model_id, kind, rest)
            found.update(from_db)
            if kind == "q":
                self._lru_put(from_db.items())
        miss_keys = [k for k in dict.fromkeys(keys) if k not in found]
        if miss_keys:
            text_of = dict(zip(keys, texts, strict=True))
            new = self._embed_inner([text_of[k] for k in miss_keys], kind)
            pairs = list(zip(miss_keys, new, strict=True))
            self.cache.put_many(model_id, kind, pairs)
            found.update(pairs)
            if kind == "q":
                self._lru_put(pairs)
        self.hits += len(keys) - len(miss_keys)
        self.misses += len(miss_keys)
        # Only compare with the model's dim when it is known without asking a server: a
        # remote embedder must keep answering from the cache while its server is down.
        dims = {v.shape[0] for v in found.values()}
        expected = {self.dim} if (miss_keys or getattr(self.inner, "dim_known", True)) else dims
        if len(dims) != 1 or dims != expected:
            raise InvalidInput(
                "임베딩 캐시의 차원이 모델과 맞지 않습니다.",
                f"Cached vector dims {sorted(dims)} do not match the model's for {model_id}.",
                hint="캐시 파일을 지우거나 모델 ID를 확인하세요. (Delete the cache file or check the model id.)",
            )
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def _embed_inner(self, texts: list[str], kind: Kind) -> np.ndarray:
        out = self.inner.embed_queries(texts) if kind == "q" else self.inner.embed_passages(texts)
        arr = np.asarray(out, dtype=np.float32)
        if arr.shape != (len(texts), self.dim):
            raise InvalidInput(
                "임베더가 잘못된 모양의 결과를 돌려주었습니다.",
                f"Embedder {self.model_id} returned shape {arr.shape}, expected ({len(texts)}, {self.dim}).",
            )
        return arr

    def _lru_get(self, keys: list[str]) -> dict[str, np.ndarray]:
        if not self.query_lru_size:
            return {}
        found: dict[str, np.ndarray] = {}
        with self._lru_lock:
            for k in keys:
                v = self._lru.get(k)
                if v is not None:
                    self._lru.move_to_end(k)
                    found[k] = v
        return found

    def _lru_put(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        if not self.query_lru_size:
            return
        with self._lru_lock:
            for k, v in items:
                frozen = np.array(v, dtype=np.float32)
                frozen.setflags(write=False)
                self._lru[k] = frozen
                self._lru.move_to_end(k)
            while len(self._lru) > self.query_lru_size:
                self._lru.popitem(last=False)

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.inner!r}, {self.cache!r})"


_caches: dict[Path, EmbeddingCache] = {}
_wrapped: dict[tuple[int, Path], CachedEmbedder] = {}
_open_lock = threading.Lock()


def open_embedder(settings: Settings | None = None) -> Embedder:
    """The configured embedder, wrapped in the persistent cache when ``embedding_cache`` is on.

    The cache lives at ``settings.cache_path() / "embeddings.sqlite3"``; one connection and
    one wrapper (with its query LRU) are shared per process.
    """
    settings = settings or get_settings()
    inner = create_embedder(settings.embedder, settings)
    if not settings.embedding_cache:
        return inner
    path = (settings.cache_path() / "embeddings.sqlite3").resolve()
    with _open_lock:
        cache = _caches.get(path)
        if cache is None:
            cache = _caches[path] = EmbeddingCache(path)
        wrapped = _wrapped.get((id(inner), path))
        if wrapped is None or wrapped.inner is not inner:
            wrapped = _wrapped[(id(inner), path)] = CachedEmbedder(inner, cache)
        return wrapped


def _check_kind(kind: str) -> None:
    if kind not in ("q", "p"):
        raise InvalidInput(f"잘못된 임베딩 종류: {kind!r}", f"Invalid embedding kind {kind!r}; use 'q' or 'p'.")
