"""The pipeline jobs every orchestrator runs: the CLI, the embedded scheduler, Celery tasks and Airflow.

Each job opens a :class:`~jisik.pipeline.runner.Pipeline` for a config (a path or a parsed config),
calls the runner's stage functions, closes the pipeline and returns a
:class:`~jisik.pipeline.runner.RunReport` that is also saved under ``{home}/pipeline/runs`` — so
``jisik pipeline runs`` lists every run, whoever started it. A job never raises for a failed stage
(the report says ``failed``); :func:`raise_for_failure` turns a failed report into an exception for the
orchestrators that retry (Celery, Airflow): :class:`StageUnavailable` (a dependency was down, retrying
later may help) or :class:`StageFailed`.

:class:`ObservedPipeline` calls hooks before and after every stage (the CLI's progress display) and
otherwise is the runner's ``Pipeline``: a whole run is always ``Pipeline.run``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jisik.core.errors import JisikError, Unavailable
from jisik.core.settings import Settings, get_settings
from jisik.pipeline.config import PipelineConfig, load_pipeline_config
from jisik.pipeline.runner import Pipeline, RunReport, StageReport
from jisik.pipeline.sources.base import new_run_id

ConfigRef = PipelineConfig | str | Path
StageStart = Callable[[str, str], None]  # (stage, name)
StageEnd = Callable[[StageReport], None]


class StageFailed(JisikError):
    """A pipeline stage failed for a reason retrying will not fix by itself (see ``details``)."""

    status = 500
    code = "stage_failed"


class StageUnavailable(Unavailable):
    """A pipeline stage failed because a dependency (store, database, broker, model) was unavailable."""

    code = "stage_unavailable"


class ObservedPipeline(Pipeline):
    """A Pipeline that reports each stage's start and end to hooks (progress displays, logs)."""

    def __init__(self, config: PipelineConfig, settings: Settings | None = None, *,
                 on_start: StageStart | None = None, on_end: StageEnd | None = None) -> None:
        super().__init__(config, settings)
        self.on_start = on_start or (lambda stage, name: None)
        self.on_end = on_end or (lambda rep: None)

    # the runner's one extract step (``run`` and ``extract_and_land`` both go through it)
    def _extract(self, report: RunReport, source_name: str) -> None:
        self.on_start("extract", source_name)
        super()._extract(report, source_name)
        self.on_end(report.stages[-1])

    def transfer_landed(self, report: RunReport | None = None) -> StageReport:
        self.on_start("transfer", "landing->inbox")
        rep = super().transfer_landed(report)
        self.on_end(rep)
        return rep

    def index_delivered(self, report: RunReport | None = None, *, runtime: Any = None) -> list[StageReport]:
        self.on_start("index", ", ".join(t.collection for t in self.config.targets) or "-")
        reps = super().index_delivered(report, runtime=runtime)
        for rep in reps:
            self.on_end(rep)
        return reps


def as_config(config: ConfigRef) -> PipelineConfig:
    return config if isinstance(config, PipelineConfig) else load_pipeline_config(Path(config))


@contextmanager
def open_pipeline(config: ConfigRef, settings: Settings | None = None, *, on_start: StageStart | None = None,
                  on_end: StageEnd | None = None) -> Iterator[ObservedPipeline]:
    pipeline = ObservedPipeline(as_config(config), settings or get_settings(), on_start=on_start, on_end=on_end)
    try:
        yield pipeline
    finally:
        pipeline.close()


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def finish_report(pipeline: Pipeline, report: RunReport) -> RunReport:
    report.finished_at = now_iso()
    report.status = "failed" if report.failed else "ok"
    pipeline.save_report(report)
    return report


def run_job(config: ConfigRef, sources: list[str] | None = None, *, index: bool = True,
            settings: Settings | None = None, runtime: Any = None, on_start: StageStart | None = None,
            on_end: StageEnd | None = None) -> RunReport:
    """The whole run: extract + land ``sources`` (default: all), transfer, index (``Pipeline.run``)."""
    with open_pipeline(config, settings, on_start=on_start, on_end=on_end) as p:
        for name in sources or []:
            p.config.source(name)  # an unknown name is an error before anything runs
        return p.run(sources, index=index, runtime=runtime)


def extract_job(config: ConfigRef, source: str, *, settings: Settings | None = None,
                on_start: StageStart | None = None, on_end: StageEnd | None = None) -> RunReport:
    """Extract and land one source."""
    with open_pipeline(config, settings, on_start=on_start, on_end=on_end) as p:
        p.config.source(source)
        report = RunReport(new_run_id(), now_iso())
        report.stages.append(p.extract_and_land(source, run_id=report.run_id))
        return finish_report(p, report)


def transfer_job(config: ConfigRef, *, settings: Settings | None = None, on_start: StageStart | None = None,
                 on_end: StageEnd | None = None) -> RunReport:
    """Deliver every new landed object to the knowledge store's inbox."""
    with open_pipeline(config, settings, on_start=on_start, on_end=on_end) as p:
        report = RunReport(new_run_id(), now_iso())
        p.transfer_landed(report)
        return finish_report(p, report)


def index_job(config: ConfigRef, *, settings: Settings | None = None, runtime: Any = None,
              on_start: StageStart | None = None, on_end: StageEnd | None = None) -> RunReport:
    """Index what was delivered, one new version per target collection (the retriever batch)."""
    with open_pipeline(config, settings, on_start=on_start, on_end=on_end) as p:
        report = RunReport(new_run_id(), now_iso())
        p.index_delivered(report, runtime=runtime)
        return finish_report(p, report)


def raise_for_failure(report: RunReport) -> RunReport:
    """Return ``report`` if it is ok; else raise StageUnavailable (every failure was a 503) or StageFailed."""
    failed = report.failed
    if not failed:
        return report
    names = ", ".join(f"{s.stage}:{s.name}" for s in failed)
    first = failed[0].error or {}
    detail = first.get("message_en") or first.get("message") or first.get("type", "")
    details = {"run_id": report.run_id, "failed": [{"stage": s.stage, "name": s.name, "error": s.error}
                                                   for s in failed]}
    if all((s.error or {}).get("status") == Unavailable.status for s in failed):
        raise StageUnavailable(f"파이프라인 단계가 실패했습니다 (일시적 장애): {names}",
                               f"Pipeline stage(s) failed, a dependency was unavailable: {names}: {detail}",
                               hint="retry later", details=details)
    raise StageFailed(f"파이프라인 단계가 실패했습니다: {names}", f"Pipeline stage(s) failed: {names}: {detail}",
                      hint=f"see the run report {report.run_id} (jisik pipeline runs)", details=details)
