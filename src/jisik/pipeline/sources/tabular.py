"""Row batches to CSV or Parquet files, one batch at a time, with portable column types and masking.

Portable types: string, integer, float, boolean, date, datetime, binary. ``Decimal`` maps to float,
``time``/UUID/JSON values to string. A column's type comes from its values: integer and float
mixed give float, other mixes give string; a column with no value at all is string.

Parquet needs its schema up front, so it is fixed by the *first* batch; a later batch whose values
cannot be stored in that type (e.g. text in an integer column) is an error that names the column
(CAST it in the query). CSV has no such limit: its schema is reported after the last batch.

Masking (personal data, e.g. phone numbers) happens before anything is written: ``hash`` replaces a
value by the first 16 hex digits of HMAC-SHA256(secret salt, value) — equal values stay equal, so
joins and de-duplication still work, but the value cannot be recovered or brute-forced without the
salt; ``redact`` replaces every value by ``***``. NULL stays NULL.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import json
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from jisik.core.errors import InvalidInput
from jisik.pipeline.manifest import ColumnSchema

_ARROW: dict[str, pa.DataType] = {
    "string": pa.string(), "integer": pa.int64(), "float": pa.float64(), "boolean": pa.bool_(),
    "date": pa.date32(), "binary": pa.binary(),
}


def type_of_kind(kind: type) -> str | None:
    """The portable type of values of the Python type ``kind`` (None for NoneType)."""
    if kind is type(None):
        return None
    if issubclass(kind, bool):
        return "boolean"
    if issubclass(kind, int):
        return "integer"
    if issubclass(kind, float | Decimal):
        return "float"
    if issubclass(kind, datetime):
        return "datetime"
    if issubclass(kind, date):
        return "date"
    if issubclass(kind, bytes | bytearray | memoryview):
        return "binary"
    return "string"


def portable_type(value: Any) -> str | None:
    return type_of_kind(type(value))


def merge_types(a: str | None, b: str | None) -> str | None:
    if a is None or a == b:
        return b
    if b is None:
        return a
    if {a, b} == {"integer", "float"}:
        return "float"
    return "string"


def as_text(value: Any) -> str:
    """The CSV / masking form of a value (NULL -> empty string)."""
    kind = type(value)
    if kind is str or kind is int:  # the common cases first: this runs once per CSV cell
        return str(value)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime | date) or hasattr(value, "isoformat"):
        return str(value.isoformat())
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def _types_of(kinds: set[type]) -> str | None:
    """The portable type of a column from the Python types of its values."""
    t: str | None = None
    for kind in kinds:
        t = merge_types(t, type_of_kind(kind))
    return t


# Python types arrow converts to each portable type without help (others go through _convert)
_FAST: dict[str, set[type]] = {"string": {str}, "integer": {int}, "float": {float, int}, "boolean": {bool},
                               "date": {date}, "binary": {bytes}}


class Masker:
    def __init__(self, mode: Literal["hash", "redact"], salt: bytes) -> None:
        self.mode = mode
        self.salt = salt

    def __call__(self, value: Any) -> str | None:
        if value is None:
            return None
        if self.mode == "redact":
            return "***"
        return hmac.new(self.salt, as_text(value).encode("utf-8"), hashlib.sha256).hexdigest()[:16]


class BatchWriter(Protocol):
    rows_written: int

    def write(self, rows: Sequence[Sequence[Any]]) -> None: ...

    def close(self) -> list[ColumnSchema]: ...


def _check_columns(columns: Sequence[str]) -> None:
    dupes = sorted({c for c in columns if list(columns).count(c) > 1})
    if dupes:
        raise InvalidInput(f"결과에 같은 이름의 컬럼이 여러 개 있습니다: {', '.join(dupes)} (AS로 별칭을 주세요)",
                           f"Duplicate result column names: {', '.join(dupes)}; alias them with AS.")


class CsvBatchWriter:
    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        _check_columns(columns)
        self.columns = list(columns)
        self._kinds: list[set[type]] = [set() for _ in columns]
        self.rows_written = 0
        self._file = path.open("w", encoding="utf-8", newline="")
        self._csv = csv.writer(self._file)
        self._csv.writerow(self.columns)

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        for i, kinds in enumerate(self._kinds):
            kinds.update({type(row[i]) for row in rows})
        self._csv.writerows([as_text(v) for v in row] for row in rows)
        self.rows_written += len(rows)

    def close(self) -> list[ColumnSchema]:
        self._file.close()
        return [ColumnSchema(name=c, type=_types_of(k) or "string")
                for c, k in zip(self.columns, self._kinds, strict=True)]


class ParquetBatchWriter:
    def __init__(self, path: Path, columns: Sequence[str]) -> None:
        _check_columns(columns)
        self.path = path
        self.columns = list(columns)
        self.types: list[str] = []
        self.rows_written = 0
        self._schema: pa.Schema | None = None
        self._writer: pq.ParquetWriter | None = None

    def _open(self, rows: Sequence[Sequence[Any]]) -> None:
        fields = []
        for i, col in enumerate(self.columns):
            t: str | None = None
            aware = False
            for row in rows:
                value = row[i]
                if value is not None:
                    t = merge_types(t, portable_type(value))
                    aware = aware or (isinstance(value, datetime) and value.tzinfo is not None)
            t = t or "string"
            self.types.append(t)
            arrow = pa.timestamp("us", tz="UTC" if aware else None) if t == "datetime" else _ARROW[t]
            fields.append(pa.field(col, arrow))
        self._schema = pa.schema(fields)
        self._writer = pq.ParquetWriter(self.path, self._schema, compression="zstd")

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self._writer is None:
            self._open(rows)
        assert self._writer is not None and self._schema is not None
        arrays = []
        for i, (col, t) in enumerate(zip(self.columns, self.types, strict=True)):
            arrow_type = self._schema.field(i).type
            values = [row[i] for row in rows]
            if not {type(v) for v in values} - _FAST.get(t, set()) - {type(None)}:
                arrays.append(pa.array(values, type=arrow_type))
                continue
            aware = t == "datetime" and arrow_type.tz is not None
            values = [_convert(v, t, aware, col, self.rows_written + n) for n, v in enumerate(values)]
            arrays.append(pa.array(values, type=arrow_type))
        self._writer.write_table(pa.Table.from_arrays(arrays, schema=self._schema))
        self.rows_written += len(rows)

    def close(self) -> list[ColumnSchema]:
        if self._writer is None:  # no rows: still a valid (empty, all-string) file
            self._open([])
        assert self._writer is not None
        self._writer.close()
        return [ColumnSchema(name=c, type=t) for c, t in zip(self.columns, self.types, strict=True)]


def _convert(value: Any, t: str, aware: bool, column: str, row: int) -> Any:
    if value is None:
        return None
    got = portable_type(value)
    if t == "string":
        return value if isinstance(value, str) else as_text(value)
    if got == t or (t == "float" and got == "integer"):
        if t == "float":
            return float(value)
        if t == "binary":
            return bytes(value)
        if t == "datetime":
            if (value.tzinfo is not None) != aware:
                got = "datetime with time zone" if value.tzinfo is not None else "datetime without time zone"
            else:
                return value.astimezone(UTC) if aware else value
        else:
            return value
    raise InvalidInput(
        f"컬럼 '{column}'의 형식이 {row}행에서 {t}에서 {got}(으)로 바뀌었습니다. 쿼리에서 CAST 해 주세요.",
        f"Column '{column}' changes type from {t} to {got} at row {row}; CAST it in the query "
        "(Parquet needs one type per column), or use fmt: csv.",
        details={"column": column, "row": row},
    )


def open_writer(fmt: str, path: Path, columns: Sequence[str]) -> BatchWriter:
    if fmt == "csv":
        return CsvBatchWriter(path, columns)
    if fmt == "parquet":
        return ParquetBatchWriter(path, columns)
    raise InvalidInput(f"지원하지 않는 출력 형식입니다: {fmt}", f"Unsupported output format {fmt!r} (csv, parquet).")
