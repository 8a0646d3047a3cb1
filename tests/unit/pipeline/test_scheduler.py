"""The embedded scheduler: cron triggers per schedule entry (crontab weekdays, time zones), no overlap,
one scheduler per JISIK_HOME, and a job that really runs the pipeline."""

import threading
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, JobExecutionEvent

from jisik.core.errors import ConfigError, Conflict
from jisik.core.settings import get_settings
from jisik.pipeline.config import load_pipeline_config
from jisik.pipeline.runner import Pipeline
from jisik.pipeline.scheduler import PipelineScheduler, crontab_trigger, crontab_weekdays
from pipeline_fixtures import write_pipeline

SEOUL = ZoneInfo("Asia/Seoul")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_pipeline(tmp_path / "p", schedules="""
schedules:
  - sources: [events]
    cron: "0 9 * * 1-5"
  - sources: [events, faq]
    cron: "15 3 1 * *"
    timezone: Europe/Berlin
""")


@pytest.mark.parametrize(("field", "expected"), [
    ("*", "*"), ("0", "sun"), ("7", "sun"), ("1-5", "mon,tue,wed,thu,fri"), ("5-7", "sun,fri,sat"),
    ("0,6", "sun,sat"), ("*/2", "sun,tue,thu,sat"), ("1/3", "mon,thu"), ("mon-wed", "mon,tue,wed"), ("SUN", "sun"),
])
def test_crontab_weekdays_mean_what_cron_means(field: str, expected: str) -> None:
    assert crontab_weekdays(field) == expected


def test_crontab_trigger_fires_on_cron_sundays_in_its_zone() -> None:
    trigger = crontab_trigger("30 2 * * 0", "Asia/Seoul")
    start = datetime(2025, 1, 1, tzinfo=SEOUL)  # a Wednesday
    fire = trigger.get_next_fire_time(None, start)
    assert fire == datetime(2025, 1, 5, 2, 30, tzinfo=SEOUL) and fire.weekday() == 6
    for bad, zone in (("61 * * * *", "UTC"), ("* * * *", "UTC"), ("0 0 * * 3-1", "UTC"), ("0 0 * * *", "Mars/Base")):
        with pytest.raises(ConfigError):
            crontab_trigger(bad, zone)


def test_jobs_and_next_fire_times_come_from_the_config(config: Path) -> None:
    sched = PipelineScheduler(config, get_settings())
    planned = sched.planned(now=datetime(2025, 1, 3, 10, 0, tzinfo=SEOUL))  # Friday after 09:00
    assert [(p.id, p.sources) for p in planned] == [("schedule-0-events", ["events"]),
                                                    ("schedule-1-events+faq", ["events", "faq"])]
    assert planned[0].next_run == datetime(2025, 1, 6, 9, 0, tzinfo=SEOUL)  # next Monday
    assert planned[1].next_run == datetime(2025, 2, 1, 3, 15, tzinfo=ZoneInfo("Europe/Berlin"))
    for job in sched.scheduler.get_jobs():
        assert job.max_instances == 1 and job.coalesce is True and job.misfire_grace_time == 300

    sched.start(paused=True)
    try:
        started = {p.id: p.next_run for p in sched.planned()}
        assert all(t is not None and t > datetime.now(SEOUL) for t in started.values())
        assert started["schedule-0-events"].astimezone(SEOUL).hour == 9
    finally:
        sched.shutdown()


def test_a_fired_job_runs_the_pipeline_for_its_sources(config: Path) -> None:
    sched = PipelineScheduler(config, get_settings())
    done = threading.Event()
    events: list[JobExecutionEvent] = []

    def listener(event: JobExecutionEvent) -> None:
        events.append(event)
        done.set()

    sched.scheduler.add_listener(listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    sched.start(paused=True)
    try:
        sched.scheduler.modify_job("schedule-0-events", next_run_time=datetime.now(SEOUL) - timedelta(seconds=1))
        sched.scheduler.resume()
        assert done.wait(120), "the job did not run"
    finally:
        sched.shutdown()
    assert [(e.job_id, e.exception, e.retval) for e in events] == [("schedule-0-events", None, "ok")]
    pipeline = Pipeline(load_pipeline_config(config), get_settings())
    [report] = pipeline.reports()
    pipeline.close()
    assert report["status"] == "ok"
    assert [(s["stage"], s["name"]) for s in report["stages"] if s["stage"] == "extract"] == [("extract", "events")]
    assert {s["name"]: s["counts"].get("added") for s in report["stages"] if s["stage"] == "index"}["events"] == 3


def test_only_one_scheduler_per_home(config: Path) -> None:
    first = PipelineScheduler(config, get_settings())
    first.start(paused=True)
    try:
        second = PipelineScheduler(config, get_settings())
        with pytest.raises(Conflict, match="already runs"):
            second.start(paused=True)
        assert not second.scheduler.running
    finally:
        first.shutdown()
    third = PipelineScheduler(config, get_settings())  # the lock went with the first one
    third.start(paused=True)
    third.shutdown()
