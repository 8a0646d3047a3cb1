"""Answer cache in Redis: ``PSETEX <prefix>answer:<key> ttl_ms <json>``; Redis evicts expired answers.

Keys come from :func:`~.records.answer_cache_key`; a Redis that is down raises :class:`Unavailable`.
"""

from __future__ import annotations

import json
from typing import Any

from .cache import check_value
from .records import check_id
from .redis_common import connect, redis_errors


class RedisAnswerCache:
    """``PSETEX <prefix>answer:<key> ttl_ms <json>``; Redis evicts expired answers itself."""

    def __init__(self, url: str, *, ttl_s: float = 3600) -> None:
        self.client, self.prefix = connect(url)
        self.ttl_s = ttl_s

    def _key(self, key: str) -> str:
        return f"{self.prefix}answer:{check_id(key, '캐시 키(cache key)')}"

    def get(self, key: str) -> dict[str, Any] | None:
        k = self._key(key)
        with redis_errors(self.client, "answer cache"):
            text = self.client.get(k)
        return dict(json.loads(text)) if text is not None else None

    def set(self, key: str, value: dict[str, Any], ttl_s: float | None = None) -> None:
        k = self._key(key)
        text = check_value(value)
        ttl = self.ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:
            return
        with redis_errors(self.client, "answer cache"):
            self.client.psetex(k, max(int(ttl * 1000), 1), text)

    def delete(self, key: str) -> None:
        k = self._key(key)
        with redis_errors(self.client, "answer cache"):
            self.client.delete(k)

    def close(self) -> None:
        self.client.close()
