"""Chat: ``POST /api/v1/chat`` (whole answer), ``POST /api/v1/chat/stream`` (SSE) and
``WS /api/v1/chat/ws``.

Events (SSE ``event:`` names, WebSocket ``{"type", "data"}`` frames): ``retrieval``, ``token``,
``citation``, ``suggestions``, ``done``, ``error`` — see :mod:`jisik.rag.chat_types`.

WebSocket protocol: the client sends a chat request as JSON (the body of ``POST /api/v1/chat``)
and receives the events of its answer; it may then send the next question on the same socket.
``{"type": "cancel"}`` stops the answer in progress; closing the socket stops it too. The API key
goes in the ``X-API-Key`` header or, from browsers, ``?api_key=``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from jisik.api.deps import ApiState, StateDep, chat_request, require_user, run_chat
from jisik.api.errors import Forbidden
from jisik.api.schemas import ERRORS, ChatIn, ChatOut
from jisik.api.security import presented_key
from jisik.api.sse import EventStreamResponse, sse_schema
from jisik.core.errors import Conflict, InvalidInput, JisikError
from jisik.core.logging import get_logger
from jisik.rag.chat_types import ChatRequest, error_data

router = APIRouter(prefix="/api/v1/chat", tags=["chat"])
log = get_logger("jisik.api.chat")


@router.post("", response_model=ChatOut, responses=ERRORS, summary="대화 (답변 전체를 한 번에)",
             dependencies=[Depends(require_user)])
async def chat(state: StateDep, body: ChatIn) -> ChatOut:
    """세션 기록(오래된 대화는 요약) → 캐시 → 검색 → 주제 이탈 확인 → 생성 → 인용 → 저장 → 추천 질문."""
    r = await run_chat(state, chat_request(body))
    return ChatOut.model_validate({
        "session_id": r.session_id, "message_id": r.message_id, "answer": r.answer, "outcome": r.outcome,
        "citations": r.citations, "suggestions": r.suggestions, "app": r.app, "collection": r.collection,
        "provider": r.provider, "cached": r.cached, "latency_ms": r.latency_ms, "timings_ms": r.timings_ms,
        "usage": r.usage, "grounding": r.grounding, "warnings": r.warnings})


@router.post("/stream", responses=ERRORS | sse_schema(), response_class=EventStreamResponse, status_code=200,
             summary="대화 (SSE 스트리밍)", dependencies=[Depends(require_user)])
async def chat_stream(state: StateDep, body: ChatIn) -> EventStreamResponse:
    """``text/event-stream``: retrieval → token… → citation… → suggestions → done (실패 시 error).
    요청 검증, 세션 저장소 중단 등 시작 전 오류는 HTTP 상태 코드로 응답합니다. 연결을 끊으면 생성이 멈춥니다."""
    prepared = await state.chat.prepare(chat_request(body))
    return EventStreamResponse(
        state.chat.run(prepared), heartbeat_s=state.settings.sse_heartbeat_s,
        on_event=lambda ev: state.metrics.observe_event(ev.type, ev.data),
        on_disconnect=state.metrics.cancelled.inc)


class _Socket:
    """Serialises sends (the answer task and the receive loop both write)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.lock = asyncio.Lock()

    async def send(self, kind: str, data: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_text(json.dumps({"type": kind, "data": data}, ensure_ascii=False, default=str))

    async def error(self, exc: JisikError, **extra: Any) -> None:
        await self.send("error", error_data(exc) | extra)


async def _answer(sock: _Socket, state: ApiState, req: ChatRequest) -> None:
    try:
        async with contextlib.aclosing(state.chat.stream(req)) as events:
            async for ev in events:
                state.metrics.observe_event(ev.type, ev.data)
                await sock.send(ev.type, ev.data)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await sock.send("error", _cancelled())
        raise
    except (WebSocketDisconnect, RuntimeError, OSError):  # the socket went away while sending
        log.info("websocket closed during an answer")


def _cancelled() -> dict[str, Any]:
    return {"code": "cancelled", "status": 499, "message_ko": "답변 생성을 취소했습니다.",
            "message_en": "The answer was cancelled.", "hint": None, "details": {}}


def _check_origin(ws: WebSocket, allowed: list[str]) -> None:
    """Browsers send their page's origin; with CORS configured only those origins may open a socket."""
    origin = ws.headers.get("origin")
    if origin and allowed and "*" not in allowed and origin not in allowed:
        raise Forbidden("허용되지 않은 출처(origin)입니다.", f"Origin {origin} is not allowed.",
                        hint="JISIK_CORS_ORIGINS")


def _parse(raw: str) -> dict[str, Any]:
    try:
        msg = json.loads(raw)
    except ValueError:
        raise InvalidInput("메시지는 JSON이어야 합니다.", "Messages must be JSON.") from None
    if not isinstance(msg, dict):
        raise InvalidInput("메시지는 JSON 객체여야 합니다.", "Messages must be JSON objects.")
    return msg


@router.websocket("/ws")
async def chat_ws(ws: WebSocket) -> None:
    state: ApiState = ws.app.state.api
    await ws.accept()
    sock = _Socket(ws)
    try:
        ident = state.auth.user(presented_key(ws.headers, ws.query_params))
        _check_origin(ws, state.settings.cors_origins)
    except JisikError as exc:
        await sock.error(exc)
        await ws.close(code=1008)
        return
    task: asyncio.Task[None] | None = None
    try:
        while True:
            raw = await ws.receive_text()
            try:
                msg = _parse(raw)
                if msg.get("type") == "cancel":
                    if task is not None and not task.done():
                        task.cancel()
                        state.metrics.cancelled.inc()
                    continue
                if task is not None and not task.done():
                    raise Conflict("이전 답변이 아직 생성 중입니다. 끝나거나 취소한 뒤 보내세요.",
                                   "An answer is still in progress; wait for it or send {\"type\": \"cancel\"}.")
                body = ChatIn.model_validate(msg)
                await state.limiter.check(ident or f"ip:{ws.client.host if ws.client else 'unknown'}")
            except ValidationError as exc:
                errors = [{"loc": [str(x) for x in e["loc"]], "msg": e["msg"], "type": e["type"]}
                          for e in exc.errors()]
                bad = InvalidInput("요청 값이 올바르지 않습니다.", "Invalid request.", details={"errors": errors})
                await sock.error(bad)
                continue
            except JisikError as exc:
                await sock.error(exc)
                continue
            task = asyncio.create_task(_answer(sock, state, chat_request(body)))
    except WebSocketDisconnect:
        pass
    finally:
        if task is not None and not task.done():
            task.cancel()
            state.metrics.cancelled.inc()
            with contextlib.suppress(BaseException):
                await task

