"""``POST /query`` (seed 000): a question in, an answer with citations and timings out (no session)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from jisik.api.deps import StateDep, chat_request, require_user, run_chat
from jisik.api.schemas import ERRORS, QueryRequest, QueryResponse

router = APIRouter(tags=["query"])


@router.post("/query", response_model=QueryResponse, responses=ERRORS, summary="질의응답 (RAG, 세션 없음)",
             dependencies=[Depends(require_user)])
async def query(state: StateDep, body: QueryRequest) -> QueryResponse:
    """검색(하이브리드) → 프롬프트 → 생성 → 인용 검사. 답변 속 [n]은 citations의 n번을 가리킵니다.
    추출형(extractive) 제공자는 LLM 없이 문서 문장을 인용하며 provider.label_ko 로 표시됩니다."""
    r = await run_chat(state, chat_request(body, stateless=True))
    return QueryResponse.model_validate({
        "query": body.query, "message_id": r.message_id, "answer": r.answer, "outcome": r.outcome,
        "citations": r.citations, "app": r.app, "collection": r.collection, "provider": r.provider,
        "cached": r.cached, "latency_ms": r.latency_ms, "timings_ms": r.timings_ms, "usage": r.usage,
        "grounding": r.grounding, "warnings": r.warnings})
