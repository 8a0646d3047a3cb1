"""Inline citation markers, the grounding check and the relevance helper."""

from __future__ import annotations

import pytest

from jisik.core.types import Chunk, Hit
from jisik.rag.citations import (
    NOT_FOUND_KO,
    check_citations,
    cited_hits,
    is_not_found,
    nothing_relevant,
    parse_markers,
    relevant_hits,
)


def _hit(i: int, score: float, dense: float = 0.0) -> Hit:
    return Hit(Chunk(f"c{i}", f"d{i}", f"본문 {i}"), score, scores={"dense": dense})


@pytest.mark.parametrize(("text", "numbers"), [
    ("한도는 1억 원입니다 [1].", [1]),
    ("A [1][3]. B [2, 1]. C [3，4]", [1, 3, 2, 1, 3, 4]),
    ("전각 ［2］ 괄호", [2]),
    ("숫자가 아닌 [a], 소수 [1.5], 범위 [1-3], 각주 [^1]", []),
    ("", []),
])
def test_parse_markers(text: str, numbers: list[int]) -> None:
    assert parse_markers(text) == numbers


def test_valid_markers_in_order_of_first_use() -> None:
    check = check_citations("대상은 예금입니다 [2]. 한도는 1억 원입니다 [1][2].", 3)
    assert check.used == [2, 1] and check.invalid == [] and check.grounded and not check.flagged
    assert check.text == "대상은 예금입니다 [2]. 한도는 1억 원입니다 [1][2]."


def test_markers_outside_the_list_are_dropped_and_reported() -> None:
    check = check_citations("한도는 1억 원입니다 [1, 7]. 금리는 3%입니다 [9].", 2)
    assert check.used == [1] and check.invalid == [7, 9]
    assert check.text == "한도는 1억 원입니다 [1]. 금리는 3%입니다."
    assert any("outside 1..2" in w for w in check.warnings)


def test_an_answer_citing_nothing_is_flagged_when_passages_exist() -> None:
    check = check_citations("한도는 5천만 원입니다.", 3)
    assert check.flagged and not check.grounded
    assert not check_citations("한도는 5천만 원입니다.", 0).flagged  # nothing to cite


def test_not_found_is_honest_not_flagged() -> None:
    for text in (NOT_FOUND_KO, "죄송하지만 문서에서 찾을 수 없습니다", "문서에서  찾을 수  없습니다."):
        check = check_citations(text, 3)
        assert check.not_found and not check.flagged and is_not_found(text)
    assert not is_not_found("문서에서 찾았습니다 [1].")
    mixed = check_citations("문서에서 찾을 수 없습니다. 다만 [1]에 따르면…", 2)
    assert mixed.not_found and mixed.used == [1] and mixed.warnings


def test_a_custom_not_found_sentence() -> None:
    assert check_citations("자료에 없는 내용입니다.", 2, not_found="자료에 없는 내용입니다.").not_found


def test_cited_hits_and_markers_without_passages() -> None:
    hits = [_hit(1, 0.9), _hit(2, 0.5), _hit(3, 0.1)]
    check = check_citations("B [3]. A [1]. again [3].", len(hits))
    assert [(n, h.chunk.chunk_id) for n, h in cited_hits(hits, check)] == [(3, "c3"), (1, "c1")]
    nothing = check_citations("지어낸 출처 [1].", 0)
    assert nothing.invalid == [1] and nothing.used == [] and nothing.text == "지어낸 출처."


def test_relevance_threshold() -> None:
    hits = [_hit(1, 0.9, dense=0.2), _hit(2, 0.35, dense=0.8), _hit(3, 0.1, dense=0.1)]
    assert [h.chunk.chunk_id for h in relevant_hits(hits, 0.3)] == ["c1", "c2"]
    assert [h.chunk.chunk_id for h in relevant_hits(hits, 0.5, signal="dense")] == ["c2"]
    assert nothing_relevant(hits, 0.95) and nothing_relevant([], 0.0)
    assert not nothing_relevant(hits, 0.9)
    assert relevant_hits(hits, 0.1, signal="lexical") == []  # a signal the hits lack counts as no score
