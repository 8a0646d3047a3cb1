"""What an application (faq, marketing, finance, docqa, bike) plugs into the shared chat use case.

An :class:`App` names its collection and prompt, and may add an off-topic gate and follow-up
suggestions. The chat use case (``jisik.rag.chat``) calls them in this order::

    question -> OffTopicFilter.check (refuse politely when off topic)
             -> retrieve (app.collection, app.top_k, app.filters) -> prompt (app.prompt) -> generate
             -> Suggester.suggest (2-3 follow-up questions)

Apps are registered by name in :data:`APPS` (``register``); the API resolves ``app`` in requests
through :func:`get_app`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from jisik.core.errors import NotFound
from jisik.core.types import Hit


@dataclass(slots=True)
class TopicDecision:
    on_topic: bool
    score: float  # the evidence the decision was made on (higher = more on topic)
    reason: str = ""  # short, for logs and the admin dashboard (no question text)


class OffTopicFilter(Protocol):
    """Decides whether a question is about the app's knowledge base (before any generation).

    ``hits`` are the retrieval results for the question (the filter may use their scores);
    implementations must be fast (no LLM call required) and deterministic.
    """

    def check(self, question: str, hits: Sequence[Hit]) -> TopicDecision: ...


class Suggester(Protocol):
    """Follow-up questions shown after an answer (2-3, Korean, not repeating the question)."""

    async def suggest(self, question: str, answer: str, hits: Sequence[Hit], *, llm: Any | None = None,
                      limit: int = 3) -> list[str]: ...


@dataclass(slots=True)
class App:
    name: str
    collection: str
    prompt: str = "default"  # a template in jisik/prompts/{prompt}.yaml
    title: str = ""  # shown in the UI
    description: str = ""
    top_k: int = 5
    filters: dict[str, Any] = field(default_factory=dict)
    offtopic: OffTopicFilter | None = None
    suggester: Suggester | None = None
    refusal: str = "죄송합니다. 이 서비스는 등록된 문서에 관한 질문에만 답변할 수 있습니다."
    examples: list[str] = field(default_factory=list)  # example questions for the UI


APPS: dict[str, Callable[[], App]] = {}


def register(name: str, factory: Callable[[], App]) -> None:
    APPS[name] = factory


def get_app(name: str) -> App:
    factory = APPS.get(name)
    if factory is None:
        raise NotFound(f"알 수 없는 앱입니다: {name!r} (사용 가능: {', '.join(sorted(APPS)) or '없음'})",
                       f"Unknown app {name!r} (available: {', '.join(sorted(APPS)) or 'none'})",
                       details={"apps": sorted(APPS)})
    return factory()


def default_app(collection: str) -> App:
    """A plain RAG app over any collection (no off-topic gate, retrieval-based suggestions off)."""
    return App(name="default", collection=collection)
