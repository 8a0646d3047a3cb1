"""Object-created events: the S3 notification format, a polling watcher for the embedded
default, and consumers/publishers for RabbitMQ (kombu) and Redis streams.

The broker modules import kombu / redis only when used (``jisik[celery]``, ``jisik[redis]``).
"""

from __future__ import annotations

from typing import Any

from jisik.pipeline.events.local import LocalWatcher
from jisik.pipeline.events.s3format import (
    EventPublisher,
    ObjectEvent,
    object_created_message,
    parse_s3_event,
    publish_s3_event,
    s3_event_message,
)

_LAZY = {
    "RabbitMqEventConsumer": "jisik.pipeline.events.rabbitmq",
    "RabbitMqEventPublisher": "jisik.pipeline.events.rabbitmq",
    "RedisStreamEventConsumer": "jisik.pipeline.events.redis_streams",
    "RedisStreamEventPublisher": "jisik.pipeline.events.redis_streams",
}

__all__ = [
    "EventPublisher", "LocalWatcher", "ObjectEvent", "RabbitMqEventConsumer", "RabbitMqEventPublisher",
    "RedisStreamEventConsumer", "RedisStreamEventPublisher", "object_created_message", "parse_s3_event",
    "publish_s3_event", "s3_event_message",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
