"""Shared helpers of the pipeline runner tests (unit, integration, the crash child process):
a real embedder that counts what it embeds, a SQLite warehouse table, and a pipeline on embedded
defaults under a home directory."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jisik.core.settings import Settings
from jisik.models.embedders import Embedder, create_embedder
from jisik.pipeline.config import parse_pipeline_config
from jisik.pipeline.runner import Pipeline
from jisik.retrieval.hybrid import HybridRetriever
from jisik.stores.index_base import IndexStore
from jisik.text.tokenize import KoreanTokenizer, get_tokenizer

EMBEDDER = "use-multilingual"  # a real offline model, several times faster than e5-small on 2 cores
# retry pauses of the pipeline's transfer and event loops, short for tests (defaults: 1 s doubling to 60 s)
FAST_RETRIES: dict[str, float] = {"pipeline_retry_initial_s": 0.01, "pipeline_retry_max_s": 0.05,
                                  "pipeline_max_backoff_s": 0.05}


class CountingEmbedder:
    """The real embedder, counting passages (the runner must not re-embed unchanged documents)."""

    def __init__(self, inner: Embedder | None = None) -> None:
        self.inner = inner or create_embedder(EMBEDDER, Settings(embedder_threads=2))
        self.model_id, self.dim = self.inner.model_id, self.inner.dim
        self.passages = 0
        self.texts: list[str] = []

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.passages += len(texts)
        self.texts.extend(texts)
        return self.inner.embed_passages(texts)


@dataclass
class RunnerRuntime:
    """What ``Pipeline.index_delivered(runtime=...)`` uses: an embedder and a tokenizer."""

    embedder: CountingEmbedder
    tokenizer: KoreanTokenizer = field(default_factory=get_tokenizer)

    def retriever(self, store: IndexStore) -> HybridRetriever:
        return HybridRetriever(store, self.embedder, self.tokenizer)


PRODUCTS = "CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL, benefit TEXT, rate REAL)"


def product(i: int, benefit: str | None = None) -> tuple[int, str, str, float]:
    return (i, f"상품{i}", benefit or f"{i}번 상품은 급여이체 시 우대금리를 드립니다", round(3.0 + i / 100, 2))


def warehouse(path: Path, rows: Iterable[tuple[Any, ...]], ddl: str = PRODUCTS) -> str:
    """A SQLite warehouse file with one table; returns its SQLAlchemy URL."""
    with sqlite3.connect(path) as db:
        db.execute(ddl)
        rows = list(rows)
        if rows:
            db.executemany(f"INSERT INTO products VALUES ({', '.join('?' * len(rows[0]))})", rows)
    return f"sqlite:///{path}"


def execute(url: str, sql: str, params: Sequence[Any] = ()) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute(sql, params)


def sql_source(name: str, url: str, query: str = "SELECT * FROM products", **extra: Any) -> dict[str, Any]:
    hints = extra.pop("hints", {"key_columns": ["id"], "title_column": "name"})
    return {"kind": "sql", "name": name, "url": url, "query": query, "fmt": "csv", "hints": hints, **extra}


def make_pipeline(home: Path, sources: list[dict[str, Any]], targets: list[dict[str, Any]],
                  stores: dict[str, str] | None = None) -> Pipeline:
    config = parse_pipeline_config({"sources": sources, "targets": targets, "stores": stores or {}})
    return Pipeline(config, Settings(home=home, embedder=EMBEDDER, **FAST_RETRIES))
