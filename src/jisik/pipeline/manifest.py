"""The contract between pipeline stages: what a source extracted, and the manifest landed next to it.

A source writes its output to a local staging file and returns an :class:`Extracted`. Landing
copies that file into the object store under ``raw/{source}/{yyyy-mm-dd}/{run_id}/{name}.{ext}``
and writes a :class:`Manifest` beside it as ``{key}.meta.json``. Transfer and the knowledge-store
batch read the manifest, never the source, so every chunk can be traced back to the landed object
(``lineage``: object key + manifest fields).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SourceKind = Literal["sql", "file", "rest", "faq"]
MANIFEST_SUFFIX = ".meta.json"


class ColumnSchema(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: str  # a portable type name: string | integer | float | boolean | date | datetime | binary


class CursorRange(BaseModel):
    """The incremental window a SQL/REST extraction covered (values as strings for portability)."""

    model_config = ConfigDict(extra="forbid")

    column: str
    start: str | None = None  # exclusive lower bound used by this run (None = first run)
    end: str | None = None  # highest cursor value seen in this run (the next run's start)


@dataclass(slots=True)
class Extracted:
    """One file a source produced in its staging directory, plus what the manifest must say."""

    path: Path  # local staging file (landing copies it; the source may delete it afterwards)
    name: str  # object name without extension, e.g. "products" or "page-0001"
    fmt: str  # csv | parquet | pdf | md | html | docx | xlsx | json | pkl
    source: str  # the source's configured name (used in the object key)
    source_kind: SourceKind
    query: str | None = None  # SQL text or REST endpoint (no secrets)
    file: str | None = None  # original file path or URI
    params: dict[str, Any] = field(default_factory=dict)  # query parameters (no secrets)
    row_count: int | None = None
    page_count: int | None = None
    schema: list[ColumnSchema] = field(default_factory=list)
    masked_columns: list[str] = field(default_factory=list)  # personal-data columns masked before landing
    cursor: CursorRange | None = None
    content_type: str = "application/octet-stream"


class Manifest(BaseModel):
    """The ``*.meta.json`` sidecar of a landed object."""

    manifest_version: int = 1
    key: str  # object key of the data file this manifest describes
    source: str
    source_kind: SourceKind
    run_id: str
    extracted_at: datetime
    format: str
    content_type: str
    sha256: str
    byte_size: int = Field(ge=0)
    query: str | None = None
    file: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    row_count: int | None = None
    page_count: int | None = None
    schema_: list[ColumnSchema] = Field(default_factory=list, alias="schema")
    masked_columns: list[str] = Field(default_factory=list)
    cursor: CursorRange | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def manifest_key(self) -> str:
        return self.key + MANIFEST_SUFFIX

    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, indent=2)

    def lineage(self) -> dict[str, Any]:
        """The fields every chunk carries back to its landed object."""
        return {"object_key": self.key, "manifest_key": self.manifest_key, "source": self.source,
                "run_id": self.run_id, "sha256": self.sha256}


def object_key(source: str, extracted_at: datetime, run_id: str, name: str, fmt: str) -> str:
    """``raw/{source}/{yyyy-mm-dd}/{run_id}/{name}.{fmt}``."""
    return f"raw/{source}/{extracted_at:%Y-%m-%d}/{run_id}/{name}.{fmt}"
