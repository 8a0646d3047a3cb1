"""Object-created events in the standard S3 event notification format.

The format AWS S3 (and MinIO, Ceph RGW, SeaweedFS) send to queues::

    {"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "eventTime": "2026-01-31T09:30:00.000Z",
                  "eventName": "ObjectCreated:Put",
                  "s3": {"bucket": {"name": "landing"},
                         "object": {"key": "raw/erp/red+flower.csv", "size": 12, "eTag": "..."}}}]}

Object keys are URL-encoded (a space becomes ``+``). Only ``ObjectCreated:*`` records become
:class:`ObjectEvent`\\ s; other records (removals) and the ``s3:TestEvent`` a bucket sends when
notifications are configured are skipped. A message that is not this format raises
:class:`~jisik.core.errors.InvalidInput` (consumers dead-letter it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote_plus, unquote_plus

from jisik.core.errors import InvalidInput
from jisik.stores.objects.base import ObjectStore


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    bucket: str  # "" for the local store
    key: str  # full key in the bucket, URL-decoded
    size: int | None
    etag: str | None
    event_time: datetime
    sha256: str | None = None  # only when the sender includes user metadata (MinIO does)
    event_name: str = "ObjectCreated:Put"


class EventPublisher(Protocol):
    def publish(self, message: Mapping[str, Any]) -> None: ...


def _bad(problem: str, index: int | None = None) -> InvalidInput:
    where = f" (record {index})" if index is not None else ""
    return InvalidInput(f"S3 이벤트 메시지 형식이 올바르지 않습니다{where}: {problem}",
                        f"Malformed S3 event message{where}: {problem}",
                        details={"record": index, "problem": problem})


def _field(obj: Any, path: str, index: int) -> Any:
    for part in path.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            raise _bad(f"missing '{path}'", index)
        obj = obj[part]
    return obj


def _time(value: Any, index: int) -> datetime:
    if not isinstance(value, str):
        raise _bad("eventTime is not a string", index)
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise _bad(f"eventTime {value!r} is not ISO 8601", index) from e
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def parse_s3_event(body: bytes | str | Mapping[str, Any]) -> list[ObjectEvent]:
    """The ObjectCreated events of one notification message (possibly none)."""
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise _bad("not JSON") from e
    else:
        data = body
    if not isinstance(data, Mapping):
        raise _bad("not a JSON object")
    if data.get("Event") == "s3:TestEvent":
        return []
    records = data.get("Records")
    if not isinstance(records, list):
        raise _bad("no 'Records' list")
    events = []
    for i, rec in enumerate(records):
        name = _field(rec, "eventName", i)
        if not isinstance(name, str):
            raise _bad("eventName is not a string", i)
        name = name.removeprefix("s3:")
        if not name.startswith("ObjectCreated:"):
            continue
        bucket = _field(rec, "s3.bucket.name", i)
        raw_key = _field(rec, "s3.object.key", i)
        if not isinstance(bucket, str) or not isinstance(raw_key, str) or not raw_key:
            raise _bad("bucket name or object key is not a non-empty string", i)
        obj = rec["s3"]["object"]
        size = obj.get("size")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
            raise _bad("object size is not a non-negative integer", i)
        etag = obj.get("eTag") or obj.get("etag")
        meta = obj.get("userMetadata") or {}
        sha = next((v for k, v in meta.items() if k.lower() in ("x-amz-meta-sha256", "sha256")), None) \
            if isinstance(meta, Mapping) else None
        events.append(ObjectEvent(bucket, unquote_plus(raw_key), size, str(etag).strip('"') if etag else None,
                                  _time(_field(rec, "eventTime", i), i), sha, name))
    return events


def s3_event_message(
    bucket: str, key: str, size: int | None, etag: str | None = None, *, sha256: str | None = None,
    event_time: datetime | None = None, event_name: str = "ObjectCreated:Put", region: str = "us-east-1",
) -> dict[str, Any]:
    """One-record notification message in the S3 format (what a bucket would send)."""
    t = (event_time or datetime.now(UTC)).astimezone(UTC)
    obj: dict[str, Any] = {"key": quote_plus(key, safe="/"), "size": size, "eTag": etag or "",
                           "sequencer": f"{int(t.timestamp() * 1e6):016X}"}
    if sha256:
        obj["userMetadata"] = {"X-Amz-Meta-Sha256": sha256}
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": region,
        "eventTime": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",
        "eventName": event_name, "userIdentity": {"principalId": "jisik"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "jisik-object-created",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"}, "object": obj},
    }]}


def object_created_message(store: ObjectStore, key: str) -> dict[str, Any]:
    """The notification the store's bucket would send for ``key`` (for the embedded and test paths)."""
    info = store.head(key)
    bucket, full = store.locate(key)
    return s3_event_message(bucket, full, info.size, info.etag, sha256=info.sha256, event_time=info.modified)


def publish_s3_event(publisher: EventPublisher, store: ObjectStore, key: str) -> dict[str, Any]:
    """Publish an ObjectCreated message for ``key`` of ``store``; returns the message sent."""
    message = object_created_message(store, key)
    publisher.publish(message)
    return message
