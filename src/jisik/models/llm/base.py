"""The :class:`LLMProvider` protocol, the values it returns, and :class:`TokenStream`.

A provider turns chat messages into text, streamed as deltas::

    async with llm.stream(messages, max_tokens=256) as tokens:
        async for delta in tokens:
            send(delta)
    tokens.usage, tokens.finish_reason      # known once the stream has ended

Cancellation: if the task that iterates is cancelled (a client disconnects), the pending read
raises ``CancelledError`` inside the provider and the HTTP response is closed, which makes an
OpenAI-compatible server (vLLM, llama.cpp, Ollama) stop generating. A consumer that simply stops
iterating should close the stream (``async with`` / ``aclose()``); an abandoned stream is closed
by the event loop when it is garbage-collected.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from jisik.core.types import Hit

ProviderKind = Literal["llm", "extractive"]
Role = Literal["system", "user", "assistant"]


class ChatMessage(TypedDict):
    role: Role
    content: str


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False  # True when the server reported nothing and the deltas were counted

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, Any]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens, "estimated": self.estimated}


@dataclass(slots=True)
class Completion:
    text: str
    usage: Usage
    finish_reason: str | None  # "stop" | "length" | ... as the server said
    model: str = ""


class TokenStream:
    """An async iterator of text deltas that knows, once it has ended, the usage and why it ended.

    ``producer`` is an async generator function taking the stream (so it can fill in ``usage``,
    ``finish_reason`` and ``model``) and yielding deltas. Nothing runs until the first ``anext``.
    """

    def __init__(self, producer: Callable[[TokenStream], AsyncGenerator[str, None]]) -> None:
        self.usage = Usage()
        self.finish_reason: str | None = None
        self.model = ""
        self._gen = producer(self)
        self._parts: list[str] = []

    def __aiter__(self) -> TokenStream:
        return self

    async def __anext__(self) -> str:
        delta = await self._gen.__anext__()
        self._parts.append(delta)
        return delta

    @property
    def text(self) -> str:
        """Everything received so far."""
        return "".join(self._parts)

    async def aclose(self) -> None:
        """Stop generating and release the connection (safe to call twice)."""
        await self._gen.aclose()

    async def __aenter__(self) -> TokenStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def collect(self) -> Completion:
        """Read the stream to its end."""
        try:
            async for _ in self:
                pass
        finally:
            await self.aclose()
        return Completion(self.text, self.usage, self.finish_reason, self.model)


@runtime_checkable
class LLMProvider(Protocol):
    """Chat messages -> text. ``kind`` says whether a language model writes the answer
    (``"llm"``) or it is quoted from the passages (``"extractive"``, to be labelled as such).

    ``hits`` and ``question`` are the retrieval context the messages were rendered from: LLMs
    ignore them (the passages are in the messages), the extractive provider answers from them.
    """

    @property
    def name(self) -> str: ...

    @property
    def model_id(self) -> str: ...

    @property
    def kind(self) -> ProviderKind: ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        hits: Sequence[Hit] = (),
        question: str | None = None,
    ) -> TokenStream: ...

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        hits: Sequence[Hit] = (),
        question: str | None = None,
    ) -> Completion: ...

    async def aclose(self) -> None: ...


class CompletesFromStream:
    """``complete`` for providers whose whole answer is their collected ``stream``."""

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        hits: Sequence[Hit] = (),
        question: str | None = None,
    ) -> TokenStream:
        raise NotImplementedError

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        hits: Sequence[Hit] = (),
        question: str | None = None,
    ) -> Completion:
        return await self.stream(messages, max_tokens=max_tokens, temperature=temperature, stop=stop, hits=hits,
                                 question=question).collect()


def last_user_message(messages: Sequence[ChatMessage]) -> str:
    for m in reversed(messages):
        if m["role"] == "user":
            return m["content"]
    return ""
