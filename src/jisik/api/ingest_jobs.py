"""Ingestion jobs behind ``POST /api/v1/ingest``: read a file or folder, chunk, embed, index.

A job is a JSON record under ``{home}/jobs/<job_id>.json`` (written atomically), so any API
worker of the installation can report its status. It runs either

* in a background thread of the API process (``ingest_mode=thread``, the embedded default: one
  job at a time, sharing the API's embedder), or
* on a Celery worker (``ingest_mode=celery``): the task ``jisik.ingest.run`` is queued to the
  pipeline queue; start workers with ``celery -A jisik.api.ingest_worker worker -Q jisik.pipeline``
  (that module also serves the pipeline tasks). Uploaded files are kept under ``{home}/uploads``,
  which the workers must share (same ``JISIK_HOME`` volume).

This module does not import FastAPI or Celery.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from jisik.core.errors import InvalidInput, JisikError, NotFound
from jisik.core.logging import get_logger
from jisik.stores.conversations import new_id
from jisik.stores.conversations.records import check_id, now_utc

log = get_logger("jisik.api.ingest")
JobStatus = Literal["queued", "running", "done", "failed"]
TASK_NAME = "jisik.ingest.run"


@dataclass(slots=True)
class IngestJob:
    collection: str
    path: str  # what to read (an uploaded file under {home}/uploads, or an allowed path)
    source: str  # as the caller named it: "upload:<file name>" or the path
    format: str = "auto"
    chunker: str | None = None
    sync: bool = False
    mode: str = "thread"
    job_id: str = field(default_factory=new_id)
    status: JobStatus = "queued"
    created_at: str = field(default_factory=lambda: now_utc().isoformat())
    started_at: str | None = None
    finished_at: str | None = None
    report: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IngestJob:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


class JobStore:
    def __init__(self, home: Path) -> None:
        self.dir = home / "jobs"

    def save(self, job: IngestJob) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".job-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(job.to_dict(), f, ensure_ascii=False)
        os.replace(tmp, self.dir / f"{job.job_id}.json")

    def get(self, job_id: str) -> IngestJob:
        check_id(job_id, "작업 ID(job id)")
        try:
            return IngestJob.from_dict(json.loads((self.dir / f"{job_id}.json").read_text("utf-8")))
        except FileNotFoundError:
            raise NotFound(f"작업을 찾을 수 없습니다: {job_id}", f"Unknown ingest job {job_id}") from None


def run_job(job: IngestJob, runtime: Any, jobs: JobStore) -> IngestJob:
    """Run ``job`` to its end with ``runtime`` (a :class:`jisik.runtime.Runtime`); never raises."""
    from jisik.pipeline.loaders import load_documents  # the format detection of `jisik ingest`
    from jisik.text.chunking import make_chunker

    job.status, job.started_at = "running", now_utc().isoformat()
    jobs.save(job)
    try:
        docs, default_chunker = load_documents(Path(job.path), job.format)
        indexer = runtime.indexer(make_chunker(job.chunker or default_chunker))
        report = indexer.index(job.collection, docs, sync=job.sync, note=f"api ingest {job.job_id}")
        job.status, job.report = "done", report.to_dict()
    except JisikError as exc:
        job.status, job.error = "failed", {"code": exc.code, "message_ko": exc.message_ko,
                                           "message_en": exc.message_en, "hint": exc.hint}
    except Exception as exc:  # a job must always end with a status
        log.exception("ingest job failed", extra={"job_id": job.job_id})
        job.status, job.error = "failed", {"code": "internal_error", "message_ko": "색인 중 내부 오류가 발생했습니다.",
                                           "message_en": f"Internal error while indexing ({type(exc).__name__})."}
    job.finished_at = now_utc().isoformat()
    jobs.save(job)
    log.info("ingest job finished", extra={"job_id": job.job_id, "status": job.status})
    return job


def remove_upload(job: IngestJob, home: Path) -> None:
    """Delete the uploaded file of a finished job (files named by path are left alone)."""
    uploads = (home / "uploads").resolve()
    folder = Path(job.path).resolve().parent
    if folder.parent == uploads:
        shutil.rmtree(folder, ignore_errors=True)


class IngestQueue:
    """Starts jobs in the configured mode."""

    def __init__(self, home: Path, mode: str, runtime: Any, *,
                 on_done: Callable[[IngestJob], None] | None = None) -> None:
        self.home = home
        self.mode = mode
        self.runtime = runtime
        self.jobs = JobStore(home)
        self.on_done = on_done
        self._pool: ThreadPoolExecutor | None = None
        self._celery: tuple[Any, str] | None = None
        self._lock = threading.Lock()

    def upload_dir(self, job_id: str) -> Path:
        d = self.home / "uploads" / check_id(job_id, "작업 ID(job id)")
        d.mkdir(parents=True, exist_ok=True)
        return d

    def submit(self, job: IngestJob) -> IngestJob:
        job.mode = self.mode
        self.jobs.save(job)
        if self.mode == "celery":
            self._send_celery(job)
            return job
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jisik-ingest")
            self._pool.submit(self._run_local, job)
        return job

    def _run_local(self, job: IngestJob) -> None:
        done = run_job(job, self.runtime, self.jobs)
        remove_upload(done, self.home)
        if self.on_done is not None:
            self.on_done(done)

    def _send_celery(self, job: IngestJob) -> None:
        from jisik.pipeline.tasks import CelerySettings, make_app

        with self._lock:
            if self._celery is None:  # broker and queue from JISIK_CELERY_* (as the workers read them)
                cfg = CelerySettings()
                self._celery = (make_app(cfg), cfg.queue)
        app, queue = self._celery
        try:
            app.send_task(TASK_NAME, args=[job.to_dict()], task_id=job.job_id, queue=queue)
        except Exception as exc:
            job.status, job.error = "failed", {"code": "unavailable", "message_ko": "작업 큐에 보낼 수 없습니다.",
                                               "message_en": f"Cannot queue the job ({type(exc).__name__})."}
            self.jobs.save(job)
            from jisik.core.errors import Unavailable

            raise Unavailable("작업 큐(RabbitMQ)에 연결할 수 없습니다.", "Cannot reach the job queue (broker).",
                              hint="JISIK_CELERY_BROKER_URL 을 확인하세요.") from exc

    def get(self, job_id: str) -> IngestJob:
        return self.jobs.get(job_id)

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=False)


def check_source_path(path: str, roots: list[Path]) -> Path:
    """``path`` resolved, and inside one of ``roots`` (else refused)."""
    from jisik.api.errors import Forbidden

    if not roots:
        raise Forbidden("경로로 색인하기가 꺼져 있습니다; 파일을 업로드하세요.",
                        "Ingesting by path is disabled (no JISIK_INGEST_ROOTS); upload the file instead.")
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise InvalidInput("경로가 올바르지 않습니다.", "Invalid path.") from exc
    for root in roots:
        if resolved.is_relative_to(root.expanduser().resolve()):
            if not resolved.exists():
                raise NotFound("경로가 없습니다.", "The path does not exist.")
            return resolved
    raise Forbidden("허용된 폴더 밖의 경로입니다.", "The path is outside the allowed ingest roots.",
                    details={"roots": [str(r) for r in roots]})
