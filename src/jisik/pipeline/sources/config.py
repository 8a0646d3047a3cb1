"""Typed, serialisable configs of the pipeline sources (load them from YAML with :func:`load_source_config`).

Every config has a ``kind`` discriminator and forbids unknown keys, so a typo in a YAML file is an
error, not a silently ignored setting. Secrets never appear in a config: a database URL may hold
``${ENV_NAME}`` placeholders and API keys are named by their environment variable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from jisik.core.errors import ConfigError, InvalidInput

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SOURCE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

Scalar = str | int | float | bool | None


def check_identifier(value: str, what: str) -> str:
    """A plain SQL identifier (letters, digits, underscore; not starting with a digit)."""
    if not _IDENT.match(value):
        raise InvalidInput(
            f"{what} 이름이 올바르지 않습니다: {value!r} (영문자, 숫자, 밑줄만 허용)",
            f"Invalid {what} name {value!r}: only letters, digits and underscores are allowed.",
        )
    return value


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="source name: lowercase letters, digits, '-', '_' (used in object keys)")
    allow_schema_drift: bool = Field(False, description="accept a dropped column or a changed column type "
                                                        "(default: the run's extract stage fails; see schema_drift)")
    allow_shrink: bool = Field(False, description="accept a full extract that is empty or far smaller than the "
                                                  "previous one (default: refused before landing; see shrink)")
    min_rows_pct: float = Field(0.0, ge=0.0, le=100.0,
                                description="a full extract with fewer rows than this percentage of the previous "
                                            "run's is refused (0: only an empty one after a non-empty one)")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _SOURCE_NAME.match(v):
            raise ValueError("name must match [a-z0-9][a-z0-9_-]{0,63}")
        return v


class TableHints(BaseModel):
    """How table rows become documents later (recorded in the manifest as parser hints)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key_columns: list[str] = Field(default_factory=list, description="columns identifying a row (stable doc ids)")
    title_column: str | None = None
    text_columns: list[str] | None = None
    rows_per_doc: int = Field(1, ge=1, le=10_000)


class SqlSourceConfig(_Config):
    kind: Literal["sql"] = "sql"
    url: str = Field(description="SQLAlchemy URL; ${ENV} / ${ENV:default} placeholders are expanded at run time")
    query: str = Field(min_length=1, description="SELECT text with :name bound parameters")
    params: dict[str, Scalar] = Field(default_factory=dict)
    table: str | None = Field(None, description="object name and doc-id prefix (default: the source name)")
    cursor_column: str | None = Field(None, description="checked by SqlSource: a plain identifier")
    cursor_type: Literal["id", "timestamp"] = "id"
    batch_size: int = Field(10_000, ge=1, le=1_000_000)
    fmt: Literal["csv", "parquet"] = "parquet"
    mask_columns: list[str] = Field(default_factory=list)
    mask: Literal["hash", "redact"] = "hash"
    mask_salt_env: str = "JISIK_MASK_SALT"
    max_rows: int | None = Field(None, ge=1, description="soft limit per run (rows tying on the cursor are kept)")
    hints: TableHints = Field(default_factory=TableHints)

    @field_validator("params")
    @classmethod
    def _params(cls, v: dict[str, Scalar]) -> dict[str, Scalar]:
        for key in v:
            if not _IDENT.match(key) or key.startswith("_"):
                raise ValueError(f"parameter name {key!r} must be an identifier not starting with '_'")
        return v


class FileSourceConfig(_Config):
    kind: Literal["file"] = "file"
    paths: list[str] = Field(min_length=1, description="files, directories or glob patterns")
    recursive: bool = False
    allow_empty: bool = Field(False, description="a path matching no file is an error unless this is set")
    encoding: str | None = Field(None, description="CSV text encoding (default: UTF-8 with or without BOM, else CP949)")
    parser: Literal["finlife", "faq"] | None = Field(None, description="force a parser for JSON / pickle files")
    hints: TableHints = Field(default_factory=TableHints)


class ApiKeyAuth(BaseModel):
    """An API key read from the environment variable ``env`` and sent as a query parameter or header."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str
    param: str | None = None
    header: str | None = None
    prefix: str = Field("", description="e.g. 'Bearer ' for an Authorization header")

    @model_validator(mode="after")
    def _one_place(self) -> ApiKeyAuth:
        if (self.param is None) == (self.header is None):
            raise ValueError("set exactly one of auth.param and auth.header")
        return self


class NoPagination(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    style: Literal["none"] = "none"


class PageNumberPagination(BaseModel):
    """``page_param`` = start, start+1, ... until ``max_page_field`` is reached or a page has no items."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    style: Literal["page"] = "page"
    page_param: str = "page"
    start: int = 1
    max_page_field: str | None = Field(None, description="dotted path of the last page number in a response")
    page_size_param: str | None = None
    page_size: int | None = Field(None, ge=1)


class CursorPagination(BaseModel):
    """The response's ``next_cursor_field`` goes back as ``cursor_param`` until it is empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    style: Literal["cursor"] = "cursor"
    cursor_param: str = "cursor"
    next_cursor_field: str = "next_cursor"


class NextLinkPagination(BaseModel):
    """Follow the URL at ``next_field`` (same host only) until it is empty."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    style: Literal["next_link"] = "next_link"
    next_field: str = "next"


Pagination = Annotated[
    NoPagination | PageNumberPagination | CursorPagination | NextLinkPagination, Field(discriminator="style")
]


class HttpOptions(BaseModel):
    """Retries (exponential backoff with jitter on 429/5xx/timeouts), rate limit and timeout."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(4, ge=0, le=20)
    backoff_base_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    rate_limit_per_s: float | None = Field(None, gt=0)
    max_pages: int = Field(1000, ge=1)


class RestSourceConfig(_Config):
    kind: Literal["rest"] = "rest"
    base_url: str
    path: str = ""
    params: dict[str, Scalar] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    auth: ApiKeyAuth | None = None
    pagination: Pagination = Field(default_factory=NoPagination)
    items_fields: list[str] = Field(default_factory=list, description="dotted paths of the record lists to merge")
    http: HttpOptions = Field(default_factory=HttpOptions)
    output: str | None = Field(None, description="object name (default: the source name)")
    items_path: str | None = Field(None, description="parser hint: dotted path of the records in the output JSON")
    hints: TableHints = Field(default_factory=TableHints)


FinlifeProduct = Literal["deposit", "saving"]
FINLIFE_PRODUCTS: tuple[FinlifeProduct, ...] = ("deposit", "saving")


class FinlifeSourceConfig(_Config):
    """The FSS finlife open API (금융상품통합비교공시): deposit and saving products."""

    kind: Literal["finlife"] = "finlife"
    base_url: str = "https://finlife.fss.or.kr"
    products: list[FinlifeProduct] = Field(default_factory=lambda: list(FINLIFE_PRODUCTS), min_length=1)
    top_fin_grp_no: list[str] = Field(default_factory=lambda: ["020000"], min_length=1,
                                      description="020000 banks, 030200 specialised credit, 030300 savings banks, "
                                                  "050000 insurance, 060000 financial investment")
    api_key_env: str = "FSS_API_KEY"
    http: HttpOptions = Field(default_factory=lambda: HttpOptions(rate_limit_per_s=5.0))


SourceConfig = Annotated[
    SqlSourceConfig | FileSourceConfig | RestSourceConfig | FinlifeSourceConfig, Field(discriminator="kind")
]
_ADAPTER: TypeAdapter[SourceConfig] = TypeAdapter(SourceConfig)


def load_source_config(data: Mapping[str, Any]) -> SourceConfig:
    """Validate a mapping (e.g. one entry of a YAML pipeline file) into the config of its ``kind``."""
    try:
        return _ADAPTER.validate_python(dict(data))
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"소스 설정이 올바르지 않습니다: {problems}", f"Invalid source config: {problems}") from exc
