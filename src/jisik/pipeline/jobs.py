"""The pipeline jobs every orchestrator runs: the CLI, the embedded scheduler, Celery tasks and Airflow.

Each job opens a :class:`~jisik.pipeline.runner.Pipeline` for a config (a path or a parsed config),
calls the runner's stage functions, closes the pipeline and returns a
:class:`~jisik.pipeline.runner.RunReport` that is also saved under ``{home}/pipeline/runs`` — so
``jisik pipeline runs`` lists every run, whoever started it. A job never raises for a failed stage
(the report says ``failed``); :func:`raise_for_failure` turns a failed report into an exception for the
orchestrators that retry (Celery, Airflow): :class:`StageUnavailable` (a dependency was down, retrying
later may help) or :class:`StageFailed`.

Every job takes an optional stage hook (``on_stage``, see :data:`~jisik.pipeline.runner.StageHook`):
the CLI's progress display, :func:`log_stage` (the scheduler, Airflow) and the Celery task state.
A whole run is always ``Pipeline.run``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jisik.core.errors import JisikError, Unavailable
from jisik.core.logging import get_logger
from jisik.core.settings import Settings, get_settings
from jisik.pipeline.config import PipelineConfig, load_pipeline_config
from jisik.pipeline.runner import Pipeline, RunReport, StageHook, StageReport
from jisik.pipeline.sources.base import new_run_id

log = get_logger(__name__)
ConfigRef = PipelineConfig | str | Path


class StageFailed(JisikError):
    """A pipeline stage failed for a reason retrying will not fix by itself (see ``details``)."""

    status = 500
    code = "stage_failed"


class StageUnavailable(Unavailable):
    """A pipeline stage failed because a dependency (store, database, broker, model) was unavailable."""

    code = "stage_unavailable"


def as_config(config: ConfigRef) -> PipelineConfig:
    return config if isinstance(config, PipelineConfig) else load_pipeline_config(Path(config))


@contextmanager
def open_pipeline(config: ConfigRef, settings: Settings | None = None, *,
                  on_stage: StageHook | None = None) -> Iterator[Pipeline]:
    pipeline = Pipeline(as_config(config), settings or get_settings(), on_stage=on_stage)
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


def log_stage(rep: StageReport) -> None:
    """A stage hook that logs each stage's end (the scheduler's and Airflow's progress)."""
    if rep.status == "running":
        return
    level = log.error if rep.status == "failed" else log.info
    level("pipeline stage finished", extra={"stage": rep.stage, "target": rep.name, "status": rep.status,
                                            "counts": rep.counts, "seconds": rep.seconds})


def run_job(config: ConfigRef, sources: list[str] | None = None, *, index: bool = True,
            settings: Settings | None = None, runtime: Any = None, on_stage: StageHook | None = None,
            allow_shrink: bool = False) -> RunReport:
    """The whole run: sweep, extract + land ``sources`` (default: all), transfer, index (``Pipeline.run``)."""
    with open_pipeline(config, settings, on_stage=on_stage) as p:
        for name in sources or []:
            p.config.source(name)  # an unknown name is an error before anything runs
        return p.run(sources, index=index, runtime=runtime, allow_shrink=allow_shrink)


def extract_job(config: ConfigRef, source: str, *, settings: Settings | None = None,
                on_stage: StageHook | None = None, allow_shrink: bool = False) -> RunReport:
    """Extract and land one source."""
    with open_pipeline(config, settings, on_stage=on_stage) as p:
        p.config.source(source)
        report = RunReport(new_run_id(), now_iso())
        report.stages.append(p.extract_and_land(source, run_id=report.run_id, allow_shrink=allow_shrink))
        return finish_report(p, report)


def transfer_job(config: ConfigRef, *, settings: Settings | None = None,
                 on_stage: StageHook | None = None) -> RunReport:
    """Deliver every new landed object to the knowledge store's inbox."""
    with open_pipeline(config, settings, on_stage=on_stage) as p:
        report = RunReport(new_run_id(), now_iso())
        p.transfer_landed(report)
        return finish_report(p, report)


def index_job(config: ConfigRef, *, settings: Settings | None = None, runtime: Any = None,
              on_stage: StageHook | None = None) -> RunReport:
    """Index what was delivered, one new version per target collection (the retriever batch)."""
    with open_pipeline(config, settings, on_stage=on_stage) as p:
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
