"""The deterministic, grounded "extractive" provider: no language model writes anything.

It answers from the retrieved passages (``hits``) by quoting their best-matching sentences,
each followed by its citation marker (:func:`jisik.rag.extractive.extractive_answer`), and
streams that answer word by word like an LLM would. With no relevant passage it says
``문서에서 찾을 수 없습니다.`` It is the default when no LLM is configured and the provider of the
tests; responses must say so (``kind == "extractive"``, :data:`EXTRACTIVE_LABEL_KO`).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from jisik.core.types import Hit
from jisik.rag.extractive import extractive_answer
from jisik.text.tokenize import KoreanTokenizer, get_tokenizer

from .base import (
    ChatMessage,
    CompletesFromStream,
    LLMProvider,
    ProviderKind,
    TokenStream,
    Usage,
    last_user_message,
)

EXTRACTIVE_MODEL_ID = "jisik/extractive"
EXTRACTIVE_LABEL_KO = "추출형 답변: LLM 없이 문서의 문장을 그대로 인용했습니다."
EXTRACTIVE_LABEL_EN = "Extractive answer: sentences quoted from the documents, no LLM."


def provider_info(llm: LLMProvider) -> dict[str, Any]:
    """What a response says about the provider that wrote it (extractive answers are labelled)."""
    info: dict[str, Any] = {"name": llm.name, "model": llm.model_id, "kind": llm.kind}
    if llm.kind == "extractive":
        info["label_ko"] = getattr(llm, "label_ko", EXTRACTIVE_LABEL_KO)
        info["label_en"] = getattr(llm, "label_en", EXTRACTIVE_LABEL_EN)
    return info

_WORD = re.compile(r"\s*\S+")


class ExtractiveLLM(CompletesFromStream):
    """Quotes the cited passages; ``question`` defaults to the last user message."""

    kind: ProviderKind = "extractive"
    name = "extractive"
    model_id = EXTRACTIVE_MODEL_ID
    label_ko = EXTRACTIVE_LABEL_KO
    label_en = EXTRACTIVE_LABEL_EN

    def __init__(self, tokenizer: KoreanTokenizer | None = None, *, max_sentences: int = 3,
                 min_overlap: float = 0.2) -> None:
        self._tokenizer = tokenizer
        self.max_sentences = max_sentences
        self.min_overlap = min_overlap

    @property
    def tokenizer(self) -> KoreanTokenizer:
        if self._tokenizer is None:
            self._tokenizer = get_tokenizer()
        return self._tokenizer

    def answer(self, question: str, hits: Sequence[Hit]) -> str:
        """The whole answer at once (synchronous)."""
        return extractive_answer(question, hits, self.tokenizer, max_sentences=self.max_sentences,
                                 min_overlap=self.min_overlap).text

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
        q = question if question is not None else last_user_message(messages)
        return TokenStream(lambda out: self._generate(out, q, tuple(hits), max_tokens))

    async def _generate(self, out: TokenStream, question: str, hits: tuple[Hit, ...],
                        max_tokens: int | None) -> AsyncGenerator[str, None]:
        out.model = self.model_id
        # Kiwi releases the GIL; keep the event loop free while it tokenises the passages
        text = await asyncio.to_thread(self.answer, question, hits)
        words = _WORD.findall(text)
        limit = len(words) if max_tokens is None else max(0, max_tokens)
        for n, word in enumerate(words[:limit], 1):
            out.usage = Usage(0, n, estimated=True)
            yield word
            await asyncio.sleep(0)  # a consumer that cancels is heard between words
        out.finish_reason = "stop" if limit >= len(words) else "length"

    async def aclose(self) -> None:
        return None

    def __repr__(self) -> str:
        return f"ExtractiveLLM(model_id={self.model_id!r})"
