"""Servers for the landing / events / transfer integration tests.

* ``seaweed`` (in ``tests/integration/conftest.py``, shared with the pipeline tests): a private
  SeaweedFS ``weed mini`` S3 server; ``s3_objects``: an empty store on it under a prefix of its own.
* ``rabbitmq_url`` / ``redis_url``: the machine's RabbitMQ and Redis (env ``JISIK_TEST_AMQP_URL``,
  ``JISIK_TEST_REDIS_URL`` override the defaults). Tests use unique queue/stream names.

A server that cannot be reached FAILS the tests that need it (never a skip).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jisik.stores.objects.s3 import S3ObjectStore
from jisik.stores.objects.seaweed import SeaweedServer
from objects_env import s3_store


@pytest.fixture
def s3_objects(seaweed: SeaweedServer) -> Iterator[S3ObjectStore]:
    """An empty S3 store: the session bucket under a prefix of its own (deleted afterwards)."""
    store = s3_store(seaweed, page_size=2)  # tiny pages so listings exercise pagination
    yield store
    for obj in list(store.list()):
        store.delete(obj.key)
    store.close()


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    url = os.environ.get("JISIK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    import kombu

    try:
        with kombu.Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as e:
        pytest.fail(f"RabbitMQ is not reachable at {url.split('@')[-1]}: {e}", pytrace=False)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("JISIK_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except Exception as e:
        pytest.fail(f"Redis is not reachable at {url}: {e}", pytrace=False)
    return url


@pytest.fixture
def unique() -> str:
    return f"jisik-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def staging(tmp_path: Path) -> Path:
    path = tmp_path / "staging"
    path.mkdir()
    return path
