"""``POST /api/v1/ingest`` (upload a file, or name a path under an allowed root) -> a queued job;
``GET /api/v1/ingest/{job_id}`` -> its status and index report. See :mod:`jisik.api.ingest_jobs`."""

from __future__ import annotations

import asyncio
import re
import shutil
from pathlib import Path as FsPath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Path, UploadFile

from jisik.api.deps import StateDep, require_user
from jisik.api.ingest_jobs import IngestJob, check_source_path
from jisik.api.schemas import ERRORS, IngestOut
from jisik.core.errors import InvalidInput
from jisik.stores.index_base import check_collection_name

router = APIRouter(prefix="/api/v1/ingest", tags=["ingest"], dependencies=[Depends(require_user)])
UPLOAD_PATH = "/api/v1/ingest"
_UNSAFE = re.compile(r"[^\w.\-가-힣]+")
Format = Literal["auto", "faq-pickle", "autorag", "jsonl", "text"]


def _safe_name(filename: str | None) -> str:
    name = _UNSAFE.sub("_", FsPath(filename or "").name).strip("._")[-100:]
    return name or "upload.txt"


def _out(job: IngestJob) -> IngestOut:
    return IngestOut.model_validate(job.to_dict())


@router.post("", response_model=IngestOut, status_code=202, responses=ERRORS, summary="문서 색인 요청 (비동기)")
async def ingest(
    state: StateDep,
    collection: Annotated[str, Form(min_length=1, max_length=64, description="색인할 컬렉션 (없으면 만듦)")],
    file: Annotated[UploadFile | None, File(description="올릴 파일 (.md/.txt/.pdf/.docx/.jsonl/.pkl/.parquet ...)")]
    = None,
    path: Annotated[str | None, Form(max_length=4096, description="서버의 파일/폴더 경로 (JISIK_INGEST_ROOTS 안)")]
    = None,
    format: Annotated[Format, Form(description="auto | faq-pickle | autorag | jsonl | text")] = "auto",
    chunker: Annotated[Literal["sentence", "whole", "page"] | None, Form(description="청크 방식 (기본: 형식에 따라)")]
    = None,
    sync: Annotated[bool, Form(description="입력에 없는 문서는 색인에서 삭제")] = False,
) -> IngestOut:
    """파일을 올리거나 경로를 주면 작업을 만들고 바로 202로 답합니다. 진행은 GET /api/v1/ingest/{job_id}."""
    check_collection_name(collection)
    if (file is None) == (path is None or not path.strip()):
        raise InvalidInput("file 또는 path 중 하나만 주세요.", "Give exactly one of file or path.")
    queue = state.ingest
    if file is not None:
        job = IngestJob(collection=collection, path="", source=f"upload:{_safe_name(file.filename)}",
                        format=format, chunker=chunker, sync=sync)
        target = queue.upload_dir(job.job_id) / _safe_name(file.filename)

        def save() -> None:
            with target.open("wb") as out:
                shutil.copyfileobj(file.file, out, 1 << 20)

        await asyncio.to_thread(save)
        job.path = str(target)
    else:
        assert path is not None
        resolved = check_source_path(path, state.settings.ingest_roots)
        job = IngestJob(collection=collection, path=str(resolved), source=path, format=format, chunker=chunker,
                        sync=sync)
    return _out(await asyncio.to_thread(queue.submit, job))


@router.get("/{job_id}", response_model=IngestOut, responses=ERRORS, summary="색인 작업 상태")
async def job_status(state: StateDep, job_id: Annotated[str, Path(min_length=1, max_length=128)]) -> IngestOut:
    return _out(await asyncio.to_thread(state.ingest.get, job_id))
