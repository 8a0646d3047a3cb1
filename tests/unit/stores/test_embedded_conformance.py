"""The embedded store passes the same conformance suite as the PostgreSQL store."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from jisik.stores.embedded import EmbeddedIndexStore
from store_conformance import StoreConformance


class TestEmbeddedStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EmbeddedIndexStore]:
        s = EmbeddedIndexStore(tmp_path / "index", refresh_interval_s=0.0)
        yield s
        s.close()


class TestEmbeddedStoreWithHnsw(StoreConformance):
    """Same suite with the HNSW path forced on (every collection counts as 'large')."""

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EmbeddedIndexStore]:
        s = EmbeddedIndexStore(tmp_path / "index", hnsw_min_rows=1, refresh_interval_s=0.0)
        yield s
        s.close()
