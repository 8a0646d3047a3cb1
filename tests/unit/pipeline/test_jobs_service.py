"""The job functions all orchestrators share, the one-message event job and the embedded watch loop."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from jisik.core.settings import get_settings
from jisik.pipeline.config import PipelineConfig, load_pipeline_config
from jisik.pipeline.events.s3format import ObjectEvent, object_created_message, parse_s3_event
from jisik.pipeline.jobs import (
    StageFailed,
    StageUnavailable,
    extract_job,
    open_pipeline,
    raise_for_failure,
    run_job,
    transfer_job,
)
from jisik.pipeline.service import EventDelivery, event_job, watch_loop
from jisik.pipeline.transfer import RetryPolicy, Transfer
from pipeline_fixtures import write_pipeline


@pytest.fixture
def config(tmp_path: Path) -> PipelineConfig:
    return load_pipeline_config(write_pipeline(tmp_path / "p"))


def _saved_run_ids(config: PipelineConfig) -> list[str]:
    with open_pipeline(config) as p:
        return [r["run_id"] for r in p.reports(100)]


def test_hooks_see_every_stage_of_a_run_and_the_report_is_saved(config: PipelineConfig) -> None:
    seen: list[tuple[str, str, str]] = []
    report = run_job(config, on_stage=lambda rep: seen.append((rep.stage, rep.name, rep.status)))
    assert report.status == "ok"
    # a stage starts ("running"), may report progress (index stages: documents, chunks), then ends
    compact = [s for i, s in enumerate(seen) if i == 0 or s != seen[i - 1]]
    assert compact == [("sweep", "landing", "running"), ("sweep", "landing", "ok"),
                       ("extract", "events", "running"), ("extract", "events", "ok"),
                       ("extract", "faq", "running"), ("extract", "faq", "ok"),
                       ("transfer", "landing->inbox", "running"), ("transfer", "landing->inbox", "ok"),
                       ("index", "events", "running"), ("index", "events", "ok"),
                       ("index", "faq", "running"), ("index", "faq", "ok")]
    assert len(seen) > len(compact)  # progress calls while indexing
    assert raise_for_failure(report) is report
    assert _saved_run_ids(config) == [report.run_id]


def test_single_stage_jobs_save_reports_and_failures_raise_typed_errors(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path / "p", extra_source="""
  - kind: file
    name: gone
    paths: ["/nonexistent/jisik/*.csv"]
""")
    report = extract_job(path, "gone")
    assert report.status == "failed" and [s.name for s in report.stages] == ["gone"]
    with pytest.raises(StageFailed, match="extract:gone") as failed:
        raise_for_failure(report)
    assert failed.value.details["run_id"] == report.run_id
    assert report.run_id in _saved_run_ids(load_pipeline_config(path))


def test_an_unreachable_receipt_database_is_retryable(tmp_path: Path) -> None:
    path = write_pipeline(tmp_path / "p")
    text = path.read_text(encoding="utf-8")
    path.write_text("stores:\n  receipts: postgresql+psycopg://jisik@127.0.0.1:1/none?connect_timeout=2\n" + text,
                    encoding="utf-8")
    report = transfer_job(path)
    assert report.status == "failed" and report.stages[0].error is not None
    assert report.stages[0].error["status"] == 503
    with pytest.raises(StageUnavailable):  # Celery and Airflow retry this one
        raise_for_failure(report)


def test_event_job_delivers_the_notified_objects_and_indexes_them(config: PipelineConfig) -> None:
    landed = extract_job(config, "faq")
    with open_pipeline(config) as p:
        [key] = [i.key for i in p.landing.list("raw/faq/") if i.key.endswith(".meta.json")]
        events = parse_s3_event(object_created_message(p.landing, key))
        data_key = key.removesuffix(".meta.json")
        other = parse_s3_event(object_created_message(p.landing, data_key))  # a data object: ignored
    report = event_job(config, [*events, *other])
    assert report.status == "ok"
    stages = {(s.stage, s.name): s for s in report.stages}
    assert stages[("transfer", "notifications")].counts == {"delivered": 1, "ignored": 1}
    assert stages[("index", "faq")].counts["added"] == 2
    assert stages[("index", "events")].status == "skipped"
    again = event_job(config, events)  # redelivered notification: already delivered, nothing to index
    assert {(s.stage, s.name): s.counts for s in again.stages} == {("transfer", "notifications"): {"delivered": 1}}
    assert landed.run_id in _saved_run_ids(config)


def test_event_delivery_tallies_dead_letters(config: PipelineConfig) -> None:
    with open_pipeline(config) as p:
        delivery = EventDelivery(Transfer(p.landing, p.inbox, p.receipts, retry=RetryPolicy(max_attempts=1)))
        delivery(ObjectEvent("", "raw/faq/2025-01-01/r1/ghost.csv.meta.json", 10, None, datetime.now(UTC)))
        stage = delivery.finish()
        assert [r.manifest_key for r in p.transfer().dead_letters()] == ["raw/faq/2025-01-01/r1/ghost.csv.meta.json"]
    assert stage.status == "failed" and stage.counts == {"dead": 1} and delivery.handled
    assert stage.error is not None and "dead letter" in stage.error["message_en"]


def test_watch_loop_picks_up_new_landings(config: PipelineConfig) -> None:
    extract_job(config, "events")
    rounds: list[str] = []
    assert watch_loop(config, max_rounds=1, interval_s=0.01, on_report=lambda r: rounds.append(r.status)) == 1
    assert rounds == ["ok"]
    assert watch_loop(config, max_rounds=2, interval_s=0.01, on_report=lambda r: rounds.append(r.status)) == 0
    assert rounds == ["ok"]  # idle rounds save no report
    assert len(_saved_run_ids(config)) == 2  # the extract and the one active round
    assert get_settings().home.resolve().joinpath("index").is_dir()
