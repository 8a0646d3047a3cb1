"""scene01's knowledge: product / event tables as documents in the ``marketing`` collection.

A table is a CSV file with a metadata sidecar ``{name}.meta.json`` beside it (``key_columns``,
``title_column``, ``text_columns``, ``columns`` with types and descriptions, ``source``, ...;
the same hints the pipeline's table sources take). Rows become documents exactly as the pipeline
makes them (:func:`jisik.text.tables.rows_to_documents`: ``컬럼: 값`` lines, doc id
``{table}/{key}=...``, scalar columns as filterable metadata) and are chunked one row per chunk,
so a collection the pipeline fills from a warehouse table works the same way.

The bundled tables (``jisik/data/demo/marketing``, made-up data) are indexed by ``jisik demo``;
tests add the finlife product samples through :func:`jisik.pipeline.sources.finlife.finlife_documents`.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from jisik.core.errors import CorruptData, NotFound
from jisik.core.types import Document
from jisik.pipeline.indexing import IndexReport, ProgressFactory, progress_or_none
from jisik.text.tables import TableRowChunker, rows_to_documents

MARKETING_COLLECTION = "marketing"
SIDECAR_SUFFIX = ".meta.json"


class ColumnInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: str = "string"  # string | integer | float | date
    description: str = ""


class TableSidecar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    table: str
    title: str = ""
    description: str = ""
    source: str = ""
    license: str = ""
    format: str = "csv"
    encoding: str = "utf-8"
    key_columns: list[str] = Field(default_factory=list)
    title_column: str | None = None
    text_columns: list[str] | None = None
    columns: list[ColumnInfo] = Field(default_factory=list)


def marketing_data_root() -> Path:
    return Path(str(resources.files("jisik") / "data" / "demo" / "marketing"))


def read_sidecar(csv_path: Path) -> TableSidecar:
    path = csv_path.with_name(csv_path.stem + SIDECAR_SUFFIX)
    if not path.is_file():
        raise NotFound(f"표의 메타데이터 파일이 없습니다: {path.name}", f"No metadata sidecar {path.name}.")
    try:
        return TableSidecar.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, ValidationError) as exc:
        raise CorruptData(f"표의 메타데이터 파일이 올바르지 않습니다: {path.name}",
                          f"Invalid table sidecar {path.name}: {exc}") from None


_CONVERT: dict[str, Any] = {"integer": int, "float": float}


def _typed(value: str, kind: str) -> Any:
    """A cell in its sidecar type (integer, float); text stays text, an empty cell is None."""
    convert = _CONVERT.get(kind)
    if value == "" or convert is None:
        return value or None
    try:
        return convert(value)
    except ValueError:
        return value


def load_table(csv_path: Path, *, source_uri: str | None = None) -> list[Document]:
    """The rows of a CSV with a sidecar, one document per row."""
    meta = read_sidecar(csv_path)
    types = {c.name: c.type for c in meta.columns}
    try:
        with csv_path.open(encoding=meta.encoding, newline="") as f:
            rows = [{k: _typed(v, types.get(k, "string")) for k, v in row.items()}
                    for row in csv.DictReader(f) if any((v or "").strip() for v in row.values())]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CorruptData(f"표 파일을 읽을 수 없습니다: {csv_path.name}",
                          f"Cannot read the table {csv_path.name}: {exc}") from None
    docs = rows_to_documents(meta.table, rows, meta.key_columns, meta.text_columns, meta.title_column,
                             source_uri=source_uri or f"jisik://demo/marketing/{csv_path.name}")
    for doc in docs:
        doc.metadata["table"] = meta.table
    return docs


def marketing_documents(root: Path | None = None) -> list[Document]:
    """Every table (``*.csv`` with a sidecar) under ``root`` (default: the bundled demo tables)."""
    root = root or marketing_data_root()
    return [doc for path in sorted(root.glob("*.csv")) for doc in load_table(path)]


def marketing_chunker() -> TableRowChunker:
    return TableRowChunker(rows_per_chunk=1)


def ingest_marketing(runtime: Any, documents: Sequence[Document] | None = None, *,
                     collection: str = MARKETING_COLLECTION, progress: ProgressFactory | None = None) -> IndexReport:
    """Index ``documents`` (default: the bundled tables) into ``collection``; documents no longer
    given are removed (sync), unchanged ones cost nothing (fingerprints)."""
    docs = list(documents) if documents is not None else marketing_documents()
    indexer = runtime.indexer(marketing_chunker())
    with progress_or_none(progress, f"마케팅 상품 정보 색인: {collection}", len(docs)) as update:
        report: IndexReport = indexer.index(collection, docs, sync=True, note="marketing tables", progress=update)
    return report
