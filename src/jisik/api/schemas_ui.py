"""Response models of the routes the web UI needs (:mod:`.routes.ui`, :mod:`.routes.admin_ui`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from jisik.api.schemas import ProviderInfo


class AppOut(BaseModel):
    name: str = Field(description="요청의 app 값", examples=["faq"])
    title: str = Field(description="화면에 보일 이름")
    description: str = ""
    collection: str
    examples: list[str] = Field(default_factory=list, description="예시 질문")
    available: bool = Field(description="컬렉션이 색인되어 있어 질문할 수 있음")


class CollectionSummary(BaseModel):
    name: str
    version: int = Field(description="현재 색인 버전 (0 = 비어 있음)")
    documents: int
    chunks: int


class AppsOut(BaseModel):
    apps: list[AppOut]
    collections: list[CollectionSummary]
    default_collection: str
    provider: ProviderInfo


class SessionSummary(BaseModel):
    session_id: str
    app: str
    collection: str
    title: str
    created_at: str
    updated_at: str
    message_count: int


class SessionsPage(BaseModel):
    items: list[SessionSummary]
    total: int
    limit: int
    offset: int


class VersionOut(BaseModel):
    version: int
    created_at: str
    status: str = Field(description="current | published | rolled_back")
    documents: int
    chunks: int
    added_docs: int = 0
    removed_docs: int = 0
    note: str = ""


class CollectionOut(BaseModel):
    name: str
    dim: int
    embedder_id: str
    version: int
    documents: int
    chunks: int
    versions: list[VersionOut] = Field(description="복원할 수 있는 버전 (최신순)")


class RunError(BaseModel):
    stage: str = Field(description="단계 (api 업로드는 ingest)")
    name: str = Field(description="소스 또는 컬렉션")
    code: str = ""
    message_ko: str
    message_en: str = ""


class StageOut(BaseModel):
    stage: str = Field(description="extract | transfer | index | ingest")
    name: str
    status: str
    counts: dict[str, Any] = Field(default_factory=dict)
    seconds: float = 0.0


RunStatus = Literal["queued", "running", "ok", "failed"]


class IngestRunOut(BaseModel):
    kind: Literal["api", "pipeline"] = Field(description="api = POST /api/v1/ingest 작업, pipeline = 파이프라인 실행")
    run_id: str
    status: RunStatus
    started_at: str | None
    finished_at: str | None
    targets: list[str] = Field(description="색인한 컬렉션 / 추출한 소스")
    rows: int | None = Field(None, description="추출한 행 수 (파이프라인) 또는 읽은 문서 수")
    added: int = 0
    updated: int = 0
    deleted: int = 0
    chunks: int = 0
    stages: list[StageOut] = Field(default_factory=list)
    errors: list[RunError] = Field(default_factory=list)


class IngestRunsOut(BaseModel):
    items: list[IngestRunOut]
    unreadable: int = Field(0, description="읽을 수 없어 건너뛴 보고서 파일 수")
