"""Channel lengths: characters vs CP949 (EUC-KR) bytes, clean-up of characters SMS cannot carry,
and trimming at a sentence boundary (Kiwi), never in the middle of a word."""

from __future__ import annotations

import re

import pytest

from jisik.apps.marketing.length import ELLIPSIS, fit_text, measure, to_cp949
from jisik.apps.marketing.rules import load_rules
from jisik.text.tokenize import get_tokenizer

VARIABLE = re.compile(r"#\{[^{}\s]{1,30}\}")


@pytest.fixture(scope="module")
def kiwi() -> object:
    return get_tokenizer().kiwi


@pytest.mark.parametrize(("text", "chars", "cp949"), [
    ("가나다abc", 6, 9),           # Hangul 2 bytes, ASCII 1
    ("똠방각하 햏", 6, 11),         # syllables outside KS X 1001 are still 2 bytes in CP949
    ("(광고) 혜택\n", 8, 12),        # line break 1 byte, brackets and space 1 byte
    ("※ ■ ① ㈜", 7, 11),            # full-width symbols 2 bytes
])
def test_measure_chars_and_cp949_bytes(text: str, chars: int, cp949: int) -> None:
    assert measure(text, "chars") == chars
    assert measure(text, "euc-kr") == cp949


def test_sms_limit_is_exactly_90_bytes() -> None:
    assert measure("가" * 45, "euc-kr") == 90
    assert measure("가" * 45 + "a", "euc-kr") == 91


def test_kakao_variables_count_as_their_expected_value() -> None:
    assert measure("#{고객명}님 안녕하세요", "chars", variable=VARIABLE, variable_chars=10) == 17
    assert measure("#{고객명}님 안녕하세요", "chars") == 13


def test_characters_cp949_cannot_carry_are_replaced_or_removed() -> None:
    cleaned = to_cp949("혜택 • 안내 ✓ 확인 😀 해 보세요 ₩1,000", load_rules().replacements)
    assert cleaned.text == "혜택 · 안내 - 확인 해 보세요 원1,000"
    assert cleaned.replaced == ["•", "✓", "₩"] and cleaned.removed == ["😀"]
    cleaned.text.encode("cp949")  # sendable as it is


TEXT = "가람은행이 시니어 고객님께 특별금리를 드립니다. 가입 기간은 12개월입니다. 자세한 내용은 영업점에 문의해 주세요."


def test_fits_as_it_is(kiwi: object) -> None:
    fitted = fit_text(TEXT, lambda s: len(s) <= 100, kiwi=kiwi)
    assert fitted.text == TEXT and not fitted.trimmed


def test_trims_at_a_sentence_boundary(kiwi: object) -> None:
    two = "가람은행이 시니어 고객님께 특별금리를 드립니다. 가입 기간은 12개월입니다."
    fitted = fit_text(TEXT, lambda s: len(s) <= len(two) + 5, kiwi=kiwi)
    assert fitted.text == two and fitted.trimmed and not fitted.cut_in_sentence


def test_trims_to_cp949_bytes_at_a_sentence_boundary(kiwi: object) -> None:
    fitted = fit_text(TEXT, lambda s: measure(s, "euc-kr") <= 60, kiwi=kiwi)
    assert fitted.text == "가람은행이 시니어 고객님께 특별금리를 드립니다." and measure(fitted.text, "euc-kr") <= 60


def test_a_first_sentence_too_long_keeps_whole_words(kiwi: object) -> None:
    fitted = fit_text(TEXT, lambda s: len(s) <= 16, kiwi=kiwi)
    assert fitted.cut_in_sentence and fitted.text.endswith(ELLIPSIS) and len(fitted.text) <= 16
    words = fitted.text.removesuffix(ELLIPSIS).split()
    assert words and words == TEXT.split()[: len(words)]  # whole words, in order: never cut inside one


def test_nothing_fits(kiwi: object) -> None:
    fitted = fit_text(TEXT, lambda s: len(s) <= 2, kiwi=kiwi)
    assert fitted.text == "" and fitted.trimmed
