"""History summarisation: last turns verbatim, older turns folded into a bounded running summary."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from jisik.core.errors import Unavailable
from jisik.rag.history import (
    HEADER,
    bound,
    extractive_summary,
    first_sentence,
    key_nouns,
    prepare_history,
    split_turns,
    summarise,
)
from jisik.stores.conversations import Message, Session
from jisik.text.tokenize import KoreanTokenizer, get_tokenizer

CONVERSATION = [
    ("예금자보호 한도는 얼마인가요? 은행이 망하면 걱정돼서요.",
     "예금자보호 한도는 1인당 원금과 이자를 합쳐 5천만 원입니다. 예금보험공사가 예금자보호를 맡습니다."),
    ("MMF도 보호되나요?", "MMF는 실적배당 상품이라 예금자보호 대상이 아닙니다."),
    ("적금 중도해지하면 이자는 어떻게 되나요?", "중도해지 이율이 적용되어 약정 이자보다 적습니다."),
    ("그럼 정기예금은요?", "정기예금도 중도해지 이율이 적용됩니다."),
]


@pytest.fixture(scope="module")
def tok() -> KoreanTokenizer:
    return get_tokenizer()


def _history(pairs: Sequence[tuple[str, str]]) -> list[Message]:
    out: list[Message] = []
    for q, a in pairs:
        out.append(Message("user", q, seq=len(out) + 1))
        out.append(Message("assistant", a, seq=len(out) + 1))
    return out


class FakeLLM:
    """Stands in for an LLM provider (the thing under test is the history policy, not the model)."""

    kind = "llm"

    def __init__(self, reply: str | Exception) -> None:
        self.reply = reply
        self.calls: list[tuple[list[dict[str, str]], int | None]] = []

    async def complete(self, messages: Sequence[Any], *, max_tokens: int | None = None) -> Any:
        self.calls.append(([dict(m) for m in messages], max_tokens))
        if isinstance(self.reply, Exception):
            raise self.reply
        return type("Completion", (), {"text": self.reply})()


def test_split_turns() -> None:
    msgs = [Message("system", "안내"), *_history(CONVERSATION[:2]), Message("user", "답 없는 질문")]
    turns = split_turns(msgs)
    assert [[m.role for m in t] for t in turns] == [["system"], ["user", "assistant"], ["user", "assistant"], ["user"]]


def test_first_sentence_and_key_nouns(tok: KoreanTokenizer) -> None:
    assert first_sentence(CONVERSATION[0][0]) == "예금자보호 한도는 얼마인가요?"
    assert first_sentence("줄바꿈\n다음 줄") == "줄바꿈"
    assert len(first_sentence("가" * 500)) == 160
    nouns = key_nouns(CONVERSATION[0][1], tok)
    assert nouns[0] == "예금자보호" and "예금보험공사" in nouns and len(nouns) <= 5  # compounds joined, most frequent first


def test_extractive_summary_lines(tok: KoreanTokenizer) -> None:
    text = extractive_summary(_history(CONVERSATION[:2]), tokenizer=tok)
    lines = text.splitlines()
    assert lines[0] == HEADER and len(lines) == 3
    assert lines[1].startswith("- 질문: 예금자보호 한도는 얼마인가요? (답변 핵심어: ") and "원금" in lines[1]
    assert "은행이 망하면" not in text  # only the first sentence of a question
    assert lines[2].startswith("- 질문: MMF도 보호되나요?") and "실적배당" in lines[2]
    assert extractive_summary(_history(CONVERSATION[:2]), tokenizer=tok) == text  # deterministic


def test_summary_is_bounded_and_drops_oldest_lines(tok: KoreanTokenizer) -> None:
    previous = HEADER + "\n" + "\n".join(f"- 질문: 오래된 질문 {i}" for i in range(30))
    text = extractive_summary(_history(CONVERSATION), previous=previous, max_chars=200, tokenizer=tok)
    assert len(text) <= 200 and text.startswith(HEADER)
    assert "정기예금" in text and "오래된 질문 0" not in text  # newest kept, oldest dropped
    assert len(bound(["- " + "가" * 500], 100)) <= 100
    assert bound([], 100) == ""


def test_prepare_history_keeps_recent_turns_and_folds_older(tok: KoreanTokenizer) -> None:
    session = Session(session_id="s1")
    msgs = _history(CONVERSATION)
    short = asyncio.run(prepare_history(session, msgs, keep_turns=4, tokenizer=tok))
    assert (short.changed, short.summary, short.summary_upto, short.recent) == (False, "", 0, msgs)

    prepared = asyncio.run(prepare_history(session, msgs, keep_turns=2, tokenizer=tok))
    assert prepared.changed and prepared.summary_upto == 4
    assert [m.seq for m in prepared.recent] == [5, 6, 7, 8]
    assert "예금자보호 한도는 얼마인가요?" in prepared.summary and "MMF도" in prepared.summary

    # the stored summary covers seq <= 4: the next call only folds what came after
    session = Session(session_id="s1", summary=prepared.summary, summary_upto=4)
    again = asyncio.run(prepare_history(session, msgs, keep_turns=2, tokenizer=tok))
    assert not again.changed and again.summary == prepared.summary and [m.seq for m in again.recent] == [5, 6, 7, 8]
    more = msgs + _history([("새 질문입니다.", "새 답변입니다.")])
    for i, m in enumerate(more):
        m.seq = i + 1
    folded = asyncio.run(prepare_history(session, more, keep_turns=2, tokenizer=tok))
    assert folded.changed and folded.summary_upto == 6
    assert folded.summary.count("예금자보호 한도는 얼마인가요?") == 1 and "적금 중도해지" in folded.summary


def test_llm_summary_with_previous_and_bound() -> None:
    llm = FakeLLM("이전 대화 요약:\n- 사용자는 예금자보호 한도(5천만 원)를 물었다.\n- MMF는 보호 대상이 아니다.")
    text = asyncio.run(summarise(_history(CONVERSATION[:2]), llm, previous="- 예전 요약", max_chars=300))
    assert text == "이전 대화 요약:\n- 사용자는 예금자보호 한도(5천만 원)를 물었다.\n- MMF는 보호 대상이 아니다."
    [(prompt, max_tokens)] = llm.calls
    assert prompt[0]["role"] == "system" and "300자" in prompt[0]["content"] and max_tokens == 150
    assert "- 예전 요약" in prompt[1]["content"] and "사용자: MMF도 보호되나요?" in prompt[1]["content"]
    long = asyncio.run(summarise(_history(CONVERSATION[:1]), FakeLLM("- " + "긴 요약 " * 200), max_chars=150))
    assert len(long) <= 150


def test_llm_failure_or_empty_or_extractive_provider_falls_back(tok: KoreanTokenizer) -> None:
    expected = extractive_summary(_history(CONVERSATION[:1]), tokenizer=tok)
    for llm in (FakeLLM(Unavailable("LLM 서버에 연결할 수 없습니다.", "LLM down")), FakeLLM("  \n ")):
        assert asyncio.run(summarise(_history(CONVERSATION[:1]), llm, tokenizer=tok)) == expected
    extractive = FakeLLM("문서에서 찾을 수 없습니다.")
    extractive.kind = "extractive"
    assert asyncio.run(summarise(_history(CONVERSATION[:1]), extractive, tokenizer=tok)) == expected
    assert extractive.calls == []
    assert asyncio.run(summarise([], None, previous="이전 대화 요약:\n- a")) == "이전 대화 요약:\n- a"
