"""Long-running pipeline services: the embedded watcher and the broker consumer, plus the one-message job.

* :func:`watch_loop` (one machine, no broker): poll the landing store for new manifests, transfer them,
  index what was delivered; repeat every ``interval_s`` until ``stop`` is set.
* :func:`consume_loop` (server deployment): S3 ObjectCreated notifications from RabbitMQ or a Redis stream
  (the consumers in :mod:`jisik.pipeline.events`) drive transfer; after each batch (``batch`` messages,
  or ``idle_s`` seconds without one) what was delivered is indexed as one new version per collection.
  A message is acknowledged only after its objects were delivered (at-least-once).
* :func:`event_job`: the same for the events of one message (the Celery task ``handle_s3_event``).

A round that did something is saved as a run report. Failures back off instead of spinning: an index
stage that failed is retried after a growing pause unless new objects arrive (a poisoned object is
dead-lettered by the stage, so the next batch goes on without it); a failing landing store slows the
watcher's polls down; an unreachable broker or receipt database (:class:`Unavailable`) makes the
consumer wait and reconnect (``--exit-when-idle`` fails at once instead). Every pause doubles up to
``max_backoff_s`` (default ``JISIK_PIPELINE_MAX_BACKOFF_S``) and returns to normal after a success;
``wait``/``clock`` are injectable so tests never sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from jisik.core.errors import Unavailable
from jisik.core.logging import get_logger
from jisik.core.settings import Settings
from jisik.pipeline.events.s3format import ObjectEvent
from jisik.pipeline.jobs import ConfigRef, finish_report, now_iso, open_pipeline
from jisik.pipeline.runner import Pipeline, RunReport, StageHook, StageReport
from jisik.pipeline.sources.base import new_run_id
from jisik.pipeline.transfer import Transfer, backoff_s

log = get_logger(__name__)
OnReport = Callable[[RunReport], None]
Wait = Callable[[float], object]  # sleeps (interruptibly): stop.wait by default


class EventConsumer(Protocol):
    def consume(self, handler: Callable[[ObjectEvent], None], *, max_messages: int | None = None,
                idle_timeout_s: float | None = None, stop: threading.Event | None = None) -> int: ...


@dataclass
class EventDelivery:
    """Delivers object events through a Transfer and tallies the outcome as a transfer StageReport."""

    transfer: Transfer
    stage: StageReport = field(default_factory=lambda: StageReport("transfer", "notifications"))
    started: float = field(default_factory=time.perf_counter)

    def __call__(self, event: ObjectEvent) -> None:
        receipt = self.transfer.handle(event)
        counts = self.stage.counts
        outcome = "ignored" if receipt is None else receipt.status
        counts[outcome] = counts.get(outcome, 0) + 1
        if outcome == "dead":
            n = counts["dead"]
            self.stage.status = "failed"
            self.stage.error = {"type": "DeadLetter", "message_ko": f"{n}개 객체를 전달하지 못했습니다 (dead letter).",
                                "message_en": f"{n} object(s) could not be delivered (dead letters)."}

    @property
    def handled(self) -> bool:
        return bool(self.stage.counts.get("delivered") or self.stage.counts.get("dead"))

    def finish(self) -> StageReport:
        self.stage.seconds = round(time.perf_counter() - self.started, 3)
        return self.stage


@dataclass
class Backoff:
    """Consecutive failures -> a pause of ``base_s * 2**failures`` capped at ``max_s`` (``base_s`` after none)."""

    base_s: float
    max_s: float
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    not_before: float = 0.0

    @property
    def pause_s(self) -> float:
        return backoff_s(self.base_s, self.failures, max(self.max_s, self.base_s))

    def failed(self) -> float:
        """Count a failure; returns the pause before the next attempt."""
        self.failures += 1
        self.not_before = self.clock() + self.pause_s
        return self.pause_s

    def succeeded(self) -> None:
        self.failures, self.not_before = 0, 0.0

    def due(self, new_objects: bool = False) -> bool:
        """Time for the next attempt (at once when something new arrived)."""
        return new_objects or self.clock() >= self.not_before

    def record(self, reports: list[StageReport]) -> None:
        if any(r.status == "failed" for r in reports):
            self.failed()
        else:
            self.succeeded()


def _index_if_pending(p: Pipeline, report: RunReport, backoff: Backoff, new_objects: bool, runtime: Any) -> None:
    try:
        waiting = bool(p.receipts.pending(limit=1))
    except Unavailable as exc:  # the receipt database is down: the next round tries again
        log.warning("receipts unavailable; indexing later", extra={"error": exc.message_en})
        return
    if waiting and backoff.due(new_objects):
        backoff.record(p.index_delivered(report, runtime=runtime))


def event_job(config: ConfigRef, events: Iterable[ObjectEvent], *, index: bool = True,
              settings: Settings | None = None, runtime: Any = None, on_stage: StageHook | None = None) -> RunReport:
    """Deliver the objects named by ``events`` and index what is pending (one saved run report)."""
    with open_pipeline(config, settings, on_stage=on_stage) as p:
        report = RunReport(new_run_id(), now_iso())
        delivery = EventDelivery(p.transfer())
        for event in events:
            delivery(event)
        report.stages.append(delivery.finish())
        if index and p.receipts.pending(limit=1):
            p.index_delivered(report, runtime=runtime)
        return finish_report(p, report)


def watch_loop(config: ConfigRef, *, interval_s: float = 2.0, stop: threading.Event | None = None,
               max_rounds: int | None = None, settings: Settings | None = None, runtime: Any = None,
               on_report: OnReport | None = None, max_backoff_s: float | None = None, wait: Wait | None = None,
               clock: Callable[[], float] = time.monotonic) -> int:
    """Poll, transfer and index until ``stop`` is set (or ``max_rounds`` polls); returns objects delivered."""
    stop = stop or threading.Event()
    pause = wait or stop.wait
    delivered = rounds = 0
    with open_pipeline(config, settings) as p:
        cap = p.settings.pipeline_max_backoff_s if max_backoff_s is None else max_backoff_s
        index_backoff, polls = Backoff(interval_s, cap, clock), Backoff(interval_s, cap, clock)
        while not stop.is_set():
            report = RunReport(new_run_id(), now_iso())
            rep = p.transfer_landed(report)
            fresh = int(rep.counts.get("delivered", 0))
            delivered += fresh
            _index_if_pending(p, report, index_backoff, fresh > 0, runtime)
            if fresh or rep.status == "failed" or len(report.stages) > 1:
                finish_report(p, report)
                if on_report:
                    on_report(report)
            rounds += 1
            if max_rounds is not None and rounds >= max_rounds:
                break
            # the landing store is failing: poll less often each time instead of a failed report every poll
            if rep.status == "failed" and not fresh:
                polls.failed()
            else:
                polls.succeeded()
            pause(polls.pause_s)
    return delivered


def consume_loop(config: ConfigRef, consumer: EventConsumer, *, batch: int = 100, idle_s: float = 2.0,
                 stop: threading.Event | None = None, exit_when_idle: bool = False,
                 settings: Settings | None = None, runtime: Any = None, on_report: OnReport | None = None,
                 max_backoff_s: float | None = None, wait: Wait | None = None,
                 clock: Callable[[], float] = time.monotonic) -> int:
    """Consume notifications in batches, index after each batch; returns the number of messages acked.

    An unreachable broker or receipt database (:class:`Unavailable`) is waited out with a growing
    pause and the consumer reconnects, unless ``exit_when_idle`` (then it is raised).
    """
    stop = stop or threading.Event()
    pause = wait or stop.wait
    total = 0
    with open_pipeline(config, settings) as p:
        cap = p.settings.pipeline_max_backoff_s if max_backoff_s is None else max_backoff_s
        index_backoff, outage = Backoff(idle_s, cap, clock), Backoff(idle_s, cap, clock)
        transfer = p.transfer()
        while not stop.is_set():
            report = RunReport(new_run_id(), now_iso())
            delivery = EventDelivery(transfer)
            failure: Unavailable | None = None
            try:
                n = consumer.consume(delivery, max_messages=batch, idle_timeout_s=idle_s, stop=stop)
            except Unavailable as exc:
                if exit_when_idle:
                    raise
                failure, n = exc, 0
            total += n
            if delivery.handled:  # also before a failure: what was delivered is indexed
                report.stages.append(delivery.finish())
            _index_if_pending(p, report, index_backoff, delivery.handled, runtime)
            if report.stages:
                finish_report(p, report)
                if on_report:
                    on_report(report)
            if failure is not None:
                delay = outage.failed()
                log.warning("event consumer unavailable; reconnecting",
                            extra={"error": failure.message_en, "failures": outage.failures, "retry_in_s": delay})
                pause(delay)
                continue
            outage.succeeded()
            if n == 0 and exit_when_idle:
                break
    log.info("event consumer stopped", extra={"messages": total})
    return total
