from __future__ import annotations

import random

import pytest

from jisik.text.normalize import normalize, normalize_query


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("배송\xa0안내", "배송 안내"),
        ("배송\u3000안내\u2003요금", "배송 안내 요금"),
        ("스마트\u200b스토어\u200c센터\u200d", "스마트스토어센터"),
        ("\ufeff가입\u2060안내\u00ad", "가입안내"),
        ("１２３원 ＡＢＣ", "123원 ABC"),
        ("첫 줄\r\n둘째 줄\r셋째 줄", "첫 줄\n둘째 줄\n셋째 줄"),
        ("가\u2028나\u2029다\x0c라", "가\n나\n다\n라"),
        ("  여러   칸\t\t공백  ", "여러 칸 공백"),
        ("끝 공백   \n다음 줄", "끝 공백\n다음 줄"),
        ("문단\n\n\n\n\n다음 문단", "문단\n\n다음 문단"),
        ("문단 \n \n \n다음", "문단\n\n다음"),
        ("㈜네이버", "(주)네이버"),
        ("", ""),
        (" \n\t ", ""),
    ],
)
def test_normalize_cases(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_compatibility_jamo_are_kept() -> None:
    # plain NFKC would turn these into conjoining jamo (and compose ㄱㅏ into 가)
    assert normalize("배송이 왜 안와요ㅠㅠ ㅋㅋ") == "배송이 왜 안와요ㅠㅠ ㅋㅋ"
    assert normalize("ㄱㅏ") == "ㄱㅏ"
    # isolated conjoining / halfwidth jamo become compatibility jamo; decomposed syllables compose
    assert normalize("\u110f\u110f") == "ㅋㅋ"
    assert normalize("\uffa1") == "ㄱ"
    assert normalize("\u1100\u1161") == "가"


def test_idempotent_on_random_strings() -> None:
    alphabet = list("가나ㄱㅏㅋ가 \t\n\r\xa0\u200b\u00ad１Ａa.,!?\u3000\x0c\x85\u2028ﾡ\u0301")
    rng = random.Random(7)
    for _ in range(3000):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 15)))
        once = normalize(s)
        assert normalize(once) == once, repr(s)


def test_normalize_query_is_single_line() -> None:
    assert normalize_query("  스마트\n\n스토어\r\n가입은？\t") == "스마트 스토어 가입은?"
    assert normalize_query("\u200b") == ""
