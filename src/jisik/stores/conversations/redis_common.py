"""Redis connections of the conversation stores: URL options and error mapping.

``redis://host:6379/0?prefix=jisik:`` — ``prefix`` (default ``jisik:``) starts every key, so
several installations or test runs can share one server. Other query options are redis-py's.
A server that is down (or refuses a command) raises :class:`Unavailable` (HTTP 503); connecting
gives up after ``socket_connect_timeout`` (default 2 s), so a request never hangs on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from jisik.core.errors import ConfigError, Unavailable
from jisik.core.logging import get_logger

log = get_logger(__name__)
DEFAULT_PREFIX = "jisik:"


def split_prefix(url: str) -> tuple[str, str]:
    """(URL without ``prefix``, prefix)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(f"Redis URL이 아닙니다: {parts.scheme}://", f"Not a Redis URL: {parts.scheme}://")
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "prefix"), DEFAULT_PREFIX)
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


def connect(url: str) -> tuple[redis.Redis, str]:
    """A client (str responses) and the key prefix."""
    plain, prefix = split_prefix(url)
    # options in the URL (?socket_timeout=...) override these defaults
    kwargs: dict[str, Any] = {"decode_responses": True, "socket_connect_timeout": 2.0, "socket_timeout": 5.0}
    try:
        client = redis.Redis.from_url(plain, **kwargs)
    except ValueError as e:
        raise ConfigError(f"Redis URL이 올바르지 않습니다: {e}", f"Invalid Redis URL: {e}") from e
    return client, prefix


def host_of(client: redis.Redis) -> str:
    kw = client.connection_pool.connection_kwargs
    return f"{kw.get('host', kw.get('path', '?'))}:{kw.get('port', '')}".rstrip(":")


@contextmanager
def redis_errors(client: redis.Redis, what: str) -> Iterator[None]:
    """Map Redis failures to :class:`Unavailable` naming the store (``what``), never the data."""
    try:
        yield
    except redis.WatchError:
        raise
    except redis.RedisError as e:
        host = host_of(client)
        log.warning("redis unavailable", extra={"store": what, "host": host, "error": type(e).__name__})
        raise Unavailable(f"Redis({what})에 연결할 수 없습니다. Redis 서버 상태를 확인하세요.",
                          f"Redis ({what}) is unavailable at {host}: {type(e).__name__}; check the Redis server.",
                          details={"store": what}) from e
