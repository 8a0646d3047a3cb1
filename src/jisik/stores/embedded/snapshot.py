"""Immutable per-version search snapshot: keys, vectors, BM25 arrays, optional HNSW graph,
metadata columns for filtering, and the window vectors of long chunks (multi-vector passages).
Written once to ``snap-{version}/`` (temp dir + rename) with a manifest of checksums; loaded
memory-mapped. A snapshot is derived data: if it is missing or fails its checksums, the store
rebuilds it from SQLite.

Format 2 added the window arrays (``win_ids``, ``win_owners``, ``win_vectors``); format-1
snapshots (written before) are still read, as snapshots without windows. In the HNSW graph a
chunk row is labelled by its key and a window row by ``WINDOW_LABEL_BASE + window id``."""

from __future__ import annotations

import json
import math
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
FORMAT = 2
READABLE_FORMATS = (1, 2)  # 1: before window vectors (read as "no windows")
WINDOW_LABEL_BASE = 1 << 40  # HNSW label of window id w: base + w (chunk keys stay far below)
IntArray = npt.NDArray[np.int64]
_EMPTY_INT = np.zeros(0, np.int64)


@dataclass(slots=True)
class WindowRows:
    """Window vectors of the snapshot's chunks, grouped by owner (ascending owner key, then seq)."""

    ids: IntArray  # window row ids (stable across versions: HNSW labels)
    owners: IntArray  # owner chunk key of each window
    vectors: npt.NDArray[np.float32]  # (m, dim)

    @classmethod
    def empty(cls, dim: int) -> WindowRows:
        return cls(_EMPTY_INT, _EMPTY_INT, np.zeros((0, dim), np.float32))

    @property
    def size(self) -> int:
        return int(self.ids.shape[0])


@dataclass(slots=True)
class SnapshotData:
    """What a snapshot is built from: the visible rows of one version, ordered by key."""

    keys: npt.NDArray[np.int64]
    vectors: npt.NDArray[np.float32]
    tokens: Sequence[Sequence[str]]
    doc_ids: list[str]
    metadata: list[dict[str, Any]]
    windows: WindowRows | None = None


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
    windows: WindowRows | None = None  # None: no chunk has window vectors
    _masks: OrderedDict[Filter, npt.NDArray[np.int64]] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # per chunk position: first window row and window count (windows are grouped by owner)
    _wstart: IntArray = field(default_factory=lambda: _EMPTY_INT)
    _wcount: IntArray = field(default_factory=lambda: _EMPTY_INT)
    _wowner_pos: IntArray = field(default_factory=lambda: _EMPTY_INT)

    def __post_init__(self) -> None:
        w = self.windows
        if w is None or w.size == 0:
            self.windows = None
            return
        pos = np.searchsorted(self.keys, w.owners).astype(np.int64)
        if (np.any(pos >= self.size) or not np.array_equal(self.keys[np.minimum(pos, self.size - 1)], w.owners)
                or np.any(np.diff(pos) < 0)):
            raise CorruptData(
                "윈도 벡터의 소유 청크가 맞지 않습니다.", "Window rows do not match the snapshot's chunks."
            )
        self._wowner_pos = pos
        self._wcount = np.bincount(pos, minlength=self.size).astype(np.int64)
        self._wstart = (np.cumsum(self._wcount) - self._wcount).astype(np.int64)

    @property
    def size(self) -> int:
        return int(self.keys.shape[0])

    @property
    def n_windows(self) -> int:
        return 0 if self.windows is None else self.windows.size

    @property
    def dense_rows(self) -> int:
        """Rows of the dense index: chunk vectors plus window vectors."""
        return self.size + self.n_windows

    def labels(self) -> IntArray:
        """HNSW labels of every dense row: chunk keys, then window labels."""
        if self.windows is None:
            return np.asarray(self.keys, dtype=np.int64)
        return np.concatenate([np.asarray(self.keys, dtype=np.int64), WINDOW_LABEL_BASE + self.windows.ids])

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
        """Best ``n`` chunks by cosine similarity; with windows, a chunk scores the best of its
        own vector and its window vectors and appears once."""
        if self.size == 0 or n <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        allowed = self.allowed_rows(flt)
        if self.hnsw is None or (allowed is not None and allowed.shape[0] <= exact_max_rows):
            if allowed is None:
                scores = self.vectors @ vector
                if self.windows is not None:
                    _fold_max(scores, self._wowner_pos, self.windows.vectors @ vector)
                pos, val = top_n(scores, n)
            else:
                pos, val = self._rescore(vector, allowed, n)
            return self.keys[pos], val
        return self._hnsw_search(vector, n, allowed)

    def _window_rows(self, positions: IntArray) -> tuple[IntArray, IntArray]:
        """Window rows of the chunks at ``positions`` and, for each, the index into ``positions``."""
        cnt = self._wcount[positions]
        total = int(cnt.sum())
        if total == 0:
            return _EMPTY_INT, _EMPTY_INT
        owner_idx = np.repeat(np.arange(positions.shape[0], dtype=np.int64), cnt)
        first = np.cumsum(cnt) - cnt
        rows = np.repeat(self._wstart[positions] - first, cnt) + np.arange(total, dtype=np.int64)
        return rows, owner_idx

    def _rescore(
        self, vector: npt.NDArray[np.float32], positions: IntArray, n: int
    ) -> tuple[IntArray, npt.NDArray[np.float32]]:
        """Exact scores of the chunks at ``positions`` (own vector and windows); top ``n``."""
        sub = np.asarray(self.vectors[positions] @ vector, dtype=np.float32)
        if self.windows is not None:
            rows, owner_idx = self._window_rows(positions)  # owner_idx is ascending
            if rows.size:
                _fold_max(sub, owner_idx, self.windows.vectors[rows] @ vector)
        p, val = top_n(sub, n)
        return positions[p], val

    def _owner_positions(self, labels: IntArray) -> IntArray:
        """Chunk position of each HNSW label (a window label maps to its owner chunk)."""
        pos = np.searchsorted(self.keys, np.minimum(labels, WINDOW_LABEL_BASE - 1)).astype(np.int64)
        if self.windows is not None:
            is_win = labels >= WINDOW_LABEL_BASE
            if is_win.any():
                wi = np.searchsorted(self.windows.ids, labels[is_win] - WINDOW_LABEL_BASE)
                pos[is_win] = self._wowner_pos[np.minimum(wi, self.windows.size - 1)]
        return pos

    def _hnsw_search(
        self, vector: npt.NDArray[np.float32], n: int, allowed: npt.NDArray[np.int64] | None
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        total = self.dense_rows
        # windows of one chunk tend to come together: ask for more rows than chunks wanted
        spread = min(total / self.size, 4.0)
        k = min(math.ceil(n * spread) * (1 if allowed is None else 4), total)
        while True:
            self.hnsw.set_ef(max(k * 2, 64))
            labels, dist = self.hnsw.knn_query(vector, k=k)
            lab = labels[0].astype(np.int64)
            scores = (1.0 - dist[0]).astype(np.float32)
            if self.windows is None:
                if allowed is None:
                    return lab, scores
                pos = np.searchsorted(self.keys, lab)
                ok = np.isin(pos, allowed)
                if ok.sum() >= n or k >= total:
                    return lab[ok][:n], scores[ok][:n]
            else:
                pos = self._owner_positions(lab)
                if allowed is not None:
                    pos = pos[np.isin(pos, allowed)]
                _, first = np.unique(pos, return_index=True)
                candidates = pos[np.sort(first)]
                if candidates.shape[0] >= n or k >= total:
                    p, val = self._rescore(vector, candidates, n)
                    return self.keys[p], val
            k = min(k * 4, total)


def _fold_max(scores: npt.NDArray[np.float32], owners: IntArray, values: npt.NDArray[np.float32]) -> None:
    """``scores[o] = max(scores[o], values[owners == o].max())`` in place; ``owners`` ascending."""
    if owners.shape[0] == 0:
        return
    starts = np.flatnonzero(np.concatenate(([True], owners[1:] != owners[:-1])))
    best = np.maximum.reduceat(np.asarray(values, dtype=np.float32), starts)
    o = owners[starts]
    scores[o] = np.maximum(scores[o], best)


def build_snapshot(
    version: int, dim: int, data: SnapshotData, *, hnsw_min_rows: int,
    previous: Snapshot | None = None, previous_dir: Path | None = None,
) -> Snapshot:
    bm25 = Bm25Index.build(data.tokens)
    vectors = np.ascontiguousarray(data.vectors, dtype=np.float32).reshape(-1, dim)
    snap = Snapshot(
        version=version, dim=dim, keys=data.keys, vectors=vectors, bm25=bm25,
        doc_ids=np.asarray(data.doc_ids, dtype=object), metadata=data.metadata, windows=data.windows,
    )
    if snap.size and snap.dense_rows >= hnsw_min_rows:
        snap.hnsw = _build_hnsw(snap, previous, previous_dir)
    return snap


def _build_hnsw(snap: Snapshot, previous: Snapshot | None, previous_dir: Path | None) -> Any:
    """Build the HNSW graph over chunk and window rows; incrementally from the previous version's
    graph file when there is one (rows gone are marked deleted and their slots reused, new rows
    added), else from scratch."""
    import hnswlib

    parts: list[tuple[IntArray, npt.NDArray[np.float32]]] = [(np.asarray(snap.keys, np.int64), snap.vectors)]
    if snap.windows is not None:
        parts.append((WINDOW_LABEL_BASE + snap.windows.ids, np.asarray(snap.windows.vectors, np.float32)))
    total = snap.dense_rows
    index = hnswlib.Index(space="ip", dim=snap.dim)
    threads = os.cpu_count() or 1
    prev_file = previous_dir / "dense.hnsw" if previous_dir is not None else None
    if previous is not None and prev_file is not None and prev_file.exists():
        index.load_index(str(prev_file), max_elements=total + 1024, allow_replace_deleted=True)
        index.set_num_threads(threads)
        prev_labels = previous.labels()
        labels = snap.labels()
        for label in prev_labels[~np.isin(prev_labels, labels)]:
            index.mark_deleted(int(label))
        for part_labels, part_vectors in parts:
            new = ~np.isin(part_labels, prev_labels)
            if not new.any():
                continue
            if index.get_max_elements() < index.get_current_count() + int(new.sum()):
                index.resize_index(index.get_current_count() + int(new.sum()) + 1024)
            index.add_items(part_vectors[new], part_labels[new], replace_deleted=True)
        return index
    index.init_index(max_elements=total + 1024, ef_construction=200, M=16, allow_replace_deleted=True)
    index.set_num_threads(threads)
    for part_labels, part_vectors in parts:
        index.add_items(part_vectors, part_labels)
    return index


def save_snapshot(snap: Snapshot, root: Path) -> Path:
    final = root / f"snap-{snap.version:06d}"
    tmp = root / f".tmp-snap-{snap.version:06d}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    w = snap.windows if snap.windows is not None else WindowRows.empty(snap.dim)
    arrays: dict[str, npt.NDArray[Any]] = {
        "keys": snap.keys, "vectors": snap.vectors, **snap.bm25.arrays(),
        "win_ids": w.ids, "win_owners": w.owners, "win_vectors": w.vectors,
    }
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
        "format": FORMAT, "version": snap.version, "dim": snap.dim, "rows": snap.size, "windows": w.size,
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
        fmt = manifest.get("format")
        if fmt not in READABLE_FORMATS:
            raise CorruptData("색인 스냅샷 형식이 다릅니다.", f"Unsupported snapshot format in {path}")
        for name, digest in manifest["files"].items():
            if sha256_file(path / name) != digest:
                raise CorruptData(
                    f"색인 파일이 손상되었습니다: {path / name}",
                    f"Index file failed its checksum: {path / name}",
                    hint="jisik index rebuild <collection> 로 다시 만드세요.",
                )
        names = ["keys", "vectors", "lex_indptr", "lex_docs", "lex_weights"]
        if fmt >= 2:
            names += ["win_ids", "win_owners", "win_vectors"]
        arr = {n: np.load(path / f"{n}.npy", mmap_mode="r", allow_pickle=False) for n in names}
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
    windows = None
    if "win_ids" in arr and arr["win_ids"].shape[0]:
        windows = WindowRows(np.asarray(arr["win_ids"], dtype=np.int64), np.asarray(arr["win_owners"], dtype=np.int64),
                             arr["win_vectors"])
    snap = Snapshot(
        version=int(manifest["version"]), dim=dim, keys=np.asarray(arr["keys"]),
        vectors=arr["vectors"], bm25=bm25,
        doc_ids=np.asarray(cols["doc_ids"], dtype=object), metadata=cols["metadata"], windows=windows,
    )
    if (path / "dense.hnsw").exists():
        import hnswlib

        index = hnswlib.Index(space="ip", dim=dim)
        index.load_index(str(path / "dense.hnsw"), max_elements=snap.dense_rows + 1024, allow_replace_deleted=True)
        snap.hnsw = index
    return snap
