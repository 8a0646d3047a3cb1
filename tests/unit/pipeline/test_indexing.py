from pathlib import Path

import pytest

from jisik.core.types import Document
from jisik.models.embedders import create_embedder
from jisik.pipeline.indexing import Indexer
from jisik.retrieval.filters import parse_filter
from jisik.stores.embedded import EmbeddedIndexStore
from jisik.text.chunking import make_chunker
from jisik.text.tokenize import get_tokenizer


class CountingEmbedder:
    def __init__(self) -> None:
        self.inner = create_embedder("use-multilingual")
        self.model_id, self.dim = self.inner.model_id, self.inner.dim
        self.passages = 0

    def embed_queries(self, texts):  # type: ignore[no-untyped-def]
        return self.inner.embed_queries(texts)

    def embed_passages(self, texts):  # type: ignore[no-untyped-def]
        self.passages += len(texts)
        return self.inner.embed_passages(texts)


def docs(n: int, changed: int | None = None) -> list[Document]:
    return [Document(f"d{i}", f"문서 {i}번 내용입니다. 예금 금리 {i}% 안내." + (" 수정됨." if i == changed else ""),
                     title=f"문서 {i}", metadata={"n": i}) for i in range(n)]


def test_incremental_reindex_and_sync(tmp_path: Path) -> None:
    store = EmbeddedIndexStore(tmp_path)
    emb = CountingEmbedder()
    ix = Indexer(store, emb, get_tokenizer(), make_chunker("sentence"))
    first = ix.index("c", docs(5))
    assert (first.added, first.updated, first.unchanged, first.version) == (5, 0, 0, 1)
    embedded_once = emb.passages

    again = ix.index("c", docs(5))
    assert (again.added, again.updated, again.unchanged) == (0, 0, 5)
    assert emb.passages == embedded_once  # unchanged documents cost nothing
    assert again.version == 1  # nothing changed -> no new version

    changed = ix.index("c", docs(4, changed=2), sync=True)
    assert (changed.updated, changed.unchanged, changed.deleted) == (1, 3, 1)
    assert changed.version == 2
    keys, _ = store.search_lexical("c", ["수정"], 5, parse_filter(None))
    assert [c.doc_id for c in store.fetch("c", keys.tolist())] == ["d2"]
    assert "d4" not in store.doc_fingerprints("c")


def test_interrupted_indexing_keeps_previous_version(tmp_path: Path) -> None:
    store = EmbeddedIndexStore(tmp_path)
    ix = Indexer(store, CountingEmbedder(), get_tokenizer(), make_chunker("sentence"))
    ix.index("c", docs(3))

    def exploding():  # type: ignore[no-untyped-def]
        yield from docs(3, changed=1)
        raise RuntimeError("source died mid-run")

    with pytest.raises(RuntimeError):
        ix.index("c", exploding(), sync=True)
    assert [v.version for v in store.versions("c")] == [1]
    keys, _ = store.search_lexical("c", ["수정"], 5, parse_filter(None))
    assert keys.size == 0
