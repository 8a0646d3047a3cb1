"""API keys, rate limits, request size limits and CORS.

* Keys: ``X-API-Key: <key>`` or ``Authorization: Bearer <key>`` (WebSocket also ``?api_key=``).
  ``settings.api_keys`` guard ``/query`` and ``/api/v1``; none configured = open (local use, a
  warning at start-up). ``settings.admin_api_key`` alone opens ``/api/v1/admin`` (refused while unset).
* Rate limit: ``rate_limit_per_min`` per API key, else per client IP — a token bucket in the
  process, or the same bucket kept in Redis (GCRA) and shared by all workers (``rate_limit_url``, else
  ``sessions_url`` when it is Redis). Redis trouble falls back to the in-process bucket: a broken
  limiter must not take the service down. Refusals are 429 with ``Retry-After``.
* Size: bodies above ``max_request_bytes`` (``max_upload_bytes`` for the ingest upload) are 413,
  by ``Content-Length`` up front or by counting a streamed body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from jisik.api.errors import Forbidden, RateLimited, Unauthorized, jisik_error_body
from jisik.core.errors import PayloadTooLarge
from jisik.core.logging import get_logger
from jisik.core.settings import Settings

log = get_logger("jisik.api.security")
_REDIS_RETRY_S = 5.0
# GCRA (the token bucket of TokenBucket, kept as one "theoretical arrival time" per identity, on the
# Redis clock so every replica agrees): ARGV[1] = ms between requests, ARGV[2] = burst tolerance (ms).
# Returns 0 when allowed, else the ms to wait.
_GCRA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if now < tat - tolerance then return math.ceil(tat - tolerance - now) end
local new_tat = tat + interval
redis.call('SET', KEYS[1], tostring(new_tat), 'PX', math.ceil(new_tat - now) + 1000)
return 0
"""


def presented_key(headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> str | None:
    key = headers.get("x-api-key")
    if not key:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
    if not key and query is not None:
        key = query.get("api_key")
    return key or None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


class Auth:
    def __init__(self, settings: Settings) -> None:
        self.keys = [k.get_secret_value() for k in settings.api_keys if k.get_secret_value()]
        admin = settings.admin_api_key.get_secret_value() if settings.admin_api_key else ""
        self.admin_key = admin or None

    @property
    def open(self) -> bool:
        return not self.keys

    def user(self, key: str | None) -> str:
        """The caller's identity for rate limits (a key digest, or "" when no key is needed)."""
        if key and (any(_same(key, k) for k in self.keys) or (self.admin_key and _same(key, self.admin_key))):
            return "key:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
        if self.open:
            return ""
        if key:
            raise Unauthorized("API 키가 올바르지 않습니다.", "Invalid API key.",
                               hint="X-API-Key 헤더 또는 Authorization: Bearer 로 보내세요.")
        raise Unauthorized("API 키가 필요합니다.", "An API key is required.",
                           hint="X-API-Key: <키> 헤더를 보내세요. (Send the X-API-Key header.)")

    def admin(self, key: str | None) -> str:
        if self.admin_key is None:
            raise Forbidden("관리자 API가 설정되지 않았습니다.", "The admin API is disabled: no admin key is set.",
                            hint="JISIK_ADMIN_API_KEY 를 설정하세요.")
        if not key:
            raise Unauthorized("관리자 API 키가 필요합니다.", "The admin API key is required.",
                               hint="X-API-Key: <관리자 키>")
        if not _same(key, self.admin_key):
            raise Forbidden("관리자 API 키가 아닙니다.", "This key does not open the admin API.")
        return "admin"


class TokenBucket:
    """``per_min`` requests per minute per identity, bursts up to ``per_min``; thread-safe."""

    def __init__(self, per_min: int, *, max_entries: int = 100_000) -> None:
        self.capacity = float(per_min)
        self.rate = per_min / 60.0
        self.max_entries = max_entries
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, ident: str) -> float:
        """0.0 when allowed, else the seconds until a request would be."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(ident, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[ident] = (tokens - 1.0, now)
                if len(self._buckets) > self.max_entries:
                    self._prune(now)
                return 0.0
            self._buckets[ident] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = [k for k, (t, last) in self._buckets.items() if t + (now - last) * self.rate >= self.capacity]
        for k in full:
            del self._buckets[k]


class RateLimiter:
    def __init__(self, per_min: int, redis_url: str | None = None) -> None:
        self.per_min = per_min
        self.local = TokenBucket(per_min) if per_min > 0 else None
        self.redis_url = redis_url
        self._redis: Any = None
        self._script: Any = None
        self._redis_down_until = 0.0
        self._prefix = "jisik:"

    async def check(self, ident: str) -> None:
        """Raise :class:`RateLimited` (429) when ``ident`` is over its limit."""
        if self.local is None:
            return
        wait = await self._redis_take(ident) if self.redis_url else None
        if wait is None:
            wait = self.local.take(ident)
        if wait > 0:
            retry = max(1, math.ceil(wait))
            raise RateLimited(f"요청이 너무 많습니다. {retry}초 후 다시 시도하세요.",
                              f"Too many requests: retry in {retry} s.",
                              details={"limit_per_min": self.per_min, "retry_after_s": retry})

    async def _redis_take(self, ident: str) -> float | None:
        if time.monotonic() < self._redis_down_until:
            return None
        try:
            if self._redis is None:
                import redis.asyncio as aredis

                from jisik.stores.conversations.redis_common import split_prefix

                plain, self._prefix = split_prefix(self.redis_url or "")
                self._redis = aredis.Redis.from_url(plain, socket_connect_timeout=0.5, socket_timeout=0.5)
                self._script = self._redis.register_script(_GCRA)
            interval_ms = 60_000 / self.per_min
            wait_ms = await self._script(keys=[f"{self._prefix}ratelimit:{ident}"],
                                         args=[interval_ms, interval_ms * (self.per_min - 1)])
        except Exception as exc:  # any Redis trouble: limit in-process for a while
            self._redis_down_until = time.monotonic() + _REDIS_RETRY_S
            log.warning("rate limiter: Redis unavailable, limiting in-process", extra={"error": type(exc).__name__})
            return None
        return float(wait_ms) / 1000

    async def aclose(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()


def rate_limit_url(settings: Settings) -> str | None:
    if settings.rate_limit_url:
        return settings.rate_limit_url
    url = settings.resolved_sessions_url()
    return url if url.split(":", 1)[0] in ("redis", "rediss") else None


class BodyLimitMiddleware:
    """413 for bodies over the limit (``Content-Length`` checked first, streamed bodies counted)."""

    def __init__(self, app: ASGIApp, max_bytes: int, *, upload_paths: tuple[str, ...] = (),
                 max_upload_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_paths = upload_paths
        self.max_upload_bytes = max_upload_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_upload_bytes if scope.get("path", "") in self.upload_paths else self.max_bytes
        length = Headers(scope=scope).get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await _send_json(send, 413, jisik_error_body(_too_large(limit)))
            return
        seen = 0
        responded = False

        async def counted() -> Message:
            nonlocal seen, responded
            message = await receive()
            if message["type"] == "http.request" and not responded:
                seen += len(message.get("body", b""))
                if seen > limit:  # answer 413 ourselves; the app sees a client that went away
                    responded = True
                    await _send_json(send, 413, jisik_error_body(_too_large(limit)))
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not responded:
                await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not responded:
                raise


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"요청 본문이 너무 큽니다 (최대 {limit:,}바이트).",
                           f"Request body too large (max {limit:,} bytes).")


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
