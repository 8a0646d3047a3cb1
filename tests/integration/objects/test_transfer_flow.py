"""The whole way from landing to the knowledge-store inbox on real servers.

SeaweedFS S3 holds the landing zone; object-created events travel through RabbitMQ or Redis
streams; Transfer copies to the inbox (a local directory or another S3 bucket) and writes its
receipts to SQLite, PostgreSQL or MariaDB.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from jisik.pipeline.events import publish_s3_event
from jisik.pipeline.events.rabbitmq import RabbitMqEventConsumer, RabbitMqEventPublisher
from jisik.pipeline.events.redis_streams import RedisStreamEventConsumer, RedisStreamEventPublisher
from jisik.pipeline.landing import iter_manifest_keys, land, read_manifest, sweep_incomplete
from jisik.pipeline.manifest import ColumnSchema, Extracted
from jisik.pipeline.receipts import Receipt, ReceiptStore
from jisik.pipeline.transfer import RetryPolicy, Transfer
from jisik.stores.objects import LocalObjectStore
from jisik.stores.objects.s3 import S3ObjectStore
from jisik.stores.objects.seaweed import SeaweedServer
from objects_env import s3_store

pytestmark = pytest.mark.integration
AT = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=3, initial_delay_s=0.01, jitter=0.0)


def staged(path: Path, text: str, name: str = "products") -> Extracted:
    path.write_text(text, encoding="utf-8")
    return Extracted(path=path, name=name, fmt="csv", source="erp", source_kind="sql",
                     query="SELECT id, name FROM products", row_count=text.count("\n") - 1, content_type="text/csv",
                     schema=[ColumnSchema(name="id", type="integer"), ColumnSchema(name="name", type="string")])


@pytest.fixture
def landing(s3_objects: S3ObjectStore) -> S3ObjectStore:
    return s3_objects


@pytest.fixture
def pg_url() -> Iterator[str]:
    import psycopg

    name = f"jisik_test_{uuid.uuid4().hex[:10]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL is not reachable at 127.0.0.1:5432: {e}", pytrace=False)
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def mariadb_url() -> Iterator[str]:
    import pymysql

    name = f"jisik_test_{uuid.uuid4().hex[:10]}"
    try:
        conn = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=3,
                               autocommit=True)
    except pymysql.err.OperationalError as e:
        pytest.fail(f"MariaDB is not reachable at 127.0.0.1:3306: {e}", pytrace=False)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    yield f"mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4"
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()


def test_land_on_s3_dedup_and_sweep(landing: S3ObjectStore, tmp_path: Path) -> None:
    first = land(landing, staged(tmp_path / "a.csv", "id,name\n1,사과\n"), "run-1", AT)
    assert first.landed
    assert read_manifest(landing, first.manifest.key) == first.manifest
    head = landing.client.head_object(Bucket=landing.bucket, Key=landing.prefix + first.manifest.key)
    assert head["Metadata"]["sha256"] == first.manifest.sha256
    again = land(landing, staged(tmp_path / "b.csv", "id,name\n1,사과\n"), "run-2", AT)
    assert not again.landed and again.manifest == first.manifest
    landing.put_bytes("raw/erp/2026-01-31/run-0/products.csv", b"orphan")  # a landing that died mid-way
    assert list(iter_manifest_keys(landing)) == [first.manifest.manifest_key]
    gone = sweep_incomplete(landing, older_than=timedelta(0), now=datetime.now(UTC) + timedelta(minutes=1))
    assert gone == ["raw/erp/2026-01-31/run-0/products.csv"]


def test_rabbitmq_flow_to_a_local_inbox(landing: S3ObjectStore, rabbitmq_url: str, unique: str,
                                        tmp_path: Path) -> None:
    inbox = LocalObjectStore(tmp_path / "kb")
    transfer = Transfer(landing, inbox, f"sqlite:///{tmp_path / 'receipts.sqlite3'}", retry=FAST)
    publisher = RabbitMqEventPublisher(rabbitmq_url, unique, exchange=f"{unique}.x")
    consumer = RabbitMqEventConsumer(rabbitmq_url, unique, exchange=f"{unique}.x")
    try:
        m = land(landing, staged(tmp_path / "p.csv", "id,name\n1,사과\n2,배\n"), "run-1", AT).manifest
        publish_s3_event(publisher, landing, m.key)  # the data object: ignored
        publish_s3_event(publisher, landing, m.manifest_key)
        publish_s3_event(publisher, landing, m.manifest_key)  # the same event again (at-least-once)
        receipts: list[Receipt | None] = []
        assert consumer.consume(lambda e: receipts.append(transfer.handle(e)), max_messages=3,
                                idle_timeout_s=10) == 3
        assert receipts[0] is None and receipts[1] == receipts[2]
        receipt = receipts[1]
        assert receipt is not None and receipt.status == "delivered"
        assert len(transfer.receipts.for_key(m.manifest_key)) == 1
        assert sorted(o.key for o in inbox.list()) == [receipt.inbox_key, f"{receipt.inbox_key}.meta.json"]
        assert inbox.get_bytes(receipt.inbox_key or "") == landing.get_bytes(m.key)
        assert [r.manifest_key for r in transfer.pending()] == [m.manifest_key]
    finally:
        consumer.delete_queues()
        transfer.close()


def test_redis_flow_to_an_s3_inbox_with_postgres_receipts(
    landing: S3ObjectStore, seaweed: SeaweedServer, redis_url: str, unique: str, pg_url: str, tmp_path: Path
) -> None:
    import redis

    inbox = s3_store(seaweed, bucket="jisik-kb")
    transfer = Transfer(landing, inbox, pg_url, retry=FAST)
    publisher = RedisStreamEventPublisher(redis_url, unique)
    consumer = RedisStreamEventConsumer(redis_url, unique, "transfer", "w1", block_ms=100)
    try:
        good = land(landing, staged(tmp_path / "g.csv", "id,name\n1,a\n", "good"), "run-1", AT).manifest
        bad = land(landing, staged(tmp_path / "b.csv", "id,name\n2,b\n", "bad"), "run-1", AT).manifest
        # the landed object changes behind the manifest's back: transfer must refuse it
        landing.client.put_object(Bucket=landing.bucket, Key=landing.prefix + bad.key, Body=b"id,name\n2,tampered\n")
        for m in (good, bad):
            publish_s3_event(publisher, landing, m.manifest_key)
        out: list[Receipt | None] = []
        assert consumer.consume(lambda e: out.append(transfer.handle(e)), max_messages=2, idle_timeout_s=10) == 2
        by_key = {r.manifest_key: r for r in out if r is not None}
        assert by_key[good.manifest_key].status == "delivered"
        assert by_key[bad.manifest_key].status == "dead" and by_key[bad.manifest_key].attempts == 3
        assert [r.manifest_key for r in transfer.dead_letters()] == [bad.manifest_key]
        assert inbox.exists("inbox/erp/2026-01-31/run-1/good.csv")
        assert not inbox.exists("inbox/erp/2026-01-31/run-1/bad.csv")
        # repaired at the source: re-queue the dead letter
        landing.put_file(bad.key, tmp_path / "b.csv")
        assert transfer.requeue(bad.manifest_key).status == "delivered"
        assert transfer.mark_indexed([good.manifest_key, bad.manifest_key], 3) == 2
        assert transfer.pending() == []
    finally:
        for obj in list(inbox.list()):
            inbox.delete(obj.key)
        transfer.receipts.drop()
        transfer.close()
        r = redis.Redis.from_url(redis_url)
        r.delete(unique, f"{unique}:dead")
        r.close()


def test_receipts_on_mariadb(mariadb_url: str, tmp_path: Path) -> None:
    landing, inbox = LocalObjectStore(tmp_path / "landing"), LocalObjectStore(tmp_path / "kb")
    long_name = "긴이름" * 15  # a long key (135 bytes of name): the table must not index the key text
    m = land(landing, staged(tmp_path / "x.csv", "id,name\n1,a\n", long_name), "run-1", AT).manifest
    store = ReceiptStore(mariadb_url)
    transfer = Transfer(landing, inbox, store, retry=FAST)
    try:
        first = transfer.deliver(m.manifest_key)
        assert first.status == "delivered" and first.manifest_key == m.manifest_key
        assert transfer.deliver(m.manifest_key) == first
        assert transfer.mark_indexed([m.manifest_key], "v1") == 1
        r = transfer.receipt(m.manifest_key)
        assert r is not None and r.index_version == "v1" and r.indexed_at is not None
        assert r.delivered_at is not None and r.delivered_at.tzinfo is not None
    finally:
        store.drop()
        transfer.close()
