"""Admin data of the dashboard that the statistics API does not cover, behind the admin key:

* ``GET /api/v1/admin/collections`` — every collection with its current version and the versions
  that can still be restored, each with its document and chunk counts;
* ``GET /api/v1/admin/ingest/runs`` — ingestion run reports, newest first: the jobs of
  ``POST /api/v1/ingest`` (``{home}/jobs``) and the pipeline's run reports (``{home}/pipeline/runs``),
  in one shape (status, rows, added/updated/deleted, errors per stage).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from jisik.api.deps import ApiState, StateDep, require_admin
from jisik.api.ingest_jobs import IngestJob
from jisik.api.schemas import ERRORS
from jisik.api.schemas_ui import (
    CollectionOut,
    IngestRunOut,
    IngestRunsOut,
    RunError,
    RunStatus,
    StageOut,
    VersionOut,
)
from jisik.core.logging import get_logger

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=ERRORS)
log = get_logger("jisik.api.admin_ui")
_JOB_STATUS: dict[str, RunStatus] = {"queued": "queued", "running": "running", "done": "ok", "failed": "failed"}
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)
_PIPELINE_STATUS: dict[str, RunStatus] = {"ok": "ok", "running": "running", "failed": "failed"}


def _collections(state: ApiState) -> list[CollectionOut]:
    store = state.runtime.store
    out = []
    for c in sorted(store.list_collections(), key=lambda c: c.name):
        versions = sorted(store.versions(c.name), key=lambda v: v.version, reverse=True)
        out.append(CollectionOut(
            name=c.name, dim=c.dim, embedder_id=c.embedder_id, version=c.version, documents=c.documents,
            chunks=c.chunks, versions=[VersionOut(
                version=v.version, created_at=v.created_at, status=v.status, documents=v.documents, chunks=v.chunks,
                added_docs=v.added_docs, removed_docs=v.removed_docs, note=v.note) for v in versions]))
    return out


@router.get("/collections", response_model=list[CollectionOut], summary="컬렉션별 색인 버전과 문서 수")
async def collections(state: StateDep) -> list[CollectionOut]:
    return await asyncio.to_thread(_collections, state)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _error(stage: str, name: str, err: dict[str, Any]) -> RunError:
    return RunError(stage=stage, name=name, code=str(err.get("code") or err.get("type") or ""),
                    message_ko=str(err.get("message_ko") or err.get("message_en") or "알 수 없는 오류"),
                    message_en=str(err.get("message_en") or ""))


def _api_run(job: IngestJob) -> IngestRunOut:
    report = job.report or {}
    status = _JOB_STATUS.get(job.status, "failed")
    seconds = report.get("seconds")
    return IngestRunOut(
        kind="api", run_id=job.job_id, status=status,
        started_at=job.started_at or job.created_at, finished_at=job.finished_at, targets=[job.collection],
        rows=report.get("documents_seen") if job.report else None, added=_int(report.get("added")),
        updated=_int(report.get("updated")), deleted=_int(report.get("deleted")),
        chunks=_int(report.get("chunks_indexed")),
        stages=[StageOut(stage="ingest", name=job.collection, status=status, counts=report,
                         seconds=seconds if isinstance(seconds, int | float) else 0.0)],
        errors=[_error("ingest", job.collection, job.error)] if job.error else [])


def _pipeline_run(data: dict[str, Any]) -> IngestRunOut:
    stages = [StageOut(stage=str(s.get("stage", "")), name=str(s.get("name", "")), status=str(s.get("status", "")),
                       counts=s.get("counts") or {}, seconds=float(s.get("seconds") or 0.0))
              for s in data.get("stages") or []]
    errors = [_error(str(s.get("stage", "")), str(s.get("name", "")), s["error"])
              for s in data.get("stages") or [] if isinstance(s.get("error"), dict)]
    extract = [s for s in stages if s.stage == "extract"]
    index = [s for s in stages if s.stage == "index"]

    def total(items: Iterable[StageOut], key: str) -> int:
        return sum(_int(s.counts.get(key)) for s in items)

    return IngestRunOut(
        kind="pipeline", run_id=str(data["run_id"]), status=_PIPELINE_STATUS.get(str(data.get("status")), "failed"),
        started_at=data.get("started_at") or None, finished_at=data.get("finished_at") or None,
        targets=list(dict.fromkeys(s.name for s in stages if s.stage in ("extract", "index"))),
        rows=total(extract, "rows") if extract else None, added=total(index, "added"),
        updated=total(index, "updated"), deleted=total(index, "deleted"), chunks=total(index, "chunks_indexed"),
        stages=stages, errors=errors)


def _newest(directory: Path, limit: int) -> list[Path]:
    try:
        files = [p for p in directory.glob("*.json") if p.is_file()]
    except OSError:
        return []
    return sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)[:limit]


def _started(run: IngestRunOut) -> datetime:
    try:
        t = datetime.fromisoformat(run.started_at or "")
    except ValueError:
        return _NEVER
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def _ingest_runs(state: ApiState, kind: str, limit: int) -> IngestRunsOut:
    runs: list[IngestRunOut] = []
    unreadable = 0
    sources: list[tuple[Path, bool]] = []
    if kind in ("all", "api"):
        sources.append((state.ingest.jobs.dir, True))
    if kind in ("all", "pipeline"):
        sources.append((state.settings.home.resolve() / "pipeline" / "runs", False))
    for directory, is_job in sources:
        for path in _newest(directory, limit):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                runs.append(_api_run(IngestJob.from_dict(data)) if is_job else _pipeline_run(data))
            except (OSError, ValueError, TypeError, KeyError, AttributeError):
                unreadable += 1
    if unreadable:
        log.warning("unreadable ingestion reports skipped", extra={"count": unreadable})
    runs.sort(key=_started, reverse=True)
    return IngestRunsOut(items=runs[:limit], unreadable=unreadable)


@router.get("/ingest/runs", response_model=IngestRunsOut, summary="색인 실행 기록 (API 작업 + 파이프라인)")
async def ingest_runs(state: StateDep, kind: Literal["all", "api", "pipeline"] = "all",
                      limit: Annotated[int, Query(ge=1, le=500)] = 50) -> IngestRunsOut:
    """상태, 읽은 행/문서 수, 추가·변경·삭제 수, 단계별 오류. 최신순."""
    return await asyncio.to_thread(_ingest_runs, state, kind, limit)
