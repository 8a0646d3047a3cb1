"""What the routers share: the application state (opened once by the lifespan) and the
dependencies that check API keys and rate limits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader

from jisik.api.ingest_jobs import IngestQueue
from jisik.api.security import Auth, RateLimiter, presented_key
from jisik.api.telemetry import Metrics
from jisik.core.errors import Unavailable
from jisik.core.settings import Settings
from jisik.models.llm.base import LLMProvider
from jisik.rag.chat import ChatService
from jisik.rag.chat_types import ChatRequest, ChatResult
from jisik.runtime import Runtime
from jisik.stores.conversations import ConversationStores


@dataclass(slots=True)
class ApiState:
    settings: Settings
    runtime: Runtime
    stores: ConversationStores
    llm: LLMProvider
    chat: ChatService
    metrics: Metrics
    auth: Auth
    limiter: RateLimiter
    ingest: IngestQueue
    started_at: float
    background: list[Any] = field(default_factory=list)


def state_of(request: Request) -> ApiState:
    state: ApiState | None = getattr(request.app.state, "api", None)
    if state is None:
        raise Unavailable("서버가 아직 시작 중입니다.", "The server is still starting.")
    return state


async def get_state(request: Request) -> ApiState:
    """The dependency (async: FastAPI would run a plain function in its thread pool)."""
    return state_of(request)


# shown in /docs ("Authorize"); the checks below also accept "Authorization: Bearer <key>"
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API 키 (JISIK_API_KEYS)")
admin_key_header = APIKeyHeader(name="X-API-Key", scheme_name="AdminKey", auto_error=False,
                                description="관리자 API 키 (JISIK_ADMIN_API_KEY)")


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def require_user(request: Request, _key: str | None = Depends(api_key_header)) -> str:
    """The API key check (when keys are configured) and the rate limit of write routes."""
    state = state_of(request)
    ident = state.auth.user(presented_key(request.headers))
    try:
        await state.limiter.check(ident or f"ip:{_client_ip(request)}")
    except Exception:
        state.metrics.rate_limited.inc()
        raise
    return ident


async def require_admin(request: Request, _key: str | None = Depends(admin_key_header)) -> str:
    state = state_of(request)
    return state.auth.admin(presented_key(request.headers))


def chat_request(body: Any, *, stateless: bool = False) -> ChatRequest:
    """The use-case request from an API body (:class:`~jisik.api.schemas.ChatIn` or a query)."""
    if stateless:
        return ChatRequest(body.query, app=body.app, collection=body.collection, top_k=body.top_k,
                           filters=body.filters, use_cache=body.use_cache, suggestions=False, stateless=True)
    return ChatRequest(body.question, session_id=body.session_id, user_id=body.user_id, app=body.app,
                       collection=body.collection, top_k=body.top_k, filters=body.filters, variables=body.variables,
                       suggestions=body.suggestions, use_cache=body.use_cache)


async def run_chat(state: ApiState, req: ChatRequest) -> ChatResult:
    """Answer without streaming (metrics recorded from the events); raises the error of a failed answer."""
    events = []
    async for ev in state.chat.stream(req):
        state.metrics.observe_event(ev.type, ev.data)
        events.append(ev)
    return ChatResult.from_events(events)


StateDep = Annotated[ApiState, Depends(get_state)]
