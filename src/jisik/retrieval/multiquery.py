"""Rule-based multi-query expansion for Korean questions.

Variants: the question with its polite interrogative tail removed ("~하려면 어떻게 해야 하나요?"
-> the topic), and synonym substitutions from a small domain dictionary. An LLM-based expander
can replace this later behind the same function signature.
"""

from __future__ import annotations

import re

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
