"""Transfer between two local object stores with SQLite receipts: idempotency, retries, dead letters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from jisik.core.errors import NotFound, Unavailable
from jisik.pipeline.events import LocalWatcher, ObjectEvent, parse_s3_event, s3_event_message
from jisik.pipeline.landing import index_key, land
from jisik.pipeline.manifest import Extracted
from jisik.pipeline.receipts import Receipt, ReceiptStore
from jisik.pipeline.transfer import RetryPolicy, Transfer
from jisik.stores.objects import LocalObjectStore

AT = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=3, initial_delay_s=0.01, factor=2.0, max_delay_s=1.0, jitter=0.0)


class FlakyStore(LocalObjectStore):
    """A real local store whose downloads fail the first ``failures`` times (a flaky network)."""

    failures = 0

    def get_file(self, key: str, dest: Path) -> Path:
        if self.failures > 0:
            self.failures -= 1
            raise Unavailable("일시적 오류", "simulated outage")
        return super().get_file(key, dest)


@dataclass
class Env:
    landing: FlakyStore
    inbox: LocalObjectStore
    transfer: Transfer
    sleeps: list[float] = field(default_factory=list)
    tmp: Path = Path()

    def land(self, name: str, text: str, run: str = "r1") -> str:
        p = self.tmp / f"{name}.csv"
        p.write_text(text, encoding="utf-8")
        e = Extracted(path=p, name=name, fmt="csv", source="erp", source_kind="file", content_type="text/csv")
        return land(self.landing, e, run, AT).manifest.manifest_key

    def inbox_keys(self) -> list[str]:
        return sorted(o.key for o in self.inbox.list())


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    landing = FlakyStore(tmp_path / "landing")
    inbox = LocalObjectStore(tmp_path / "kb")
    sleeps: list[float] = []
    t = Transfer(landing, inbox, f"sqlite:///{tmp_path / 'receipts.sqlite3'}", retry=FAST, sleep=sleeps.append)
    yield Env(landing, inbox, t, sleeps, tmp_path)
    t.close()


def event_for(key: str) -> ObjectEvent:
    (e,) = parse_s3_event(s3_event_message("", key, None))
    return e


def test_delivers_object_and_manifest_with_a_receipt(env: Env) -> None:
    mkey = env.land("products", "id,이름\n1,사과\n")
    receipt = env.transfer.handle(event_for(mkey))
    assert receipt is not None and receipt.status == "delivered" and receipt.attempts == 1
    assert receipt.inbox_key == "inbox/erp/2026-01-31/r1/products.csv"
    assert env.inbox_keys() == ["inbox/erp/2026-01-31/r1/products.csv", "inbox/erp/2026-01-31/r1/products.csv.meta.json"]
    assert env.inbox.get_bytes(receipt.inbox_key) == env.landing.get_bytes("raw/erp/2026-01-31/r1/products.csv")
    inbox_manifest = json.loads(env.inbox.get_bytes(receipt.inbox_key + ".meta.json"))
    assert inbox_manifest["key"] == "raw/erp/2026-01-31/r1/products.csv"  # lineage points at the landed object
    assert receipt.sha256 == inbox_manifest["sha256"] and receipt.delivered_at is not None
    assert env.sleeps == []


def test_same_event_twice_is_one_receipt_and_one_copy(env: Env) -> None:
    mkey = env.land("products", "a\n")
    first = env.transfer.handle(event_for(mkey))
    second = env.transfer.handle(event_for(mkey))
    assert first == second
    assert len(env.transfer.receipts.for_key(mkey)) == 1
    assert len(env.inbox_keys()) == 2


def test_other_events_are_ignored(env: Env) -> None:
    mkey = env.land("products", "a\n")
    data_key = mkey.removesuffix(".meta.json")
    assert env.transfer.handle(event_for(data_key)) is None
    marker = index_key("erp", env.landing.head(data_key).sha256 or "")
    assert env.transfer.handle(event_for(marker)) is None
    assert env.transfer.handle(ObjectEvent("another-bucket", mkey, 1, None, AT)) is None
    assert env.inbox_keys() == []


def test_transient_failures_are_retried_with_backoff(env: Env) -> None:
    mkey = env.land("products", "a\n")
    env.landing.failures = 2
    receipt = env.transfer.deliver(mkey)
    assert receipt.status == "delivered" and receipt.attempts == 3 and receipt.last_error is None
    assert env.sleeps == [0.01, 0.02]


def test_checksum_mismatch_becomes_a_dead_letter_and_can_be_requeued(env: Env) -> None:
    mkey = env.land("products", "id\n1\n")
    data = env.landing.path(mkey.removesuffix(".meta.json"))
    original = data.read_bytes()
    data.write_bytes(b"id\n2\n")  # the landed object no longer matches its manifest
    receipt = env.transfer.deliver(mkey)
    assert receipt.status == "dead" and receipt.attempts == 3
    assert receipt.last_error is not None and "CorruptData" in receipt.last_error
    assert env.sleeps == [0.01, 0.02]
    assert env.inbox_keys() == []
    assert [r.manifest_key for r in env.transfer.dead_letters()] == [mkey]
    assert env.transfer.handle(event_for(mkey)) == receipt  # a dead letter is not retried by redelivery
    assert env.transfer.pending() == []
    data.write_bytes(original)
    again = env.transfer.requeue(mkey)
    assert again.status == "delivered" and again.attempts == 4
    assert env.transfer.dead_letters() == []
    assert [r.manifest_key for r in env.transfer.pending()] == [mkey]
    with pytest.raises(NotFound):
        env.transfer.requeue(mkey)


def test_missing_manifest_is_dead_until_requeued(env: Env) -> None:
    mkey = "raw/erp/2026-01-31/r1/ghost.csv.meta.json"
    receipt = env.transfer.deliver(mkey)
    assert receipt.status == "dead" and receipt.sha256 == "" and "NotFound" in (receipt.last_error or "")
    real = env.land("ghost", "now it exists\n")
    assert real == mkey
    delivered = env.transfer.requeue(mkey)
    assert delivered.status == "delivered" and delivered.sha256 != ""
    assert env.transfer.receipts.for_key(mkey) == [delivered]  # the placeholder is gone


def test_crash_after_copy_before_receipt_redelivers_once(env: Env, tmp_path: Path) -> None:
    """At-least-once: the process dies after writing the inbox but before the receipt."""

    class DyingReceipts(ReceiptStore):
        def save(self, receipt: Receipt) -> Receipt:
            if receipt.status == "delivered":
                raise SystemExit("killed")
            return super().save(receipt)

    mkey = env.land("products", "a\n")
    dying = Transfer(env.landing, env.inbox, DyingReceipts(f"sqlite:///{tmp_path / 'r2.sqlite3'}"), retry=FAST)
    with pytest.raises(SystemExit):
        dying.handle(event_for(mkey))
    assert len(env.inbox_keys()) == 2 and dying.receipt(mkey) is None
    restarted = Transfer(env.landing, env.inbox, f"sqlite:///{tmp_path / 'r2.sqlite3'}", retry=FAST)
    receipt = restarted.handle(event_for(mkey))
    assert receipt is not None and receipt.status == "delivered"
    assert len(env.inbox_keys()) == 2
    restarted.close()


def test_pending_and_mark_indexed(env: Env) -> None:
    k1, k2 = env.land("a", "1\n"), env.land("b", "2\n")
    watcher = LocalWatcher(env.landing, env.tmp / "w.sqlite3")
    assert watcher.run_once(lambda e: env.transfer.handle(e)) == 2
    assert sorted(r.manifest_key for r in env.transfer.pending()) == sorted([k1, k2])
    assert env.transfer.mark_indexed([k1, "raw/unknown.meta.json"], index_version=7) == 1
    assert [r.manifest_key for r in env.transfer.pending()] == [k2]
    r1 = env.transfer.receipt(k1)
    assert r1 is not None and r1.index_version == "7" and r1.indexed_at is not None
    assert env.transfer.mark_indexed([k1], 8) == 0  # already indexed
    watcher.close()


def test_receipts_survive_a_restart(env: Env, tmp_path: Path) -> None:
    mkey = env.land("a", "1\n")
    first = env.transfer.deliver(mkey)
    again = Transfer(env.landing, env.inbox, f"sqlite:///{tmp_path / 'receipts.sqlite3'}", retry=FAST)
    assert again.deliver(mkey) == first
    again.close()


def test_retry_policy_delays() -> None:
    p = RetryPolicy(initial_delay_s=1.0, factor=3.0, max_delay_s=5.0, jitter=0.0)
    assert [p.delay(n) for n in (1, 2, 3, 4)] == [1.0, 3.0, 5.0, 5.0]
    jittery = RetryPolicy(initial_delay_s=1.0, jitter=0.5)
    assert all(0.5 <= jittery.delay(1) <= 1.5 for _ in range(50))
