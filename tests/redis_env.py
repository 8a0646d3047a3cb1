"""Test helper: the local Redis (127.0.0.1:6379) with a throw-away key prefix per test or module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

REDIS = "redis://127.0.0.1:6379/0"


@contextmanager
def redis_key_prefix(label: str) -> Iterator[str]:
    """A fresh key prefix (the test FAILS when Redis is down); its keys are deleted afterwards."""
    client = redis.Redis.from_url(REDIS, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.fail(f"Redis at 127.0.0.1:6379 is not reachable: {e}", pytrace=False)
    prefix = f"{label}-{uuid.uuid4().hex[:10]}:"
    try:
        yield prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
