"""``POST /api/v1/scene01/generate`` (seed 000): marketing copy per channel, grounded in the
knowledge store, with the ad-compliance (광고심의) check. The router only adapts HTTP: the use case
is :class:`jisik.apps.marketing.MarketingService`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from jisik.api.deps import ApiState, StateDep, require_user
from jisik.api.schemas import ERRORS, CitationOut, ProviderInfo
from jisik.apps.marketing.fetch import FetchPolicy, SafeFetcher
from jisik.apps.marketing.schemas import Scene01Request
from jisik.apps.marketing.service import MarketingService

router = APIRouter(prefix="/api/v1/scene01", tags=["scene01"])


class ViolationOut(BaseModel):
    rule_id: str = Field(description="규칙 ID (rules/compliance.yaml)", examples=["ABS-BEST"])
    severity: Literal["error", "warning"]
    message: str
    field: Literal["title", "text"] | None = Field(description="위반이 있는 필드 (없는 것을 지적하면 null)")
    span: list[int] | None = Field(description="필드 안의 [시작, 끝) 문자 위치 (빠진 고지는 null)")
    text: str = Field(description="문제가 된 표현")
    suggestion: str = ""


class LengthOut(BaseModel):
    unit: Literal["chars", "euc-kr"] = Field(description="chars = 글자 수, euc-kr = CP949 바이트")
    text: int
    text_limit: int
    title: int | None = None
    title_limit: int | None = None
    requested_chars: int | None = Field(None, description="요청에서 읽은 본문 글자 수 한도 (예: 100자 이내)")


class ChannelMessageOut(BaseModel):
    channel: str
    label: str
    title: str | None = Field(description="제목 (PUSH, 알림톡 강조 제목, LMS)")
    text: str = Field(description="발송할 전체 문구 ((광고) 표기, 유의사항, 수신거부 포함)")
    body: str = Field(description="작성된 본문 (표기·고지를 붙이기 전)")
    length: LengthOut
    citations: list[int] = Field(description="근거가 된 citations의 번호 n")
    adjustments: list[str] = Field(description="regenerated | trimmed | cut_in_sentence | disclosures_appended | "
                                   "characters_replaced | characters_removed | title_from_facts")
    passed: bool = Field(description="error 수준 위반이 없음")
    violations: list[ViolationOut]
    warnings: list[str]
    notes: list[str] = Field(description="채널 규칙의 안내 (발송 시간 제한 등)")


class FileOut(BaseModel):
    url: str = Field(description="가져온 주소 (쿼리 문자열 제외)")
    content_type: str
    bytes: int
    pages: int
    chars_used: int
    truncated: bool


class Scene01Response(BaseModel):
    session_id: str | None
    message_type: str
    life_stage: str
    outcome: Literal["generated", "not_found"]
    generation: Literal["llm", "template"] = Field(description="llm = LLM이 작성, template = LLM 없이 "
                                                   "검색된 사실로 채널 템플릿을 채움")
    notice_ko: str
    notice_en: str
    messages: list[ChannelMessageOut] = Field(description="채널마다 하나, 요청 순서대로")
    text: str = Field(description="채널별 문구를 하나로 이은 응답 문자열")
    citations: list[CitationOut]
    history_summary: str
    file: FileOut | None
    warnings: list[str]
    provider: ProviderInfo
    latency_ms: int
    timings_ms: dict[str, float]


async def get_fetcher(state: StateDep) -> SafeFetcher:
    """The file_url fetcher of a request (a dependency: tests and embedders may replace it)."""
    return SafeFetcher(FetchPolicy.from_settings(state.settings))


FetcherDep = Annotated[SafeFetcher, Depends(get_fetcher)]


def service_for(state: ApiState, fetcher: SafeFetcher) -> MarketingService:
    return MarketingService(state.runtime, state.llm, state.settings, fetcher=fetcher)


@router.post("/generate", response_model=Scene01Response, responses=ERRORS,
             summary="채널별 마케팅 문구 생성 + 광고심의 검사", dependencies=[Depends(require_user)])
async def generate(state: StateDep, body: Scene01Request, fetcher: FetcherDep) -> Scene01Response:
    """1. 히스토리 요약 → 2. 프롬프트 결합 → 3. 검색(marketing 컬렉션 + file_url 문서) →
    4. 채널별 문구 생성(LLM, 또는 LLM 없이 템플릿) → 5. 응답 구성.

    채널 한도(PUSH 제목·본문, 알림톡 1,000자, SMS 90바이트 / LMS 2,000바이트 CP949)를 넘으면 다시 쓰게 하거나
    문장 단위로 줄이고, 광고심의 규칙(금지 표현, 필수 고지, 개인정보, (광고) 표기)의 위반을 규칙 ID와 위치로
    돌려줍니다. 알 수 없는 message_type / life_stage / channels 값은 422이며 허용 값을 알려 줍니다."""
    result = await service_for(state, fetcher).generate(body)
    return Scene01Response.model_validate(result.to_dict())
