from __future__ import annotations

import pytest
from text_helpers import assert_valid_spans, make_text

from jisik.text.normalize import normalize
from jisik.text.sentences import split_sentences, split_sentences_batch

TEXTS = [
    "",
    "   \n\n ",
    "한 문장",
    "첫 문장입니다.  두번째 문장이에요!\n\n세번째\n줄바꿈 된 문장입니다. ",
    "이용하실 수 있습니다.네이버 커머스 ID가 없으시다면 [가입하기] 버튼을 눌러 주세요.1) 로그인 해 주세요.",
    "# 제목\n본문입니다.\n- 항목 하나\n- 항목 둘\n| 열 | 값 |\n| a | 1 |",
    "😀😀 이모지 문장입니다. 𠀀 확장 한자 문장. 끝",
    make_text(3_000, seed=1),
    make_text(20_000, seed=2),
    "가" * 7_000,  # no whitespace, no punctuation
    ("긴 문장 " * 2_000).strip(),  # 10k chars, one "sentence" without punctuation
]


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
@pytest.mark.parametrize("max_unit_chars", [3000, 400])
def test_span_invariants(text: str, max_unit_chars: int) -> None:
    assert_valid_spans(text, split_sentences(text, max_unit_chars=max_unit_chars))


def test_basic_split() -> None:
    text = "첫 문장입니다. 두번째 문장이에요! 세번째는 질문인가요?"
    sents = [text[a:b] for a, b in split_sentences(text)]
    assert sents == ["첫 문장입니다.", "두번째 문장이에요!", "세번째는 질문인가요?"]


def test_missing_space_after_period() -> None:
    text = "이용하실 수 있습니다.네이버 커머스 ID가 없으시다면 가입해 주세요."
    sents = [text[a:b] for a, b in split_sentences(text)]
    assert sents == ["이용하실 수 있습니다.", "네이버 커머스 ID가 없으시다면 가입해 주세요."]


def test_paragraphs_and_list_lines_are_boundaries() -> None:
    text = "# 안내\n본문 첫 줄이\n이어집니다\n\n다음 문단\n- 항목 하나\n- 항목 둘\n1) 첫째"
    sents = [text[a:b] for a, b in split_sentences(text)]
    assert sents == ["# 안내", "본문 첫 줄이\n이어집니다", "다음 문단", "- 항목 하나", "- 항목 둘", "1) 첫째"]


def test_long_text_windowing_keeps_most_sentences() -> None:
    text = make_text(20_000, seed=3)
    whole = split_sentences(text, max_unit_chars=50_000)
    windowed = split_sentences(text, max_unit_chars=500)
    assert len(set(whole) & set(windowed)) >= 0.9 * len(whole)


def test_long_run_without_boundaries_is_cut_at_whitespace() -> None:
    text = ("긴 문장 " * 2_000).strip()
    spans = split_sentences(text, max_unit_chars=1000)
    assert all(b - a <= 1000 for a, b in spans)
    assert all(a == 0 or text[a - 1] == " " for a, _ in spans)


def test_batch_equals_single() -> None:
    texts = [normalize(t) for t in TEXTS[:8]]
    assert split_sentences_batch(texts) == [split_sentences(t) for t in texts]
