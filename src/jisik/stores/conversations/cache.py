"""In-process answer cache: LRU + TTL, optionally backed by a SQLite file, so cached answers
survive a restart and are shared by the processes of one machine (Redis: :mod:`.redis_cache`).

Keys come from :func:`~.records.answer_cache_key` (normalised question + collection + index
version + app + provider/model), so a new index version never sees old answers; values are
JSON objects. Only ids and sizes are logged, never a question or an answer.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from jisik.core.errors import InvalidInput, Unavailable
from jisik.core.logging import get_logger

from .records import check_id, dumps

log = get_logger(__name__)

_PURGE_EVERY = 1000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS answer_cache (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID
"""


def check_value(value: dict[str, Any]) -> str:
    if not isinstance(value, dict):
        raise InvalidInput("캐시 값은 JSON 객체여야 합니다.", "A cached value must be a JSON object (dict)")
    return dumps(value, "캐시 값(cache value)")


class MemoryAnswerCache:
    """LRU of at most ``max_entries`` values, each expiring ``ttl_s`` after it was set.

    With ``path``, entries are also written to that SQLite file (WAL) and a miss in memory is
    looked up there; expired rows are deleted as they are met, every 1,000 writes and by
    :meth:`purge_expired`. A :meth:`delete` does not reach other processes' memory (their copy
    lives until its TTL); answers never go stale on a new index, whose version is in the key.
    """

    def __init__(self, *, ttl_s: float = 3600, max_entries: int = 10_000, path: Path | None = None) -> None:
        if max_entries < 1:
            raise InvalidInput("max_entries는 1 이상이어야 합니다.", "max_entries must be >= 1")
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._writes = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._db = sqlite3.connect(path, timeout=30, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(_SCHEMA)
            except sqlite3.Error as e:
                raise Unavailable("답변 캐시 파일을 열 수 없습니다.", f"Cannot open the answer cache file: {e}") from e

    def _remember(self, key: str, expires: float, text: str) -> None:
        self._items[key] = (expires, text)
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)

    def get(self, key: str) -> dict[str, Any] | None:
        check_id(key, "캐시 키(cache key)")
        now = time.time()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                if hit[0] > now:
                    self._items.move_to_end(key)
                    return dict(json.loads(hit[1]))
                del self._items[key]
            if self._db is None:
                return None
            row = self._exec("SELECT value, expires_at FROM answer_cache WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            if row[1] <= now:
                self._exec("DELETE FROM answer_cache WHERE key = ? AND expires_at <= ?", (key, now))
                return None
            self._remember(key, float(row[1]), row[0])
            return dict(json.loads(row[0]))

    def _exec(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        assert self._db is not None
        try:
            return self._db.execute(sql, params)
        except sqlite3.Error as e:
            raise Unavailable("답변 캐시 파일을 사용할 수 없습니다.", f"The answer cache file failed: {e}") from e

    def set(self, key: str, value: dict[str, Any], ttl_s: float | None = None) -> None:
        check_id(key, "캐시 키(cache key)")
        text = check_value(value)
        ttl = self.ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:
            return
        expires = time.time() + ttl
        with self._lock:
            self._remember(key, expires, text)
            if self._db is not None:
                self._exec("INSERT OR REPLACE INTO answer_cache (key, value, expires_at) VALUES (?, ?, ?)",
                           (key, text, expires))
                self._writes += 1
                if self._writes % _PURGE_EVERY == 0:  # rows of keys never read again go too
                    self._exec("DELETE FROM answer_cache WHERE expires_at <= ?", (time.time(),))

    def delete(self, key: str) -> None:
        check_id(key, "캐시 키(cache key)")
        with self._lock:
            self._items.pop(key, None)
            if self._db is not None:
                self._exec("DELETE FROM answer_cache WHERE key = ?", (key,))

    def purge_expired(self) -> int:
        now = time.time()
        with self._lock:
            for k in [k for k, (exp, _) in self._items.items() if exp <= now]:
                del self._items[k]
            if self._db is None:
                return 0
            return int(self._exec("DELETE FROM answer_cache WHERE expires_at <= ?", (now,)).rowcount)

    def close(self) -> None:
        with self._lock:
            self._items.clear()
            if self._db is not None:
                self._db.close()
                self._db = None
