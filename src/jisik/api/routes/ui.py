"""What the chat page lists: ``GET /api/v1/apps`` (registered apps and indexed collections) and
``GET /api/v1/sessions?user_id=`` (a user's sessions, newest first; the messages of one session come
from ``GET /api/v1/sessions/{id}``).

The web UI sends a random user id it keeps in the browser (``localStorage``), so the session list
is that browser's; a caller with an API key can list any user id it knows, as it can already read
any session whose id it knows.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from jisik.api.deps import ApiState, StateDep, require_user
from jisik.api.schemas import ERRORS, ProviderInfo
from jisik.api.schemas_ui import AppOut, AppsOut, CollectionSummary, SessionsPage, SessionSummary
from jisik.apps.base import APPS
from jisik.core.logging import get_logger

router = APIRouter(prefix="/api/v1", tags=["ui"], dependencies=[Depends(require_user)], responses=ERRORS)
log = get_logger("jisik.api.ui")


def _apps(state: ApiState) -> AppsOut:
    collections = {c.name: c for c in state.runtime.store.list_collections()}
    apps: list[AppOut] = []
    for name in sorted(APPS):
        try:
            app = state.chat.app(name)
        except Exception as exc:  # one broken app must not hide the others
            log.error("app cannot be listed", extra={"app": name, "error": type(exc).__name__})
            continue
        info = collections.get(app.collection)
        apps.append(AppOut(name=app.name, title=app.title or app.name, description=app.description,
                           collection=app.collection, examples=list(app.examples),
                           available=info is not None and info.documents > 0))
    return AppsOut(
        apps=apps,
        collections=[CollectionSummary(name=c.name, version=c.version, documents=c.documents, chunks=c.chunks)
                     for c in sorted(collections.values(), key=lambda c: c.name)],
        default_collection=state.settings.default_collection,
        provider=ProviderInfo.model_validate(state.chat.provider_info()))


@router.get("/apps", response_model=AppsOut, summary="질문할 수 있는 앱과 컬렉션")
async def list_apps(state: StateDep) -> AppsOut:
    """등록된 앱(제목, 설명, 예시 질문, 컬렉션이 색인되었는지)과 색인된 컬렉션, 답변 생성 방식."""
    return await asyncio.to_thread(_apps, state)


@router.get("/sessions", response_model=SessionsPage, summary="사용자의 세션 목록 (최근순)")
async def list_sessions(
    state: StateDep,
    user_id: Annotated[str, Query(min_length=1, max_length=255, description="대화할 때 보낸 user_id")],
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> SessionsPage:
    page = await asyncio.to_thread(state.stores.sessions.list_by_user, user_id, limit=limit, offset=offset)
    return SessionsPage(
        items=[SessionSummary.model_validate(s.to_dict()) for s in page.items],
        total=page.total, limit=page.limit, offset=page.offset)
