"""Translate :class:`~jisik.retrieval.filters.Filter` to SQL over the live/chunks tables."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from jisik.core.errors import InvalidInput
from jisik.retrieval.filters import Condition, Filter
from jisik.stores.pgvector.common import (
    _COLUMN_FIELDS,
    _json_text,
    _jsonb,
    sql,
)


class _FilterSQL:
    """Translate a :class:`Filter` to SQL over alias ``c`` with named parameters.

    Semantics follow :meth:`Condition.matches`: a missing (or JSON null) field only satisfies
    ``ne``; comparing values of different types is false; strings compare by code point
    (``COLLATE "C"``), numbers numerically.
    """

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self._n = 0

    def _p(self, value: Any) -> sql.Composable:
        name = f"f{self._n}"
        self._n += 1
        self.params[name] = value
        return sql.Placeholder(name)

    def build(self, flt: Filter) -> sql.Composable:
        if not isinstance(flt, Filter):
            raise InvalidInput("필터 형식이 올바르지 않습니다.", f"Expected a Filter, got {type(flt).__name__}.")
        parts = [self._cond(c) for c in flt.conditions]
        if not parts:
            return sql.SQL("TRUE")
        return sql.SQL(" AND ").join(sql.SQL("({})").format(p) for p in parts)

    @staticmethod
    def _is_number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    def _cond(self, c: Condition) -> sql.Composable:
        if c.field in _COLUMN_FIELDS:
            return self._column(c)
        return self._metadata(c)

    def _column(self, c: Condition) -> sql.Composable:
        col = sql.SQL("c.{}").format(sql.Identifier(c.field))
        v = c.value
        if c.op == "in":
            strs = [x for x in v if isinstance(x, str)] if isinstance(v, tuple) else []
            if not strs:
                return sql.SQL("FALSE")
            return sql.SQL("{} = ANY({}::text[])").format(col, self._p(strs))
        if not isinstance(v, str):
            return sql.SQL("TRUE" if c.op == "ne" else "FALSE")
        if c.op in ("eq", "ne"):
            return sql.SQL("{} {} {}").format(col, sql.SQL("=" if c.op == "eq" else "<>"), self._p(v))
        ops = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
        return sql.SQL('{} COLLATE "C" {} {}').format(col, sql.SQL(ops[c.op]), self._p(v))

    def _equal(self, field: str, value: Any) -> sql.Composable:
        """``metadata[field] == value`` with Python's rules (1 == 1.0 == True), via GIN-able ``@>``."""
        alts: list[Any] = []
        if isinstance(value, bool):
            alts = [value, int(value)]
        elif isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                return sql.SQL("FALSE")  # JSON cannot hold NaN/inf, so nothing stored equals it
            alts = [value] + ([bool(value)] if value in (0, 1) else [])
        else:
            alts = [value]
        parts = [
            sql.SQL("c.metadata @> {}").format(self._p(_jsonb(_json_text({field: a}, "filter")))) for a in alts
        ]
        return sql.SQL(" OR ").join(parts) if len(parts) > 1 else parts[0]

    def _metadata(self, c: Condition) -> sql.Composable:
        v = c.value
        if c.op == "eq":
            return self._equal(c.field, v)
        if c.op == "ne":
            return sql.SQL("NOT ({})").format(self._equal(c.field, v))
        if c.op == "in":
            values = v if isinstance(v, tuple) else (v,)
            return sql.SQL(" OR ").join(sql.SQL("({})").format(self._equal(c.field, x)) for x in values)
        op = sql.SQL({"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[c.op])
        key = self._p(c.field)
        if self._is_number(v):
            assert isinstance(v, int | float)
            if isinstance(v, float) and math.isnan(v):
                return sql.SQL("FALSE")
            num: int | Decimal = v if isinstance(v, int) else Decimal(repr(v))
            return sql.SQL(
                "CASE jsonb_typeof(c.metadata -> {k}) "
                "WHEN 'number' THEN (c.metadata ->> {k})::numeric {op} {v}::numeric "
                "WHEN 'boolean' THEN (CASE WHEN c.metadata -> {k} = 'true'::jsonb THEN 1 ELSE 0 END) {op} {v}::numeric "
                "ELSE FALSE END"
            ).format(k=key, op=op, v=self._p(num))
        if isinstance(v, str):
            return sql.SQL(
                "CASE WHEN jsonb_typeof(c.metadata -> {k}) = 'string' "
                "THEN (c.metadata ->> {k}) COLLATE \"C\" {op} {v} ELSE FALSE END"
            ).format(k=key, op=op, v=self._p(v))
        return sql.SQL("FALSE")
