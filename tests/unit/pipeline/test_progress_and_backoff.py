"""The stage hook (CLI progress, Celery task state) and the retry pauses of the transfer, the watcher and
the event consumer — every pause recorded by a fake wait or clock, none slept."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from celery import Celery
from celery.backends.base import DisabledBackend
from rich.console import Console
from rich.text import Text
from typer.testing import CliRunner

from jisik.cli import app
from jisik.cli_pipeline import _Display
from jisik.core.errors import Unavailable
from jisik.core.settings import Settings, get_settings
from jisik.pipeline.config import load_pipeline_config
from jisik.pipeline.events.local import LocalWatcher
from jisik.pipeline.jobs import extract_job, open_pipeline, run_job
from jisik.pipeline.runner import StageReport
from jisik.pipeline.service import Backoff, consume_loop, watch_loop
from jisik.pipeline.tasks import progress_hook
from jisik.pipeline.transfer import RetryPolicy, backoff_s
from pipeline_env import execute
from pipeline_fixtures import write_pipeline

# -- the stage hook ---------------------------------------------------------------------------------

def test_a_broken_hook_never_fails_a_run(tmp_path: Path) -> None:
    calls: list[str] = []

    def broken(rep: StageReport) -> None:
        calls.append(rep.stage)
        raise RuntimeError("display gone")

    report = run_job(write_pipeline(tmp_path / "p"), ["faq"], on_stage=broken, index=False)
    assert report.status == "ok" and calls == ["sweep", "sweep", "extract", "extract", "transfer", "transfer"]


def test_the_cli_display_shows_running_stages_and_prints_each_end() -> None:
    out = io.StringIO()
    display = _Display(True, Console(file=out, force_terminal=True, width=120))
    with display:
        display(StageReport("index", "faq", status="running"))
        assert len(display.tasks) == 1
        display(StageReport("index", "faq", status="running", counts={"documents": 256, "chunks": 300}))
        [task] = display.progress.tasks  # type: ignore[union-attr]
        assert task.description == "색인: faq [dim]documents 256, chunks 300[/]"
        display(StageReport("index", "faq", status="ok", counts={"added": 2}, seconds=1.25))
        assert display.tasks == {} and display.progress.tasks == []  # type: ignore[union-attr]
    shown = Text.from_ansi(out.getvalue()).plain
    assert "색인 faq: added 2 (1.2초)" in shown

    quiet = io.StringIO()
    plain = _Display(True, Console(file=quiet, force_terminal=False))  # a pipe: no live display, end lines only
    plain(StageReport("extract", "events", status="running"))
    plain(StageReport("extract", "events", status="failed", error={"message_ko": "소스 오류"}))
    assert plain.progress is None and "추출 events" in quiet.getvalue() and "소스 오류" in quiet.getvalue()


def test_celery_tasks_publish_the_stage_as_progress_state() -> None:
    states: list[tuple[str, dict[str, Any]]] = []
    task = SimpleNamespace(request=SimpleNamespace(id="task-1"), backend=object(),
                           update_state=lambda state, meta: states.append((state, meta)))
    hook = progress_hook(task)  # type: ignore[arg-type]
    hook(StageReport("extract", "events", status="running"))
    hook(StageReport("extract", "events", status="ok", counts={"rows": 3}))
    assert states == [("PROGRESS", {"stage": "extract", "name": "events", "status": "running", "counts": {}}),
                      ("PROGRESS", {"stage": "extract", "name": "events", "status": "ok", "counts": {"rows": 3}})]
    states.clear()
    progress_hook(SimpleNamespace(request=SimpleNamespace(id=None), backend=object(),  # type: ignore[arg-type]
                                  update_state=None))(StageReport("index", "x"))  # called directly, not a task
    disabled = DisabledBackend(app=Celery("test", set_as_current=False))
    progress_hook(SimpleNamespace(request=SimpleNamespace(id="t"), backend=disabled,  # type: ignore[arg-type]
                                  update_state=None))(StageReport("index", "x"))
    assert states == []


def test_run_allow_shrink_flag(tmp_path: Path) -> None:
    config = write_pipeline(tmp_path / "p")
    runner = CliRunner()

    def run(*extra: str) -> tuple[int, dict[str, Any]]:
        result = runner.invoke(app, ["pipeline", "run", str(config), "--source", "events", "--json", *extra])
        return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])

    assert run()[0] == 0
    execute(f"sqlite:///{tmp_path / 'p' / 'warehouse.sqlite3'}", "DELETE FROM events")
    code, report = run()
    failed = [(s["stage"], s["name"], s["error"]["type"]) for s in report["stages"] if s["status"] == "failed"]
    assert code == 1 and failed == [("extract", "events", "ShrinkRefused")]
    code, report = run("--allow-shrink")
    deleted = {s["name"]: s["counts"].get("deleted") for s in report["stages"] if s["stage"] == "index"}
    assert code == 0 and deleted["events"] == 3


# -- retry pauses -----------------------------------------------------------------------------------

def test_backoff_doubles_caps_and_never_overflows() -> None:
    assert [backoff_s(1.0, n, 60.0) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff_s(1.0, 10**6, 60.0) == 60.0 and backoff_s(0.0, 3, 60.0) == 0.0
    assert backoff_s(5.0, 3, 2.0) == 2.0 and backoff_s(0.5, 2, 10.0, factor=3.0) == 4.5
    now = [100.0]
    b = Backoff(2.0, 300.0, clock=lambda: now[0])
    assert b.pause_s == 2.0 and b.due()
    assert [b.failed() for _ in range(3)] == [4.0, 8.0, 16.0]
    assert not b.due() and b.due(new_objects=True)
    now[0] += 16.0
    assert b.due()
    for _ in range(5000):  # days of outage: the pause stays capped (2 ** 5000 would overflow a float)
        b.failed()
    assert b.pause_s == 300.0
    b.succeeded()
    assert (b.failures, b.pause_s) == (0, 2.0)


def test_transfer_retries_follow_the_settings() -> None:
    policy = RetryPolicy.from_settings(Settings(pipeline_retry_attempts=3, pipeline_retry_initial_s=0.5,
                                                pipeline_retry_max_s=1.5))
    assert (policy.max_attempts, policy.initial_delay_s, policy.max_delay_s) == (3, 0.5, 1.5)
    exact = RetryPolicy(initial_delay_s=0.5, max_delay_s=1.5, jitter=0.0)
    assert [exact.delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, 1.5]
    with open_pipeline(load_pipeline_config(write_pipeline(Path(get_settings().home) / "cfg"))) as p:
        assert p.transfer().retry == RetryPolicy.from_settings(get_settings())  # the tests' short pauses
    assert get_settings().pipeline_retry_initial_s == 0.01


def test_watch_loop_polls_less_often_while_the_landing_store_fails(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_pipeline(tmp_path / "p")
    assert extract_job(config, "faq").status == "ok"
    real_poll = LocalWatcher.poll
    failures = iter(range(3))

    def flaky_poll(self: LocalWatcher) -> Any:
        if next(failures, None) is not None:
            raise Unavailable("적재 저장소에 연결할 수 없습니다.", "Landing store unavailable")
        return real_poll(self)

    monkeypatch.setattr(LocalWatcher, "poll", flaky_poll)
    waits: list[float] = []
    statuses: list[str] = []
    delivered = watch_loop(config, interval_s=0.5, max_rounds=6, max_backoff_s=1.5, wait=waits.append,
                           on_report=lambda r: statuses.append(r.status))
    assert waits == [1.0, 1.5, 1.5, 0.5, 0.5]  # doubling while failing (capped), the interval once it works
    assert delivered == 1 and statuses == ["failed", "failed", "failed", "ok"]


class _FlakyConsumer:
    """A broker that is down for the first ``down`` connections, then has nothing to deliver."""

    def __init__(self, down: int, stop: threading.Event | None = None) -> None:
        self.down, self.calls, self.stop = down, 0, stop

    def consume(self, handler: Callable[..., None], *, max_messages: int | None = None,
                idle_timeout_s: float | None = None, stop: threading.Event | None = None) -> int:
        self.calls += 1
        if self.calls <= self.down:
            raise Unavailable("RabbitMQ에 연결할 수 없습니다.", "RabbitMQ unreachable")
        if self.stop is not None:
            self.stop.set()
        return 0


def test_the_event_consumer_waits_out_a_broker_outage(tmp_path: Path) -> None:
    config = write_pipeline(tmp_path / "p")
    stop = threading.Event()
    consumer = _FlakyConsumer(down=4, stop=stop)
    waits: list[float] = []
    assert consume_loop(config, consumer, idle_s=0.25, stop=stop, max_backoff_s=1.0, wait=waits.append) == 0
    assert consumer.calls == 5 and waits == [0.5, 1.0, 1.0, 1.0]

    with pytest.raises(Unavailable):  # batch mode (--exit-when-idle) fails at once instead of waiting
        consume_loop(config, _FlakyConsumer(down=1), idle_s=0.25, exit_when_idle=True, wait=waits.append)
    assert len(waits) == 4
