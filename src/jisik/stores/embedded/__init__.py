"""Embedded knowledge store: SQLite as the source of truth, immutable per-version snapshots
(numpy arrays for BM25 + vectors, hnswlib graph for large collections) for fast search."""

from jisik.stores.embedded.store import EmbeddedIndexStore

__all__ = ["EmbeddedIndexStore"]
