import pytest

from jisik.core.errors import InvalidInput
from jisik.retrieval.filters import parse_filter


def test_equality_range_in_and_ne() -> None:
    flt = parse_filter({"category": "가입절차", "year": {"gte": 2020, "lt": 2024}, "bank": {"in": ["우리", "국민"]},
                        "kind": {"ne": "faq"}})
    assert flt.matches({"category": "가입절차", "year": 2021, "bank": "우리", "kind": "doc"})
    assert not flt.matches({"category": "가입절차", "year": 2024, "bank": "우리", "kind": "doc"})
    assert not flt.matches({"category": "가입절차", "year": 2021, "bank": "신한", "kind": "doc"})
    assert not flt.matches({"category": "가입절차", "year": 2021, "bank": "우리", "kind": "faq"})
    assert not flt.matches({"year": 2021, "bank": "우리"})  # missing field fails equality


def test_list_shorthand_means_in() -> None:
    assert parse_filter({"a": [1, 2]}).matches({"a": 2})


def test_type_mismatch_does_not_crash() -> None:
    assert not parse_filter({"year": {"gt": 2000}}).matches({"year": "unknown"})


@pytest.mark.parametrize(
    "spec",
    [
        "category=x",
        {"year": {"between": [1, 2]}},
        {"year": {}},
        {"bank": {"in": []}},
        {"bank": {"in": "우리"}},
        {"bad field!": 1},
        {"x": {"a": 1}},
        {"x": {"gt": True}},
    ],
)
def test_malformed_filters_raise_invalid_input(spec: object) -> None:
    with pytest.raises(InvalidInput):
        parse_filter(spec)  # type: ignore[arg-type]
