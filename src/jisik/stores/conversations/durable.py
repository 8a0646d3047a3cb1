"""Chat logs and feedback are never lost: when their database is down they go to a local spool.

:class:`Spool` is an append-only JSONL file under ``settings.home`` (mode 0600): every append is
written under an exclusive ``flock`` (of a side lock file, shared by all processes of the
machine) and fsynced before the call returns. Draining renames the file to ``*.replay`` under the
same lock (new records start a fresh file), then feeds the replay files to the store and deletes
each one only after the store accepted all of it. A crash at any point leaves the records in a
file that the next drain picks up; replays are idempotent (logs by ``log_id``, feedback by its
derived id with the newer record winning), so a record is never stored twice. A line that
cannot be parsed (a torn write of a crashed process) is kept aside in ``*.bad``.

:class:`DurableChatLog` / :class:`DurableFeedback` wrap a store: a write that raises
:class:`Unavailable` is spooled instead (and the store is not tried again for ``retry_after_s``,
so requests do not wait on a dead server); the first successful write afterwards replays the
spool. Reads go straight to the store (an admin page may get a 503; no data is lost).
"""

from __future__ import annotations

import builtins
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from jisik.core.errors import Unavailable
from jisik.core.logging import get_logger
from jisik.core.pseudonym import Pseudonymizer

from .base import (
    Bucket,
    ChatLogStore,
    FeedbackStats,
    FeedbackStore,
    LogQuery,
    Overview,
    Page,
    QuestionCount,
    QuestionKind,
    TrendPoint,
    UserStats,
)
from .records import ChatLog, Feedback, Rating, new_id
from .sql_chatlog import prepare_feedback, prepare_log

log = get_logger(__name__)
T = TypeVar("T", ChatLog, Feedback)


class Spool:
    def __init__(self, directory: Path, name: str) -> None:
        self.dir = directory
        self.name = name
        self.path = directory / f"{name}.jsonl"
        self._lock_path = directory / f"{name}.lock"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def append(self, records: Sequence[dict[str, Any]]) -> None:
        data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records).encode()
        with self._locked():
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":  # a torn line: start ours on a new one
                    data = b"\n" + data
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            if size == 0:
                _fsync_dir(self.dir)

    def replay_files(self) -> list[Path]:
        return sorted(self.dir.glob(f"{self.name}.*.replay")) if self.dir.is_dir() else []

    def pending(self) -> bool:
        try:
            if self.path.stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
        return bool(self.replay_files())

    def drain(self, handler: Callable[[list[dict[str, Any]]], object], *, batch: int = 500) -> int:
        """Feed every spooled record to ``handler`` (in batches, oldest first); returns the count.

        If ``handler`` raises, the unfinished file stays for the next drain and the error propagates.
        """
        if not self.dir.is_dir():
            return 0
        with self._locked():
            if self.path.exists() and self.path.stat().st_size > 0:
                os.replace(self.path, self.dir / f"{self.name}.{new_id()}.replay")
                _fsync_dir(self.dir)
        done = 0
        for path in self.replay_files():
            done += self._drain_file(path, handler, batch)
        return done

    def _drain_file(self, path: Path, handler: Callable[[list[dict[str, Any]]], object], batch: int) -> int:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return 0  # another process finished it
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return 0  # another process is draining it
            if os.fstat(fd).st_nlink == 0:
                return 0
            records, bad = [], []
            with os.fdopen(os.dup(fd), "rb") as f:
                for line in f:
                    if not line.strip():
                        continue
                    try:
                        records.append(json.loads(line))
                    except ValueError:
                        bad.append(line if line.endswith(b"\n") else line + b"\n")
            for start in range(0, len(records), batch):
                handler(records[start:start + batch])
            if bad:
                with open(self.dir / f"{self.name}.bad", "ab") as out:
                    out.writelines(bad)
                    out.flush()
                    os.fsync(out.fileno())
                log.warning("unreadable spool lines kept aside", extra={"spool": self.name, "lines": len(bad)})
            path.unlink()
            _fsync_dir(self.dir)
            return len(records)
        finally:
            os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Durable:
    def __init__(self, spool: Spool, retry_after_s: float) -> None:
        self.spool = spool
        self.retry_after_s = retry_after_s
        self._down_until = 0.0
        self._check_after = 0.0  # next time to look for a spool left by this or another process
        self._drain_lock = threading.Lock()

    def _write(self, items: list[T], write: Callable[[list[T]], object], kind: str) -> None:
        if time.monotonic() >= self._down_until:
            try:
                write(items)
            except Unavailable:
                self._down_until = time.monotonic() + self.retry_after_s
            else:
                self._maybe_drain()
                return
        self.spool.append([x.to_dict() for x in items])
        self._check_after = 0.0
        log.warning("store down: records spooled", extra={"kind": kind, "count": len(items)})

    def _maybe_drain(self) -> None:
        now = time.monotonic()
        if now < self._check_after or not self._drain_lock.acquire(blocking=False):
            return
        try:
            self._check_after = now + self.retry_after_s
            if self.spool.pending():
                self.replay()
        except Unavailable:
            self._down_until = time.monotonic() + self.retry_after_s
        finally:
            self._drain_lock.release()

    def replay(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError


class DurableChatLog(_Durable):
    """A :class:`ChatLogStore` whose writes survive an outage of the wrapped store."""

    def __init__(self, store: ChatLogStore, spool: Spool, pseudonymize: Pseudonymizer, *,
                 retry_after_s: float = 5.0) -> None:
        super().__init__(spool, retry_after_s)
        self.store = store
        self.pseudonymize = pseudonymize

    def record(self, log_: ChatLog) -> ChatLog:
        x = prepare_log(log_, self.pseudonymize)  # validated + pseudonymised before it can touch a disk
        self._write([x], lambda xs: self.store.record(xs[0]), "chat_log")
        return x

    def record_many(self, logs: Sequence[ChatLog]) -> int:
        xs = [prepare_log(x, self.pseudonymize) for x in logs]
        counted: list[int] = []
        self._write(xs, lambda items: counted.append(self.store.record_many(items)), "chat_log")
        return counted[0] if counted else len(xs)

    def replay(self) -> int:
        """Store every spooled log (idempotent); returns how many records were replayed."""
        return self.spool.drain(lambda rows: self.store.record_many([ChatLog.from_dict(r) for r in rows]))

    def get(self, log_id: str) -> ChatLog:
        return self.store.get(log_id)

    def list(self, query: LogQuery) -> Page[ChatLog]:
        return self.store.list(query)

    def overview(self, *, since: datetime | None = None, until: datetime | None = None,
                 app: str | None = None) -> Overview:
        return self.store.overview(since=since, until=until, app=app)

    def trends(self, *, since: datetime, until: datetime, bucket: Bucket = "day", tz: str = "UTC",
               app: str | None = None) -> builtins.list[TrendPoint]:
        return self.store.trends(since=since, until=until, bucket=bucket, tz=tz, app=app)

    def feedback_stats(self, *, since: datetime | None = None, until: datetime | None = None,
                       app: str | None = None, tz: str = "UTC") -> FeedbackStats:
        return self.store.feedback_stats(since=since, until=until, app=app, tz=tz)

    def top_questions(self, *, since: datetime | None = None, until: datetime | None = None,
                      app: str | None = None, kind: QuestionKind = "all",
                      limit: int = 20) -> builtins.list[QuestionCount]:
        return self.store.top_questions(since=since, until=until, app=app, kind=kind, limit=limit)

    def users(self, *, since: datetime | None = None, until: datetime | None = None, app: str | None = None,
              limit: int = 50, offset: int = 0) -> Page[UserStats]:
        return self.store.users(since=since, until=until, app=app, limit=limit, offset=offset)

    def close(self) -> None:
        self.store.close()


class DurableFeedback(_Durable):
    """A :class:`FeedbackStore` whose writes survive an outage of the wrapped store."""

    def __init__(self, store: FeedbackStore, spool: Spool, pseudonymize: Pseudonymizer, *,
                 retry_after_s: float = 5.0) -> None:
        super().__init__(spool, retry_after_s)
        self.store = store
        self.pseudonymize = pseudonymize

    def record(self, feedback: Feedback) -> Feedback:
        x = prepare_feedback(feedback, self.pseudonymize)
        self._write([x], lambda xs: self.store.record(xs[0]), "feedback")
        return x

    def record_many(self, items: Sequence[Feedback]) -> int:
        xs = [prepare_feedback(x, self.pseudonymize) for x in items]
        counted: list[int] = []
        self._write(xs, lambda ys: counted.append(self.store.record_many(ys)), "feedback")
        return counted[0] if counted else len(xs)

    def replay(self) -> int:
        return self.spool.drain(lambda rows: self.store.record_many([Feedback.from_dict(r) for r in rows]))

    def get(self, feedback_id: str) -> Feedback:
        return self.store.get(feedback_id)

    def list(self, *, message_id: str | None = None, session_id: str | None = None, user_id: str | None = None,
             rating: Rating | None = None, since: datetime | None = None, until: datetime | None = None,
             limit: int = 50, offset: int = 0) -> Page[Feedback]:
        return self.store.list(message_id=message_id, session_id=session_id, user_id=user_id, rating=rating,
                               since=since, until=until, limit=limit, offset=offset)

    def close(self) -> None:
        self.store.close()
