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
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

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


def parse_pipeline_config(data: Any, *, origin: str = "<config>") -> PipelineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: 파이프라인 설정은 YAML 매핑이어야 합니다.",
                          f"{origin}: the pipeline config must be a YAML mapping.")
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
    return parse_pipeline_config(data, origin=path.name)
