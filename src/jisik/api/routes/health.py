"""``GET /`` (version), ``GET /health`` (liveness) and ``GET /health/ready`` (each dependency)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from jisik import __version__
from jisik.api.deps import ApiState, StateDep
from jisik.api.schemas import DependencyStatus, Health, Readiness, ServiceInfo
from jisik.apps.base import APPS
from jisik.core.errors import JisikError, NotFound

router = APIRouter(tags=["health"])
_PROBE_TIMEOUT_S = 3.0
# a dependency that is down makes the service unready; these only degrade it (spool, no cache)
_OPTIONAL = frozenset({"chat_logs", "cache"})


@router.get("/", response_model=ServiceInfo, summary="서비스 정보와 버전")
async def root(state: StateDep) -> ServiceInfo:
    return ServiceInfo(name="jisik", version=__version__, docs="/docs", llm=state.chat.provider_info(),
                       apps=sorted(APPS), default_collection=state.settings.default_collection)


@router.get("/health", response_model=Health, summary="살아 있음 (liveness)")
async def health() -> Health:
    return Health(status="ok")


async def _probe(fn: Callable[[], Any]) -> DependencyStatus:
    t = time.perf_counter()
    try:
        detail = await asyncio.wait_for(asyncio.to_thread(fn), _PROBE_TIMEOUT_S)
    except TimeoutError:
        return DependencyStatus(status="down", detail=f"no answer in {_PROBE_TIMEOUT_S:g} s",
                                ms=round((time.perf_counter() - t) * 1000, 1))
    except JisikError as exc:
        return DependencyStatus(status="down", detail=f"{exc.code}: {exc.message_en}",
                                ms=round((time.perf_counter() - t) * 1000, 1))
    return DependencyStatus(status="ok", detail=str(detail or ""), ms=round((time.perf_counter() - t) * 1000, 1))


def _sessions_probe(state: ApiState) -> str:
    with contextlib.suppress(NotFound):
        state.stores.sessions.get("readiness-probe")
    return type(state.stores.sessions).__name__


def _chatlog_probe(state: ApiState) -> str:
    with contextlib.suppress(NotFound):  # a primary-key lookup: cheap on a large log table
        state.stores.chatlogs.store.get("readiness-probe")
    pending = state.stores.chatlogs.spool.pending() or state.stores.feedback.spool.pending()
    return "spooled records waiting for replay" if pending else ""


async def _llm_probe(state: ApiState) -> DependencyStatus:
    llm = state.llm
    base_url = getattr(llm, "base_url", None)
    if llm.kind == "extractive" or not isinstance(base_url, str):
        return DependencyStatus(status="ok", detail=f"{llm.kind}: {llm.model_id}")
    t = time.perf_counter()
    try:
        async with httpx.AsyncClient(timeout=_PROBE_TIMEOUT_S) as client:
            resp = await client.get(f"{base_url}/models")
        ok = resp.status_code < 500
        detail = f"{llm.model_id}: HTTP {resp.status_code}"
    except httpx.HTTPError as exc:
        ok, detail = False, f"{llm.model_id}: {type(exc).__name__}"
    return DependencyStatus(status="ok" if ok else "down", detail=detail, ms=round((time.perf_counter() - t) * 1000, 1))


@router.get("/health/ready", response_model=Readiness, summary="준비 상태: 의존 서비스별 상태 (readiness)",
            responses={503: {"model": Readiness, "description": "필수 의존 서비스 중단"}})
async def ready(state: StateDep) -> JSONResponse:
    names = ("index", "sessions", "chat_logs", "cache", "llm")
    results = await asyncio.gather(
        _probe(lambda: f"{len(state.runtime.store.list_collections())} collections"),
        _probe(lambda: _sessions_probe(state)),
        _probe(lambda: _chatlog_probe(state)),
        _probe(lambda: state.stores.cache.get("readiness-probe") and ""),
        _llm_probe(state),
    )
    deps = dict(zip(names, results, strict=True))
    for name in _OPTIONAL:
        if deps[name].status == "down":
            deps[name] = deps[name].model_copy(update={"status": "degraded"})
    if any(d.status == "down" for d in deps.values()):
        overall = "down"
    elif any(d.status == "degraded" for d in deps.values()) or deps["chat_logs"].detail:
        overall = "degraded"
    else:
        overall = "ok"
    body = Readiness(status=overall, dependencies=deps)
    return JSONResponse(body.model_dump(), status_code=503 if overall == "down" else 200)
