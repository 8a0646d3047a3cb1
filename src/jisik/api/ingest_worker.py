"""Celery worker entry for API ingestion jobs (and, through the same app, the pipeline tasks)::

    celery -A jisik.api.ingest_worker worker -Q jisik.pipeline

The task takes the job record the API saved (:class:`jisik.api.ingest_jobs.IngestJob`), indexes
with the worker's own settings (``JISIK_HOME``, ``JISIK_INDEX_URL``, embedder) and writes the job
status next to the API's (a shared ``JISIK_HOME``). Failures are reported in the job, not retried:
indexing is incremental, so the caller can simply submit again.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jisik.api.ingest_jobs import TASK_NAME, IngestJob, JobStore, remove_upload, run_job
from jisik.core.settings import get_settings
from jisik.pipeline.tasks import app

__all__ = ["app", "ingest"]


@lru_cache(maxsize=1)
def _runtime() -> Any:
    from jisik.runtime import Runtime

    return Runtime(get_settings())


@app.task(name=TASK_NAME, acks_late=True)
def ingest(job: dict[str, Any]) -> dict[str, Any]:
    """Run one ingestion job; returns the finished job record."""
    home = get_settings().home
    done = run_job(IngestJob.from_dict(job), _runtime(), JobStore(home))
    remove_upload(done, home)
    return done.to_dict()
