"""The embedded event source: poll an object store for new landing manifests.

A manifest (``*.meta.json``) is written after its data object, so its appearance is the
"object created" signal for a *complete* landing. The watcher remembers in a SQLite file which
manifests it has handed out and the handler finished; a crash before that is a redelivery on
the next poll (at-least-once, like the broker consumers). Polling needs no inotify/watchdog
and works on any :class:`~jisik.stores.objects.base.ObjectStore` (also an S3 bucket without
notifications), at the cost of one listing per poll.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from jisik.core.logging import get_logger
from jisik.pipeline.events.s3format import ObjectEvent
from jisik.pipeline.manifest import MANIFEST_SUFFIX
from jisik.stores.objects.base import ObjectStore

log = get_logger(__name__)
Handler = Callable[[ObjectEvent], None]


class LocalWatcher:
    def __init__(self, store: ObjectStore, state_path: Path, *, prefix: str = "raw/") -> None:
        self.store = store
        self.prefix = prefix
        state_path = Path(state_path)
        state_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(state_path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY, done_at TEXT NOT NULL)")

    def poll(self) -> list[ObjectEvent]:
        """Events for manifests not yet marked done (sorted by key); does not mark them."""
        events = []
        for info in self.store.list(self.prefix):
            if not info.key.endswith(MANIFEST_SUFFIX):
                continue
            with self._lock:
                done = self._db.execute("SELECT 1 FROM seen WHERE key = ?", (info.key,)).fetchone()
            if done is None:
                bucket, full = self.store.locate(info.key)
                events.append(ObjectEvent(bucket, full, info.size, info.etag, info.modified, info.sha256))
        events.sort(key=lambda e: e.key)
        return events

    def mark_done(self, event: ObjectEvent) -> None:
        key = self.store.relative_key(event.bucket, event.key) or event.key
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO seen (key, done_at) VALUES (?, ?)",
                             (key, datetime.now(UTC).isoformat()))

    def forget(self, key: str) -> None:
        """Deliver ``key`` again on the next poll."""
        with self._lock:
            self._db.execute("DELETE FROM seen WHERE key = ?", (key,))

    def run_once(self, handler: Handler) -> int:
        """Hand each new manifest to ``handler``, marking it done after the handler returns.

        A handler exception stops the round and propagates; that event and the rest stay new.
        """
        n = 0
        for event in self.poll():
            handler(event)
            self.mark_done(event)
            n += 1
        return n

    def watch(self, handler: Handler, *, interval_s: float = 2.0, stop: threading.Event | None = None,
              max_rounds: int | None = None) -> int:
        """Poll every ``interval_s`` until ``stop`` is set (or ``max_rounds`` polls); returns events handled."""
        stop = stop or threading.Event()
        total = rounds = 0
        while not stop.is_set():
            total += self.run_once(handler)
            rounds += 1
            if max_rounds is not None and rounds >= max_rounds:
                break
            stop.wait(interval_s)
        return total

    def close(self) -> None:
        with self._lock:
            self._db.close()
