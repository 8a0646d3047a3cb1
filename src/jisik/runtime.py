"""Composition root: builds the configured store, embedder, tokenizer and retriever once."""

from __future__ import annotations

from functools import cached_property

from jisik.core.settings import Settings, get_settings
from jisik.core.threads import limit_blas_threads
from jisik.models.embedders import Embedder
from jisik.pipeline.indexing import Indexer
from jisik.retrieval.hybrid import HybridRetriever
from jisik.retrieval.rerank import EmbedderReranker
from jisik.stores.index_base import IndexStore
from jisik.text.chunking import Chunker
from jisik.text.tokenize import KoreanTokenizer


class Runtime:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        limit_blas_threads(self.settings.blas_threads)

    @cached_property
    def store(self) -> IndexStore:
        from jisik.stores.factory import open_index

        return open_index(self.settings.resolved_index_url())

    @cached_property
    def embedder(self) -> Embedder:
        from jisik.models.cache import open_embedder

        return open_embedder(self.settings)

    @cached_property
    def tokenizer(self) -> KoreanTokenizer:
        from jisik.text.tokenize import get_tokenizer

        return get_tokenizer()

    @cached_property
    def reranker(self) -> EmbedderReranker:
        return EmbedderReranker(self.embedder)

    def retriever_for(self, store: IndexStore) -> HybridRetriever:
        """A retriever over ``store`` with the configured embedder, tokenizer and reranker."""
        return HybridRetriever(
            store, self.embedder, self.tokenizer, self.settings.retrieval,
            reranker=self.reranker, max_query_chars=self.settings.max_query_chars,
        )

    @cached_property
    def retriever(self) -> HybridRetriever:
        return self.retriever_for(self.store)

    def indexer(self, chunker: Chunker) -> Indexer:
        return Indexer(self.store, self.embedder, self.tokenizer, chunker)

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.close()
