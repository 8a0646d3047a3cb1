"""S3 event notifications through RabbitMQ (kombu, which ships with Celery).

Topology (declared by both sides, idempotently)::

    exchange  {exchange} (direct, durable) --{routing_key}--> queue {queue} (durable)
    queue {queue}  --rejected messages--> exchange {queue}.dlx (fanout) --> queue {queue}.dead

The consumer takes one message at a time (prefetch 1) and acks it only after the handler
returned for every ObjectCreated record in it: a consumer that dies before the ack leaves the
message unacked and RabbitMQ redelivers it. A message that is not an S3 notification is
rejected without requeue and lands in ``{queue}.dead``. A handler exception requeues the
message and propagates (the caller decides whether to keep consuming).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.message import Message

from jisik.core.errors import InvalidInput, Unavailable
from jisik.core.logging import get_logger
from jisik.pipeline.events.s3format import ObjectEvent, parse_s3_event

log = get_logger(__name__)
Handler = Callable[[ObjectEvent], None]
DEFAULT_EXCHANGE = "jisik.objects"
DEFAULT_QUEUE = "jisik.objects.created"
DEFAULT_ROUTING_KEY = "s3.object-created"


class _RabbitMq:
    def __init__(self, url: str, queue: str = DEFAULT_QUEUE, *, exchange: str = DEFAULT_EXCHANGE,
                 routing_key: str = DEFAULT_ROUTING_KEY, connect_timeout_s: float = 5.0) -> None:
        self.url = url
        self.queue_name = queue
        self.exchange = Exchange(exchange, type="direct", durable=True)
        self.routing_key = routing_key
        self.connect_timeout_s = connect_timeout_s
        dlx = Exchange(f"{queue}.dlx", type="fanout", durable=True)
        self.dead_queue = Queue(f"{queue}.dead", exchange=dlx, durable=True)
        self.queue = Queue(queue, exchange=self.exchange, routing_key=routing_key, durable=True,
                           queue_arguments={"x-dead-letter-exchange": dlx.name})

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        conn = Connection(self.url, connect_timeout=self.connect_timeout_s,
                          transport_options={"confirm_publish": True})
        try:
            try:
                conn.ensure_connection(max_retries=1, interval_start=0.2, interval_step=0.2,
                                     timeout=self.connect_timeout_s)
            except Exception as e:
                raise Unavailable("RabbitMQ에 연결할 수 없습니다.",
                                  f"RabbitMQ unreachable at {self.url.rsplit('@', 1)[-1]}: {e}") from e
            yield conn
        finally:
            conn.release()

    def _declare(self, channel: Any) -> None:
        self.dead_queue.bind(channel).declare()
        self.queue.bind(channel).declare()

    def delete_queues(self) -> None:
        """Remove the queues and exchanges (tests and teardown)."""
        with self._connection() as conn, conn.channel() as ch:
            for q in (self.queue, self.dead_queue):
                bound = q.bind(ch)
                bound.delete()
                if bound.exchange.name != self.exchange.name:
                    bound.exchange.delete()
            self.exchange.bind(ch).delete()


class RabbitMqEventPublisher(_RabbitMq):
    """Publish notification messages (persistent, with publisher confirms)."""

    def publish(self, message: Mapping[str, Any] | bytes) -> None:
        body = message if isinstance(message, bytes) else json.dumps(message, ensure_ascii=False).encode()
        with self._connection() as conn, conn.channel() as ch:
            self._declare(ch)
            Producer(ch, exchange=self.exchange).publish(
                body, routing_key=self.routing_key, content_type="application/json", content_encoding="utf-8",
                delivery_mode=2, retry=True, retry_policy={"max_retries": 2},
            )


class RabbitMqEventConsumer(_RabbitMq):
    def consume(self, handler: Handler, *, max_messages: int | None = None, idle_timeout_s: float | None = None,
                stop: threading.Event | None = None, poll_s: float = 0.5) -> int:
        """Handle messages until ``max_messages`` were acked, no message came for ``idle_timeout_s``,
        or ``stop`` is set; returns the number of messages acked (dead-lettered ones included)."""
        done = 0
        last = time.monotonic()

        def on_message(message: Message) -> None:
            nonlocal done, last
            last = time.monotonic()
            try:
                events = parse_s3_event(message.body)
            except InvalidInput as e:
                log.warning("event message dead-lettered", extra={"queue": self.queue_name, "error": e.message_en})
                message.reject(requeue=False)
                done += 1
                return
            try:
                for event in events:
                    handler(event)
            except BaseException:
                message.requeue()
                raise
            message.ack()
            done += 1

        with self._connection() as conn, conn.channel() as ch:
            self._declare(ch)
            with Consumer(ch, queues=[self.queue], on_message=on_message, no_ack=False, prefetch_count=1):
                while max_messages is None or done < max_messages:
                    if stop is not None and stop.is_set():
                        break
                    try:
                        conn.drain_events(timeout=poll_s)
                    except TimeoutError:
                        if idle_timeout_s is not None and time.monotonic() - last >= idle_timeout_s:
                            break
        return done

    def dead_letters(self, limit: int = 100) -> list[bytes]:
        """Bodies in ``{queue}.dead`` (consumed: this drains them)."""
        out: list[bytes] = []
        with self._connection() as conn, conn.channel() as ch:
            self._declare(ch)
            q = self.dead_queue.bind(ch)
            while len(out) < limit and (msg := q.get(no_ack=True)) is not None:
                body = msg.body
                out.append(body if isinstance(body, bytes) else str(body).encode())
        return out
