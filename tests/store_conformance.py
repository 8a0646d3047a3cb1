"""Reusable conformance suite for :class:`jisik.stores.index_base.IndexStore` implementations.

Usage (any test module)::

    from store_conformance import StoreConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store(self, tmp_path):
            s = MyStore(tmp_path)
            yield s
            s.close()

The suite only uses the Protocol (plus :mod:`jisik.core.errors` and :func:`parse_filter`), so
the embedded and PostgreSQL stores must pass it unchanged. Every test works in its own freshly
named collection (``coll`` fixture) and drops it afterwards, so a store may be shared.

``tests/`` must be importable: pytest's ``pythonpath = ["tests"]`` ini option, or a conftest
that puts ``tests/`` on ``sys.path`` (tests/integration/conftest.py does).

Conventions pinned here (both stores follow them): leaving a ``with open_batch(...)`` block
normally commits, leaving it with an exception aborts; using a finished batch, rolling back to
a version that is not restorable, and malformed vectors/tokens raise ``InvalidInput``; an
unknown collection or key raises ``NotFound``; ``top_n`` caps the number of results.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from jisik.core.errors import Conflict, InvalidInput, JisikError, NotFound
from jisik.core.types import Chunk
from jisik.retrieval.filters import Filter, parse_filter
from jisik.stores.index_base import CollectionInfo, IndexBatch, IndexStore, VersionInfo

DIM = 8
NOFILTER = parse_filter(None)


def unit(*weights: float) -> np.ndarray:
    """A normalised DIM-vector from leading weights (rest zero)."""
    v = np.zeros(DIM, dtype=np.float32)
    v[: len(weights)] = weights
    n = float(np.linalg.norm(v))
    assert n > 0
    return (v / n).astype(np.float32)


def basis(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i] = 1.0
    return v


@dataclass
class Doc:
    doc_id: str
    fingerprint: str
    chunks: list[Chunk]
    vectors: np.ndarray
    tokens: list[list[str]]
    meta: dict[str, Any] = field(default_factory=dict)
    windows: list[np.ndarray] | None = None  # window vectors per chunk (multi-vector passages)


def make_doc(
    doc_id: str,
    parts: Sequence[tuple[str, Sequence[str], np.ndarray]],
    *,
    metadata: Mapping[str, Any] | None = None,
    fingerprint: str | None = None,
    title: str = "",
    source_uri: str = "",
    windows: Sequence[Sequence[np.ndarray]] | None = None,
) -> Doc:
    chunks: list[Chunk] = []
    offset = 0
    for seq, (text, _toks, _vec) in enumerate(parts):
        chunks.append(
            Chunk(
                chunk_id=f"{doc_id}#{seq}-{abs(hash(text)) % 10**8}",
                doc_id=doc_id,
                text=text,
                seq=seq,
                start=offset,
                end=offset + len(text),
                title=title or f"{doc_id} 제목",
                source_uri=source_uri or f"file:///docs/{doc_id}.md",
                locator={"page": seq + 1, "rows": [seq * 10, seq * 10 + 9], "sheet": "시트1"},
                metadata=dict(metadata or {}),
            )
        )
        offset += len(text) + 1
    vectors = np.stack([p[2] for p in parts]).astype(np.float32) if parts else np.zeros((0, DIM), np.float32)
    return Doc(
        doc_id=doc_id,
        fingerprint=fingerprint or f"fp-{doc_id}-{len(parts)}-{abs(hash(tuple(p[0] for p in parts))) % 10**8}",
        chunks=chunks,
        vectors=vectors,
        tokens=[list(p[1]) for p in parts],
        meta=dict(metadata or {}),
        windows=None if windows is None else [
            np.stack(list(w)).astype(np.float32) if len(w) else np.zeros((0, DIM), np.float32) for w in windows
        ],
    )


def corpus() -> dict[str, Doc]:
    """Three Korean FAQ documents with distinct tokens, vectors and filterable metadata."""
    return {
        "join": make_doc(
            "join",
            [
                ("회원 가입 절차는 다음과 같습니다.", ["회원", "가입", "절차", "다음"], basis(0)),
                ("가입 서류 안내", ["가입", "서류", "안내"], unit(1, 1)),
            ],
            metadata={"category": "가입", "year": 2021, "bank": "우리은행", "score": 4.5, "featured": True},
        ),
        "refund": make_doc(
            "refund",
            [("환불 규정 안내: 환불은 7일 이내", ["환불", "규정", "안내", "환불", "7일", "이내"], basis(2))],
            metadata={"category": "환불", "year": 2023, "bank": "국민은행", "score": 3.0, "featured": False},
        ),
        "loan": make_doc(
            "loan",
            [("대출 금리 안내", ["대출", "금리", "안내"], basis(3))],
            metadata={"category": "대출", "year": 2019, "bank": "우리은행"},
        ),
    }


def upsert(batch: IndexBatch, doc: Doc) -> None:
    if doc.windows is None:
        batch.upsert_document(doc.doc_id, doc.fingerprint, doc.chunks, doc.vectors, doc.tokens)
    else:
        batch.upsert_document(doc.doc_id, doc.fingerprint, doc.chunks, doc.vectors, doc.tokens, windows=doc.windows)


def manual(windows: Sequence[np.ndarray] = (basis(6), basis(5), basis(7)), **kw: Any) -> Doc:
    """A long one-chunk document: its own vector leans on dimensions 6 and 7, its middle window
    (the only sentence about dimension 5) is what a basis(5) query should find it by."""
    return make_doc(
        "manual",
        [("긴 설명서: 설치 방법. 환불 절차는 고객센터에 문의. 보증 기간 안내.", ["설명서", "설치", "보증"],
          unit(0, 0, 0, 0, 0, 0, 1, 1))],
        metadata={"category": "설명서", "year": 2022}, windows=[list(windows)], **kw,
    )


def expected_dense(docs: Mapping[str, Doc], q: np.ndarray) -> dict[str, float]:
    """chunk_id -> max(own vector . q, best window . q): the reference of window-aware dense search."""
    out: dict[str, float] = {}
    for d in docs.values():
        for i, c in enumerate(d.chunks):
            best = float(d.vectors[i] @ q)
            if d.windows is not None and len(d.windows[i]):
                best = max(best, float((d.windows[i] @ q).max()))
            out[c.chunk_id] = best
    return out


ALL_TOKENS = ["안내", "가입", "환불", "대출", "회원", "금리", "규정"]
EVERYWHERE = unit(1, 1, 1, 1, 0.2, 0.2, 0.2, 0.2)  # positive similarity with every corpus vector


class StoreConformance:
    """Subclass and provide a ``store`` fixture returning a fresh (or shared) IndexStore."""

    @pytest.fixture
    def store(self) -> IndexStore:  # pragma: no cover - overridden
        raise NotImplementedError("subclasses provide the `store` fixture")

    @pytest.fixture
    def coll(self, store: IndexStore) -> Iterator[str]:
        name = f"t-{uuid.uuid4().hex[:12]}"
        yield name
        with contextlib.suppress(NotFound):
            store.drop_collection(name)

    @pytest.fixture
    def filled(self, store: IndexStore, coll: str) -> dict[str, Doc]:
        docs = corpus()
        store.ensure_collection(coll, dim=DIM, embedder_id="test-embedder")
        with store.open_batch(coll, note="초기 색인") as b:
            for d in docs.values():
                upsert(b, d)
            b.commit()
        return docs

    # ---- helpers --------------------------------------------------------------------------
    @staticmethod
    def lex(store: IndexStore, coll: str, tokens: Sequence[str], n: int = 10, flt: Filter = NOFILTER
            ) -> list[tuple[str, float]]:
        keys, scores = store.search_lexical(coll, list(tokens), n, flt)
        chunks = store.fetch(coll, keys.tolist())
        return [(c.chunk_id, round(float(s), 4)) for c, s in zip(chunks, scores, strict=True)]

    @staticmethod
    def dense(store: IndexStore, coll: str, vec: np.ndarray, n: int = 10, flt: Filter = NOFILTER
              ) -> list[tuple[str, float]]:
        keys, scores = store.search_dense(coll, vec, n, flt)
        chunks = store.fetch(coll, keys.tolist())
        return [(c.chunk_id, round(float(s), 4)) for c, s in zip(chunks, scores, strict=True)]

    @staticmethod
    def docs_of(store: IndexStore, coll: str, keys: np.ndarray) -> list[str]:
        return [c.doc_id for c in store.fetch(coll, keys.tolist())]

    def state(self, store: IndexStore, coll: str) -> dict[str, Any]:
        """Everything a reader can observe, independent of the opaque keys."""
        info = store.get_collection(coll)
        return {
            "version": info.version,
            "documents": info.documents,
            "chunks": info.chunks,
            "fingerprints": store.doc_fingerprints(coll),
            "lexical": {tuple(q): self.lex(store, coll, q) for q in (["가입"], ["환불", "안내"], ["신규"], ALL_TOKENS)},
            "dense": {i: self.dense(store, coll, v) for i, v in enumerate((basis(0), basis(2), basis(5), EVERYWHERE))},
        }

    @staticmethod
    def check_arrays(keys: np.ndarray, scores: np.ndarray) -> None:
        assert keys.dtype == np.int64 and scores.dtype == np.float32
        assert keys.ndim == 1 and scores.shape == keys.shape
        assert np.all(np.diff(scores) <= 1e-6), f"not best-first: {scores}"
        assert len(set(keys.tolist())) == len(keys), "duplicate keys"

    # ---- protocol & collections -------------------------------------------------------------
    def test_satisfies_protocol(self, store: IndexStore, coll: str) -> None:
        assert isinstance(store, IndexStore)
        assert isinstance(store.url, str) and store.url
        store.ensure_collection(coll, dim=DIM, embedder_id="e")
        batch = store.open_batch(coll)
        try:
            assert isinstance(batch, IndexBatch)
        finally:
            batch.abort()

    def test_collection_lifecycle(self, store: IndexStore, coll: str) -> None:
        info = store.ensure_collection(coll, dim=DIM, embedder_id="e5-small")
        assert isinstance(info, CollectionInfo)
        assert (info.name, info.dim, info.embedder_id, info.version) == (coll, DIM, "e5-small", 0)
        assert (info.documents, info.chunks) == (0, 0)
        again = store.ensure_collection(coll, dim=DIM, embedder_id="e5-small")
        assert (again.name, again.dim, again.version) == (coll, DIM, 0)
        assert coll in [c.name for c in store.list_collections()]
        got = store.get_collection(coll)
        assert (got.name, got.dim, got.embedder_id) == (coll, DIM, "e5-small")
        with pytest.raises(Conflict):
            store.ensure_collection(coll, dim=DIM + 1, embedder_id="e5-small")
        with pytest.raises(Conflict):
            store.ensure_collection(coll, dim=DIM, embedder_id="another-model")
        store.drop_collection(coll)
        with pytest.raises(NotFound):
            store.get_collection(coll)
        assert coll not in [c.name for c in store.list_collections()]
        # the name can be reused, with another dimension, and starts empty
        info = store.ensure_collection(coll, dim=4, embedder_id="other")
        assert (info.dim, info.version, info.chunks) == (4, 0, 0)

    def test_unknown_collection_raises_not_found(self, store: IndexStore) -> None:
        name = f"missing-{uuid.uuid4().hex[:8]}"
        calls = [
            lambda: store.get_collection(name),
            lambda: store.versions(name),
            lambda: store.doc_fingerprints(name),
            lambda: store.search_lexical(name, ["가입"], 5, NOFILTER),
            lambda: store.search_dense(name, basis(0), 5, NOFILTER),
            lambda: store.open_batch(name),
            lambda: store.drop_collection(name),
            lambda: store.fetch(name, [1]),
            lambda: store.rollback(name, 1),
        ]
        for call in calls:
            with pytest.raises(NotFound):
                call()

    def test_invalid_collection_arguments(self, store: IndexStore) -> None:
        with pytest.raises(InvalidInput):
            store.ensure_collection("../etc", dim=DIM, embedder_id="e")
        with pytest.raises(InvalidInput):
            store.ensure_collection(f"t-{uuid.uuid4().hex[:8]}", dim=0, embedder_id="e")

    def test_empty_collection(self, store: IndexStore, coll: str) -> None:
        store.ensure_collection(coll, dim=DIM, embedder_id="e")
        for keys, scores in (
            store.search_lexical(coll, ["가입"], 5, NOFILTER),
            store.search_dense(coll, basis(0), 5, NOFILTER),
        ):
            assert keys.shape == (0,) and scores.shape == (0,)
            self.check_arrays(keys, scores)
        assert store.versions(coll) == []
        assert store.doc_fingerprints(coll) == {}
        assert store.fetch(coll, []) == []

    # ---- writing & searching ------------------------------------------------------------------
    def test_upsert_and_search_both_ways(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        keys, scores = store.search_lexical(coll, ["환불", "규정"], 10, NOFILTER)
        self.check_arrays(keys, scores)
        assert self.docs_of(store, coll, keys) == ["refund"]
        assert scores[0] > 0

        keys, scores = store.search_lexical(coll, ["가입"], 10, NOFILTER)
        self.check_arrays(keys, scores)
        assert sorted(c.chunk_id for c in store.fetch(coll, keys.tolist())) == sorted(
            c.chunk_id for c in filled["join"].chunks
        )

        keys, scores = store.search_dense(coll, basis(2), 10, NOFILTER)
        self.check_arrays(keys, scores)
        assert len(keys) == 4  # every chunk, best first
        assert self.docs_of(store, coll, keys)[0] == "refund"
        assert scores[0] == pytest.approx(1.0, abs=1e-4)

        keys, scores = store.search_dense(coll, basis(0), 10, NOFILTER)
        chunks = store.fetch(coll, keys.tolist())
        assert [c.chunk_id for c in chunks[:2]] == [c.chunk_id for c in filled["join"].chunks]
        assert scores[0] == pytest.approx(1.0, abs=1e-4)
        assert scores[1] == pytest.approx(1 / math.sqrt(2), abs=1e-3)  # cosine similarity
        assert scores[2] == pytest.approx(0.0, abs=1e-4)

        info = store.get_collection(coll)
        assert (info.version, info.documents, info.chunks) == (1, 3, 4)

    def test_top_n_caps_results(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        keys, scores = store.search_lexical(coll, ["안내"], 1, NOFILTER)
        assert keys.shape == (1,) and scores.shape == (1,)
        keys, _ = store.search_dense(coll, EVERYWHERE, 2, NOFILTER)
        assert keys.shape == (2,)
        keys, _ = store.search_lexical(coll, ["안내"], 100, NOFILTER)
        assert keys.shape == (3,)

    def test_lexical_ranking_is_bm25_like(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        # "안내" is in three chunks, "환불" only in one (twice): the rare term decides
        keys, scores = store.search_lexical(coll, ["안내", "환불"], 10, NOFILTER)
        docs = self.docs_of(store, coll, keys)
        assert docs[0] == "refund" and len(docs) == 3
        assert scores[0] > 2 * scores[1]
        # unknown words match nothing; empty queries match nothing
        keys, scores = store.search_lexical(coll, ["존재하지않는말"], 10, NOFILTER)
        assert keys.size == 0 and scores.size == 0 and keys.dtype == np.int64 and scores.dtype == np.float32
        keys, scores = store.search_lexical(coll, [], 10, NOFILTER)
        assert keys.size == 0 and scores.size == 0
        # scores are normalised by the query's upper bound: an unknown extra word lowers them
        _, s1 = store.search_lexical(coll, ["금리"], 10, NOFILTER)
        _, s2 = store.search_lexical(coll, ["금리", "존재하지않는말"], 10, NOFILTER)
        assert 0 < s2[0] < s1[0]
        # repeated query tokens count once
        _, s3 = store.search_lexical(coll, ["금리", "금리"], 10, NOFILTER)
        assert s3[0] == pytest.approx(s1[0], rel=1e-5)

    def test_fetch_returns_chunks_intact(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        originals = {c.chunk_id: c for d in filled.values() for c in d.chunks}
        keys, _ = store.search_dense(coll, EVERYWHERE, 10, NOFILTER)
        assert len(keys) == len(originals)
        fetched = store.fetch(coll, keys.tolist())
        for c in fetched:
            assert isinstance(c, Chunk)
            o = originals[c.chunk_id]
            assert c == o, f"{c} != {o}"
            assert (c.start, c.end, c.seq) == (o.start, o.end, o.seq)
            assert c.locator == {"page": o.seq + 1, "rows": [o.seq * 10, o.seq * 10 + 9], "sheet": "시트1"}
            assert c.metadata == o.metadata
            assert type(c.metadata.get("year")) is int
            if "score" in c.metadata:
                assert type(c.metadata["score"]) is float and type(c.metadata["featured"]) is bool
        # order follows the requested keys, repeated keys are allowed
        rev = list(reversed(keys.tolist()))
        assert [c.chunk_id for c in store.fetch(coll, rev)] == [c.chunk_id for c in reversed(fetched)]
        assert len(store.fetch(coll, [rev[0], rev[0]])) == 2
        with pytest.raises(NotFound):
            store.fetch(coll, [max(keys.tolist()) + 10**6])

    def test_vectors_returns_stored_vectors(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        expected = {c.chunk_id: d.vectors[i] for d in filled.values() for i, c in enumerate(d.chunks)}
        keys, _ = store.search_dense(coll, EVERYWHERE, 10, NOFILTER)
        order = list(reversed(keys.tolist()))
        vecs = store.vectors(coll, order)
        assert vecs.dtype == np.float32 and vecs.shape == (len(order), DIM)
        for row, c in zip(vecs, store.fetch(coll, order), strict=True):
            np.testing.assert_allclose(row, expected[c.chunk_id], atol=1e-6)
        assert store.vectors(coll, []).shape[0] == 0

    def test_reupsert_replaces_document(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        new_join = make_doc("join", [("회원 탈퇴 방법", ["회원", "탈퇴", "방법"], basis(4))],
                            metadata={"category": "탈퇴", "year": 2024})
        with store.open_batch(coll) as b:
            upsert(b, new_join)
            b.commit()
        keys, _ = store.search_lexical(coll, ["회원"], 10, NOFILTER)
        assert [c.chunk_id for c in store.fetch(coll, keys.tolist())] == [new_join.chunks[0].chunk_id]
        assert store.search_lexical(coll, ["절차"], 10, NOFILTER)[0].size == 0  # old words are gone
        assert store.search_lexical(coll, ["서류"], 10, NOFILTER)[0].size == 0
        keys, _ = store.search_dense(coll, EVERYWHERE, 10, NOFILTER)
        chunks = store.fetch(coll, keys.tolist())
        assert len(chunks) == 3 and len({c.chunk_id for c in chunks}) == 3  # no duplicates, old chunks gone
        assert sorted(c.doc_id for c in chunks) == ["join", "loan", "refund"]
        keys, _ = store.search_dense(coll, basis(4), 1, NOFILTER)
        assert store.fetch(coll, keys.tolist())[0].metadata == {"category": "탈퇴", "year": 2024}
        assert store.doc_fingerprints(coll)["join"] == new_join.fingerprint
        info = store.get_collection(coll)
        assert (info.version, info.documents, info.chunks) == (2, 3, 3)

    def test_same_document_twice_in_one_batch(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        first = make_doc("loan", [("대출 한도 안내", ["대출", "한도"], basis(5))], fingerprint="fp-a")
        second = make_doc("loan", [("대출 상환 안내", ["대출", "상환"], basis(6))], fingerprint="fp-b")
        with store.open_batch(coll) as b:
            upsert(b, first)
            upsert(b, second)
            b.commit()
        keys, _ = store.search_lexical(coll, ["대출"], 10, NOFILTER)
        assert [c.chunk_id for c in store.fetch(coll, keys.tolist())] == [second.chunks[0].chunk_id]
        assert store.search_lexical(coll, ["한도"], 10, NOFILTER)[0].size == 0
        assert store.search_lexical(coll, ["금리"], 10, NOFILTER)[0].size == 0
        assert store.doc_fingerprints(coll)["loan"] == "fp-b"
        assert store.get_collection(coll).chunks == 4

    def test_delete_document(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        with store.open_batch(coll) as b:
            b.delete_document("refund")
            b.commit()
        assert store.search_lexical(coll, ["환불"], 10, NOFILTER)[0].size == 0
        keys, _ = store.search_dense(coll, basis(2), 10, NOFILTER)
        assert "refund" not in self.docs_of(store, coll, keys)
        assert len(keys) == 3
        assert set(store.doc_fingerprints(coll)) == {"join", "loan"}
        info = store.get_collection(coll)
        assert (info.version, info.documents, info.chunks) == (2, 2, 3)
        # deleted, then added again later
        with store.open_batch(coll) as b:
            upsert(b, filled["refund"])
        assert self.docs_of(store, coll, store.search_lexical(coll, ["환불"], 10, NOFILTER)[0]) == ["refund"]

    def test_clean_exit_commits(self, store: IndexStore, coll: str) -> None:
        store.ensure_collection(coll, dim=DIM, embedder_id="e")
        with store.open_batch(coll) as b:
            upsert(b, corpus()["loan"])
        assert store.get_collection(coll).version == 1
        assert store.search_lexical(coll, ["금리"], 5, NOFILTER)[0].size == 1

    def test_finished_batch_cannot_be_used(self, store: IndexStore, coll: str) -> None:
        store.ensure_collection(coll, dim=DIM, embedder_id="e")
        b = store.open_batch(coll)
        upsert(b, corpus()["loan"])
        b.commit()
        with pytest.raises(InvalidInput):
            upsert(b, corpus()["refund"])
        b2 = store.open_batch(coll)
        b2.abort()
        with pytest.raises(InvalidInput):
            b2.delete_document("loan")
        b2.abort()  # idempotent
        assert store.get_collection(coll).version == 1

    # ---- versions ---------------------------------------------------------------------------------
    def test_versions_grow_with_each_commit(self, store: IndexStore, coll: str) -> None:
        docs = corpus()
        store.ensure_collection(coll, dim=DIM, embedder_id="e")
        infos: list[VersionInfo] = []
        for i, doc_id in enumerate(["join", "refund", "loan"]):
            with store.open_batch(coll, note=f"배치 {i}") as b:
                upsert(b, docs[doc_id])
                infos.append(b.commit())
        assert [v.version for v in infos] == [1, 2, 3]
        assert all(isinstance(v, VersionInfo) for v in infos)
        listed = sorted(store.versions(coll), key=lambda v: v.version)
        assert [v.version for v in listed] == [1, 2, 3]
        assert [v.status for v in listed] == ["published", "published", "current"]
        assert [v.documents for v in listed] == [1, 2, 3]
        assert [v.chunks for v in listed] == [2, 3, 4]
        assert [v.note for v in listed] == ["배치 0", "배치 1", "배치 2"]
        assert all(v.created_at for v in listed)
        assert listed[-1].added_docs == 1 and listed[-1].removed_docs == 0
        assert store.get_collection(coll).version == 3
        with store.open_batch(coll) as b:
            b.delete_document("join")
            info = b.commit()
        assert info.version == 4 and info.removed_docs == 1 and info.documents == 2

    def test_noop_commit_keeps_version(self, store: IndexStore, coll: str) -> None:
        store.ensure_collection(coll, dim=DIM, embedder_id="e")
        with store.open_batch(coll) as b:
            assert b.commit().version == 0
        with store.open_batch(coll) as b:
            upsert(b, corpus()["loan"])
        with store.open_batch(coll) as b:
            info = b.commit()
        assert info.version == 1 and info.status == "current"
        assert [v.version for v in store.versions(coll)] == [1]

    def test_aborted_batch_leaves_previous_version(
        self, store: IndexStore, coll: str, filled: dict[str, Doc]
    ) -> None:
        before = self.state(store, coll)
        versions_before = [(v.version, v.status) for v in store.versions(coll)]
        new = make_doc("new", [("신규 상품 안내", ["신규", "상품", "안내"], basis(5))])

        with pytest.raises(RuntimeError, match="boom"), store.open_batch(coll) as b:
            upsert(b, new)
            b.delete_document("refund")
            upsert(b, make_doc("join", [("바뀐 내용", ["바뀐"], basis(6))]))
            raise RuntimeError("boom")
        assert self.state(store, coll) == before

        b = store.open_batch(coll)
        upsert(b, new)
        b.delete_document("loan")
        b.abort()
        assert self.state(store, coll) == before
        assert [(v.version, v.status) for v in store.versions(coll)] == versions_before

        # the collection is not locked and the next version follows the last published one
        with store.open_batch(coll) as b:
            upsert(b, new)
            info = b.commit()
        assert info.version == before["version"] + 1
        assert self.docs_of(store, coll, store.search_lexical(coll, ["신규"], 5, NOFILTER)[0]) == ["new"]

    def test_uncommitted_batch_is_invisible(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        before = self.state(store, coll)
        new = make_doc("new", [("신규 상품 안내", ["신규", "상품", "안내"], basis(5))])
        b = store.open_batch(coll)
        try:
            upsert(b, new)
            b.delete_document("refund")
            assert self.state(store, coll) == before
            assert store.search_lexical(coll, ["신규"], 5, NOFILTER)[0].size == 0
            assert store.search_lexical(coll, ["환불"], 5, NOFILTER)[0].size == 1
            info = b.commit()
        except BaseException:
            b.abort()
            raise
        assert info.version == 2
        assert self.docs_of(store, coll, store.search_lexical(coll, ["신규"], 5, NOFILTER)[0]) == ["new"]
        assert store.search_lexical(coll, ["환불"], 5, NOFILTER)[0].size == 0

    def test_rollback_restores_exact_results(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        v1 = self.state(store, coll)
        with store.open_batch(coll, note="v2") as b:
            upsert(b, make_doc("join", [("회원 탈퇴 방법", ["회원", "탈퇴"], basis(4))]))
            b.delete_document("refund")
        with store.open_batch(coll, note="v3") as b:
            upsert(b, make_doc("extra", [("추가 문서", ["추가", "가입"], basis(5))]))
            b.delete_document("loan")
        v3 = self.state(store, coll)
        assert v3 != v1 and v3["version"] == 3

        info = store.rollback(coll, 1)
        assert info.version == 1 and info.status == "current"
        assert self.state(store, coll) == v1
        statuses = {v.version: v.status for v in store.versions(coll)}
        assert statuses == {1: "current", 2: "rolled_back", 3: "rolled_back"}
        for bad in (2, 3, 99):  # rolled back or unknown versions cannot be restored
            with pytest.raises(InvalidInput):
                store.rollback(coll, bad)

        # the next batch is computed against version 1 and numbered after every existing version
        with store.open_batch(coll) as b:
            b.delete_document("loan")
            info = b.commit()
        assert info.version == 4
        assert store.get_collection(coll).version == 4
        assert set(store.doc_fingerprints(coll)) == {"join", "refund"}
        assert store.doc_fingerprints(coll)["join"] == filled["join"].fingerprint
        for gone in (["탈퇴"], ["추가"], ["금리"]):  # rows of rolled-back versions never come back
            assert store.search_lexical(coll, gone, 5, NOFILTER)[0].size == 0
        assert self.docs_of(store, coll, store.search_lexical(coll, ["환불", "규정"], 5, NOFILTER)[0]) == ["refund"]
        keys, _ = store.search_dense(coll, EVERYWHERE, 10, NOFILTER)
        assert sorted(self.docs_of(store, coll, keys)) == ["join", "join", "refund"]
        # rolling back to the current version is a no-op
        assert store.rollback(coll, 4).version == 4
        # and an older published version is still restorable after that
        assert store.rollback(coll, 1).version == 1
        assert self.state(store, coll) == v1

    # ---- filters ------------------------------------------------------------------------------
    FILTERS: tuple[tuple[dict[str, Any], set[str]], ...] = (
        ({"category": "환불"}, {"refund"}),
        ({"category": {"ne": "환불"}}, {"join", "loan"}),
        ({"bank": {"in": ["우리은행", "없는은행"]}}, {"join", "loan"}),
        ({"bank": ["국민은행"]}, {"refund"}),
        ({"year": {"gte": 2020}}, {"join", "refund"}),
        ({"year": {"gt": 2019, "lt": 2023}}, {"join"}),
        ({"year": {"lte": 2019}}, {"loan"}),
        ({"year": 2021.0}, {"join"}),
        ({"score": {"gt": 4}}, {"join"}),
        ({"score": {"lte": 3.0}}, {"refund"}),
        ({"score": {"ne": 3.0}}, {"join", "loan"}),  # a missing field satisfies only "ne"
        ({"featured": True}, {"join"}),
        ({"featured": {"ne": True}}, {"refund", "loan"}),
        ({"doc_id": "loan"}, {"loan"}),
        ({"doc_id": {"in": ["join", "refund"]}}, {"join", "refund"}),
        ({"doc_id": {"ne": "join"}}, {"refund", "loan"}),
        ({"bank": "우리은행", "year": {"gte": 2020}}, {"join"}),
        ({"category": {"gt": "가입"}}, {"refund", "loan"}),  # strings compare by code point
        ({"year": {"gt": "2000"}}, set()),  # number vs string: no match, no error
        ({"nothing": "x"}, set()),
        ({"category": {"in": ["없음"]}}, set()),
    )

    @pytest.mark.parametrize("spec,expected", FILTERS, ids=[str(f[0]) for f in FILTERS])
    def test_filters(
        self, store: IndexStore, coll: str, filled: dict[str, Doc], spec: dict[str, Any], expected: set[str]
    ) -> None:
        flt = parse_filter(spec)
        # the expectation agrees with the reference semantics of Filter.matches
        assert {d for d, doc in filled.items() if flt.matches({**doc.meta, "doc_id": d})} == expected
        keys, scores = store.search_lexical(coll, ALL_TOKENS, 10, flt)
        self.check_arrays(keys, scores)
        assert set(self.docs_of(store, coll, keys)) == expected
        keys, scores = store.search_dense(coll, EVERYWHERE, 10, flt)
        self.check_arrays(keys, scores)
        n_chunks = sum(len(filled[d].chunks) for d in expected)
        assert len(keys) == n_chunks
        assert set(self.docs_of(store, coll, keys)) == expected

    def test_filter_keeps_ranking(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        flt = parse_filter({"bank": "우리은행"})
        keys, _ = store.search_dense(coll, basis(3), 10, flt)
        assert self.docs_of(store, coll, keys)[0] == "loan"
        keys, _ = store.search_dense(coll, basis(3), 1, flt)
        assert self.docs_of(store, coll, keys) == ["loan"]

    # ---- malformed input ----------------------------------------------------------------------
    def test_malformed_inputs_raise_jisik_errors(
        self, store: IndexStore, coll: str, filled: dict[str, Doc]
    ) -> None:
        before = self.state(store, coll)
        good = make_doc("bad", [("잘못된 입력", ["잘못"], basis(5))])
        wrong_dim = np.ones((1, DIM + 1), dtype=np.float32) / math.sqrt(DIM + 1)
        nan_vec = np.full((1, DIM), np.nan, dtype=np.float32)
        cases: list[tuple[str, Any]] = [
            ("vectors of the wrong dimension", lambda b: b.upsert_document(
                "bad", "fp", good.chunks, wrong_dim, good.tokens)),
            ("one vector too many", lambda b: b.upsert_document(
                "bad", "fp", good.chunks, np.stack([basis(5), basis(6)]), good.tokens)),
            ("token lists do not match chunks", lambda b: b.upsert_document(
                "bad", "fp", good.chunks, good.vectors, [["a"], ["b"]])),
            ("NaN vector", lambda b: b.upsert_document("bad", "fp", good.chunks, nan_vec, good.tokens)),
            ("chunk of another document", lambda b: b.upsert_document(
                "other", "fp", good.chunks, good.vectors, good.tokens)),
            ("empty doc_id", lambda b: b.upsert_document("", "fp", [], np.zeros((0, DIM), np.float32), [])),
        ]
        for label, call in cases:
            with pytest.raises(InvalidInput), store.open_batch(coll) as b:
                call(b)
                pytest.fail(f"no error for {label}")
        with pytest.raises(InvalidInput):
            store.search_dense(coll, np.ones(DIM + 3, dtype=np.float32), 5, NOFILTER)
        with pytest.raises(JisikError):
            store.rollback(coll, 42)
        assert self.state(store, coll) == before

    def test_collections_are_independent(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        other = f"{coll}-b"
        try:
            store.ensure_collection(other, dim=DIM, embedder_id="e")
            with store.open_batch(other) as b:
                upsert(b, make_doc("join", [("다른 컬렉션", ["다른"], basis(7))]))
            assert store.search_lexical(coll, ["다른"], 5, NOFILTER)[0].size == 0
            assert store.search_lexical(other, ["가입"], 5, NOFILTER)[0].size == 0
            assert store.get_collection(other).chunks == 1
            assert store.get_collection(coll).chunks == 4
        finally:
            store.drop_collection(other)

    # ---- multi-vector passages (window vectors) ---------------------------------------------------
    def check_dense_matches_reference(
        self, store: IndexStore, coll: str, docs: Mapping[str, Doc], q: np.ndarray, flt: Filter = NOFILTER
    ) -> list[tuple[str, float]]:
        """Every chunk passing ``flt`` once, scored max(own, best window), best first."""
        fields = {c.chunk_id: {**d.meta, "doc_id": d.doc_id} for d in docs.values() for c in d.chunks}
        ref = {cid: sc for cid, sc in expected_dense(docs, q).items() if flt.matches(fields[cid])}
        keys, scores = store.search_dense(coll, q, 100, flt)
        self.check_arrays(keys, scores)
        got = self.dense(store, coll, q, 100, flt)
        assert sorted(c for c, _ in got) == sorted(ref), "every chunk once, none missing, none twice"
        for cid, score in got:
            assert score == pytest.approx(ref[cid], abs=1e-3), cid
        return got

    def test_window_vectors_find_a_long_chunk(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        doc = manual()
        with store.open_batch(coll) as b:
            upsert(b, doc)
        docs = {**filled, "manual": doc}
        # only the middle window is about dimension 5: the chunk is found by it, with its score
        got = self.check_dense_matches_reference(store, coll, docs, basis(5))
        assert got[0] == (doc.chunks[0].chunk_id, pytest.approx(1.0, abs=1e-4))
        keys, scores = store.search_dense(coll, basis(5), 1, NOFILTER)
        assert self.docs_of(store, coll, keys) == ["manual"] and scores[0] == pytest.approx(1.0, abs=1e-4)
        for q in (EVERYWHERE, basis(0), basis(6), unit(1, 0, 1, 0, 0, 1, 0, 1)):
            self.check_dense_matches_reference(store, coll, docs, q)
        # the chunk's own vector is what vectors() returns (dedup compares chunks, not windows)
        np.testing.assert_allclose(store.vectors(coll, keys.tolist())[0], doc.vectors[0], atol=1e-6)
        assert store.fetch(coll, keys.tolist()) == doc.chunks
        # windows are never lexical hits: every word of every chunk finds the five chunks, nothing else
        keys, _ = store.search_lexical(coll, [*ALL_TOKENS, "설명서", "설치", "보증"], 100, NOFILTER)
        assert len(keys) == 5
        info = store.get_collection(coll)
        assert (info.documents, info.chunks, info.windows) == (4, 5, 3)
        assert [c.windows for c in store.list_collections() if c.name == coll] == [3]

    def test_windows_follow_their_chunk(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        found_by_window = lambda: self.dense(store, coll, basis(5), 1)  # noqa: E731
        with store.open_batch(coll) as b:
            upsert(b, manual())
        v2 = self.state(store, coll)
        assert found_by_window()[0][1] == pytest.approx(1.0, abs=1e-4)

        # an interrupted batch changes nothing, windows included
        with pytest.raises(RuntimeError, match="boom"), store.open_batch(coll) as b:
            upsert(b, manual(windows=[basis(4)], fingerprint="other"))
            b.delete_document("manual")
            raise RuntimeError("boom")
        assert self.state(store, coll) == v2 and found_by_window()[0][1] == pytest.approx(1.0, abs=1e-4)

        # replaced without windows: the window is gone with the old chunk
        with store.open_batch(coll) as b:
            upsert(b, make_doc("manual", [("짧은 설명서", ["설명서"], unit(0, 0, 0, 0, 0, 0, 1, 1))],
                               metadata={"category": "설명서"}))
        assert found_by_window()[0][1] == pytest.approx(0.0, abs=1e-4)
        assert store.get_collection(coll).windows == 0

        # replaced twice in one batch: only the last upsert's windows remain
        with store.open_batch(coll) as b:
            upsert(b, manual(fingerprint="first"))
            upsert(b, manual(windows=[basis(4), basis(6)], fingerprint="second"))
        assert found_by_window()[0][1] == pytest.approx(0.0, abs=1e-4)
        assert self.dense(store, coll, basis(4), 1)[0] == (manual().chunks[0].chunk_id, pytest.approx(1.0, abs=1e-4))
        assert store.get_collection(coll).windows == 2

        # deleted: no chunk, no window
        with store.open_batch(coll) as b:
            b.delete_document("manual")
        assert "manual" not in self.docs_of(store, coll, store.search_dense(coll, basis(4), 10, NOFILTER)[0])
        info = store.get_collection(coll)
        assert (info.version, info.chunks, info.windows) == (5, 4, 0)

        # rolling back brings back exactly the windows of that version
        store.rollback(coll, 2)
        assert self.state(store, coll) == v2
        assert found_by_window()[0][1] == pytest.approx(1.0, abs=1e-4)
        assert self.dense(store, coll, basis(4), 1)[0][1] == pytest.approx(0.0, abs=1e-4)
        assert store.get_collection(coll).windows == 3
        self.check_dense_matches_reference(store, coll, {**filled, "manual": manual()}, EVERYWHERE)
        store.rollback(coll, 1)
        assert store.get_collection(coll).windows == 0
        assert "manual" not in self.docs_of(store, coll, store.search_dense(coll, basis(5), 10, NOFILTER)[0])

    def test_window_hits_never_duplicate_a_chunk(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        near = [unit(0, 0, 0, 0, 1, 0.1 * i) for i in range(1, 5)]  # four windows close to basis(4)
        many = make_doc(
            "many", [("첫 번째 긴 청크", ["첫"], basis(6)), ("두 번째 긴 청크", ["두"], basis(7))],
            metadata={"category": "설명서"}, windows=[near, near[::-1]],
        )
        with store.open_batch(coll) as b:
            upsert(b, many)
        docs = {**filled, "many": many}
        for n in (1, 2, 3, 100):
            keys, scores = store.search_dense(coll, basis(4), n, NOFILTER)
            self.check_arrays(keys, scores)
            assert len(keys) == min(n, 6)
            assert self.docs_of(store, coll, keys)[: min(n, 2)] == ["many"] * min(n, 2)
        self.check_dense_matches_reference(store, coll, docs, basis(4))
        assert store.get_collection(coll).windows == 8

    def test_filters_apply_to_the_window_owner(self, store: IndexStore, coll: str, filled: dict[str, Doc]) -> None:
        with store.open_batch(coll) as b:
            upsert(b, manual())
        docs = {**filled, "manual": manual()}
        for spec, has_manual in (
            ({"category": "설명서"}, True), ({"category": "환불"}, False), ({"doc_id": {"ne": "manual"}}, False),
            ({"year": {"gte": 2022}}, True), ({"bank": "우리은행"}, False),
        ):
            flt = parse_filter(spec)
            got = self.check_dense_matches_reference(store, coll, docs, basis(5), flt)
            assert (got[0][0].startswith("manual#") and got[0][1] == pytest.approx(1.0, abs=1e-4)) == has_manual, spec
            if not has_manual:
                assert all(not cid.startswith("manual#") for cid, _ in got)

    def test_malformed_windows_raise_invalid_input(
        self, store: IndexStore, coll: str, filled: dict[str, Doc]
    ) -> None:
        before = self.state(store, coll)
        good = manual()
        cases: list[tuple[str, Any]] = [
            ("one list per chunk", [good.windows[0], good.windows[0]] if good.windows else []),
            ("wrong dimension", [np.ones((2, DIM + 1), np.float32)]),
            ("NaN", [np.full((1, DIM), np.nan, np.float32)]),
            ("a bare array", np.stack([basis(1)])),
        ]
        for label, wins in cases:
            with pytest.raises(InvalidInput), store.open_batch(coll) as b:
                b.upsert_document("manual", "fp", good.chunks, good.vectors, good.tokens, windows=wins)
                pytest.fail(f"no error for {label}")
        assert self.state(store, coll) == before
        # an empty window list per chunk is the same as no windows
        with store.open_batch(coll) as b:
            b.upsert_document("manual", "fp", good.chunks, good.vectors, good.tokens,
                              windows=[np.zeros((0, DIM), np.float32)])
        assert store.get_collection(coll).windows == 0
