"""The chat use case (no HTTP): question -> session + history summary -> answer cache -> retrieve ->
off-topic gate -> "not found" gate -> prompt -> LLM stream -> citation check -> save -> suggestions.

:meth:`ChatService.prepare` does everything that can fail before the first event (validation,
unknown app or collection, the session store being down), so an API can still answer with an
HTTP status; :meth:`ChatService.run` streams typed :class:`~jisik.rag.chat_types.ChatEvent` s.
:meth:`stream` = both (a failure becomes an ``error`` event), :meth:`answer` collects a stream,
:meth:`query` is seed 000's stateless ``/query``.

Durability: every finished, failed or cancelled question is written to the chat log (durable:
spooled when its database is down). Cancelling the consumer (a client disconnect) cancels the
pending LLM read, which closes the HTTP stream to the LLM server so it stops generating.

Caching: answers are cached under the normalised question + collection + the collection's
current index version (a new index invalidates) + app, request options and provider; only when
the prompt carries no conversation history (or the provider is extractive, which ignores it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from jisik.apps.base import App, TopicDecision, default_app, get_app
from jisik.core.errors import InvalidInput, JisikError, NotFound
from jisik.core.hashing import content_hash
from jisik.core.logging import get_logger
from jisik.core.settings import Settings
from jisik.core.types import Hit
from jisik.models.llm.base import ChatMessage, LLMProvider, Usage
from jisik.models.llm.extractive import provider_info
from jisik.rag.chat_types import ChatEvent, ChatRequest, ChatResult, Outcome, error_data
from jisik.rag.citations import CitationCheck, check_citations, cited_hits, nothing_relevant
from jisik.rag.history import PreparedHistory, prepare_history
from jisik.rag.prompts import PromptTemplate, load_prompt, render
from jisik.retrieval.hybrid import RetrievalResult
from jisik.retrieval.multiquery import expand_with_llm
from jisik.runtime import Runtime
from jisik.stores.conversations import ChatLog, ConversationStores, Message, Session, answer_cache_key, new_id
from jisik.stores.conversations.records import check_id, check_user_id

log = get_logger(__name__)

_MARKERS = re.compile(r"\s*[\[［]\s*\d{1,3}(?:\s*[,，、]\s*\d{1,3})*\s*[\]］]")
_VERSION_TTL_S = 1.0  # the embedded store itself notices new versions at most once a second
_SUGGEST_TIMEOUT_S = 10.0
_SNIPPET_CHARS = 1000


@dataclass(slots=True)
class Prepared:
    """A validated request, ready to run."""

    request: ChatRequest
    question: str  # normalised
    app: App
    prompt: PromptTemplate
    index_version: int
    session: Session | None
    history: PreparedHistory | None
    cache_key: str | None
    cached: dict[str, Any] | None
    started: float
    message_id: str = field(default_factory=new_id)
    warnings: list[str] = field(default_factory=list)


class ChatService:
    def __init__(self, runtime: Runtime, stores: ConversationStores, llm: LLMProvider, *,
                 settings: Settings | None = None, apps: Callable[[str], App] = get_app) -> None:
        self.runtime = runtime
        self.stores = stores
        self.llm = llm
        self.settings = settings or runtime.settings
        self._get_app = apps
        self._apps: dict[str, App] = {}
        self._versions: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    # -- lookups ----------------------------------------------------------------------------
    def app(self, name: str) -> App:
        with self._lock:
            if name not in self._apps:
                self._apps[name] = self._get_app(name)
            return self._apps[name]

    def index_version(self, collection: str) -> int:
        """The collection's current index version (NotFound if it does not exist); cached for a second."""
        now = time.monotonic()
        hit = self._versions.get(collection)
        if hit is not None and now - hit[0] < _VERSION_TTL_S:
            return hit[1]
        version = self.runtime.store.get_collection(collection).version
        self._versions[collection] = (now, version)
        return version

    def forget_version(self, collection: str) -> None:
        """Call after indexing: the next question reads the new version (and misses the old answers)."""
        self._versions.pop(collection, None)

    def provider_info(self) -> dict[str, Any]:
        return provider_info(self.llm)

    def _resolve_app(self, req: ChatRequest, session: Session | None) -> App:
        if req.app:
            app = self.app(req.app)
            if req.collection and req.collection != app.collection:
                raise InvalidInput(
                    f"앱 '{app.name}'은(는) 컬렉션 '{app.collection}'을 씁니다; collection을 빼거나 맞추세요.",
                    f"App '{app.name}' uses collection '{app.collection}', not '{req.collection}'.")
            return app
        if req.collection:
            return default_app(req.collection)
        if session is not None and session.app and session.app != "default":
            return self.app(session.app)
        return default_app(session.collection if session is not None and session.collection
                           else self.settings.default_collection)

    # -- prepare ----------------------------------------------------------------------------
    async def prepare(self, req: ChatRequest) -> Prepared:
        """Validate and load what the answer needs; raises :class:`JisikError` (422/404/503...).

        A question the service could not take because a dependency failed (5xx) is chat-logged.
        """
        started = time.perf_counter()
        try:
            p = await asyncio.to_thread(self._prepare_sync, req, started)
            if p.session is not None:
                await self._prepare_history(p)
        except JisikError as exc:
            if exc.status >= 500:
                await asyncio.to_thread(self._log_failure, req, exc, started)
            raise
        if p.cache_key is not None and p.session is not None:  # stateless: looked up already
            if self._cacheable(p):
                p.cached = await asyncio.to_thread(self._cache_get, p.cache_key, p.warnings)
            else:
                p.cache_key = None
        return p

    def _prepare_sync(self, req: ChatRequest, started: float) -> Prepared:
        question = self.runtime.retriever.validate_query(req.question)
        if req.top_k is not None and not 1 <= req.top_k <= 50:
            raise InvalidInput(f"top_k는 1~50 사이여야 합니다 (받은 값: {req.top_k}).",
                               f"top_k must be 1..50 (got {req.top_k}).")
        check_user_id(req.user_id)
        session: Session | None = None
        if not req.stateless and req.session_id:
            check_id(req.session_id, "세션 ID(session id)")
            try:
                session = self.stores.sessions.get(req.session_id)
            except NotFound:
                session = None
            else:
                if session.user_id and req.user_id and session.user_id != req.user_id:
                    raise NotFound("세션을 찾을 수 없습니다.", "Session not found.")
        app = self._resolve_app(req, session)
        prompt = load_prompt(app.prompt, directory=self.settings.home / "prompts")
        unknown = sorted(set(req.variables or {}) - set(prompt.variables))
        if unknown:
            raise InvalidInput(f"앱 '{app.name}'에 없는 변수입니다: {unknown}. 사용 가능: {sorted(prompt.variables)}",
                               f"App '{app.name}' has no variables {unknown}; allowed: {sorted(prompt.variables)}")
        version = self.index_version(app.collection)
        if not req.stateless and session is None:
            session = self._create_session(req, app, question)
        key = None
        if req.use_cache and self.settings.cache_ttl_s > 0:
            options = json.dumps({"top_k": req.top_k or app.top_k, "filters": req.filters or app.filters,
                                  "variables": req.variables or {}, "prompt": app.prompt}, sort_keys=True,
                                 ensure_ascii=False, default=str)
            key = answer_cache_key(question, collection=app.collection, index_version=version,
                                   app=f"{app.name}|{content_hash(options, length=16)}", provider=self.llm.name,
                                   model=self.llm.model_id)
        p = Prepared(req, question, app, prompt, version, session, None, key, None, started)
        if key is not None and session is None:  # no history: the lookup can happen in this thread hop
            p.cached = self._cache_get(key, p.warnings)
        return p

    def _create_session(self, req: ChatRequest, app: App, question: str) -> Session:
        title = question[:60]
        try:
            return self.stores.sessions.create(user_id=req.user_id, app=app.name, collection=app.collection,
                                               title=title, session_id=req.session_id)
        except JisikError as exc:
            if exc.status == 409 and req.session_id:  # created meanwhile by a concurrent request
                return self.stores.sessions.get(req.session_id)
            raise

    async def _prepare_history(self, p: Prepared) -> None:
        assert p.session is not None
        s = self.settings
        session = p.session
        messages = await asyncio.to_thread(self.stores.sessions.history, session.session_id)
        if self.llm.kind == "llm":
            p.history = await prepare_history(session, messages, keep_turns=s.history_keep_turns,
                                              max_chars=s.history_summary_chars, llm=self.llm,
                                              tokenizer=self.runtime.tokenizer)
        else:  # the extractive summary tokenises with Kiwi: keep the event loop free
            p.history = await asyncio.to_thread(lambda: asyncio.run(prepare_history(
                session, messages, keep_turns=s.history_keep_turns, max_chars=s.history_summary_chars,
                tokenizer=self.runtime.tokenizer)))
        h = p.history
        if h.changed:
            try:
                await asyncio.to_thread(self.stores.sessions.set_summary, session.session_id, h.summary,
                                        h.summary_upto)
            except JisikError as exc:
                p.warnings.append(f"history summary not saved: {exc.code}")

    def _cacheable(self, p: Prepared) -> bool:
        h = p.history
        return self.llm.kind == "extractive" or h is None or not (h.summary or h.recent)

    def _cache_get(self, key: str, warnings: list[str]) -> dict[str, Any] | None:
        try:
            return self.stores.cache.get(key)
        except JisikError as exc:  # the cache is an optimisation: a cache that is down is a miss
            warnings.append(f"answer cache unavailable: {exc.code}")
            return None

    # -- run --------------------------------------------------------------------------------
    async def stream(self, req: ChatRequest) -> AsyncGenerator[ChatEvent, None]:
        try:
            p = await self.prepare(req)
        except JisikError as exc:
            yield ChatEvent("error", error_data(exc), exc)
            return
        async with contextlib.aclosing(self.run(p)) as events:
            async for ev in events:
                yield ev

    async def answer(self, req: ChatRequest) -> ChatResult:
        return ChatResult.from_events([ev async for ev in self.stream(req)])

    async def query(self, question: str, *, collection: str | None = None, app: str | None = None,
                    top_k: int | None = None, filters: dict[str, Any] | None = None,
                    use_cache: bool = True) -> ChatResult:
        """Seed 000's ``/query``: one stateless answer with citations and timings."""
        return await self.answer(ChatRequest(question, app=app, collection=collection, top_k=top_k,
                                             filters=filters, use_cache=use_cache, suggestions=False,
                                             stateless=True))

    async def run(self, p: Prepared) -> AsyncGenerator[ChatEvent, None]:
        state = _RunState()
        steps = self._replay(p, p.cached, state) if p.cached is not None else self._generate(p, state)
        try:
            # aclosing: when our consumer stops, the step generator (and the LLM stream in it) closes now
            async with contextlib.aclosing(steps) as events:
                async for ev in events:
                    yield ev
        except (asyncio.CancelledError, GeneratorExit):
            self._log_in_background(p, state, "cancelled")
            raise
        except JisikError as exc:
            log.warning("chat failed", extra={"code": exc.code, "app": p.app.name, "tokens": state.pieces})
            await asyncio.to_thread(self._log_answer, p, state, answered=False, error=exc.code)
            yield ChatEvent("error", error_data(exc), exc)
        except Exception:
            log.exception("chat failed unexpectedly", extra={"app": p.app.name})
            await asyncio.to_thread(self._log_answer, p, state, answered=False, error="internal_error")
            err = JisikError("답변 중 내부 오류가 발생했습니다.", "Internal error while answering.")
            yield ChatEvent("error", error_data(err), err)

    async def _generate(self, p: Prepared, state: _RunState) -> AsyncGenerator[ChatEvent, None]:
        app = p.app
        t = time.perf_counter()
        variants = None
        if self.runtime.retriever.settings.multi_query and self.llm.kind == "llm":
            variants = await expand_with_llm(p.question, self.llm)  # else the retriever's rule-based variants
            state.timings["expand"] = round((time.perf_counter() - t) * 1000, 3)
        result, decision = await asyncio.to_thread(self._retrieve, p, variants)
        state.timings.update({f"retrieval_{k}": round(v, 3) for k, v in result.timings_ms.items()})
        state.timings["retrieval"] = round((time.perf_counter() - t) * 1000, 3)
        hits = result.hits
        yield ChatEvent("retrieval", self._retrieval_data(p, _hit_summaries(hits), state.timings, cached=False))

        outcome: Outcome = "answered"
        usage = Usage()
        state.depends_on_history = decision is not None and decision.reason == _FOLLOW_UP
        if decision is not None and not decision.on_topic:
            outcome, hits, text = "off_topic", [], app.refusal
            state.off_topic_reason = decision.reason
            state.add(text)
            yield ChatEvent("token", {"text": text})
        elif nothing_relevant(hits, self.settings.answer_min_score,
                              signal=None if self.settings.answer_score_signal == "fused"
                              else self.settings.answer_score_signal):
            outcome, hits, text = "not_found", [], p.prompt.not_found
            state.add(text)
            yield ChatEvent("token", {"text": text})
        else:
            messages = self._messages(p, hits)
            t = time.perf_counter()
            async with self.llm.stream(messages, hits=hits, question=p.question) as tokens:
                async for delta in tokens:
                    if state.first_token_ms is None:
                        state.first_token_ms = (time.perf_counter() - t) * 1000
                    state.add(delta)
                    yield ChatEvent("token", {"text": delta})
                usage = tokens.usage
                state.model = tokens.model
            state.timings["generation"] = round((time.perf_counter() - t) * 1000, 3)
            if state.first_token_ms is not None:
                state.timings["first_token"] = round(state.first_token_ms, 3)
            text = state.text
        check = check_citations(text, len(hits), not_found=p.prompt.not_found)
        if outcome == "answered" and check.not_found:
            outcome = "not_found"
        citations = _citations(hits, check)
        for c in citations:
            yield ChatEvent("citation", {"n": c["n"], "citation": c})
        suggestions = await self._suggest(p, check.text, hits) if outcome == "answered" else None
        if suggestions is not None:
            yield ChatEvent("suggestions", {"items": suggestions})
        answer = check.text if outcome == "answered" else text
        state.final = answer
        cache_value = None
        if p.cache_key is not None and not check.flagged and not state.depends_on_history:
            cache_value = {"answer": answer, "outcome": outcome, "citations": citations,
                           "suggestions": suggestions, "hits": _hit_summaries(hits), "grounding": check.to_dict(),
                           "provider": self.provider_info()}
        warnings = await asyncio.to_thread(self._save, p, state, answer, outcome, citations, usage, cache_value)
        yield ChatEvent("done", self._done_data(p, state, answer, outcome, usage, check.to_dict(), warnings,
                                                cached=False))

    def _retrieve(self, p: Prepared, variants: list[str] | None = None) -> tuple[RetrievalResult, TopicDecision | None]:
        req, app = p.request, p.app
        result = self.runtime.retriever.retrieve(
            p.question, app.collection, top_k=req.top_k or app.top_k, filters=req.filters or app.filters or None,
            overrides={"max_per_doc": 3}, variants=variants)  # max_per_doc: an answer may need two sections
        decision = app.offtopic.check(p.question, result.hits) if app.offtopic is not None else None
        if decision is not None and not decision.on_topic and app.offtopic is not None:
            # a short follow-up ("그럼 수수료는요?") is judged together with the previous question
            previous = [m.text for m in (p.history.recent if p.history else []) if m.role == "user"]
            if previous:
                joined = app.offtopic.check(f"{previous[-1]} {p.question}", result.hits)
                if joined.on_topic:
                    decision = TopicDecision(True, joined.score, _FOLLOW_UP)
        return result, decision

    def _messages(self, p: Prepared, hits: list[Hit]) -> list[ChatMessage]:
        h = p.history
        rendered = render(p.prompt, p.question, hits, h.summary if h else None, variables=p.request.variables)
        recent: list[ChatMessage] = []
        for m in (h.recent if h else []):
            if m.role == "user":
                recent.append({"role": "user", "content": m.text})
            elif m.role == "assistant":  # old markers point into old passage lists: drop them
                recent.append({"role": "assistant", "content": _MARKERS.sub("", m.text).strip()})
        # after the template's fixed prefix (system + worked examples), before the question
        return [*rendered[:-1], *recent, rendered[-1]]

    async def _suggest(self, p: Prepared, answer: str, hits: list[Hit]) -> list[str] | None:
        suggester = p.app.suggester
        if suggester is None or not p.request.suggestions:
            return None
        try:
            items = await asyncio.wait_for(suggester.suggest(p.question, answer, hits, llm=self.llm, limit=3),
                                           _SUGGEST_TIMEOUT_S)
        except (TimeoutError, JisikError) as exc:  # suggestions are optional
            log.warning("suggestions failed", extra={"app": p.app.name, "error": type(exc).__name__})
            return []
        return [str(s) for s in items][:3]

    async def _replay(self, p: Prepared, cached: dict[str, Any], state: _RunState) -> AsyncGenerator[ChatEvent, None]:
        """A cached answer: same events, no retrieval or generation."""
        yield ChatEvent("retrieval", self._retrieval_data(p, cached.get("hits", []), state.timings, cached=True))
        answer = str(cached["answer"])
        state.add(answer)
        state.final = answer
        yield ChatEvent("token", {"text": answer})
        citations = list(cached.get("citations") or [])
        for c in citations:
            yield ChatEvent("citation", {"n": c["n"], "citation": c})
        if cached.get("suggestions") is not None and p.app.suggester is not None and p.request.suggestions:
            yield ChatEvent("suggestions", {"items": list(cached["suggestions"])})
        outcome = cached.get("outcome", "answered")
        warnings = await asyncio.to_thread(self._save, p, state, answer, outcome, citations, Usage(), None)
        yield ChatEvent("done", self._done_data(p, state, answer, outcome, Usage(), cached.get("grounding", {}),
                                                warnings, cached=True))

    # -- results and persistence --------------------------------------------------------------
    def _retrieval_data(self, p: Prepared, hits: list[dict[str, Any]], timings: dict[str, float], *,
                        cached: bool) -> dict[str, Any]:
        return {"session_id": p.session.session_id if p.session else None, "app": p.app.name,
                "collection": p.app.collection, "index_version": p.index_version, "cached": cached, "hits": hits,
                "timings_ms": dict(timings)}

    def _done_data(self, p: Prepared, state: _RunState, answer: str, outcome: str, usage: Usage,
                   grounding: dict[str, Any], warnings: list[str], *, cached: bool) -> dict[str, Any]:
        return {"message_id": p.message_id, "session_id": p.session.session_id if p.session else None,
                "app": p.app.name, "collection": p.app.collection, "answer": answer, "outcome": outcome,
                "cached": cached, "usage": usage.to_dict(), "latency_ms": _ms_since(p.started),
                "timings_ms": dict(state.timings), "provider": self.provider_info() | {"served_model": state.model},
                "grounding": grounding, "warnings": [*p.warnings, *warnings]}

    def _save(self, p: Prepared, state: _RunState, answer: str, outcome: str, citations: list[dict[str, Any]],
              usage: Usage, cache_value: dict[str, Any] | None) -> list[str]:
        warnings: list[str] = []
        latency = _ms_since(p.started)
        if p.session is not None:
            meta = {"provider": self.llm.name, "model": self.llm.model_id, "latency_ms": latency,
                    "tokens": usage.to_dict(), "cache_hit": p.cached is not None, "outcome": outcome,
                    "off_topic": outcome == "off_topic", "collection": p.app.collection, "app": p.app.name}
            try:
                self.stores.sessions.append(p.session.session_id, [
                    Message("user", p.question, session_id=p.session.session_id),
                    Message("assistant", answer, message_id=p.message_id, session_id=p.session.session_id,
                            citations=citations, meta=meta),
                ])
            except JisikError as exc:  # the answer was given already; say so rather than fail it
                warnings.append(f"session not saved: {exc.code}")
                log.warning("session append failed", extra={"code": exc.code})
        self._log_answer(p, state, answered=outcome == "answered", off_topic=outcome == "off_topic",
                         answer=answer, latency=latency)
        if cache_value is not None and p.cache_key is not None:
            try:
                self.stores.cache.set(p.cache_key, cache_value)
            except JisikError as exc:
                warnings.append(f"answer not cached: {exc.code}")
        return warnings

    def _log_answer(self, p: Prepared, state: _RunState, *, answered: bool, off_topic: bool = False,
                    answer: str | None = None, latency: int | None = None, error: str | None = None) -> None:
        text = answer if answer is not None else state.text
        if error is not None:
            text = f"[{error}] {text}".rstrip()
        self._record(ChatLog(
            session_id=p.session.session_id if p.session else "", question=p.question, answer=text,
            user_id=p.request.user_id, app=p.app.name, collection=p.app.collection, answered=answered,
            off_topic=off_topic, latency_ms=latency if latency is not None else _ms_since(p.started),
            provider=self.llm.name, model=self.llm.model_id, message_id=p.message_id))

    def _log_failure(self, req: ChatRequest, exc: JisikError, started: float) -> None:
        """A question the service could not take (a dependency failed): logged, unanswered."""
        if not isinstance(req.question, str) or not req.question.strip():
            return
        self._record(ChatLog(
            session_id=req.session_id or "", question=req.question[:2000], answer=f"[{exc.code}]",
            user_id=req.user_id if isinstance(req.user_id, str) else "", app=req.app or "",
            collection=req.collection or "", answered=False, latency_ms=_ms_since(started),
            provider=self.llm.name, model=self.llm.model_id))

    def _record(self, entry: ChatLog) -> None:
        try:
            self.stores.chatlogs.record(entry)  # durable: spooled when the database is down
        except JisikError as exc:
            log.error("chat log not recorded", extra={"code": exc.code})

    def _log_in_background(self, p: Prepared, state: _RunState, reason: str) -> None:
        """Record a cancelled answer without awaiting (the task is being cancelled)."""
        def write() -> None:
            self._log_answer(p, state, answered=False, error=reason)

        try:
            asyncio.get_running_loop().run_in_executor(None, write)
        except RuntimeError:  # no loop (generator finalised outside one)
            write()
        log.info("chat cancelled", extra={"app": p.app.name, "tokens": state.pieces})


_FOLLOW_UP = "follow-up of the previous question"


@dataclass(slots=True)
class _RunState:
    parts: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    first_token_ms: float | None = None
    model: str = ""
    final: str | None = None
    off_topic_reason: str = ""
    depends_on_history: bool = False  # the answer relied on earlier turns: never cache it

    def add(self, text: str) -> None:
        self.parts.append(text)

    @property
    def pieces(self) -> int:
        return len(self.parts)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _ms_since(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


def _hit_summaries(hits: list[Hit]) -> list[dict[str, Any]]:
    return [{"n": n, "doc_id": h.chunk.doc_id, "chunk_id": h.chunk.chunk_id, "title": h.chunk.title,
             "score": round(h.score, 6), "source_uri": h.chunk.source_uri, "locator": dict(h.chunk.locator)}
            for n, h in enumerate(hits, 1)]


def _citations(hits: list[Hit], check: CitationCheck) -> list[dict[str, Any]]:
    out = []
    for n, hit in cited_hits(hits, check):
        text = hit.chunk.text
        out.append({"n": n, **hit.citation.to_dict(), "score": round(hit.score, 6),
                    "text": text if len(text) <= _SNIPPET_CHARS else text[:_SNIPPET_CHARS] + "…"})
    return out
