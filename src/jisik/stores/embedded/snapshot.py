"""Immutable per-version search snapshot: keys, vectors, BM25 arrays, optional HNSW graph,
metadata columns for filtering. Written once to ``snap-{version}/`` (temp dir + rename) with a
manifest of checksums; loaded memory-mapped. A snapshot is derived data: if it is missing or
fails its checksums, the store rebuilds it from SQLite."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from jisik.core.errors import CorruptData
from jisik.core.hashing import sha256_file
from jisik.core.logging import get_logger
from jisik.retrieval.filters import Condition, Filter
from jisik.stores.embedded.lexical import Bm25Index
from jisik.stores.embedded.ranking import top_n

log = get_logger(__name__)
FORMAT = 1


@dataclass(slots=True)
class SnapshotData:
    """What a snapshot is built from: the visible rows of one version, ordered by key."""

    keys: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    tokens: Sequence[Sequence[str]]
    doc_ids: list[str]
    metadata: list[dict[str, Any]]


@dataclass
class Snapshot:
    version: int
    dim: int
    keys: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    bm25: Bm25Index
    doc_ids: npt.NDArray[np.object_]
    metadata: list[dict[str, Any]]
    hnsw: Any = None  # hnswlib.Index when the collection is large
    _masks: OrderedDict[Filter, npt.NDArray[np.int64]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def size(self) -> int:
        return int(self.keys.shape[0])

    # ---- filtering -------------------------------------------------------------------
    def allowed_rows(self, flt: Filter) -> npt.NDArray[np.int64] | None:
        """Row positions passing ``flt`` (None = all rows). Cached per filter."""
        if not flt:
            return None
        with self._lock:
            hit = self._masks.get(flt)
            if hit is not None:
                self._masks.move_to_end(flt)
                return hit
        mask = np.ones(self.size, dtype=bool)
        for cond in flt.conditions:
            mask &= self._condition_mask(cond)
        rows = np.flatnonzero(mask).astype(np.int64)
        with self._lock:
            self._masks[flt] = rows
            while len(self._masks) > 256:
                self._masks.popitem(last=False)
        return rows

    def _condition_mask(self, cond: Condition) -> npt.NDArray[np.bool_]:
        col: Sequence[Any] = (
            list(self.doc_ids) if cond.field == "doc_id" else [m.get(cond.field) for m in self.metadata]
        )
        return np.fromiter((cond.matches(v) for v in col), dtype=bool, count=self.size)

    # ---- search ----------------------------------------------------------------------
    def lexical(
        self, tokens: Sequence[str], n: int, flt: Filter
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """BM25 top-n; scores are divided by the query's upper bound, so 1.0 ~ a full match."""
        scores = self.bm25.scores(tokens)
        if scores is None:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        hits = np.flatnonzero(scores > 0)
        allowed = self.allowed_rows(flt)
        if allowed is not None:
            hits = np.intersect1d(hits, allowed, assume_unique=True)
        pos, val = top_n(scores, n, hits.astype(np.int64))
        bound = self.bm25.upper_bound(tokens)
        return self.keys[pos], (val / bound if bound > 0 else val).astype(np.float32)

    def dense(
        self, vector: npt.NDArray[np.float32], n: int, flt: Filter, exact_max_rows: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        if self.size == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        allowed = self.allowed_rows(flt)
        if self.hnsw is None or (allowed is not None and allowed.shape[0] <= exact_max_rows):
            if allowed is None:
                scores = self.vectors @ vector
                pos, val = top_n(scores, n)
            else:
                sub = self.vectors[allowed] @ vector
                p, val = top_n(sub, n)
                pos = allowed[p]
            return self.keys[pos], val
        return self._hnsw_search(vector, n, allowed)

    def _hnsw_search(
        self, vector: npt.NDArray[np.float32], n: int, allowed: npt.NDArray[np.int64] | None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        k = min(n if allowed is None else n * 4, self.size)
        while True:
            self.hnsw.set_ef(max(k * 2, 64))
            labels, dist = self.hnsw.knn_query(vector, k=k)
            keys = labels[0].astype(np.int64)
            scores = (1.0 - dist[0]).astype(np.float32)
            if allowed is None:
                return keys, scores
            pos = np.searchsorted(self.keys, keys)
            ok = np.isin(pos, allowed)
            if ok.sum() >= n or k >= self.size:
                return keys[ok][:n], scores[ok][:n]
            k = min(k * 4, self.size)


def build_snapshot(
    version: int, dim: int, data: SnapshotData, *, hnsw_min_rows: int,
    previous: Snapshot | None = None, previous_dir: Path | None = None,
) -> Snapshot:
    bm25 = Bm25Index.build(data.tokens)
    vectors = np.ascontiguousarray(data.vectors, dtype=np.float32).reshape(-1, dim)
    snap = Snapshot(
        version=version, dim=dim, keys=data.keys, vectors=vectors, bm25=bm25,
        doc_ids=np.asarray(data.doc_ids, dtype=object), metadata=data.metadata,
    )
    if snap.size >= hnsw_min_rows:
        snap.hnsw = _build_hnsw(dim, data.keys, vectors, previous, previous_dir)
    return snap


def _build_hnsw(
    dim: int, keys: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32],
    previous: Snapshot | None, previous_dir: Path | None,
) -> Any:
    """Build the HNSW graph; incrementally from the previous version's graph file when there is one
    (deleted keys are marked deleted and their slots reused, new keys added), else from scratch."""
    import hnswlib

    index = hnswlib.Index(space="ip", dim=dim)
    threads = os.cpu_count() or 1
    prev_file = previous_dir / "dense.hnsw" if previous_dir is not None else None
    if previous is not None and prev_file is not None and prev_file.exists():
        index.load_index(str(prev_file), max_elements=len(keys) + 1024, allow_replace_deleted=True)
        index.set_num_threads(threads)
        prev_keys = np.asarray(previous.keys)
        for key in prev_keys[~np.isin(prev_keys, keys)]:
            index.mark_deleted(int(key))
        new = ~np.isin(keys, prev_keys)
        if new.any():
            if index.get_max_elements() < index.get_current_count() + int(new.sum()):
                index.resize_index(index.get_current_count() + int(new.sum()) + 1024)
            index.add_items(vectors[new], keys[new], replace_deleted=True)
        return index
    index.init_index(max_elements=len(keys) + 1024, ef_construction=200, M=16, allow_replace_deleted=True)
    index.set_num_threads(threads)
    index.add_items(vectors, keys)
    return index


def save_snapshot(snap: Snapshot, root: Path) -> Path:
    final = root / f"snap-{snap.version:06d}"
    tmp = root / f".tmp-snap-{snap.version:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    arrays: dict[str, npt.NDArray[Any]] = {"keys": snap.keys, "vectors": snap.vectors, **snap.bm25.arrays()}
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
    (tmp / "vocab.json").write_text(json.dumps(snap.bm25.vocab, ensure_ascii=False), "utf-8")
    (tmp / "columns.json").write_text(
        json.dumps({"doc_ids": list(snap.doc_ids), "metadata": snap.metadata}, ensure_ascii=False), "utf-8"
    )
    if snap.hnsw is not None:
        snap.hnsw.save_index(str(tmp / "dense.hnsw"))
    files = sorted(p.name for p in tmp.iterdir())
    manifest = {
        "format": FORMAT, "version": snap.version, "dim": snap.dim, "rows": snap.size,
        "n_rows_lex": snap.bm25.n_rows, "files": {f: sha256_file(tmp / f) for f in files},
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), "utf-8")
    for f in [*files, "manifest.json"]:
        fd = os.open(tmp / f, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def load_snapshot(path: Path) -> Snapshot:
    """Load and verify a snapshot directory; raise CorruptData when anything does not check out."""
    try:
        manifest = json.loads((path / "manifest.json").read_text("utf-8"))
        if manifest.get("format") != FORMAT:
            raise CorruptData("색인 스냅샷 형식이 다릅니다.", f"Unsupported snapshot format in {path}")
        for name, digest in manifest["files"].items():
            if sha256_file(path / name) != digest:
                raise CorruptData(
                    f"색인 파일이 손상되었습니다: {path / name}",
                    f"Index file failed its checksum: {path / name}",
                    hint="jisik index rebuild <collection> 로 다시 만드세요.",
                )
        arr = {n: np.load(path / f"{n}.npy", mmap_mode="r", allow_pickle=False)
               for n in ("keys", "vectors", "lex_indptr", "lex_docs", "lex_weights")}
        vocab = json.loads((path / "vocab.json").read_text("utf-8"))
        cols = json.loads((path / "columns.json").read_text("utf-8"))
    except CorruptData:
        raise
    except (OSError, ValueError, KeyError) as exc:
        raise CorruptData(
            f"색인 스냅샷을 읽을 수 없습니다: {path}", f"Cannot read index snapshot {path}: {exc}",
            hint="jisik index rebuild <collection> 로 다시 만드세요.",
        ) from exc
    dim = int(manifest["dim"])
    bm25 = Bm25Index(vocab, np.asarray(arr["lex_indptr"]), np.asarray(arr["lex_docs"]),
                     np.asarray(arr["lex_weights"]), int(manifest["n_rows_lex"]))
    snap = Snapshot(
        version=int(manifest["version"]), dim=dim, keys=np.asarray(arr["keys"]),
        vectors=arr["vectors"], bm25=bm25,
        doc_ids=np.asarray(cols["doc_ids"], dtype=object), metadata=cols["metadata"],
    )
    if (path / "dense.hnsw").exists():
        import hnswlib

        index = hnswlib.Index(space="ip", dim=dim)
        index.load_index(str(path / "dense.hnsw"), max_elements=snap.size + 1024, allow_replace_deleted=True)
        snap.hnsw = index
    return snap
