"""Pipeline sources: SQL databases, files and REST APIs, each writing staging files and returning
:class:`jisik.pipeline.manifest.Extracted` records; and the parsers that turn landed objects into
documents. See ``base`` for the run context, the cursor state store and the factory."""

from jisik.pipeline.sources.base import (
    CursorState,
    ParseHints,
    RunContext,
    Source,
    SqliteStateStore,
    StateStore,
    build_source,
    new_run_id,
)
from jisik.pipeline.sources.config import (
    FileSourceConfig,
    FinlifeSourceConfig,
    RestSourceConfig,
    SourceConfig,
    SqlSourceConfig,
    load_source_config,
)

__all__ = [
    "CursorState",
    "FileSourceConfig",
    "FinlifeSourceConfig",
    "ParseHints",
    "RestSourceConfig",
    "RunContext",
    "Source",
    "SourceConfig",
    "SqlSourceConfig",
    "SqliteStateStore",
    "StateStore",
    "build_source",
    "load_source_config",
    "new_run_id",
]
