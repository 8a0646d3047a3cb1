"""Multi-query expansion for Korean questions: rule-based, or written by an LLM when one is configured.

Rule-based variants (:func:`expand_query`): the question with its polite interrogative tail removed
("~하려면 어떻게 해야 하나요?" -> the topic), and synonym substitutions from a small domain dictionary.

LLM variants (:func:`expand_with_llm`): the provider rewrites the question in other words (a
colloquial question in the documents' vocabulary and the reverse). The original question always
comes first; a provider that fails, times out or returns nothing usable gives the rule-based
variants instead, so expansion never fails a search.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from jisik.core.logging import get_logger

log = get_logger(__name__)

_TAILS = re.compile(
    r"\s*(어떻게|어케|어떡|왜|언제|어디서?|무엇을?|뭐|뭘|무슨)?\s*"
    r"(해야\s*(하나요|되나요|돼요|해요|할까요|합니까)|하나요|되나요|돼요|되요|할까요|인가요|나요|까요|있나요|없나요|"
    r"해요|하죠|하지요|합니까|입니까|가요|어요|아요)?\s*[?？!.。]*\s*$"
)

SYNONYMS: dict[str, tuple[str, ...]] = {
    "가입": ("등록", "신청"),
    "환불": ("반품", "취소"),
    "배송": ("택배", "발송"),
    "수수료": ("요금", "비용"),
    "정산": ("대금 지급",),
    "탈퇴": ("해지",),
    "비밀번호": ("패스워드",),
    "예금": ("정기예금",),
    "적금": ("정기적금",),
    "금리": ("이자율", "이율"),
}


def strip_question_tail(query: str) -> str:
    stripped = _TAILS.sub("", query).strip()
    return stripped or query.strip()


def expand_query(query: str, *, max_variants: int = 3) -> list[str]:
    """The query first, then up to ``max_variants - 1`` distinct rewrites."""
    variants = [query]
    core = strip_question_tail(query)
    if core != query:
        variants.append(core)
    for word, alternatives in SYNONYMS.items():
        if word in query:
            for alt in alternatives:
                variants.append(query.replace(word, alt))
    unique = list(dict.fromkeys(v for v in variants if v.strip()))
    return unique[:max_variants]


EXPAND_SYSTEM_KO = (
    "당신은 검색 질의를 다시 쓰는 도우미입니다. 사용자의 질문과 뜻이 같지만 다른 낱말을 쓴 검색 질의를 씁니다. "
    "구어체·줄임말은 문서에 쓰일 만한 정식 용어로, 정식 용어는 쉬운 말로 바꿉니다. "
    "설명이나 번호 없이 한 줄에 하나씩만 씁니다."
)
_LINE_PREFIX = re.compile(r"^\s*(?:[-*•·]|\d+[.)]|[①-⑩])\s*")
_HAS_HANGUL_OR_WORD = re.compile(r"[가-힣A-Za-z0-9]")


def parse_variants(text: str, query: str, *, limit: int, max_chars: int = 200) -> list[str]:
    """Rewrites in an LLM reply: one per line, bullets/numbers/quotes removed, the query and repeats dropped."""
    out: list[str] = []
    seen = {" ".join(query.split())}
    for raw in text.splitlines():
        line = _LINE_PREFIX.sub("", raw).strip().strip("\"'“”‘’「」").strip()
        key = " ".join(line.split())
        if not key or key in seen or len(key) > max_chars or not _HAS_HANGUL_OR_WORD.search(key):
            continue
        if key.endswith(":"):  # a preamble ("다른 표현:"), not a query
            continue
        seen.add(key)
        out.append(key)
        if len(out) >= limit:
            break
    return out


async def expand_with_llm(query: str, llm: Any, *, max_variants: int = 3, timeout_s: float = 8.0,
                          max_tokens: int = 120) -> list[str]:
    """The query first, then up to ``max_variants - 1`` rewrites written by ``llm`` (an
    :class:`~jisik.models.llm.LLMProvider`); the rule-based variants when the LLM gives none."""
    wanted = max_variants - 1
    if wanted < 1:
        return [query]
    messages = [{"role": "system", "content": EXPAND_SYSTEM_KO},
                {"role": "user", "content": f"질문: {query}\n\n같은 뜻의 검색 질의 {wanted}개:"}]
    try:
        completion = await asyncio.wait_for(llm.complete(messages, max_tokens=max_tokens, temperature=0.2),
                                            timeout_s)
        rewrites = parse_variants(str(completion.text), query, limit=wanted)
    except Exception as exc:  # expansion is an optimisation: never fail the search because of it
        log.warning("LLM query expansion failed; rule-based variants used", extra={"error": type(exc).__name__})
        rewrites = []
    if not rewrites:
        return expand_query(query, max_variants=max_variants)
    return [query, *rewrites]
