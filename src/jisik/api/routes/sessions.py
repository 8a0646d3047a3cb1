"""``GET /api/v1/sessions/{session_id}`` (the session and its kept messages) and ``DELETE``."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response

from jisik.api.deps import StateDep, require_user
from jisik.api.schemas import ERRORS, MessageOut, SessionOut
from jisik.core.errors import NotFound

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"], dependencies=[Depends(require_user)])
SessionId = Annotated[str, Path(min_length=1, max_length=128, description="세션 ID")]


@router.get("/{session_id}", response_model=SessionOut, responses=ERRORS, summary="세션과 대화 기록")
async def get_session(state: StateDep, session_id: SessionId) -> SessionOut:
    store = state.stores.sessions

    def load() -> SessionOut:
        s = store.get(session_id)
        messages = store.history(session_id)
        d = s.to_dict()
        return SessionOut.model_validate({**d, "messages": [
            MessageOut.model_validate(m.to_dict()) for m in messages]})

    return await asyncio.to_thread(load)


@router.delete("/{session_id}", status_code=204, responses=ERRORS, summary="세션 삭제")
async def delete_session(state: StateDep, session_id: SessionId) -> Response:
    if not await asyncio.to_thread(state.stores.sessions.delete, session_id):
        raise NotFound("세션을 찾을 수 없습니다.", "Session not found.")
    return Response(status_code=204)
