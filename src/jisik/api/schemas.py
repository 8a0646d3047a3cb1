"""Request and response models of the API (what /docs shows). Admin models: :mod:`.schemas_admin`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Question = Field(min_length=1, max_length=20_000, description="질문 (한국어 권장)",
                 examples=["회원가입은 어떻게 하나요?"])
TopK = Field(None, ge=1, le=50, description="검색할 문단 수 (기본: 앱 설정)")
Filters = Field(None, description='메타데이터 필터, 예: {"category": "가입절차"} 또는 {"year": {"$gte": 2020}}')
Collection = Field(None, max_length=64, description="컬렉션 이름 (app 대신)", examples=["faq"])
AppName = Field(None, max_length=64, description="등록된 앱 이름 (예: faq). 없으면 collection의 기본 RAG")


class ErrorInfo(BaseModel):
    code: str = Field(description="기계용 오류 코드", examples=["not_found"])
    status: int
    message_ko: str
    message_en: str
    hint: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    request_id: str


class ErrorResponse(BaseModel):
    error: ErrorInfo


ERRORS: dict[int | str, dict[str, Any]] = {
    s: {"model": ErrorResponse, "description": d} for s, d in (
        (401, "API 키 없음/틀림"), (404, "앱, 컬렉션 또는 세션 없음"), (413, "요청이 너무 큼"),
        (422, "요청 값 오류"), (429, "요청 한도 초과"), (503, "의존 서비스(세션 저장소, LLM 서버) 중단"))
}


class ProviderInfo(BaseModel):
    name: str = Field(description="생성 방식: extractive (LLM 없이 인용) | openai | local")
    model: str
    kind: Literal["llm", "extractive"]
    label_ko: str | None = Field(None, description="추출형 답변일 때의 안내 문구")
    label_en: str | None = None
    served_model: str | None = None


class CitationOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    n: int = Field(description="답변 속 [n] 표시의 번호")
    collection: str
    doc_id: str
    chunk_id: str
    title: str
    source_uri: str
    locator: dict[str, Any] = Field(description="문서 속 위치 (쪽, 행 범위, 표 키)")
    span: list[int]
    scores: dict[str, float]
    score: float | None = None
    text: str = Field(description="인용된 문단 (최대 1,000자)")


class QueryRequest(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"query": "스마트스토어 회원가입 방법", "top_k": 5,
                                                               "collection": "faq"}]})

    query: str = Question
    top_k: int | None = TopK
    filters: dict[str, Any] | None = Filters
    collection: str | None = Collection
    app: str | None = AppName
    use_cache: bool = Field(True, description="같은 질문의 캐시된 답변 사용 (색인이 바뀌면 무효)")


class QueryResponse(BaseModel):
    query: str
    message_id: str = Field(description="답변 ID (피드백에 사용, user_id와 함께)")
    answer: str
    outcome: Literal["answered", "not_found", "off_topic"]
    citations: list[CitationOut]
    app: str
    collection: str
    provider: ProviderInfo
    cached: bool
    latency_ms: int
    timings_ms: dict[str, float] = Field(description="단계별 시간 (retrieval_*, generation, first_token)")
    usage: dict[str, Any]
    grounding: dict[str, Any] = Field(description="인용 검사 결과 (used, invalid, not_found, flagged)")
    warnings: list[str] = Field(default_factory=list)


class ChatIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"question": "정산은 언제 받나요?", "app": "faq", "session_id": None, "user_id": "user-42"}]})

    question: str = Question
    session_id: str | None = Field(None, max_length=128, description="이어서 대화할 세션 (없으면 새로 만듦)")
    user_id: str = Field("", max_length=255, description="사용자 ID (로그에는 가명으로 저장)")
    app: str | None = AppName
    collection: str | None = Collection
    top_k: int | None = TopK
    filters: dict[str, Any] | None = Filters
    variables: dict[str, str] | None = Field(None, description="앱 프롬프트 변수 (예: service_name)")
    suggestions: bool = Field(True, description="추천 질문 생성")
    use_cache: bool = True


class ChatOut(BaseModel):
    session_id: str | None
    message_id: str = Field(description="답변 메시지 ID (피드백에 사용)")
    answer: str
    outcome: Literal["answered", "not_found", "off_topic"]
    citations: list[CitationOut]
    suggestions: list[str]
    app: str
    collection: str
    provider: ProviderInfo
    cached: bool
    latency_ms: int
    timings_ms: dict[str, float]
    usage: dict[str, Any]
    grounding: dict[str, Any]
    warnings: list[str] = Field(default_factory=list)


class MessageOut(BaseModel):
    message_id: str
    seq: int
    role: Literal["user", "assistant", "system"]
    text: str
    created_at: str
    citations: list[dict[str, Any]] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


class SessionOut(BaseModel):
    session_id: str
    user_id: str
    app: str
    collection: str
    title: str
    created_at: str
    updated_at: str
    summary: str = Field(description="오래된 대화의 요약")
    summary_upto: int
    message_count: int
    messages: list[MessageOut]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"message_id": "0190a1b2c3d4e5f6a7b8c9d0", "session_id": "0190a1b2c3d4e5f6a7b8c9aa", "rating": "up",
         "comment": "정확해요"}]})

    message_id: str = Field(min_length=1, max_length=128, description="평가할 답변 메시지 ID")
    rating: Literal["up", "down"] = Field(description="up = 좋아요, down = 싫어요")
    session_id: str = Field("", max_length=128)
    user_id: str = Field("", max_length=255)
    comment: str = Field("", max_length=5000)
    citations: list[dict[str, Any]] | None = Field(
        None, description="답변의 인용 목록 (없으면 세션의 메시지에서 가져옴)")


class FeedbackOut(BaseModel):
    feedback_id: str
    message_id: str
    rating: Literal["up", "down"]
    citations: int = Field(description="피드백에 연결된 인용 수")


class IngestOut(BaseModel):
    job_id: str
    status: Literal["queued", "running", "done", "failed"]
    mode: str
    collection: str
    source: str
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    report: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class ServiceInfo(BaseModel):
    name: str
    version: str
    docs: str
    llm: ProviderInfo
    apps: list[str]
    default_collection: str


class Health(BaseModel):
    status: Literal["ok"]


class DependencyStatus(BaseModel):
    status: Literal["ok", "degraded", "down"]
    detail: str = ""
    ms: float = 0.0


class Readiness(BaseModel):
    status: Literal["ok", "degraded", "down"]
    dependencies: dict[str, DependencyStatus]
