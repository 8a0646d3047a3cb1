"""S3 event notifications through a Redis stream (consumer groups).

Each stream entry has one field ``message``: the notification JSON. Consumers of one group
share the work (``XREADGROUP``); an entry is ``XACK``\\ ed only after the handler returned for
every ObjectCreated record in it. An entry whose consumer died stays pending; after
``claim_idle_ms`` any consumer of the group takes it over (``XAUTOCLAIM``) and handles it, so
nothing is lost. Entries that are not S3 notifications, or that were delivered more than
``max_deliveries`` times (a message that keeps killing consumers), are copied to
``{stream}:dead`` with the reason and acked.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import redis

from jisik.core.errors import InvalidInput, Unavailable
from jisik.core.logging import get_logger
from jisik.pipeline.events.s3format import ObjectEvent, parse_s3_event

log = get_logger(__name__)
Handler = Callable[[ObjectEvent], None]
DEFAULT_STREAM = "jisik:objects:created"
DEFAULT_GROUP = "jisik-transfer"
FIELD = b"message"


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


class RedisStreamEventPublisher:
    def __init__(self, url: str, stream: str = DEFAULT_STREAM, *, maxlen: int | None = None) -> None:
        self.stream = stream
        self.maxlen = maxlen  # approximate trimming; None keeps every entry until deleted
        self._redis = _client(url)

    def publish(self, message: Mapping[str, Any] | bytes) -> None:
        body = message if isinstance(message, bytes) else json.dumps(message, ensure_ascii=False).encode()
        try:
            self._redis.xadd(self.stream, {FIELD: body}, maxlen=self.maxlen, approximate=True)
        except redis.ConnectionError as e:
            raise Unavailable("Redis에 연결할 수 없습니다.", f"Redis unreachable: {e}") from e

    def close(self) -> None:
        self._redis.close()


class RedisStreamEventConsumer:
    def __init__(
        self, url: str, stream: str = DEFAULT_STREAM, group: str = DEFAULT_GROUP, consumer: str | None = None, *,
        claim_idle_ms: int = 60_000, block_ms: int = 1000, max_deliveries: int = 5,
    ) -> None:
        self.stream = stream
        self.group = group
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.dead_stream = f"{stream}:dead"
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms
        self.max_deliveries = max_deliveries
        self._redis: Any = _client(url)  # untyped: redis-py's response unions do not narrow
        self._group_ready = False

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._group_ready = True

    def _dead(self, entry_id: bytes, fields: Mapping[bytes, bytes], reason: str) -> None:
        body = fields.get(FIELD, b"")
        pipe = self._redis.pipeline(transaction=True)
        pipe.xadd(self.dead_stream, {FIELD: body, b"reason": reason.encode(), b"original_id": entry_id})
        pipe.xack(self.stream, self.group, entry_id)
        pipe.execute()
        log.warning("event message dead-lettered", extra={"stream": self.stream, "reason": reason})

    def _deliveries(self, entry_id: bytes) -> int:
        info = self._redis.xpending_range(self.stream, self.group, min=entry_id, max=entry_id, count=1)
        return int(info[0]["times_delivered"]) if info else 0

    def _handle(self, entry_id: bytes, fields: Mapping[bytes, bytes], handler: Handler, claimed: bool) -> None:
        if claimed and self._deliveries(entry_id) > self.max_deliveries:
            self._dead(entry_id, fields, f"delivered more than {self.max_deliveries} times")
            return
        try:
            events = parse_s3_event(fields.get(FIELD, b""))
        except InvalidInput as e:
            self._dead(entry_id, fields, e.message_en)
            return
        for event in events:
            handler(event)  # an exception leaves the entry pending: it is claimed again later
        self._redis.xack(self.stream, self.group, entry_id)

    def _next(self, count: int) -> tuple[list[tuple[bytes, Any]], bool]:
        # 1. our own pending entries (we restarted under the same name), 2. stale ones of others, 3. new ones
        own = self._redis.xreadgroup(self.group, self.consumer, {self.stream: "0"}, count=count)
        entries = [e for e in (own[0][1] if own else []) if e[1]]
        if entries:
            return entries, True
        claimed = self._redis.xautoclaim(self.stream, self.group, self.consumer, self.claim_idle_ms,
                                         start_id="0-0", count=count)
        entries = [e for e in claimed[1] if e and e[1]]
        if entries:
            return entries, True
        new = self._redis.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count,
                                     block=self.block_ms)
        return (new[0][1] if new else []), False

    def consume(self, handler: Handler, *, max_messages: int | None = None, idle_timeout_s: float | None = None,
                stop: threading.Event | None = None) -> int:
        """Handle entries until ``max_messages`` were acked, none came for ``idle_timeout_s`` or ``stop``
        is set; returns the number of entries acked (dead-lettered ones included)."""
        done = 0
        last = time.monotonic()
        try:
            self._ensure_group()
            while max_messages is None or done < max_messages:
                if stop is not None and stop.is_set():
                    break
                # never take more than we will handle: what we take is pending under our name
                entries, claimed = self._next(10 if max_messages is None else min(10, max_messages - done))
                if not entries:
                    if idle_timeout_s is not None and time.monotonic() - last >= idle_timeout_s:
                        break
                    continue
                last = time.monotonic()
                for entry_id, fields in entries:
                    self._handle(entry_id, fields, handler, claimed)
                    done += 1
        except redis.ConnectionError as e:
            raise Unavailable("Redis에 연결할 수 없습니다.", f"Redis unreachable: {e}") from e
        return done

    def dead_letters(self, count: int = 100) -> list[dict[str, bytes]]:
        return [dict(fields) for _id, fields in self._redis.xrange(self.dead_stream, count=count)]

    def close(self) -> None:
        self._redis.close()
