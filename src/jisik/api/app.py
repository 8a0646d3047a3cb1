"""``create_app(settings)``: the FastAPI application.

The lifespan opens the runtime (index store, embedder, Kiwi), the conversation stores and the LLM
provider once, warms them up, replays chat logs/feedback spooled during an outage (at start and
every ``spool_replay_interval_s``) and closes what it opened. Components passed in (tests, an
embedding application) are used as they are and left open.

Run it with ``jisik serve`` (uvicorn) or ``uvicorn --factory jisik.api.app:create_app``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import pkgutil
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from jisik import __version__
from jisik.api.deps import ApiState
from jisik.api.errors import install_error_handlers
from jisik.api.ingest_jobs import IngestQueue
from jisik.api.routes import admin, admin_ui, chat, feedback, health, ingest, metrics, query, scene01, sessions, ui
from jisik.api.security import Auth, BodyLimitMiddleware, RateLimiter, rate_limit_url
from jisik.api.telemetry import Metrics, RequestContextMiddleware
from jisik.apps.base import APPS
from jisik.core.errors import JisikError
from jisik.core.logging import get_logger
from jisik.core.settings import Settings, get_settings
from jisik.models.llm.base import LLMProvider
from jisik.rag.chat import ChatService
from jisik.runtime import Runtime
from jisik.stores.conversations import ConversationStores, open_conversation_stores
from jisik.web import install_ui

log = get_logger("jisik.api")

DESCRIPTION = """한국어 우선 오프라인 RAG 플랫폼 **jisik (지식)** 의 API.

* `POST /query` — 질의응답 (세션 없음), `POST /api/v1/chat` · `/api/v1/chat/stream` (SSE) · `WS /api/v1/chat/ws`
* 답변 속 `[n]` 은 `citations` 의 n번 문서를 가리킵니다. 관련 문서가 없으면 "문서에서 찾을 수 없습니다."
* `provider.kind == "extractive"` 이면 LLM 없이 문서 문장을 그대로 인용한 답변입니다.
* 오류 형식: `{"error": {"code", "status", "message_ko", "message_en", "hint", "details", "request_id"}}`
"""


def load_apps() -> list[str]:
    """Import every application package under :mod:`jisik.apps` so that each registers itself."""
    import jisik.apps

    for mod in pkgutil.iter_modules(jisik.apps.__path__):
        if mod.name == "base":
            continue
        try:
            importlib.import_module(f"jisik.apps.{mod.name}")
        except Exception as exc:  # one broken app must not take the API down
            log.error("app failed to load", extra={"app": mod.name, "error": f"{type(exc).__name__}: {exc}"})
    return sorted(APPS)


def _warm_up(runtime: Runtime) -> None:
    runtime.store.list_collections()
    runtime.tokenizer.tokens("준비")
    runtime.embedder.embed_queries(["준비"])


async def _replay_loop(stores: ConversationStores, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        if not (stores.chatlogs.spool.pending() or stores.feedback.spool.pending()):
            continue
        try:
            n = await asyncio.to_thread(stores.replay_spools)
            log.info("spooled records replayed", extra={"count": n})
        except JisikError as exc:
            log.warning("spool replay failed; will retry", extra={"code": exc.code})


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None,
               stores: ConversationStores | None = None, llm: LLMProvider | None = None) -> FastAPI:
    settings = settings or get_settings()
    metrics_ = Metrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        load_apps()
        rt = runtime or Runtime(settings)
        st = stores or open_conversation_stores(settings)
        model: LLMProvider | None = llm
        tasks: list[asyncio.Task[Any]] = []
        limiter = RateLimiter(settings.rate_limit_per_min, rate_limit_url(settings))
        queue: IngestQueue | None = None
        try:
            await asyncio.to_thread(_warm_up, rt)
            if model is None:
                from jisik.models.llm import create_llm

                model = create_llm(settings, tokenizer=rt.tokenizer)
            chat_service = ChatService(rt, st, model, settings=settings)
            queue = IngestQueue(settings.home, settings.ingest_mode, rt,
                                on_done=lambda job: chat_service.forget_version(job.collection))
            auth = Auth(settings)
            if auth.open:
                log.warning("no API keys configured: /query and /api/v1 are open (set JISIK_API_KEYS)")
            app.state.api = ApiState(settings, rt, st, model, chat_service, metrics_, auth, limiter, queue,
                                     time.time())
            try:
                await asyncio.to_thread(st.replay_spools)
            except JisikError as exc:
                log.warning("spooled records not replayed at start-up", extra={"code": exc.code})
            if settings.spool_replay_interval_s > 0:
                tasks.append(asyncio.create_task(_replay_loop(st, settings.spool_replay_interval_s)))
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            app.state.api = None
            if queue is not None:
                await asyncio.to_thread(queue.shutdown)
            await limiter.aclose()
            if llm is None and model is not None:
                await model.aclose()
            if stores is None:
                st.close()
            if runtime is None:
                rt.close()

    app = FastAPI(title="jisik API", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    install_error_handlers(app)
    for module in (health, query, chat, feedback, sessions, ui, admin, admin_ui, ingest, metrics):
        app.include_router(module.router)
    app.include_router(scene01.router)  # POST /api/v1/scene01/generate (seed 000, the marketing app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes,
                       upload_paths=(ingest.UPLOAD_PATH,), max_upload_bytes=settings.max_upload_bytes)
    if settings.cors_origins:
        any_origin = "*" in settings.cors_origins
        app.add_middleware(CORSMiddleware, allow_origins=["*"] if any_origin else settings.cors_origins,
                           allow_credentials=not any_origin, allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                           allow_headers=["Content-Type", "X-API-Key", "Authorization", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"])
    install_ui(app)  # /ui/ (chat) and /ui/admin/ (dashboard); browsers asking for / go to /ui/
    app.add_middleware(RequestContextMiddleware, metrics=metrics_)
    return app


def serve_app() -> FastAPI:
    """uvicorn factory of ``jisik serve`` (each worker process configures its own logging)."""
    from jisik.core.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
