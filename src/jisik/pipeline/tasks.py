"""Celery tasks for distributed pipeline workers (RabbitMQ broker by default).

Start a worker (``-Q`` names the queue; default ``jisik.pipeline``)::

    JISIK_CELERY_BROKER_URL=amqp://guest:guest@rabbitmq:5672// celery -A jisik.pipeline.tasks worker -Q jisik.pipeline

Settings (environment, prefix ``JISIK_CELERY_``): ``BROKER_URL`` (default
``amqp://guest:guest@127.0.0.1:5672//``), ``RESULT_BACKEND`` (default ``rpc://``; ``redis://…`` or
``db+postgresql://…`` for :func:`pipeline_chain`, whose chord needs a backend that supports chords),
``QUEUE``, ``TIME_LIMIT_S``, ``MAX_RETRIES``, ``RETRY_BACKOFF_S``.

Every task takes the path of a pipeline YAML (readable on the worker) and calls the same job functions
as the CLI and the scheduler (:mod:`jisik.pipeline.jobs`), so each run is saved as a run report under the
worker's ``JISIK_HOME``. Messages are JSON only (no pickle). ``acks_late``: a task is acknowledged after it
finished, so a worker that dies mid-task leaves it to be redelivered — safe, as every stage is idempotent.
A stage that failed because a dependency was unavailable is retried with exponential backoff and jitter;
any other failure fails the task (the run report says why). While a task runs, its state is ``PROGRESS``
with the current stage as meta (``{"stage", "name", "status", "counts"}``, from the runner's stage hook)
when the app has a result backend.
"""

from __future__ import annotations

from typing import Any

from celery import Celery, Task, chain, group
from celery.backends.base import DisabledBackend
from celery.canvas import Signature
from celery.exceptions import ImproperlyConfigured
from celery.signals import worker_init
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from jisik.core.errors import ConfigError, Unavailable
from jisik.core.logging import configure_logging
from jisik.core.settings import get_settings
from jisik.pipeline.events.s3format import parse_s3_event
from jisik.pipeline.jobs import extract_job, index_job, raise_for_failure, run_job, transfer_job
from jisik.pipeline.runner import StageHook, StageReport

TASK_PREFIX = "jisik.pipeline."


class CelerySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JISIK_CELERY_", extra="ignore")

    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    result_backend: str | None = Field("rpc://", description="empty: no results stored")
    queue: str = "jisik.pipeline"
    time_limit_s: int = Field(3 * 3600, ge=10, description="hard limit per task (prefork pool)")
    max_retries: int = Field(5, ge=0)
    retry_backoff_s: int = Field(5, ge=1, description="first retry delay; doubles each time")
    retry_backoff_max_s: int = Field(600, ge=1)


def make_app(settings: CelerySettings | None = None) -> Celery:
    """A Celery app configured from ``settings`` (default: the environment)."""
    cfg = settings or CelerySettings()
    app = Celery("jisik", broker=cfg.broker_url, backend=cfg.result_backend or None)
    app.conf.update(
        task_serializer="json", result_serializer="json", accept_content=["json"],
        result_accept_content=["json"], event_serializer="json",
        task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
        task_default_queue=cfg.queue, task_time_limit=cfg.time_limit_s,
        task_soft_time_limit=max(5, cfg.time_limit_s - 60), task_track_started=True,
        broker_connection_retry_on_startup=True, broker_connection_timeout=5, result_expires=7 * 86400,
    )
    return app


@worker_init.connect
def _configure_logging(**_: Any) -> None:
    """jisik's own log format and level in the worker (Celery formats its own records)."""
    s = get_settings()
    configure_logging(s.log_level, s.log_format)


settings = CelerySettings()
app = make_app(settings)
_RETRY: dict[str, Any] = {
    "autoretry_for": (Unavailable,), "retry_backoff": settings.retry_backoff_s,
    "retry_backoff_max": settings.retry_backoff_max_s, "retry_jitter": True, "max_retries": settings.max_retries,
    "acks_late": True, "bind": True,
}


def progress_hook(task: Task) -> StageHook:
    """A stage hook publishing each stage as the task's ``PROGRESS`` state (no-op without a result backend)."""

    def hook(rep: StageReport) -> None:
        if task.request.id is None or isinstance(task.backend, DisabledBackend):
            return
        task.update_state(state="PROGRESS", meta={"stage": rep.stage, "name": rep.name, "status": rep.status,
                                                  "counts": rep.counts})

    return hook


@app.task(name=TASK_PREFIX + "extract_source", **_RETRY)
def extract_source(self: Task, config_path: str, source: str) -> dict[str, Any]:
    """Extract + land one source; returns the run report."""
    return raise_for_failure(extract_job(config_path, source, on_stage=progress_hook(self))).to_dict()


@app.task(name=TASK_PREFIX + "transfer", **_RETRY)
def transfer(self: Task, config_path: str) -> dict[str, Any]:
    """Deliver every new landed object to the knowledge store's inbox."""
    return raise_for_failure(transfer_job(config_path, on_stage=progress_hook(self))).to_dict()


@app.task(name=TASK_PREFIX + "index", **_RETRY)
def index(self: Task, config_path: str) -> dict[str, Any]:
    """Index what was delivered (one new version per target collection)."""
    return raise_for_failure(index_job(config_path, on_stage=progress_hook(self))).to_dict()


@app.task(name=TASK_PREFIX + "run_pipeline", **_RETRY)
def run_pipeline(self: Task, config_path: str, sources: list[str] | None = None) -> dict[str, Any]:
    """The whole run (sweep, extract + land ``sources`` or all, transfer, index) in one task."""
    return raise_for_failure(run_job(config_path, sources, on_stage=progress_hook(self))).to_dict()


@app.task(name=TASK_PREFIX + "handle_s3_event", **_RETRY)
def handle_s3_event(self: Task, config_path: str, message: dict[str, Any] | str) -> dict[str, Any]:
    """Deliver the objects of one S3 ObjectCreated notification, then index them."""
    from jisik.pipeline.service import event_job

    return raise_for_failure(event_job(config_path, parse_s3_event(message), on_stage=progress_hook(self))).to_dict()


def pipeline_chain(config_path: str, sources: list[str], *, app: Celery = app, queue: str | None = None) -> Signature:
    """``group(extract per source) | transfer | index`` as one canvas (send it with ``.apply_async()``).

    The extracts run in parallel on as many workers as there are; transfer starts when all of them
    succeeded. The group-then-task step is a chord, so the app needs a result backend that supports
    chords (Redis, a database), not ``rpc://``.
    """
    if not sources:
        raise ConfigError("추출할 소스를 하나 이상 지정하세요.", "Name at least one source to extract.")
    try:
        if isinstance(app.backend, DisabledBackend):
            raise ImproperlyConfigured("no result backend")
        app.backend.ensure_chords_allowed()
    except (ImproperlyConfigured, NotImplementedError):
        raise ConfigError("이 결과 백엔드로는 chord(병렬 추출 후 전송)를 실행할 수 없습니다.",
                          "The result backend cannot run chords; set JISIK_CELERY_RESULT_BACKEND to "
                          "redis://… or db+postgresql://…", hint="or send run_pipeline instead") from None
    options = {"queue": queue} if queue else {}
    path = str(config_path)

    def sig(name: str, *args: Any) -> Signature:
        return app.signature(TASK_PREFIX + name, args=args, immutable=True, **options)

    return chain(group(sig("extract_source", path, s) for s in sources), sig("transfer", path), sig("index", path))
