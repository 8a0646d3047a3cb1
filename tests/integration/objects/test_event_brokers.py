"""Event consumers against the real RabbitMQ and Redis: acks, redelivery after a crash, dead letters."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from jisik.pipeline.events import ObjectEvent, s3_event_message
from jisik.pipeline.events.rabbitmq import RabbitMqEventConsumer, RabbitMqEventPublisher
from jisik.pipeline.events.redis_streams import RedisStreamEventConsumer, RedisStreamEventPublisher

pytestmark = pytest.mark.integration
AT = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)


def message(key: str) -> dict[str, object]:
    return s3_event_message("jisik-landing", key, 10, "etag", event_time=AT)


def crash_in_handler(*setup: str) -> None:
    """Run a consumer (built by the ``setup`` lines, named ``consumer``) in a child process whose
    handler SIGKILLs the process: no ack, no cleanup."""
    script = "\n".join([
        "import os, signal", *setup,
        "def handler(event):",
        "    print('handling', event.key, flush=True)",
        "    os.kill(os.getpid(), signal.SIGKILL)",
        "consumer.consume(handler, max_messages=1, idle_timeout_s=10)",
    ])
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "handling raw/crash.csv.meta.json" in proc.stdout


# RabbitMQ ---------------------------------------------------------------------------------------
@pytest.fixture
def rabbit(rabbitmq_url: str, unique: str) -> Iterator[tuple[RabbitMqEventPublisher, RabbitMqEventConsumer]]:
    kwargs = {"exchange": f"{unique}.x", "routing_key": "created"}
    pub = RabbitMqEventPublisher(rabbitmq_url, unique, **kwargs)
    con = RabbitMqEventConsumer(rabbitmq_url, unique, **kwargs)
    yield pub, con
    con.delete_queues()


def test_rabbitmq_round_trip_and_ack(rabbit: tuple[RabbitMqEventPublisher, RabbitMqEventConsumer]) -> None:
    pub, con = rabbit
    pub.publish(message("raw/a b.csv.meta.json"))
    pub.publish({"Records": [*message("raw/1.meta.json")["Records"], *message("raw/2.meta.json")["Records"]]})
    got: list[ObjectEvent] = []
    assert con.consume(got.append, max_messages=2, idle_timeout_s=5) == 2
    assert [e.key for e in got] == ["raw/a b.csv.meta.json", "raw/1.meta.json", "raw/2.meta.json"]
    assert con.consume(got.append, idle_timeout_s=0.3) == 0  # acked: nothing comes back


def test_rabbitmq_malformed_message_is_dead_lettered(rabbit: tuple[RabbitMqEventPublisher, RabbitMqEventConsumer]
                                                     ) -> None:
    pub, con = rabbit
    pub.publish(b"this is not an S3 event")
    pub.publish(message("raw/ok.meta.json"))
    got: list[ObjectEvent] = []
    assert con.consume(got.append, max_messages=2, idle_timeout_s=5) == 2
    assert [e.key for e in got] == ["raw/ok.meta.json"]
    assert con.dead_letters() == [b"this is not an S3 event"]


def test_rabbitmq_handler_error_requeues(rabbit: tuple[RabbitMqEventPublisher, RabbitMqEventConsumer]) -> None:
    pub, con = rabbit
    pub.publish(message("raw/retry.meta.json"))

    def fail(_: ObjectEvent) -> None:
        raise RuntimeError("inbox down")

    with pytest.raises(RuntimeError):
        con.consume(fail, max_messages=1, idle_timeout_s=5)
    got: list[ObjectEvent] = []
    assert con.consume(got.append, max_messages=1, idle_timeout_s=5) == 1
    assert [e.key for e in got] == ["raw/retry.meta.json"]


def test_rabbitmq_consumer_crash_before_ack_redelivers(
    rabbit: tuple[RabbitMqEventPublisher, RabbitMqEventConsumer], rabbitmq_url: str, unique: str
) -> None:
    pub, con = rabbit
    pub.publish(message("raw/crash.csv.meta.json"))
    crash_in_handler(
        "from jisik.pipeline.events.rabbitmq import RabbitMqEventConsumer",
        f"consumer = RabbitMqEventConsumer({rabbitmq_url!r}, {unique!r}, exchange={unique + '.x'!r}, "
        "routing_key='created')",
    )
    got: list[ObjectEvent] = []
    assert con.consume(got.append, max_messages=1, idle_timeout_s=10) == 1
    assert [e.key for e in got] == ["raw/crash.csv.meta.json"]


# Redis streams ----------------------------------------------------------------------------------
@pytest.fixture
def stream(redis_url: str, unique: str) -> Iterator[str]:
    yield unique
    r = redis.Redis.from_url(redis_url)
    r.delete(unique, f"{unique}:dead")
    r.close()


def test_redis_round_trip_and_ack(redis_url: str, stream: str) -> None:
    pub = RedisStreamEventPublisher(redis_url, stream)
    pub.publish(message("raw/x.meta.json"))
    pub.publish(message("raw/y.meta.json"))
    con = RedisStreamEventConsumer(redis_url, stream, "transfer", "c1", block_ms=100)
    got: list[ObjectEvent] = []
    assert con.consume(got.append, max_messages=2, idle_timeout_s=5) == 2
    assert [e.key for e in got] == ["raw/x.meta.json", "raw/y.meta.json"]
    assert con.consume(got.append, idle_timeout_s=0.2) == 0
    r = redis.Redis.from_url(redis_url)
    assert r.xpending(stream, "transfer")["pending"] == 0
    r.close()
    # a second group sees every entry too (fan-out to independent stages)
    other = RedisStreamEventConsumer(redis_url, stream, "audit", "a1", block_ms=100)
    assert other.consume(lambda e: None, idle_timeout_s=0.3) == 2
    pub.close()


def test_redis_malformed_entry_is_dead_lettered(redis_url: str, stream: str) -> None:
    pub = RedisStreamEventPublisher(redis_url, stream)
    pub.publish(b"{broken")
    con = RedisStreamEventConsumer(redis_url, stream, "transfer", "c1", block_ms=100)
    assert con.consume(lambda e: None, max_messages=1, idle_timeout_s=5) == 1
    (dead,) = con.dead_letters()
    assert dead[b"message"] == b"{broken" and b"not JSON" in dead[b"reason"]


def test_redis_consumer_crash_is_claimed_by_another(redis_url: str, stream: str) -> None:
    RedisStreamEventPublisher(redis_url, stream).publish(message("raw/crash.csv.meta.json"))
    crash_in_handler(
        "from jisik.pipeline.events.redis_streams import RedisStreamEventConsumer",
        f"consumer = RedisStreamEventConsumer({redis_url!r}, {stream!r}, 'transfer', 'doomed', block_ms=100)",
    )
    r = redis.Redis.from_url(redis_url)
    assert r.xpending(stream, "transfer")["pending"] == 1  # delivered to 'doomed', never acked
    survivor = RedisStreamEventConsumer(redis_url, stream, "transfer", "survivor", claim_idle_ms=50, block_ms=100)
    got: list[ObjectEvent] = []
    assert survivor.consume(got.append, max_messages=1, idle_timeout_s=5) == 1
    assert [e.key for e in got] == ["raw/crash.csv.meta.json"]
    assert r.xpending(stream, "transfer")["pending"] == 0
    r.close()


def test_redis_poison_message_goes_dead_after_max_deliveries(redis_url: str, stream: str) -> None:
    RedisStreamEventPublisher(redis_url, stream).publish(message("raw/poison.meta.json"))

    def fail(_: ObjectEvent) -> None:
        raise RuntimeError("boom")

    for name in ("c1", "c2"):
        con = RedisStreamEventConsumer(redis_url, stream, "transfer", name, claim_idle_ms=0, block_ms=100,
                                       max_deliveries=2)
        with pytest.raises(RuntimeError):
            con.consume(fail, max_messages=1, idle_timeout_s=5)
    last = RedisStreamEventConsumer(redis_url, stream, "transfer", "c3", claim_idle_ms=0, block_ms=100,
                                    max_deliveries=2)
    assert last.consume(fail, max_messages=1, idle_timeout_s=5) == 1  # dead-lettered, not handled
    (dead,) = last.dead_letters()
    assert json.loads(dead[b"message"])["Records"][0]["s3"]["object"]["key"] == "raw/poison.meta.json"
    assert b"more than 2" in dead[b"reason"]
