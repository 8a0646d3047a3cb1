"""The pipeline YAML: sources, targets (collections) and schedules, plus where each stage keeps its data.

.. code-block:: yaml

    stores:                                  # all optional; defaults live under JISIK_HOME
      landing: file:///var/jisik/landing     # or s3://bucket/prefix?endpoint=http://127.0.0.1:8333
      inbox: file:///var/jisik/inbox         # the knowledge store's inbox (object store URL)
      receipts: sqlite:////var/jisik/receipts.sqlite3   # or postgresql+psycopg://… / mysql+pymysql://…
      index: file:///var/jisik/index         # or postgresql://… (pgvector)
    sources:
      - kind: sql
        name: products
        url: ${WAREHOUSE_URL}
        query: SELECT id, name, benefit, updated_at FROM products
        cursor_column: updated_at
        cursor_type: timestamp
    targets:
      - collection: products
        sources: [products]
        chunker: rows                        # sentence | whole | page | rows
    schedules:
      - sources: [products]
        cron: "*/10 * * * *"                 # five-field crontab, in ``timezone``

``${ENV}`` / ``${ENV:default}`` placeholders are expanded in every string of the file (secrets
stay in the environment). Every key is checked: a typo is an error naming the key.

Relative paths in a file loaded by :func:`load_pipeline_config` are relative to **the YAML file's
directory**, not to the working directory: file source ``paths``, local ``stores`` (a plain path or
``file:dir``), ``sqlite:///file`` URLs (receipts, SQL sources). Absolute paths, ``~/…``, other URL
schemes and strings with a ``${…}`` placeholder are kept as written (a placeholder's value is the
environment's business, e.g. ``${JISIK_HOME:.jisik}`` follows JISIK_HOME, which is relative to the
working directory).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from jisik.core.errors import ConfigError, NotFound
from jisik.core.settings import Settings
from jisik.pipeline.sources.base import expand_env
from jisik.pipeline.sources.config import SourceConfig
from jisik.text.chunking import CHUNKER_KINDS

_CRON = re.compile(r"^\S+(\s+\S+){4}$")


class StoreUrls(BaseModel):
    model_config = ConfigDict(extra="forbid")

    landing: str | None = None
    inbox: str | None = None
    receipts: str | None = None
    index: str | None = None

    def resolved(self, settings: Settings) -> dict[str, str]:
        home = settings.home.resolve()
        return {
            "landing": self.landing or (home / "landing").as_uri(),
            "inbox": self.inbox or (home / "inbox").as_uri(),
            "receipts": self.receipts or f"sqlite:///{home / 'pipeline' / 'receipts.sqlite3'}",
            "index": self.index or settings.index_url or (home / "index").as_uri(),
        }


class Target(BaseModel):
    """A knowledge-store collection fed by some sources."""

    model_config = ConfigDict(extra="forbid")

    collection: str
    sources: list[str] = Field(min_length=1)
    chunker: str = "sentence"
    sync: bool | None = Field(
        None, description="delete documents of a source that a run no longer delivers; default: true for "
                          "full extracts, false for incremental (cursor) sources")

    @field_validator("chunker")
    @classmethod
    def _chunker(cls, v: str) -> str:
        if v not in CHUNKER_KINDS:
            raise ValueError(f"chunker must be one of {', '.join(CHUNKER_KINDS)}")
        return v


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sources: list[str] = Field(min_length=1)
    cron: str
    timezone: str = "Asia/Seoul"

    @field_validator("cron")
    @classmethod
    def _cron(cls, v: str) -> str:
        if not _CRON.match(v.strip()):
            raise ValueError("cron must have five fields: minute hour day month weekday")
        return v.strip()


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stores: StoreUrls = Field(default_factory=StoreUrls)
    sources: list[SourceConfig] = Field(min_length=1)
    targets: list[Target] = Field(default_factory=list)
    schedules: list[Schedule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> PipelineConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate source names: {', '.join(dupes)}")
        known = set(names)
        for where, refs in [*(("targets", t.sources) for t in self.targets),
                            *(("schedules", s.sources) for s in self.schedules)]:
            unknown = sorted(set(refs) - known)
            if unknown:
                raise ValueError(f"{where} name unknown sources: {', '.join(unknown)}")
        fed = [s for t in self.targets for s in t.sources]
        for s in sorted({s for s in fed if fed.count(s) > 1}):
            raise ValueError(f"source {s!r} feeds two targets; a source delivers to one collection")
        collections = [t.collection for t in self.targets]
        for c in {c for c in collections if collections.count(c) > 1}:
            raise ValueError(f"collection {c!r} appears in two targets; list all its sources in one")
        incremental = {s.name for s in self.sources if getattr(s, "cursor_column", None) is not None}
        for t in self.targets:
            if t.sync and (inc := sorted(incremental & set(t.sources))):
                # a cursor run delivers only new rows: syncing to it would delete every older row
                raise ValueError(f"target {t.collection!r}: sync: true cannot apply to incremental (cursor) "
                                 f"sources: {', '.join(inc)}")
        return self

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise NotFound(f"파이프라인에 '{name}' 소스가 없습니다.", f"No source named {name!r} in the pipeline.",
                       details={"sources": [s.name for s in self.sources]})

    def targets_of(self, source: str) -> list[Target]:
        return [t for t in self.targets if source in t.sources]


def _expand(value: Any) -> Any:
    if isinstance(value, str):
        return expand_env(value)
    if isinstance(value, list):
        return [_expand(v) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v) for k, v in value.items()}
    return value


_SQLITE_URL = re.compile(r"^(sqlite(?:\+\w+)?:///)([^?]*)(\?.*)?$")
_PATH_STORES = ("landing", "inbox", "index")


def _relative(value: Any) -> bool:
    """A plain relative path written in the file (no placeholder, not absolute, not ``~``)."""
    return isinstance(value, str) and bool(value) and "${" not in value and not value.startswith(("/", "~"))


def _resolve_path(value: Any, base: Path) -> Any:
    return str(base / value) if _relative(value) else value


def _resolve_store(value: Any, base: Path) -> Any:
    """A plain path or ``file:dir`` (local object store / embedded index) made absolute."""
    if not isinstance(value, str):
        return value
    if value.startswith("file:") and not value.startswith("file://") and _relative(value[5:]):
        return (base / value[5:]).as_uri()
    return _resolve_path(value, base) if urlparse(value).scheme == "" else value


def _resolve_sqlite(value: Any, base: Path) -> Any:
    m = _SQLITE_URL.match(value) if isinstance(value, str) else None
    if m is None or not _relative(m.group(2)) or m.group(2).startswith((":memory:", "file:")):
        return value
    return f"{m.group(1)}{base / m.group(2)}{m.group(3) or ''}"


def resolve_relative_paths(data: Any, base: Path) -> Any:
    """A copy of the raw YAML mapping with its relative paths joined to ``base`` (see the module doc)."""
    if not isinstance(data, dict):
        return data
    out = dict(data)
    if isinstance(stores := data.get("stores"), dict):
        out["stores"] = {k: _resolve_sqlite(v, base) if k == "receipts" else
                         _resolve_store(v, base) if k in _PATH_STORES else v for k, v in stores.items()}
    if isinstance(sources := data.get("sources"), list):
        out["sources"] = [_resolve_source(s, base) for s in sources]
    return out


def _resolve_source(source: Any, base: Path) -> Any:
    if not isinstance(source, dict):
        return source
    out = dict(source)
    if source.get("kind") == "file" and isinstance(paths := source.get("paths"), list):
        out["paths"] = [_resolve_path(p, base) for p in paths]
    elif source.get("kind") == "sql" and "url" in source:
        out["url"] = _resolve_sqlite(source["url"], base)
    return out


def parse_pipeline_config(data: Any, *, origin: str = "<config>", base_dir: Path | None = None) -> PipelineConfig:
    """Validate a parsed YAML mapping; with ``base_dir``, relative paths are resolved against it."""
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: 파이프라인 설정은 YAML 매핑이어야 합니다.",
                          f"{origin}: the pipeline config must be a YAML mapping.")
    if base_dir is not None:
        data = resolve_relative_paths(data, base_dir)
    try:
        return PipelineConfig.model_validate(_expand(data))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:8])
        raise ConfigError(f"{origin}: 파이프라인 설정이 올바르지 않습니다 — {problems}",
                          f"{origin}: invalid pipeline config — {problems}",
                          details={"errors": exc.errors(include_url=False, include_context=False)}) from None


def load_pipeline_config(path: Path) -> PipelineConfig:
    if not path.is_file():
        raise NotFound(f"파이프라인 설정 파일이 없습니다: {path}", f"Pipeline config not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: YAML 문법 오류입니다.", f"{path.name}: invalid YAML: {exc}") from None
    # abspath, not resolve: '..' is normalised but a symlinked file keeps its own directory
    return parse_pipeline_config(data, origin=path.name, base_dir=Path(os.path.abspath(path)).parent)
