"""``POST /api/v1/chat/feedback``: thumbs up/down (+ comment) on an answer, with its citations.

Feedback is durable: while the chat-log database is down it is spooled and stored later.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends

from jisik.api.deps import ApiState, StateDep, require_user
from jisik.api.schemas import ERRORS, FeedbackIn, FeedbackOut
from jisik.core.errors import JisikError
from jisik.stores.conversations import Feedback

router = APIRouter(prefix="/api/v1/chat", tags=["feedback"])


def _message_citations(state: ApiState, session_id: str, message_id: str) -> list[dict[str, Any]]:
    """The citations the answer had, from the session (empty when it cannot be read)."""
    if not session_id:
        return []
    try:
        messages = state.stores.sessions.history(session_id)
    except JisikError:  # unknown session or the store is down: feedback is still worth keeping
        return []
    return next((list(m.citations) for m in messages if m.message_id == message_id), [])


@router.post("/feedback", response_model=FeedbackOut, responses=ERRORS, summary="답변 평가 (좋아요/싫어요)",
             dependencies=[Depends(require_user)])
async def feedback(state: StateDep, body: FeedbackIn) -> FeedbackOut:
    """메시지 ID와 평가(up/down), 선택 코멘트. 같은 사용자(또는 익명 세션)가 다시 보내면 갱신됩니다."""

    def record() -> Feedback:
        citations = body.citations if body.citations is not None else _message_citations(
            state, body.session_id, body.message_id)
        return state.stores.feedback.record(Feedback(
            message_id=body.message_id, rating=body.rating, session_id=body.session_id, user_id=body.user_id,
            comment=body.comment, citations=citations))

    stored = await asyncio.to_thread(record)
    state.metrics.feedback.labels(body.rating).inc()
    return FeedbackOut(feedback_id=stored.feedback_id, message_id=stored.message_id, rating=stored.rating,
                       citations=len(stored.citations))
