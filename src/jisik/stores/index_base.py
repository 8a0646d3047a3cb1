"""The knowledge-store Protocol: hybrid (dense + Kiwi lexical + metadata) chunk index with versions.

Implementations: :mod:`jisik.stores.embedded` (files + SQLite, no server; the default) and
:mod:`jisik.stores.pgvector` (PostgreSQL + pgvector). Choose one with :func:`jisik.stores.factory.open_index`.

Versioning contract
-------------------
* Writes happen in a batch (:meth:`IndexStore.open_batch`). Nothing a batch writes is visible
  to searches until :meth:`IndexBatch.commit` publishes it as a new version, atomically.
* An aborted or interrupted batch (exception, SIGKILL) leaves the previous version intact
  and queryable; leftovers are cleaned up on the next open.
* :meth:`IndexStore.rollback` makes an earlier version current again.

Keys returned by searches are opaque integers, valid for :meth:`fetch`/:meth:`vectors` on the
same store until the next commit or rollback.

Multi-vector passages
---------------------
A chunk may carry *window vectors* besides its own vector (``windows`` of
:meth:`IndexBatch.upsert_document`: embeddings of runs of whole sentences of a long passage).
They belong to their chunk: written, replaced, deleted, versioned and rolled back with it, never
returned as hits and never lexically indexed. :meth:`IndexStore.search_dense` scores a chunk by
the best of its own vector and its windows and returns each chunk at most once;
:meth:`IndexStore.vectors` keeps returning the chunk's own vector.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from jisik.core.errors import InvalidInput
from jisik.core.types import Chunk
from jisik.retrieval.filters import Filter

FloatArray = npt.NDArray[np.float32]
KeyArray = npt.NDArray[np.int64]
COLLECTION_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")


def check_collection_name(name: str) -> str:
    """The one collection-name rule of every store (safe as a directory and a table suffix)."""
    if not isinstance(name, str) or not COLLECTION_NAME_RE.match(name):
        raise InvalidInput(
            f"컬렉션 이름이 올바르지 않습니다: {name!r} (영문 소문자, 숫자, _, - 로 64자 이내)",
            f"Invalid collection name {name!r}: use lowercase letters, digits, _ and -, max 64 chars.",
        )
    return name


@dataclass(slots=True)
class CollectionInfo:
    name: str
    dim: int
    embedder_id: str
    version: int  # current published version (0 = empty, never committed)
    documents: int = 0
    chunks: int = 0
    windows: int = 0  # window vectors of the current version's chunks (multi-vector passages)


@dataclass(slots=True)
class VersionInfo:
    version: int
    created_at: str
    status: str  # "published" | "current" | "rolled_back"
    documents: int
    chunks: int
    added_docs: int = 0
    removed_docs: int = 0
    note: str = ""
    extra: dict[str, object] = field(default_factory=dict)


@runtime_checkable
class IndexBatch(Protocol):
    """A set of changes published together as one version."""

    def upsert_document(
        self,
        doc_id: str,
        fingerprint: str,
        chunks: Sequence[Chunk],
        vectors: FloatArray,
        tokens: Sequence[Sequence[str]],
        *,
        windows: Sequence[FloatArray] | None = None,
    ) -> None:
        """Replace every chunk of ``doc_id`` by ``chunks`` (one vector and token list each).

        ``windows[i]`` (optional) holds the window vectors of ``chunks[i]``, shape ``(k, dim)``
        with ``k >= 0`` (see "Multi-vector passages" above).
        """

    def delete_document(self, doc_id: str) -> None: ...

    def commit(self) -> VersionInfo:
        """Publish all changes as a new version (no-op batches still return the current version)."""

    def abort(self) -> None: ...

    def __enter__(self) -> IndexBatch: ...

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None: ...


@runtime_checkable
class IndexStore(Protocol):
    url: str

    def list_collections(self) -> list[CollectionInfo]: ...

    def get_collection(self, name: str) -> CollectionInfo:
        """Raise :class:`~jisik.core.errors.NotFound` for an unknown collection."""

    def ensure_collection(self, name: str, *, dim: int, embedder_id: str) -> CollectionInfo:
        """Create if missing; raise Conflict if it exists with another dim/embedder."""

    def drop_collection(self, name: str) -> None: ...

    def open_batch(self, name: str, *, note: str = "") -> IndexBatch: ...

    def versions(self, name: str) -> list[VersionInfo]: ...

    def rollback(self, name: str, version: int) -> VersionInfo: ...

    def doc_fingerprints(self, name: str) -> dict[str, str]:
        """doc_id -> fingerprint of the current version (for incremental indexing)."""

    def search_lexical(
        self, name: str, tokens: Sequence[str], top_n: int, flt: Filter
    ) -> tuple[KeyArray, FloatArray]:
        """BM25 over Kiwi tokens; best first. Empty arrays when nothing matches.

        Scores are normalised by the query's upper bound (the sum of the idf of each unique
        query token, tokens unknown to the corpus counting with the maximal idf), so that
        ~1.0 means "every query word matched once" and scores compare across queries.
        """

    def search_dense(
        self, name: str, vector: FloatArray, top_n: int, flt: Filter
    ) -> tuple[KeyArray, FloatArray]:
        """Cosine similarity (vectors are L2-normalised); best first. A chunk's score is the best
        over its own vector and its window vectors; each chunk appears at most once."""

    def fetch(self, name: str, keys: Sequence[int]) -> list[Chunk]: ...

    def vectors(self, name: str, keys: Sequence[int]) -> FloatArray: ...

    def close(self) -> None: ...


def check_windows(
    windows: Sequence[FloatArray] | None, n_chunks: int, dim: int, what: str
) -> list[FloatArray] | None:
    """Validate the ``windows`` argument of :meth:`IndexBatch.upsert_document`.

    Returns one float32 ``(k, dim)`` array per chunk, or None when no chunk has a window.
    """
    if windows is None:
        return None
    if isinstance(windows, np.ndarray) or len(windows) != n_chunks:
        raise InvalidInput(
            "윈도 벡터 목록은 청크마다 하나씩이어야 합니다.",
            f"{what}: windows must be a list with one (k, dim) array per chunk ({n_chunks} chunks).",
        )
    out: list[FloatArray] = []
    for w in windows:
        try:
            arr = np.asarray(w, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise InvalidInput("윈도 벡터가 숫자 배열이 아닙니다.", f"{what}: window vectors are not numeric.") from e
        if arr.size == 0:
            arr = np.zeros((0, dim), np.float32)
        if arr.ndim != 2 or arr.shape[1] != dim:
            raise InvalidInput(
                f"윈도 벡터의 모양이 (k, {dim})이어야 합니다.",
                f"{what}: window vectors must have shape (k, {dim}), got {arr.shape}.",
            )
        if not np.isfinite(arr).all():
            raise InvalidInput(
                "윈도 벡터에 NaN/무한대 값이 있습니다.", f"{what}: window vectors contain NaN or infinity."
            )
        out.append(arr)
    return out if any(a.shape[0] for a in out) else None
