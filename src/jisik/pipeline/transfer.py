"""Transfer (the seed's EAI step): deliver landed objects + manifests to the knowledge-store inbox.

Driven by object-created events for manifest keys (data objects and dedup markers are
ignored: the manifest is written last, so its event means the landing is complete)::

    transfer = Transfer(landing_store, inbox_store, "sqlite:///.jisik/receipts.sqlite3")
    consumer.consume(transfer.handle)          # or LocalWatcher(...).watch(transfer.handle)

For each manifest: download the data object to a temp file, verify its sha256 and size against
the manifest, upload it to the inbox as ``inbox/{source}/{yyyy-mm-dd}/{run_id}/{name}.{fmt}``
(the landing key with ``raw/`` replaced, so two runs never collide), then the manifest beside
it, then record a receipt.

* **At-least-once**: the event is acknowledged only after ``handle`` returns; a crash before
  that redelivers it, and the copy is simply done again (same inbox key, same bytes).
* **Idempotent receipt**: receipts are keyed by (manifest key, sha256); delivering an object
  that already has a ``delivered`` (or ``dead``) receipt is a no-op returning that receipt.
* **Retries**: a failed attempt (store unreachable, checksum mismatch, ...) is retried with
  exponential backoff up to ``RetryPolicy.max_attempts``; then the receipt turns ``dead``
  (a dead letter: :meth:`Transfer.dead_letters`, :meth:`Transfer.requeue`). Invalid input
  (a key that cannot be a manifest) is dead at once: retrying cannot fix it.
* ``pending()`` / ``mark_indexed()`` are the hand-over to the knowledge-store batch.
"""

from __future__ import annotations

import math
import random
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from jisik.core.errors import Conflict, CorruptData, InvalidInput, NotFound
from jisik.core.hashing import sha256_file
from jisik.core.logging import get_logger
from jisik.core.settings import Settings
from jisik.pipeline.events.s3format import ObjectEvent
from jisik.pipeline.landing import INDEX_DIR, is_manifest_key, manifest_key_for, read_manifest
from jisik.pipeline.manifest import MANIFEST_SUFFIX, Manifest
from jisik.pipeline.receipts import UNKNOWN_SHA, Receipt, ReceiptStore, now_utc, with_failure
from jisik.stores.objects.base import ObjectStore

log = get_logger(__name__)
_PERMANENT = (InvalidInput, Conflict)


def backoff_s(initial_s: float, n: int, max_s: float, factor: float = 2.0) -> float:
    """``initial_s * factor**n`` capped at ``max_s``, for any ``n`` (a long outage never overflows)."""
    if initial_s <= 0 or max_s <= 0:
        return 0.0
    if factor <= 1.0 or initial_s >= max_s:
        return min(initial_s, max_s)
    return max_s if n >= math.log(max_s / initial_s, factor) else initial_s * factor**n


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 60.0
    jitter: float = 0.1  # +- this fraction of the delay, so retrying workers spread out

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """``JISIK_PIPELINE_RETRY_ATTEMPTS`` / ``_INITIAL_S`` / ``_MAX_S``."""
        return cls(max_attempts=settings.pipeline_retry_attempts, initial_delay_s=settings.pipeline_retry_initial_s,
                   max_delay_s=settings.pipeline_retry_max_s)

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after the ``failed_attempt``-th failure (1-based)."""
        base = backoff_s(self.initial_delay_s, failed_attempt - 1, self.max_delay_s, self.factor)
        return max(0.0, base * (1 + random.uniform(-self.jitter, self.jitter)))


def inbox_key(manifest: Manifest, prefix: str = "inbox") -> str:
    rel = manifest.key.removeprefix("raw/")
    return f"{prefix}/{rel}" if prefix else rel


class Transfer:
    def __init__(
        self, landing: ObjectStore, inbox: ObjectStore, receipts: str | ReceiptStore, *,
        retry: RetryPolicy | None = None, inbox_prefix: str = "inbox", workdir: Path | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.landing = landing
        self.inbox = inbox
        self.receipts = receipts if isinstance(receipts, ReceiptStore) else ReceiptStore(receipts)
        self.retry = retry or RetryPolicy()
        self.inbox_prefix = inbox_prefix
        self.workdir = workdir
        self._sleep = sleep

    # entry points ----------------------------------------------------------------------------
    def handle(self, event: ObjectEvent) -> Receipt | None:
        """Event handler: deliver if the event names a manifest in the landing store, else ignore."""
        key = self.landing.relative_key(event.bucket, event.key)
        if key is None or not is_manifest_key(key) or f"/{INDEX_DIR}/" in key:
            log.debug("event ignored", extra={"bucket": event.bucket, "key": event.key})
            return None
        return self.deliver(key)

    def deliver(self, manifest_key: str) -> Receipt:
        """Deliver one landed object (given its manifest key); returns its receipt."""
        manifest_key = manifest_key_for(manifest_key)
        current: Receipt | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            try:
                manifest = read_manifest(self.landing, manifest_key)
                stored = self.receipts.get(manifest.manifest_key, manifest.sha256)
                if stored is not None and stored.status in ("delivered", "dead"):
                    return stored  # idempotent: this object was handled before
                current = stored or self._blank(manifest)
                current = self._copy(manifest, current)
                self.receipts.delete_unknown(manifest_key)
                log.info("delivered", extra={"key": manifest_key, "attempts": current.attempts})
                return current
            except Exception as e:
                if current is None or current.manifest_key != manifest_key:
                    current = self._unknown(manifest_key)
                dead = isinstance(e, _PERMANENT) or attempt == self.retry.max_attempts
                current = self.receipts.save(with_failure(current, f"{type(e).__name__}: {e}", dead=dead))
                log.warning("delivery attempt failed",
                            extra={"key": manifest_key, "attempt": attempt, "error": type(e).__name__, "dead": dead})
                if dead:
                    return current
                self._sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def _blank(self, m: Manifest) -> Receipt:
        return Receipt(m.manifest_key, m.sha256, m.key, "failed", source=m.source, run_id=m.run_id,
                       byte_size=m.byte_size)

    def _unknown(self, manifest_key: str) -> Receipt:
        found = self.receipts.get(manifest_key, UNKNOWN_SHA)
        return found or Receipt(manifest_key, UNKNOWN_SHA, manifest_key.removesuffix(MANIFEST_SUFFIX), "failed")

    def _copy(self, m: Manifest, receipt: Receipt) -> Receipt:
        target = inbox_key(m, self.inbox_prefix)
        with tempfile.TemporaryDirectory(prefix="jisik-transfer-", dir=self.workdir) as tmp:
            local = self.landing.get_file(m.key, Path(tmp) / "object")
            sha, size = sha256_file(local), local.stat().st_size
            if sha != m.sha256 or size != m.byte_size:
                raise CorruptData(
                    f"적재된 객체의 체크섬이 매니페스트와 다릅니다: {m.key}",
                    f"Checksum mismatch for {m.key}: manifest {m.sha256[:12]}…/{m.byte_size} B, "
                    f"object {sha[:12]}…/{size} B",
                )
            info = self.inbox.put_file(target, local, content_type=m.content_type,
                                       metadata={"source": m.source, "run-id": m.run_id})
        if info.sha256 != m.sha256:
            raise CorruptData(f"수신함 사본의 체크섬이 다릅니다: {target}", f"Inbox copy checksum mismatch: {target}")
        self.inbox.put_bytes(target + MANIFEST_SUFFIX, m.to_json().encode("utf-8"), content_type="application/json")
        done = replace(receipt, status="delivered", attempts=receipt.attempts + 1, inbox_key=target,
                       last_error=None, delivered_at=now_utc())
        return self.receipts.save(done)

    # dead letters and hand-over --------------------------------------------------------------
    def receipt(self, manifest_key: str) -> Receipt | None:
        """The newest receipt of a manifest key."""
        found = self.receipts.for_key(manifest_key)
        return found[0] if found else None

    def dead_letters(self, *, limit: int | None = None) -> list[Receipt]:
        return self.receipts.by_status("dead", limit=limit)

    def requeue(self, manifest_key: str) -> Receipt:
        """Retry a dead letter now (its attempts count on); returns the new receipt."""
        dead = [r for r in self.receipts.for_key(manifest_key) if r.status == "dead"]
        if not dead:
            raise NotFound(f"전달 실패 목록에 없습니다: {manifest_key}", f"No dead letter for {manifest_key}")
        for r in dead:
            self.receipts.save(replace(r, status="failed"))
        return self.deliver(manifest_key)

    def pending(self, *, limit: int | None = None) -> list[Receipt]:
        """Delivered receipts the knowledge store has not indexed yet (oldest first)."""
        return self.receipts.pending(limit=limit)

    def mark_indexed(self, manifest_keys: Iterable[str], index_version: int | str) -> int:
        """Called by the knowledge-store batch once the objects are in index version ``index_version``."""
        return self.receipts.mark_indexed(manifest_keys, index_version)

    def close(self) -> None:
        self.receipts.close()
