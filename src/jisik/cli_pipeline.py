"""`jisik pipeline …`: run the data pipeline of a YAML config (sources -> landing -> transfer -> index).

Exit codes: 0 ok, 1 a stage (or the service) failed, 2 the config or an argument is wrong.
CONFIG may also come from ``JISIK_PIPELINE_CONFIG``.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from jisik.cli_common import print_error
from jisik.core.errors import ConfigError, InvalidInput, JisikError, NotFound
from jisik.core.settings import get_settings

app = typer.Typer(help="데이터 파이프라인: 추출 -> 적재 -> 전송 -> 색인, 스케줄러, 이벤트 소비자", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
T = TypeVar("T")
ConfigArg = Annotated[Path, typer.Argument(help="파이프라인 YAML", envvar="JISIK_PIPELINE_CONFIG", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON으로 출력")]
LABELS = {"sweep": "정리", "extract": "추출", "transfer": "전송", "index": "색인"}
MARKS = {"ok": "[green]✓[/]", "failed": "[red]✗[/]", "skipped": "[dim]–[/]", "running": "[yellow]…[/]"}
_USAGE_ERRORS = (ConfigError, InvalidInput, NotFound)


def _guard(fn: Callable[[], T]) -> T:
    """Print a JisikError without a traceback: exit 2 for config/argument errors, 1 for the rest."""
    try:
        return fn()
    except JisikError as exc:
        print_error(err, exc)
        raise typer.Exit(2 if isinstance(exc, _USAGE_ERRORS) else 1) from None


def _counts(counts: dict[str, Any]) -> str:
    shown = {k: v for k, v in counts.items() if v} or counts  # zeros only when nothing else happened
    return ", ".join(f"{k} {v}" for k, v in shown.items()) or "-"


def _error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return ""
    return str(error.get("message_ko") or error.get("message") or error.get("type", ""))


class _Display:
    """The runner's stage hook as Rich progress: a spinner row per running stage (with the index stage's
    documents and chunks so far), one line on stderr when a stage ends."""

    def __init__(self, enabled: bool, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or err
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                 console=self.console, transient=True) if enabled and self.console.is_terminal else None
        self.tasks: dict[tuple[str, str], TaskID] = {}

    def __enter__(self) -> _Display:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def __call__(self, rep: Any) -> None:
        key, label = (rep.stage, rep.name), f"{LABELS.get(rep.stage, rep.stage)}: {rep.name}"
        if rep.status == "running":
            description = f"{label} [dim]{_counts(rep.counts)}[/]" if rep.counts else f"{label} …"
            if self.progress is None:
                return
            if key in self.tasks:
                self.progress.update(self.tasks[key], description=description)
            else:
                self.tasks[key] = self.progress.add_task(description, total=None)
            return
        if self.progress is not None and key in self.tasks:
            self.progress.remove_task(self.tasks.pop(key))
        if self.enabled:
            tail = f" [red]{_error_text(rep.error)}[/]" if rep.status == "failed" else ""
            self.console.print(f"{MARKS.get(rep.status, rep.status)} {LABELS.get(rep.stage, rep.stage)} {rep.name}: "
                               f"{_counts(rep.counts)} [dim]({rep.seconds:.1f}초)[/]{tail}")


def _summary(report: Any) -> Table:
    table = Table(title=f"실행 {report.run_id}")
    for col in ("단계", "대상", "상태", "결과", "초"):
        table.add_column(col, overflow="fold")
    for s in report.stages:
        table.add_row(LABELS.get(s.stage, s.stage), s.name, f"{MARKS.get(s.status, '')} {s.status}",
                      _counts(s.counts) if s.status != "failed" else _error_text(s.error), f"{s.seconds:.1f}")
    return table


def _finish(report: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        console.print(_summary(report))
        mark = "[green]성공[/]" if report.status == "ok" else "[red]실패[/]"
        console.print(f"{mark} run {report.run_id} ({len(report.failed)}개 단계 실패)")
    if report.status != "ok":
        raise typer.Exit(1)


def _stage_command(job: Callable[..., Any], as_json: bool, **kwargs: Any) -> None:
    with _Display(not as_json) as display:
        report = _guard(lambda: job(on_stage=display, **kwargs))
    _finish(report, as_json)


AllowShrinkOpt = Annotated[bool, typer.Option(
    "--allow-shrink", help="전체 추출이 비었거나 지난 실행보다 크게 줄어도 적재 (빠진 문서는 색인에서 삭제됨)")]


@app.command()
def run(
    config: ConfigArg,
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="이 소스만 추출 (여러 번 가능)")] = None,
    index: Annotated[bool, typer.Option("--index/--no-index", help="색인 단계까지 실행")] = True,
    allow_shrink: AllowShrinkOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """전체 실행: 정리 -> 소스 추출·적재 -> 수신함 전송 -> 컬렉션별 색인 (실행 보고서 저장)."""
    from jisik.pipeline.jobs import run_job

    _stage_command(run_job, as_json, config=config, sources=source or None, index=index, allow_shrink=allow_shrink)


@app.command()
def extract(
    config: ConfigArg,
    source: Annotated[str, typer.Option("--source", "-s", help="추출할 소스 이름")],
    allow_shrink: AllowShrinkOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """소스 하나를 추출해 적재 저장소에 올립니다 (매니페스트 포함)."""
    from jisik.pipeline.jobs import extract_job

    _stage_command(extract_job, as_json, config=config, source=source, allow_shrink=allow_shrink)


@app.command()
def transfer(config: ConfigArg, as_json: JsonOpt = False) -> None:
    """적재된 새 객체를 지식 저장소 수신함으로 전송합니다 (영수증 기록)."""
    from jisik.pipeline.jobs import transfer_job

    _stage_command(transfer_job, as_json, config=config)


@app.command()
def index(config: ConfigArg, as_json: JsonOpt = False) -> None:
    """전송된 객체를 청크·임베딩해 컬렉션마다 새 버전으로 색인합니다 (retriever 배치)."""
    from jisik.pipeline.jobs import index_job

    _stage_command(index_job, as_json, config=config)


@contextmanager
def _graceful_stop() -> Iterator[threading.Event]:
    """Ctrl-C / SIGTERM set the event (the loop ends after the current step); a second Ctrl-C interrupts."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        err.print("[yellow]멈추는 중…[/] (현재 작업을 마치고 끝냅니다; 다시 Ctrl-C면 즉시 중단)")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _print_round(report: Any) -> None:
    parts = [f"{LABELS.get(s.stage, s.stage)} {s.name} {MARKS.get(s.status, '')} {_counts(s.counts)}"
             for s in report.stages]
    err.print(f"[dim]{report.finished_at}[/] " + " | ".join(parts))


@app.command()
def watch(
    config: ConfigArg,
    interval: Annotated[float, typer.Option(help="적재 저장소를 살피는 간격(초)", min=0.1)] = 2.0,
    once: Annotated[bool, typer.Option("--once", help="한 번만 살피고 끝냄")] = False,
) -> None:
    """내장 이벤트 루프: 새 매니페스트가 적재되면 전송하고 색인합니다 (Ctrl-C로 종료)."""
    from jisik.pipeline.service import watch_loop

    with _graceful_stop() as stop:
        if not once:
            err.print(f"[bold]감시 중[/] {config} ({interval:g}초 간격, Ctrl-C로 종료)")
        delivered = _guard(lambda: watch_loop(config, interval_s=interval, stop=stop, max_rounds=1 if once else None,
                                              on_report=_print_round))
    console.print(f"전송한 객체 {delivered}개")


@app.command()
def consume(
    config: ConfigArg,
    broker: Annotated[str, typer.Option(help="rabbitmq | redis")],
    url: Annotated[str, typer.Option(help="amqp://user:pass@host:5672// 또는 redis://host:6379/0")],
    queue: Annotated[str | None, typer.Option(help="RabbitMQ 큐 또는 Redis 스트림 이름")] = None,
    group: Annotated[str | None, typer.Option(help="Redis 소비자 그룹")] = None,
    exchange: Annotated[str | None, typer.Option(help="RabbitMQ 익스체인지")] = None,
    routing_key: Annotated[str | None, typer.Option(help="RabbitMQ 라우팅 키")] = None,
    batch: Annotated[int, typer.Option(help="이만큼 받으면 색인", min=1)] = 100,
    idle: Annotated[float, typer.Option(help="이 시간(초) 동안 메시지가 없으면 색인", min=0.1)] = 2.0,
    exit_when_idle: Annotated[bool, typer.Option("--exit-when-idle", help="대기 메시지를 다 처리하면 끝냄")] = False,
) -> None:
    """서버 배포: RabbitMQ 또는 Redis 스트림의 S3 이벤트 알림으로 전송과 색인을 실행합니다."""
    from jisik.pipeline.service import consume_loop

    def make_consumer() -> Any:
        if broker == "rabbitmq":
            from jisik.pipeline.events.rabbitmq import (
                DEFAULT_EXCHANGE,
                DEFAULT_QUEUE,
                DEFAULT_ROUTING_KEY,
                RabbitMqEventConsumer,
            )

            return RabbitMqEventConsumer(url, queue or DEFAULT_QUEUE, exchange=exchange or DEFAULT_EXCHANGE,
                                         routing_key=routing_key or DEFAULT_ROUTING_KEY)
        if broker == "redis":
            from jisik.pipeline.events.redis_streams import DEFAULT_GROUP, DEFAULT_STREAM, RedisStreamEventConsumer

            return RedisStreamEventConsumer(url, queue or DEFAULT_STREAM, group or DEFAULT_GROUP)
        raise InvalidInput(f"알 수 없는 브로커입니다: {broker}", f"Unknown broker {broker!r}: use rabbitmq or redis")

    consumer = _guard(make_consumer)
    try:
        with _graceful_stop() as stop:
            if not exit_when_idle:
                err.print(f"[bold]이벤트 소비 중[/] {broker} (Ctrl-C로 종료)")
            n = _guard(lambda: consume_loop(config, consumer, batch=batch, idle_s=idle, stop=stop,
                                            exit_when_idle=exit_when_idle, on_report=_print_round))
    finally:
        if hasattr(consumer, "close"):
            consumer.close()
    console.print(f"처리한 메시지 {n}개")


@app.command()
def schedule(
    config: ConfigArg,
    list_only: Annotated[bool, typer.Option("--list", help="작업과 다음 실행 시각만 보여주고 끝냄")] = False,
    misfire_grace: Annotated[int, typer.Option(help="놓친 실행을 이 시간(초) 안이면 한 번 실행", min=1)] = 300,
    as_json: Annotated[bool, typer.Option("--json", help="작업 목록을 JSON으로 출력하고 끝냄 (--list)")] = False,
) -> None:
    """내장 스케줄러를 포그라운드에서 실행합니다 (YAML의 schedules, cron + 시간대)."""
    from apscheduler.events import EVENT_SCHEDULER_STARTED

    from jisik.pipeline.scheduler import PipelineScheduler

    sched = _guard(lambda: PipelineScheduler(config, get_settings(), blocking=True, misfire_grace_s=misfire_grace))
    planned = sched.planned()
    if as_json:
        print(json.dumps([dataclasses.asdict(j) | {"next_run": j.next_run.isoformat() if j.next_run else None}
                          for j in planned], ensure_ascii=False))
        return
    table = Table(title="스케줄")
    for col in ("작업", "소스", "cron", "시간대", "다음 실행"):
        table.add_column(col, overflow="fold")
    for job in planned:
        table.add_row(job.id, ", ".join(job.sources), job.cron, job.timezone,
                      job.next_run.isoformat(timespec="minutes") if job.next_run else "-")
    console.print(table)
    if list_only:
        return
    if not sched.config.schedules:
        def nothing_to_run() -> None:
            raise ConfigError(f"{config.name}에 schedules가 없습니다.", f"{config.name} has no schedules to run.")

        _guard(nothing_to_run)
    sched.scheduler.add_listener(lambda event: err.print("[bold]스케줄러 실행 중[/] (Ctrl-C로 종료)"),
                                 EVENT_SCHEDULER_STARTED)  # the lock is held by then
    with _graceful_stop() as stop:
        def stop_when_asked() -> None:
            stop.wait()
            sched.shutdown(wait=False)

        threading.Thread(target=stop_when_asked, daemon=True).start()
        try:
            _guard(sched.start)
        except KeyboardInterrupt:
            sched.shutdown(wait=False)
        finally:
            stop.set()


@app.command()
def runs(
    config: ConfigArg,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 20,
    as_json: JsonOpt = False,
) -> None:
    """최근 실행 보고서 (최신순)."""
    from jisik.pipeline.jobs import open_pipeline

    def load() -> list[dict[str, Any]]:
        with open_pipeline(config) as p:
            return p.reports(limit)

    reports = _guard(load)
    if as_json:
        print(json.dumps(reports, ensure_ascii=False))
        return
    table = Table()
    for col in ("실행", "시작", "상태", "단계"):
        table.add_column(col, overflow="fold")
    for r in reports:
        stages = r.get("stages", [])
        failed = [f"{LABELS.get(s['stage'], s['stage'])} {s['name']}" for s in stages if s["status"] == "failed"]
        done = f"{len(stages) - len(failed)}개 완료" + (f", 실패: {', '.join(failed)}" if failed else "")
        table.add_row(r["run_id"], r["started_at"], f"{MARKS.get(r['status'], '')} {r['status']}", done)
    console.print(table)


def _receipt_json(r: Any) -> dict[str, Any]:
    return {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in dataclasses.asdict(r).items()}


@app.command("dead-letters")
def dead_letters(config: ConfigArg, as_json: JsonOpt = False) -> None:
    """전송 또는 색인(오류가 index:로 시작)에 실패한 객체 목록 (dead letter). `requeue`로 다시 보냅니다."""
    from jisik.pipeline.jobs import open_pipeline

    def load() -> list[Any]:
        with open_pipeline(config) as p:
            return p.transfer().dead_letters()

    dead = _guard(load)
    if as_json:
        print(json.dumps([_receipt_json(r) for r in dead], ensure_ascii=False))
        return
    table = Table(title=f"전달 실패 {len(dead)}건")
    for col in ("매니페스트 키", "시도", "마지막 시도", "오류"):
        table.add_column(col, overflow="fold")
    for r in dead:
        when = r.updated_at.isoformat(timespec="seconds") if r.updated_at else "-"
        table.add_row(r.manifest_key, str(r.attempts), when, (r.last_error or "")[:200])
    console.print(table)


@app.command()
def requeue(
    config: ConfigArg,
    key: Annotated[str, typer.Argument(help="dead-letters에 나온 매니페스트 키")],
) -> None:
    """dead letter 객체를 지금 다시 전송합니다 (성공하면 다음 `index`에서 다시 색인)."""
    from jisik.pipeline.jobs import open_pipeline

    def go() -> Any:
        with open_pipeline(config) as p:
            return p.transfer().requeue(key)

    receipt = _guard(go)
    if receipt.status != "delivered":
        err.print(f"[red]다시 실패[/] {key}: {receipt.last_error or receipt.status} (시도 {receipt.attempts}회)")
        raise typer.Exit(1)
    console.print(f"[green]전송됨[/] {key} -> {receipt.inbox_key} [dim](jisik pipeline index 로 색인)[/]")

