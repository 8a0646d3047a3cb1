"""The FAQ's questions as query embeddings: the "domain prototypes" of the off-topic gate.

A question is about the FAQ when it is close to one of the FAQ's own questions. Measured on the
calibration set (bench/data/faq_offtopic_calibration.jsonl), the question-to-question cosine
(both embedded as e5 *queries*) separates related from unrelated questions far better than the
retrieval scores do (balanced accuracy 0.99 vs 0.94 for the best dense passage score), so the
questions are embedded once, at ingestion, and kept next to the index:
``{home}/apps/faq/{collection}.prototypes.npz`` (vectors, their document ids, the embedder id).
Embeddings come through the embedding cache, so re-ingesting costs nothing.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from jisik.core.errors import CorruptData
from jisik.core.types import Document
from jisik.models.embedders import Embedder
from jisik.text.normalize import normalize_query

from .suggest import clean_title


@dataclass(slots=True)
class Prototypes:
    vectors: npt.NDArray[np.float32]  # (n, dim), unit length
    doc_ids: list[str]
    embedder_id: str

    def best(self, query_vector: npt.NDArray[np.float32]) -> tuple[float, int]:
        """The highest cosine to any prototype, and that prototype's row (-1 when empty)."""
        if not len(self.doc_ids):
            return 0.0, -1
        sims = self.vectors @ np.asarray(query_vector, dtype=np.float32)
        i = int(np.argmax(sims))
        return float(sims[i]), i


def prototypes_path(home: Path, collection: str) -> Path:
    return home / "apps" / "faq" / f"{collection}.prototypes.npz"


def prototype_texts(docs: Sequence[Document]) -> list[str]:
    """The question of each FAQ entry without its ``[카테고리]`` prefix (what users would type)."""
    return [normalize_query(clean_title(d.title) or d.text.split("\n", 1)[0]) for d in docs]


def build_prototypes(embedder: Embedder, docs: Sequence[Document], batch: int = 256) -> Prototypes:
    texts = prototype_texts(docs)
    parts = [embedder.embed_queries(texts[i:i + batch]) for i in range(0, len(texts), batch)]
    vectors = np.vstack(parts).astype(np.float32) if parts else np.zeros((0, embedder.dim), np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
    return Prototypes(vectors, [d.doc_id for d in docs], embedder.model_id)


def save_prototypes(path: Path, protos: Prototypes) -> None:
    """Written to a temporary file and renamed, so a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".proto-", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, vectors=protos.vectors,
                     meta=np.frombuffer(json.dumps({"embedder_id": protos.embedder_id,
                                                    "doc_ids": protos.doc_ids}).encode("utf-8"), np.uint8))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_prototypes(path: Path) -> Prototypes | None:
    """The saved prototypes, or None when there is no file."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            vectors = np.asarray(data["vectors"], dtype=np.float32)
            meta = json.loads(bytes(data["meta"]).decode("utf-8"))
        protos = Prototypes(vectors, [str(x) for x in meta["doc_ids"]], str(meta["embedder_id"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptData(f"FAQ 질문 임베딩 파일을 읽을 수 없습니다: {path}",
                          f"Cannot read the FAQ prototype file {path}: {exc}",
                          hint="`jisik faq ingest`를 다시 실행하세요. (Run `jisik faq ingest` again.)") from exc
    if vectors.ndim != 2 or vectors.shape[0] != len(protos.doc_ids):
        raise CorruptData(f"FAQ 질문 임베딩 파일이 손상되었습니다: {path}",
                          f"The FAQ prototype file {path} is inconsistent (shape {vectors.shape}).",
                          hint="`jisik faq ingest`를 다시 실행하세요. (Run `jisik faq ingest` again.)")
    return protos
