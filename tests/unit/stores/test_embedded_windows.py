"""Embedded-store specifics of multi-vector passages: window rows in the HNSW graph (built from
scratch, incrementally, reloaded), snapshot format 1 (before windows) and pre-window databases."""

import json
import sqlite3
from pathlib import Path

import numpy as np

from jisik.core.types import Chunk
from jisik.retrieval.filters import parse_filter
from jisik.stores.embedded import EmbeddedIndexStore

NOFILTER = parse_filter(None)
DIM = 16


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class Corpus:
    """Random one-chunk documents, every third with 1-5 window vectors; the exact reference."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.own = {f"d{i}": unit(rng, 1)[0] for i in range(n)}
        self.windows = {f"d{i}": unit(rng, int(rng.integers(1, 6))) for i in range(0, n, 3)}

    def write(self, store: EmbeddedIndexStore, name: str, doc_ids: list[str]) -> None:
        store.ensure_collection(name, dim=DIM, embedder_id="test")
        with store.open_batch(name) as b:
            for d in doc_ids:
                chunk = Chunk(chunk_id=f"c-{d}", doc_id=d, text=f"문서 {d}", metadata={"odd": int(d[1:]) % 2 == 1})
                wins = [self.windows[d]] if d in self.windows else None
                b.upsert_document(d, "fp", [chunk], self.own[d][None, :], [["문서"]], windows=wins)

    def delete(self, store: EmbeddedIndexStore, name: str, doc_ids: list[str]) -> None:
        with store.open_batch(name) as b:
            for d in doc_ids:
                b.delete_document(d)

    def exact(self, q: np.ndarray, live: set[str], k: int) -> list[str]:
        score = {d: max(float(self.own[d] @ q), float((self.windows[d] @ q).max()) if d in self.windows else -2.0)
                 for d in live}
        return sorted(score, key=lambda d: (-score[d], d))[:k]

    def best(self, d: str, q: np.ndarray) -> float:
        return max(float(self.own[d] @ q), float((self.windows[d] @ q).max()) if d in self.windows else -2.0)


def docs_of(store: EmbeddedIndexStore, name: str, keys: np.ndarray) -> list[str]:
    return [c.doc_id for c in store.fetch(name, keys.tolist())]


def check_recall(store: EmbeddedIndexStore, name: str, corpus: Corpus, live: set[str], queries: np.ndarray) -> None:
    agree = 0
    for q in queries:
        keys, scores = store.search_dense(name, q, 10, NOFILTER)
        got = docs_of(store, name, keys)
        assert len(set(got)) == len(got) == 10
        agree += len(set(got) & set(corpus.exact(q, live, 10)))
        # scores are exact max(own, best window) for whatever is returned
        np.testing.assert_allclose(scores, [corpus.best(d, q) for d in got], atol=1e-5)
    assert agree / (10 * len(queries)) >= 0.95


def test_hnsw_over_chunk_and_window_rows(tmp_path: Path) -> None:
    corpus = Corpus(900)
    store = EmbeddedIndexStore(tmp_path, hnsw_min_rows=100, refresh_interval_s=0.0)
    live = {f"d{i}" for i in range(900)}
    corpus.write(store, "c", sorted(live))
    snap = store.rebuild_snapshot("c")
    assert snap.hnsw is not None and snap.n_windows == sum(len(w) for w in corpus.windows.values())
    # queries close to window vectors: only the window makes their owner the best chunk
    queries = np.stack([corpus.windows[f"d{i}"][-1] for i in range(0, 120, 3)])
    check_recall(store, "c", corpus, live, queries)
    keys, scores = store.search_dense("c", corpus.windows["d9"][-1], 1, NOFILTER)
    assert docs_of(store, "c", keys) == ["d9"] and scores[0] > 0.999
    # filtered search through the HNSW path: only allowed owners, each once
    flt = parse_filter({"odd": True})
    keys, _ = store.search_dense("c", corpus.windows["d6"][0], 20, flt)
    got = docs_of(store, "c", keys)
    assert len(set(got)) == 20 and all(int(d[1:]) % 2 == 1 for d in got)

    # incremental graph: deleted owners' windows leave the graph, new ones join it
    corpus.delete(store, "c", ["d9", "d12"])
    live -= {"d9", "d12"}
    keys, _ = store.search_dense("c", corpus.windows["d9"][-1], 10, NOFILTER)
    assert "d9" not in docs_of(store, "c", keys)
    extra = Corpus(903, seed=5)
    corpus.own["d900"], corpus.windows["d900"] = extra.own["d900"], extra.windows["d900"]
    corpus.write(store, "c", ["d900"])
    live.add("d900")
    keys, scores = store.search_dense("c", corpus.windows["d900"][0], 1, NOFILTER)
    assert docs_of(store, "c", keys) == ["d900"] and scores[0] > 0.999
    check_recall(store, "c", corpus, live, queries[:20])

    # a new store object loads the saved graph with its window labels and agrees
    again = EmbeddedIndexStore(tmp_path, hnsw_min_rows=100)
    k2, s2 = again.search_dense("c", corpus.windows["d900"][0], 5, NOFILTER)
    k1, s1 = store.search_dense("c", corpus.windows["d900"][0], 5, NOFILTER)
    assert k2.tolist() == k1.tolist()
    np.testing.assert_allclose(s2, s1, atol=1e-6)
    # rolling back rebuilds the graph of that version: d9's windows are back
    store.rollback("c", 1)
    keys, _ = store.search_dense("c", corpus.windows["d9"][-1], 1, NOFILTER)
    assert docs_of(store, "c", keys) == ["d9"]


def test_format_1_snapshots_and_pre_window_databases_are_read(tmp_path: Path) -> None:
    corpus = Corpus(30)
    store = EmbeddedIndexStore(tmp_path, refresh_interval_s=0.0)
    ids = [f"d{i}" for i in range(30) if f"d{i}" not in corpus.windows]  # indexed "before windows existed"
    corpus.write(store, "c", ids)
    store.close()
    # turn the collection into what the previous release wrote: no windows table, format-1 snapshot
    db = sqlite3.connect(tmp_path / "c" / "store.sqlite3")
    db.execute("DROP TABLE windows")
    db.commit()
    db.close()
    snap = next((tmp_path / "c").glob("snap-*"))
    manifest = json.loads((snap / "manifest.json").read_text())
    for name in ("win_ids.npy", "win_owners.npy", "win_vectors.npy"):
        (snap / name).unlink()
        del manifest["files"][name]
    manifest["format"] = 1
    del manifest["windows"]
    (snap / "manifest.json").write_text(json.dumps(manifest))

    old = EmbeddedIndexStore(tmp_path, refresh_interval_s=0.0)
    q = corpus.own["d4"]
    keys, scores = old.search_dense("c", q, 3, NOFILTER)
    assert docs_of(old, "c", keys)[0] == "d4" and scores[0] > 0.999
    assert not any((tmp_path / "c").glob("snap-*/win_ids.npy"))  # read as it is, not rebuilt
    assert old.get_collection("c").windows == 0
    # the next batch adds windows to the old collection
    corpus.write(old, "c", ["d3"])
    keys, scores = old.search_dense("c", corpus.windows["d3"][0], 1, NOFILTER)
    assert docs_of(old, "c", keys) == ["d3"] and scores[0] > 0.999
    assert old.get_collection("c").windows == len(corpus.windows["d3"])
