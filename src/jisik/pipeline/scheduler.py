"""The embedded scheduler (one machine): APScheduler 3 runs the pipeline's ``schedules`` in-process.

One cron job per ``schedules`` entry (five crontab fields in the entry's time zone); each firing is
``Pipeline.run(sources=entry.sources)`` through :func:`jisik.pipeline.jobs.run_job`, each stage's end logged
(:func:`~jisik.pipeline.jobs.log_stage`).

* **No overlap**: every job has ``max_instances=1`` and ``coalesce=True`` (a run still going when the
  next firing comes makes that firing a no-op; firings missed while the process was down collapse into
  one run if within ``misfire_grace_s``), and all jobs share ONE worker thread, so two schedule entries
  never run at the same time against the same stores either.
* **One scheduler per JISIK_HOME**: :meth:`PipelineScheduler.start` takes an exclusive ``flock`` on
  ``{home}/pipeline/scheduler.lock``; a second scheduler fails with :class:`Conflict`. The lock goes
  with the process (also when it is killed).
* Crontab day-of-week numbers mean what cron means (0 and 7 = Sunday; APScheduler 3 counts from
  Monday, so :func:`crontab_trigger` translates them).
"""

from __future__ import annotations

import fcntl
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from jisik.core.errors import ConfigError, Conflict
from jisik.core.logging import get_logger
from jisik.core.settings import Settings, get_settings
from jisik.pipeline.config import PipelineConfig, Schedule
from jisik.pipeline.jobs import ConfigRef, as_config, log_stage, run_job

log = get_logger(__name__)
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DAY_NUMBER = {name: i for i, name in enumerate(_DAYS)}


def _day(token: str) -> int:
    token = token.strip().lower()[:3]
    if token in _DAY_NUMBER:
        return _DAY_NUMBER[token]
    if token.isdigit() and 0 <= int(token) <= 7:
        return int(token)
    raise ValueError(f"invalid day of week {token!r}")


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field (0/7 = Sunday, names, ranges, lists, steps) as APScheduler day names."""
    if field in ("*", "?"):
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError(f"invalid step in {part!r}")
        if span == "*":
            lo, hi = 0, 6
        elif "-" in span:
            lo, hi = (_day(t) for t in span.split("-", 1))
        else:
            lo = _day(span)
            hi = 6 if step_text else lo
        if hi < lo:
            raise ValueError(f"descending day range {part!r}")
        days.update(d % 7 for d in range(lo, hi + 1, step))
    return ",".join(_DAYS[d] for d in sorted(days))


def crontab_trigger(cron: str, timezone: str) -> CronTrigger:
    """A CronTrigger for a five-field crontab line in ``timezone`` (errors are ConfigError)."""
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"알 수 없는 시간대입니다: {timezone}", f"Unknown time zone {timezone!r}") from exc
    fields = cron.split()
    try:
        if len(fields) != 5:
            raise ValueError("expected five fields")
        minute, hour, day, month, weekday = fields
        return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                           day_of_week=crontab_weekdays(weekday), timezone=tz)
    except ValueError as exc:
        raise ConfigError(f"cron 식이 올바르지 않습니다: {cron!r}", f"Invalid cron expression {cron!r}: {exc}") from exc


def job_id(index: int, schedule: Schedule) -> str:
    return f"schedule-{index}-{'+'.join(schedule.sources)}"


@dataclass(frozen=True, slots=True)
class PlannedJob:
    id: str
    sources: list[str]
    cron: str
    timezone: str
    next_run: datetime | None


class PipelineScheduler:
    """The pipeline's schedules on an APScheduler scheduler (background thread or blocking foreground)."""

    def __init__(self, config: ConfigRef, settings: Settings | None = None, *, blocking: bool = False,
                 misfire_grace_s: int = 300, runtime: Any = None) -> None:
        self.config: PipelineConfig = as_config(config)
        self.settings = settings or get_settings()
        self.runtime = runtime  # shared by every run (the embedder loads once); None = the process default
        self.lock_path = self.settings.home.resolve() / "pipeline" / "scheduler.lock"
        self._lock: IO[str] | None = None
        self._release_guard = threading.Lock()
        options: dict[str, Any] = {"executors": {"default": ThreadPoolExecutor(max_workers=1)},
                                   "timezone": ZoneInfo("UTC")}
        self.blocking = blocking
        self.scheduler: BaseScheduler = BlockingScheduler(**options) if blocking else BackgroundScheduler(**options)
        for i, entry in enumerate(self.config.schedules):
            self.scheduler.add_job(self.run_sources, crontab_trigger(entry.cron, entry.timezone),
                                   args=[list(entry.sources)], id=job_id(i, entry), name=job_id(i, entry),
                                   max_instances=1, coalesce=True, misfire_grace_time=misfire_grace_s)

    def run_sources(self, sources: list[str]) -> str:
        """One scheduled run (the job function); returns the run's status."""
        report = run_job(self.config, sources, settings=self.settings, runtime=self.runtime, on_stage=log_stage)
        level = log.info if report.status == "ok" else log.error
        level("scheduled pipeline run finished", extra={"run_id": report.run_id, "status": report.status,
                                                         "sources": len(sources)})
        return report.status

    def planned(self, now: datetime | None = None) -> list[PlannedJob]:
        """Each job with its next fire time (computed from ``now`` when the scheduler is not running)."""
        out = []
        for i, entry in enumerate(self.config.schedules):
            job = self.scheduler.get_job(job_id(i, entry))
            assert job is not None
            nxt = getattr(job, "next_run_time", None)
            if nxt is None and self.scheduler.state == STATE_STOPPED:  # not started: ask the trigger
                start = now or datetime.now(ZoneInfo(entry.timezone))
                nxt = job.trigger.get_next_fire_time(None, start)
            out.append(PlannedJob(job.id, list(entry.sources), entry.cron, entry.timezone, nxt))
        return out

    def _acquire(self) -> None:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.lock_path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise Conflict("이 JISIK_HOME에서 다른 스케줄러가 이미 실행 중입니다.",
                           f"Another pipeline scheduler already runs for this JISIK_HOME (pid {holder}).",
                           hint="stop the other scheduler first", details={"lock": str(self.lock_path)}) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle

    def _release(self) -> None:
        # called from shutdown() (a signal handler) and when a blocking start() returns: whichever
        # comes first takes the handle; the other finds None
        with self._release_guard:
            handle, self._lock = self._lock, None
        if handle is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_UN)
            finally:
                handle.close()

    def start(self, *, paused: bool = False) -> None:
        """Take the lock and start (a BlockingScheduler returns only after :meth:`shutdown`)."""
        self._acquire()
        log.info("pipeline scheduler started", extra={"jobs": len(self.config.schedules)})
        try:
            self.scheduler.start(paused=paused)
        except BaseException:
            self._release()
            raise
        if self.blocking:  # start() returned: the scheduler has stopped
            self._release()

    def shutdown(self, *, wait: bool = True) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=wait)
        self._release()
