"""Choose a store implementation from a URL, once, driven by settings."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from jisik.core.errors import ConfigError
from jisik.stores.index_base import IndexStore


def open_index(url: str) -> IndexStore:
    """``file:///dir`` or a plain path -> embedded store; ``postgresql://...`` -> pgvector."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        from jisik.stores.embedded import EmbeddedIndexStore

        path = unquote(parsed.path) if parsed.scheme == "file" else url
        return EmbeddedIndexStore(Path(path))
    if parsed.scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        from jisik.stores.pgvector import PgVectorStore

        return PgVectorStore(url.replace("postgresql+psycopg://", "postgresql://"))
    raise ConfigError(
        f"지원하지 않는 색인 저장소 URL입니다: {parsed.scheme}://",
        f"Unsupported index URL scheme '{parsed.scheme}'; use file:///dir or postgresql://...",
    )
