"""Tables: render rows as readable Korean documents, and chunk them at row boundaries.

:func:`rows_to_documents` turns table rows into :class:`Document` objects whose text is one
block of ``컬럼: 값`` lines per row, rows separated by a blank line, e.g.::

    상품명: 정기예금 12개월
    금리: 3.5
    우대조건: 급여이체 시 0.2%p

Values are made single-line so a blank line always means a row boundary, and the text is
normalised. ``locator`` is ``{"table": ..., "rows": [first, last], "keys": {...}}`` (row indices
are 0-based and inclusive; ``keys`` are the key columns of the first row); a document holding
several rows also gets ``"row_keys"``: the keys of each row. Scalar columns (str, int, float,
bool; numpy scalars converted; NaN and None left out) go to ``metadata`` unchanged, for
filtering. Strings longer than ``MAX_METADATA_STR`` (free text) are not copied, and for a group
of rows only the columns whose value is the same in every row of the group are.

:class:`TableRowChunker` makes one chunk per ``rows_per_chunk`` rows of such a document, narrowing
``locator["rows"]`` (and ``keys``) to the rows of the chunk. A group of rows longer than
``max_chars`` is chunked row by row; a single row longer than that is cut between lines.
"""

from __future__ import annotations

import copy
import json
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

from jisik.core.errors import InvalidInput
from jisik.core.types import Chunk, Document, JsonDict
from jisik.text.chunking import build_chunks, pack_spans, split_long_span
from jisik.text.normalize import normalize, normalize_query

__all__ = ["TableRowChunker", "render_row", "rows_to_documents"]

Span = tuple[int, int]

MAX_METADATA_STR = 256
_ROW_SEPARATOR = "\n\n"
_LINES = re.compile(r"[^\n]+")


def _unwrap(value: Any) -> Any:
    """numpy scalars (np.int64, np.bool_, ...) -> the Python value."""
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        return value.item()
    return value


def _scalar(value: Any) -> str | int | float | bool | None:
    """A filterable scalar (numpy scalars converted), or None for missing / non-scalar values."""
    value = _unwrap(value)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        return None if math.isnan(f) or math.isinf(f) else f
    return None


def _key_value(value: Any) -> str | int | float | bool:
    v = _scalar(value)
    return v if v is not None else _render_value(value)


def _render_value(value: Any) -> str:
    value = _unwrap(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "예" if value else "아니오"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        f = float(value)
        if math.isnan(f):
            return ""
        return str(int(f)) if f.is_integer() and abs(f) < 1e15 else repr(f)
    if isinstance(value, str):
        return normalize_query(value)
    if isinstance(value, Mapping | list | tuple):
        return normalize_query(json.dumps(value, ensure_ascii=False, default=str))
    return normalize_query(str(value))


def render_row(row: Mapping[str, Any], columns: Sequence[str]) -> str:
    """``컬럼: 값`` lines for ``columns`` of ``row`` (empty values are left out)."""
    lines = []
    for col in columns:
        value = _render_value(row.get(col))
        if value:
            lines.append(f"{normalize_query(str(col))}: {value}")
    return "\n".join(lines)


def _key_text(keys: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={_render_value(v)}" for k, v in keys.items())


def rows_to_documents(
    table: str,
    rows: Sequence[Mapping[str, Any]],
    key_columns: Sequence[str],
    text_columns: Sequence[str] | None = None,
    title_column: str | None = None,
    source_uri: str = "",
    rows_per_doc: int = 1,
    *,
    start_index: int = 0,
) -> list[Document]:
    """One document per ``rows_per_doc`` rows (see the module docstring).

    ``doc_id`` is ``"{table}/{k1=v1,k2=v2}"`` (``"{table}/{first}..{last}"`` for a group of rows;
    ``"{table}/#{index}"`` when there are no key columns). ``text_columns`` defaults to all columns
    of each row, in order. ``start_index`` is the index of ``rows[0]`` in the whole table.
    """
    if rows_per_doc < 1:
        raise InvalidInput("rows_per_doc는 1 이상이어야 합니다.", "rows_per_doc must be >= 1.")
    docs: list[Document] = []
    seen: set[str] = set()
    for g in range(0, len(rows), rows_per_doc):
        group = rows[g : g + rows_per_doc]
        first = start_index + g
        row_keys: list[JsonDict] = []
        for offset, row in enumerate(group):
            missing = [c for c in key_columns if c not in row]
            if missing:
                raise InvalidInput(
                    f"행 {first + offset}에 키 컬럼이 없습니다: {', '.join(missing)}",
                    f"Row {first + offset} lacks key columns: {', '.join(missing)}",
                    details={"table": table, "row": first + offset, "missing": missing},
                )
            row_keys.append({c: _key_value(row[c]) for c in key_columns})
        ids = [_key_text(k) if key_columns else f"#{first + i}" for i, k in enumerate(row_keys)]
        doc_id = f"{table}/{ids[0]}" if len(group) == 1 else f"{table}/{ids[0]}..{ids[-1]}"
        if doc_id in seen:
            raise InvalidInput(
                f"중복된 키로 문서 ID가 겹칩니다: {doc_id}",
                f"Duplicate key values give the same doc_id twice: {doc_id}",
                hint="key_columns must identify each row uniquely",
                details={"table": table, "doc_id": doc_id},
            )
        seen.add(doc_id)
        blocks = [render_row(row, list(text_columns) if text_columns is not None else list(row)) for row in group]
        # an all-empty row still needs a block, or row boundaries would shift
        text = normalize(_ROW_SEPARATOR.join(b or "(빈 행)" for b in blocks))
        locator: JsonDict = {"table": table, "rows": [first, first + len(group) - 1], "keys": row_keys[0]}
        if len(group) > 1:
            locator["row_keys"] = row_keys
        title = ""
        if title_column is not None:
            title = _render_value(group[0].get(title_column))
        docs.append(
            Document(
                doc_id=doc_id,
                text=text,
                title=title,
                source_uri=source_uri,
                locator=locator,
                metadata=_group_metadata(group),
            )
        )
    return docs


def _group_metadata(group: Sequence[Mapping[str, Any]]) -> JsonDict:
    meta: JsonDict = {}
    for col, value in group[0].items():
        v = _scalar(value)
        if v is None or (isinstance(v, str) and len(v) > MAX_METADATA_STR):
            continue
        if all(col in row and _scalar(row[col]) == v for row in group[1:]):
            meta[str(col)] = v
    return meta


def _row_blocks(text: str) -> list[Span]:
    blocks: list[Span] = []
    pos = 0
    while pos <= len(text):
        sep = text.find(_ROW_SEPARATOR, pos)
        end = len(text) if sep < 0 else sep
        if end > pos:
            blocks.append((pos, end))
        if sep < 0:
            break
        pos = sep + len(_ROW_SEPARATOR)
    return blocks


class TableRowChunker:
    """Chunks of ``rows_per_chunk`` rows from documents made by :func:`rows_to_documents`."""

    def __init__(self, rows_per_chunk: int = 1, max_chars: int = 2000) -> None:
        if rows_per_chunk < 1:
            raise InvalidInput("rows_per_chunk는 1 이상이어야 합니다.", "rows_per_chunk must be >= 1.")
        if max_chars < 20:
            raise InvalidInput("청크 최대 길이는 20자 이상이어야 합니다.", "max_chars must be >= 20.")
        self.rows_per_chunk = rows_per_chunk
        self.max_chars = max_chars

    def __repr__(self) -> str:  # stable: used in index fingerprints
        return f"TableRowChunker(rows_per_chunk={self.rows_per_chunk}, max_chars={self.max_chars})"

    def chunk(self, doc: Document) -> list[Chunk]:
        text = doc.text
        blocks = _row_blocks(text)
        rows = doc.locator.get("rows")
        row_keys = doc.locator.get("row_keys")
        # row ranges are only trustworthy when the blocks match the rows the locator announces
        aligned = (
            isinstance(rows, list)
            and len(rows) == 2
            and all(isinstance(r, int) for r in rows)
            and rows[1] - rows[0] + 1 == len(blocks)
        )
        spans: list[Span] = []
        locators: list[JsonDict] = []
        for g in range(0, len(blocks), self.rows_per_chunk):
            group = list(range(g, min(g + self.rows_per_chunk, len(blocks))))
            start, end = blocks[group[0]][0], blocks[group[-1]][1]
            if end - start <= self.max_chars:
                pieces = [((start, end), group)]
            else:
                pieces = [(s, [i]) for i in group for s in self._row_pieces(text, blocks[i])]
            for span, idx in pieces:
                spans.append(span)
                locators.append(self._locator(doc.locator, idx, rows, row_keys) if aligned else doc.locator)
        return build_chunks(doc, spans, locators)

    def _row_pieces(self, text: str, block: Span) -> list[Span]:
        if block[1] - block[0] <= self.max_chars:
            return [block]
        lines = [(m.start(), m.end()) for m in _LINES.finditer(text, block[0], block[1])]
        units = [p for line in lines for p in split_long_span(text, line, self.max_chars)]
        return pack_spans(units, self.max_chars)

    @staticmethod
    def _locator(base: JsonDict, idx: Sequence[int], rows: Any, row_keys: Any) -> JsonDict:
        loc = copy.deepcopy(base)
        loc["rows"] = [rows[0] + idx[0], rows[0] + idx[-1]]
        if isinstance(row_keys, list) and len(row_keys) == rows[1] - rows[0] + 1:
            loc["keys"] = copy.deepcopy(row_keys[idx[0]])
            if len(idx) > 1:
                loc["row_keys"] = copy.deepcopy(row_keys[idx[0] : idx[-1] + 1])
            else:
                loc.pop("row_keys", None)
        return loc
