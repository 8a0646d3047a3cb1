"""Values of the chat use case (:mod:`jisik.rag.chat`): the request, the typed stream events and
the collected result. No HTTP here: the API turns events into SSE / WebSocket frames.

Event types, in the order a stream sends them:

* ``retrieval`` — ``{session_id, collection, app, index_version, cached, hits: [{n, doc_id, chunk_id,
  title, score, source_uri, locator}], timings_ms}``
* ``token`` — ``{text}``: a piece of the answer (a cached answer comes as one piece)
* ``citation`` — ``{n, citation}``: a passage the answer cites as ``[n]`` (citation dict + ``text``)
* ``suggestions`` — ``{items}``: follow-up questions (only when the app has a suggester)
* ``done`` — ``{message_id, session_id, answer, outcome, usage, latency_ms, provider, cached, ...}``;
  ``answer`` is the final text (markers outside the citation list removed)
* ``error`` — ``{code, status, message_ko, message_en, hint, details}``: the stream ends after it
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from jisik.core.errors import JisikError

EventType = Literal["retrieval", "token", "citation", "suggestions", "done", "error"]
EVENT_TYPES: tuple[str, ...] = ("retrieval", "token", "citation", "suggestions", "done", "error")
Outcome = Literal["answered", "not_found", "off_topic"]


@dataclass(slots=True)
class ChatRequest:
    """One question. ``stateless`` (seed 000's ``/query``): no session, no history."""

    question: str
    session_id: str | None = None
    user_id: str = ""
    app: str | None = None  # a registered app (jisik.apps); else a plain RAG app over ``collection``
    collection: str | None = None
    top_k: int | None = None
    filters: dict[str, Any] | None = None
    variables: dict[str, str] | None = None  # prompt variables the app declares
    suggestions: bool = True
    use_cache: bool = True
    stateless: bool = False


@dataclass(slots=True)
class ChatEvent:
    type: EventType
    data: dict[str, Any]
    error: JisikError | None = field(default=None, repr=False)  # the original error of an ``error`` event

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "data": self.data}


def error_data(exc: JisikError) -> dict[str, Any]:
    return exc.to_dict()


@dataclass(slots=True)
class ChatResult:
    """Everything one answer produced (what the non-streaming endpoints return)."""

    answer: str
    message_id: str
    session_id: str | None
    app: str
    collection: str
    outcome: Outcome
    citations: list[dict[str, Any]] = field(default_factory=list)
    suggestions: list[str] = field(default_factory=list)
    provider: dict[str, Any] = field(default_factory=dict)
    cached: bool = False
    usage: dict[str, Any] = field(default_factory=dict)
    latency_ms: int = 0
    timings_ms: dict[str, float] = field(default_factory=dict)
    grounding: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def not_found(self) -> bool:
        return self.outcome == "not_found"

    @property
    def off_topic(self) -> bool:
        return self.outcome == "off_topic"

    @classmethod
    def from_events(cls, events: list[ChatEvent]) -> ChatResult:
        """Assemble the result from a finished stream (re-raises the error of an ``error`` event)."""
        for ev in events:
            if ev.type == "error":
                if ev.error is not None:
                    raise ev.error
                raise JisikError(ev.data.get("message_ko", "오류"), ev.data.get("message_en"))
        done = next(ev.data for ev in events if ev.type == "done")
        retrieval = next((ev.data for ev in events if ev.type == "retrieval"), {})
        suggestions: list[str] = next((ev.data["items"] for ev in events if ev.type == "suggestions"), [])
        return cls(
            answer=done["answer"], message_id=done["message_id"], session_id=done.get("session_id"),
            app=done["app"], collection=done["collection"], outcome=done["outcome"],
            citations=[ev.data["citation"] for ev in events if ev.type == "citation"],
            suggestions=list(suggestions), provider=done["provider"], cached=done["cached"], usage=done["usage"],
            latency_ms=done["latency_ms"], timings_ms={**retrieval.get("timings_ms", {}), **done["timings_ms"]},
            grounding=done.get("grounding", {}), warnings=list(done.get("warnings", [])),
        )
