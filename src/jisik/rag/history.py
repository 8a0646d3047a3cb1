"""Conversation history for prompting: the last turns verbatim, older turns folded into a summary.

A *turn* is a user message and the assistant/system messages after it. :func:`prepare_history`
keeps the last ``keep_turns`` turns as they are; when more have accumulated since the session's
summary (``Session.summary_upto``), the older ones are folded into a running summary and the
caller stores it (``sessions.set_summary(session_id, result.summary, result.summary_upto)``), so
each message is summarised once.

:func:`summarise` uses an LLM when one is given: any object with
``async complete(messages, max_tokens=...)`` taking OpenAI-style ``{"role", "content"}`` dicts and
returning text (a ``str`` or an object with ``.text`` / ``.content``), e.g. any
:class:`jisik.models.llm.LLMProvider`. Without one, with the extractive provider (``kind ==
"extractive"``: it quotes passages, it cannot summarise), or when the LLM fails, it builds a
deterministic extractive summary: per older turn the first sentence of the question and the
answer's key nouns (Kiwi). Either way the summary is at most ``max_chars`` characters; when it
would grow beyond, the oldest lines go first. Texts are never logged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from jisik.core.errors import JisikError
from jisik.core.logging import get_logger
from jisik.stores.conversations.records import Message, Session
from jisik.text.normalize import normalize_query
from jisik.text.tokenize import KoreanTokenizer, get_tokenizer

if TYPE_CHECKING:
    from jisik.models.llm.base import ChatMessage

log = get_logger(__name__)

HEADER = "이전 대화 요약:"
_SENTENCE_END = re.compile(r"(?<=[.?!。？！])\s|\n")
_NOUN_TAGS = frozenset({"NNG", "NNP", "SL"})
_MAX_SENTENCE = 160
_MAX_NOUNS = 5
_LLM_INPUT_CHARS = 6000

SUMMARY_SYSTEM = (
    "당신은 상담 대화를 요약하는 도우미입니다. 이전 요약과 새 대화를 합쳐, 사용자가 무엇을 물었고 "
    "어떤 답(수치, 조건, 상품명 포함)을 받았는지 한국어 글머리표로 간결하게 요약하세요. "
    "새로운 사실을 지어내지 말고, 개인 정보(이름, 연락처, 계좌번호)는 적지 마세요."
)


class CompletionModel(Protocol):
    """What summarising needs of an LLM (every :class:`jisik.models.llm.LLMProvider` has it)."""

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None) -> Any: ...


@dataclass(slots=True)
class PreparedHistory:
    summary: str  # summary of every message with seq <= summary_upto
    recent: list[Message]  # the verbatim turns, oldest first
    summary_upto: int
    changed: bool  # True: store it with sessions.set_summary(session_id, summary, summary_upto)


def split_turns(messages: Sequence[Message]) -> list[list[Message]]:
    turns: list[list[Message]] = []
    for m in messages:
        if m.role == "user" or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    return turns


def first_sentence(text: str, limit: int = _MAX_SENTENCE) -> str:
    text = text.strip()
    cut = _SENTENCE_END.search(text)
    s = normalize_query(text[: cut.start()] if cut else text)
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


def key_nouns(text: str, tokenizer: KoreanTokenizer, *, skip: str = "", limit: int = _MAX_NOUNS) -> list[str]:
    """The most frequent nouns (adjacent noun morphemes joined: 예금자보호), first-seen order on ties."""
    counts: dict[str, int] = {}
    run: list[str] = []
    run_end = -1

    def flush() -> None:
        if run:
            word = "".join(run)
            if len(word) >= 2 and word not in skip:
                counts[word] = counts.get(word, 0) + 1
            run.clear()

    for tok in tokenizer.kiwi.tokenize(text):
        if tok.tag in _NOUN_TAGS:
            if tok.start != run_end:
                flush()
            run.append(tok.form)
            run_end = tok.start + tok.len
        else:
            flush()
    flush()
    order = {w: i for i, w in enumerate(counts)}
    return sorted(counts, key=lambda w: (-counts[w], order[w]))[:limit]


def _turn_line(turn: Sequence[Message], tokenizer: KoreanTokenizer | None) -> str | None:
    question = next((m.text for m in turn if m.role == "user"), "")
    if not question.strip():
        return None
    sentence = first_sentence(question)
    answer = " ".join(m.text for m in turn if m.role == "assistant")[:2000]
    nouns = key_nouns(answer, tokenizer, skip=sentence) if tokenizer is not None and answer.strip() else []
    return f"- 질문: {sentence}" + (f" (답변 핵심어: {', '.join(nouns)})" if nouns else "")


def bound(lines: list[str], max_chars: int) -> str:
    """``HEADER`` + lines, dropping the oldest lines (then clipping) to fit ``max_chars``."""
    lines = [ln for ln in lines if ln.strip()]
    while lines and len(HEADER) + sum(len(ln) + 1 for ln in lines) > max_chars:
        if len(lines) == 1:
            room = max(max_chars - len(HEADER) - 2, 0)
            lines = [lines[0][: max(room - 1, 0)] + "…"] if room else []
            break
        lines.pop(0)
    return "\n".join([HEADER, *lines]) if lines else ""


def _previous_lines(previous: str) -> list[str]:
    return [ln for ln in previous.splitlines() if ln.strip() and ln.strip() != HEADER]


def extractive_summary(messages: Sequence[Message], *, previous: str = "", max_chars: int = 1200,
                       tokenizer: KoreanTokenizer | None = None) -> str:
    """Deterministic summary: previous summary lines + one line per turn, bounded in characters."""
    if tokenizer is None:
        try:
            tokenizer = get_tokenizer()
        except JisikError:  # no Kiwi: questions only
            tokenizer = None
    new = [line for turn in split_turns(messages) if (line := _turn_line(turn, tokenizer))]
    return bound(_previous_lines(previous) + new, max_chars)


def _transcript(messages: Sequence[Message]) -> str:
    names = {"user": "사용자", "assistant": "상담원", "system": "시스템"}
    lines = [f"{names.get(m.role, m.role)}: {normalize_query(m.text)[:1000]}" for m in messages if m.text.strip()]
    text = "\n".join(lines)
    return text[-_LLM_INPUT_CHARS:]  # the newest part, if very long


def _text_of(result: Any) -> str:
    if isinstance(result, str):
        return result
    for attr in ("text", "content"):
        value = getattr(result, attr, None)
        if isinstance(value, str):
            return value
    return ""


async def summarise(messages: Sequence[Message], llm: CompletionModel | None = None, *, previous: str = "",
                    max_chars: int = 1200, tokenizer: KoreanTokenizer | None = None) -> str:
    """Fold ``messages`` into the ``previous`` summary (LLM if given and working, else extractive)."""
    if not messages:
        return bound(_previous_lines(previous), max_chars)
    if llm is not None and getattr(llm, "kind", "llm") != "extractive":
        prompt: list[ChatMessage] = [
            {"role": "system", "content": SUMMARY_SYSTEM + f" {max_chars}자 이내로 쓰세요."},
            {"role": "user", "content": f"[이전 요약]\n{previous or '(없음)'}\n\n[새 대화]\n{_transcript(messages)}"},
        ]
        try:
            text = _text_of(await llm.complete(prompt, max_tokens=max(64, max_chars // 2)))
        except Exception as e:  # summarising is best effort: fall back, never fail the chat for it
            log.warning("history summary by LLM failed; extractive fallback", extra={"error": type(e).__name__})
        else:
            lines = _previous_lines(text)
            if lines:
                return bound(lines, max_chars)
            log.warning("history summary by LLM was empty; extractive fallback")
    return extractive_summary(messages, previous=previous, max_chars=max_chars, tokenizer=tokenizer)


async def prepare_history(session: Session, messages: Sequence[Message], *, keep_turns: int = 4,
                          max_chars: int = 1200, llm: CompletionModel | None = None,
                          tokenizer: KoreanTokenizer | None = None) -> PreparedHistory:
    """Split ``messages`` (the session's history, oldest first) into summary + verbatim turns."""
    newer = [m for m in messages if m.seq > session.summary_upto]
    turns = split_turns(newer)
    if len(turns) <= keep_turns:
        return PreparedHistory(session.summary, newer, session.summary_upto, False)
    old = [m for turn in turns[:-keep_turns] for m in turn]
    recent = [m for turn in turns[-keep_turns:] for m in turn]
    summary = await summarise(old, llm, previous=session.summary, max_chars=max_chars, tokenizer=tokenizer)
    return PreparedHistory(summary, recent, max(m.seq for m in old), True)
