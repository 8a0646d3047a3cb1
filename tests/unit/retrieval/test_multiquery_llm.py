"""LLM-written query variants: parsing the reply, falling back to the rule-based variants."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from chat_fixtures import ScriptedLLM
from jisik.core.errors import Unavailable
from jisik.retrieval.multiquery import EXPAND_SYSTEM_KO, expand_query, expand_with_llm, parse_variants

Q = "정산 계좌 어케 바꿔요?"


def test_parse_variants_strips_bullets_quotes_repeats_and_preambles() -> None:
    reply = "다른 표현:\n1. 판매자 정산 계좌 변경 방법\n- \"대금 받을 통장 바꾸기\"\n2) 판매자 정산 계좌 변경 방법\n정산 계좌 어케 바꿔요?\n\n③ x"
    assert parse_variants(reply, Q, limit=5) == ["판매자 정산 계좌 변경 방법", "대금 받을 통장 바꾸기", "x"]
    assert parse_variants(reply, Q, limit=1) == ["판매자 정산 계좌 변경 방법"]
    assert parse_variants("가" * 201, Q, limit=3) == []  # far longer than a query: not one
    assert parse_variants("...\n?!", Q, limit=3) == []


def test_the_llm_writes_the_variants_after_the_query() -> None:
    llm = ScriptedLLM("1. 판매자 정산 계좌 변경 방법\n2. 대금 받을 통장 바꾸기\n3. 세 번째는 버려집니다")
    variants = asyncio.run(expand_with_llm(Q, llm, max_variants=3))
    assert variants == [Q, "판매자 정산 계좌 변경 방법", "대금 받을 통장 바꾸기"]
    messages = llm.calls[0]
    assert messages[0]["content"] == EXPAND_SYSTEM_KO and Q in messages[1]["content"] and "2개" in messages[1]["content"]
    assert asyncio.run(expand_with_llm(Q, llm, max_variants=1)) == [Q] and len(llm.calls) == 1  # nothing to ask


class _FailingLLM:
    kind = "llm"

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    async def complete(self, messages: Sequence[Any], **_: Any) -> Any:
        raise self.exc


def test_a_failing_or_useless_llm_gives_the_rule_based_variants() -> None:
    q = "환불은 언제 되나요?"
    rule_based = expand_query(q, max_variants=3)
    assert len(rule_based) > 1
    for llm in (_FailingLLM(Unavailable("LLM 서버에 연결할 수 없습니다.", "LLM down")), _FailingLLM(TimeoutError()),
                ScriptedLLM(""), ScriptedLLM(q)):
        assert asyncio.run(expand_with_llm(q, llm, max_variants=3)) == rule_based
