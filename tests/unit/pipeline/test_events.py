"""S3 event notification parsing and the polling LocalWatcher."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jisik.core.errors import InvalidInput
from jisik.pipeline.events import LocalWatcher, ObjectEvent, object_created_message, parse_s3_event, s3_event_message
from jisik.pipeline.landing import land
from jisik.pipeline.manifest import Extracted
from jisik.stores.objects import LocalObjectStore

AT = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)

# the documented example of an S3 notification (trimmed), key URL-encoded
AWS_SAMPLE = {
    "Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "ap-northeast-2",
        "eventTime": "2026-01-31T09:30:05.123Z", "eventName": "ObjectCreated:CompleteMultipartUpload",
        "userIdentity": {"principalId": "AWS:EXAMPLE"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "landing",
               "bucket": {"name": "jisik-landing", "arn": "arn:aws:s3:::jisik-landing"},
               "object": {"key": "raw/erp/2026-01-31/r1/red+flower%ED%95%9C.csv.meta.json", "size": 1024,
                          "eTag": "d41d8cd98f00b204e9800998ecf8427e", "sequencer": "0055AED6DCD90281E5"}},
    }, {
        "eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": "2026-01-31T09:31:00.000Z",
        "eventName": "ObjectRemoved:Delete",
        "s3": {"bucket": {"name": "jisik-landing"}, "object": {"key": "raw/old.csv"}},
    }],
}


def test_parse_standard_notification() -> None:
    events = parse_s3_event(json.dumps(AWS_SAMPLE).encode())
    assert events == [ObjectEvent(
        "jisik-landing", "raw/erp/2026-01-31/r1/red flower한.csv.meta.json", 1024,
        "d41d8cd98f00b204e9800998ecf8427e", datetime(2026, 1, 31, 9, 30, 5, 123000, tzinfo=UTC), None,
        "ObjectCreated:CompleteMultipartUpload",
    )]


def test_minio_style_and_test_event() -> None:
    msg = s3_event_message("b", "raw/a b+c/한글.csv", 5, '"etag"', sha256="ab" * 32, event_time=AT)
    msg["Records"][0]["eventName"] = "s3:ObjectCreated:Put"
    (event,) = parse_s3_event(msg)
    assert (event.key, event.size, event.etag, event.sha256) == ("raw/a b+c/한글.csv", 5, "etag", "ab" * 32)
    assert event.event_name == "ObjectCreated:Put" and event.event_time == AT
    assert parse_s3_event({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}) == []
    assert parse_s3_event({"Records": []}) == []


@pytest.mark.parametrize(("body", "problem"), [
    (b"\xff\xfe", "not JSON"),
    (b"not json", "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b"{}", "Records"),
    (json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}).encode(), "s3.bucket.name"),
    (json.dumps({"Records": [{"eventName": 3}]}).encode(), "eventName"),
])
def test_malformed_messages(body: bytes, problem: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_s3_event(body)
    assert problem in err.value.message_en


@pytest.mark.parametrize(("field", "value"), [("size", -1), ("size", "12"), ("size", True), ("key", ""),
                                              ("eventTime", "yesterday"), ("eventTime", 12)])
def test_malformed_record_fields(field: str, value: object) -> None:
    msg = s3_event_message("b", "raw/x", 1, "e", event_time=AT)
    rec = msg["Records"][0]
    if field == "eventTime":
        rec["eventTime"] = value
    else:
        rec["s3"]["object"][field] = value
    with pytest.raises(InvalidInput) as err:
        parse_s3_event(msg)
    assert err.value.details["record"] == 0


def _land(store: LocalObjectStore, tmp_path: Path, name: str, text: str, run: str = "r1") -> str:
    p = tmp_path / f"{name}.csv"
    p.write_text(text, encoding="utf-8")
    e = Extracted(path=p, name=name, fmt="csv", source="erp", source_kind="file", content_type="text/csv")
    return land(store, e, run, AT).manifest.manifest_key


def test_object_created_message_for_a_local_object(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "s")
    store.put_bytes("raw/x.csv", b"abc")
    (event,) = parse_s3_event(object_created_message(store, "raw/x.csv"))
    assert (event.bucket, event.key, event.size) == ("", "raw/x.csv", 3)
    assert event.sha256 == store.head("raw/x.csv").sha256


def test_local_watcher_sees_each_complete_landing_once(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "landing")
    m1 = _land(store, tmp_path, "a", "1\n")
    m2 = _land(store, tmp_path, "b", "2\n")
    store.put_bytes("raw/erp/2026-01-31/r9/orphan.csv", b"no manifest yet")  # incomplete landing
    watcher = LocalWatcher(store, tmp_path / "state" / "watch.sqlite3")
    seen: list[str] = []
    assert watcher.run_once(lambda e: seen.append(e.key)) == 2
    assert seen == sorted([m1, m2])
    assert watcher.run_once(lambda e: seen.append(e.key)) == 0
    m3 = _land(store, tmp_path, "c", "3\n", run="r2")
    assert [e.key for e in watcher.poll()] == [m3]
    watcher.close()
    # the state survives a restart; an unfinished event is delivered again
    watcher = LocalWatcher(store, tmp_path / "state" / "watch.sqlite3")

    def crash(_: ObjectEvent) -> None:
        raise RuntimeError("handler died")

    with pytest.raises(RuntimeError):
        watcher.run_once(crash)
    assert watcher.watch(lambda e: seen.append(e.key), interval_s=0.01, max_rounds=2) == 1
    assert seen[-1] == m3
    watcher.forget(m1)
    assert [e.key for e in watcher.poll()] == [m1]
    watcher.close()


def test_unreachable_brokers_are_unavailable() -> None:
    import time

    from jisik.core.errors import Unavailable
    from jisik.pipeline.events import (
        RabbitMqEventConsumer,
        RabbitMqEventPublisher,
        RedisStreamEventConsumer,
        RedisStreamEventPublisher,
    )

    started = time.monotonic()
    with pytest.raises(Unavailable):
        RabbitMqEventPublisher("amqp://guest:guest@127.0.0.1:9//", connect_timeout_s=1).publish({"Records": []})
    with pytest.raises(Unavailable):
        RabbitMqEventConsumer("amqp://guest:guest@127.0.0.1:9//", connect_timeout_s=1).consume(print, max_messages=1)
    with pytest.raises(Unavailable):
        RedisStreamEventPublisher("redis://127.0.0.1:9/0").publish({"Records": []})
    with pytest.raises(Unavailable):
        RedisStreamEventConsumer("redis://127.0.0.1:9/0").consume(print, max_messages=1)
    assert time.monotonic() - started < 15
