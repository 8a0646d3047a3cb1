"""Metadata filters: one validated representation shared by every index implementation.

Syntax (JSON-friendly)::

    {"category": "가입절차"}                       # equality
    {"year": {"gte": 2020, "lt": 2024}}            # ranges: gt, gte, lt, lte
    {"bank": {"in": ["우리은행", "국민은행"]}}       # membership
    {"bank": {"ne": "우리은행"}}                   # inequality
    {"doc_id": {"in": [...]}}                      # doc_id and collection-level fields work too

All conditions are combined with AND.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jisik.core.errors import InvalidInput

Scalar = str | int | float | bool
OPS = ("eq", "ne", "gt", "gte", "lt", "lte", "in")
_FIELD_RE = re.compile(r"^[A-Za-z0-9_\-.가-힣]{1,64}$")


@dataclass(frozen=True, slots=True)
class Condition:
    field: str
    op: str
    value: Scalar | tuple[Scalar, ...]

    def matches(self, actual: Any) -> bool:
        if actual is None:
            return self.op == "ne"
        v = self.value
        try:
            if self.op == "eq":
                return bool(actual == v)
            if self.op == "ne":
                return bool(actual != v)
            if self.op == "in":
                return isinstance(v, tuple) and actual in v
            if self.op == "gt":
                return bool(actual > v)
            if self.op == "gte":
                return bool(actual >= v)
            if self.op == "lt":
                return bool(actual < v)
            if self.op == "lte":
                return bool(actual <= v)
        except TypeError:
            return False
        raise AssertionError(self.op)


@dataclass(frozen=True, slots=True)
class Filter:
    conditions: tuple[Condition, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def matches(self, metadata: Mapping[str, Any]) -> bool:
        return all(c.matches(metadata.get(c.field)) for c in self.conditions)


def _check_scalar(field: str, value: Any) -> Scalar:
    if isinstance(value, str | int | float | bool):
        return value
    raise InvalidInput(
        f"필터 '{field}'의 값은 문자열, 숫자 또는 불리언이어야 합니다 (받은 값: {value!r}).",
        f"Filter '{field}' value must be a string, number or boolean (got {value!r}).",
    )


def parse_filter(spec: Mapping[str, Any] | Filter | None) -> Filter:
    """Validate a filter spec; raise :class:`InvalidInput` with a clear message when malformed."""
    if spec is None:
        return Filter()
    if isinstance(spec, Filter):
        return spec
    if not isinstance(spec, Mapping):
        raise InvalidInput(
            "필터는 {필드: 값} 형태의 객체여야 합니다.",
            f"Filters must be an object of {{field: condition}} (got {type(spec).__name__}).",
        )
    conds: list[Condition] = []
    for field, cond in spec.items():
        if not isinstance(field, str) or not _FIELD_RE.match(field):
            raise InvalidInput(
                f"필터 필드 이름이 올바르지 않습니다: {field!r}",
                f"Invalid filter field name: {field!r} (letters, digits, _ - . and Hangul, max 64).",
            )
        if isinstance(cond, Mapping):
            if not cond:
                raise InvalidInput(f"필터 '{field}'에 조건이 없습니다.", f"Filter '{field}' has no condition.")
            for op, value in cond.items():
                if op not in OPS:
                    raise InvalidInput(
                        f"필터 '{field}'의 연산자 '{op}'는 지원하지 않습니다. 사용 가능: {', '.join(OPS)}",
                        f"Unknown filter operator '{op}' for '{field}'; allowed: {', '.join(OPS)}",
                    )
                if op == "in":
                    if not isinstance(value, list | tuple) or not value:
                        raise InvalidInput(
                            f"필터 '{field}'의 'in' 값은 비어 있지 않은 목록이어야 합니다.",
                            f"Filter '{field}': 'in' needs a non-empty list.",
                        )
                    conds.append(Condition(field, "in", tuple(_check_scalar(field, x) for x in value)))
                else:
                    scalar = _check_scalar(field, value)
                    if op in ("gt", "gte", "lt", "lte") and isinstance(scalar, bool):
                        raise InvalidInput(
                            f"필터 '{field}'의 범위 조건에는 숫자나 문자열을 쓰세요.",
                            f"Filter '{field}': range operators need a number or string.",
                        )
                    conds.append(Condition(field, op, scalar))
        elif isinstance(cond, list | tuple):
            conds.append(Condition(field, "in", tuple(_check_scalar(field, x) for x in cond)))
        else:
            conds.append(Condition(field, "eq", _check_scalar(field, cond)))
    return Filter(tuple(conds))
