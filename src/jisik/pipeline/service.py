"""Long-running pipeline services: the embedded watcher and the broker consumer, plus the one-message job.

* :func:`watch_loop` (one machine, no broker): poll the landing store for new manifests, transfer them,
  index what was delivered; repeat every ``interval_s`` until ``stop`` is set.
* :func:`consume_loop` (server deployment): S3 ObjectCreated notifications from RabbitMQ or a Redis stream
  (the consumers in :mod:`jisik.pipeline.events`) drive transfer; after each batch (``batch`` messages,
  or ``idle_s`` seconds without one) what was delivered is indexed as one new version per collection.
  A message is acknowledged only after its objects were delivered (at-least-once).
* :func:`event_job`: the same for the events of one message (the Celery task ``handle_s3_event``).

A round that did something is saved as a run report; an index stage that failed is retried with a
growing pause (up to ``max_backoff_s``) unless new objects arrive, so a broken object does not turn
into a failed report every poll.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from jisik.core.logging import get_logger
from jisik.core.settings import Settings
from jisik.pipeline.events.s3format import ObjectEvent
from jisik.pipeline.jobs import ConfigRef, ObservedPipeline, finish_report, now_iso, open_pipeline
from jisik.pipeline.runner import RunReport, StageReport
from jisik.pipeline.sources.base import new_run_id
from jisik.pipeline.transfer import Transfer

log = get_logger(__name__)
OnReport = Callable[[RunReport], None]


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
class _IndexBackoff:
    """Skip re-indexing after a failure for a growing pause, unless something new was delivered."""

    base_s: float
    max_s: float
    failures: int = 0
    not_before: float = 0.0

    def due(self, new_objects: bool) -> bool:
        return new_objects or time.monotonic() >= self.not_before

    def record(self, reports: list[StageReport]) -> None:
        if any(r.status == "failed" for r in reports):
            self.failures += 1
            self.not_before = time.monotonic() + min(self.max_s, self.base_s * 2 ** self.failures)
        else:
            self.failures, self.not_before = 0, 0.0


def _index_if_pending(p: ObservedPipeline, report: RunReport, backoff: _IndexBackoff, new_objects: bool,
                      runtime: Any) -> None:
    if p.receipts.pending(limit=1) and backoff.due(new_objects):
        backoff.record(p.index_delivered(report, runtime=runtime))


def event_job(config: ConfigRef, events: Iterable[ObjectEvent], *, index: bool = True,
              settings: Settings | None = None, runtime: Any = None) -> RunReport:
    """Deliver the objects named by ``events`` and index what is pending (one saved run report)."""
    with open_pipeline(config, settings) as p:
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
               on_report: OnReport | None = None, max_backoff_s: float = 300.0) -> int:
    """Poll, transfer and index until ``stop`` is set (or ``max_rounds`` polls); returns objects delivered."""
    stop = stop or threading.Event()
    backoff = _IndexBackoff(interval_s, max_backoff_s)
    delivered = rounds = transfer_failures = 0
    with open_pipeline(config, settings) as p:
        while not stop.is_set():
            report = RunReport(new_run_id(), now_iso())
            rep = p.transfer_landed(report)
            fresh = int(rep.counts.get("delivered", 0))
            delivered += fresh
            _index_if_pending(p, report, backoff, fresh > 0, runtime)
            if fresh or rep.status == "failed" or len(report.stages) > 1:
                finish_report(p, report)
                if on_report:
                    on_report(report)
            rounds += 1
            if max_rounds is not None and rounds >= max_rounds:
                break
            # the landing store is failing: wait longer each time instead of a failed report every poll
            transfer_failures = transfer_failures + 1 if rep.status == "failed" and not fresh else 0
            stop.wait(min(max_backoff_s, interval_s * 2 ** transfer_failures))
    return delivered


def consume_loop(config: ConfigRef, consumer: EventConsumer, *, batch: int = 100, idle_s: float = 2.0,
                 stop: threading.Event | None = None, exit_when_idle: bool = False,
                 settings: Settings | None = None, runtime: Any = None, on_report: OnReport | None = None,
                 max_backoff_s: float = 300.0) -> int:
    """Consume notifications in batches, index after each batch; returns the number of messages acked."""
    stop = stop or threading.Event()
    backoff = _IndexBackoff(idle_s, max_backoff_s)
    total = 0
    with open_pipeline(config, settings) as p:
        transfer = p.transfer()
        while not stop.is_set():
            report = RunReport(new_run_id(), now_iso())
            delivery = EventDelivery(transfer)
            n = consumer.consume(delivery, max_messages=batch, idle_timeout_s=idle_s, stop=stop)
            total += n
            if delivery.handled:
                report.stages.append(delivery.finish())
            _index_if_pending(p, report, backoff, delivery.handled, runtime)
            if report.stages:
                finish_report(p, report)
                if on_report:
                    on_report(report)
            if n == 0 and exit_when_idle:
                break
    log.info("event consumer stopped", extra={"messages": total})
    return total
