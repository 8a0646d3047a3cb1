"""Embedding models (all weights ship inside pip packages; nothing is downloaded at run time).

Use :func:`open_embedder` for the configured embedder with its persistent cache, or
:func:`create_embedder` for a bare one.
"""

from .base import Embedder, Kind
from .cache import CachedEmbedder, EmbeddingCache, open_embedder
from .e5 import E5SmallEmbedder
from .e5_onnx import E5OnnxEmbedder
from .embedders import EMBEDDER_NAMES, clear_embedder_instances, create_embedder
from .openai_compat import OpenAICompatibleEmbedder
from .use import UseMultilingualEmbedder

__all__ = [
    "EMBEDDER_NAMES",
    "CachedEmbedder",
    "E5OnnxEmbedder",
    "E5SmallEmbedder",
    "Embedder",
    "EmbeddingCache",
    "Kind",
    "OpenAICompatibleEmbedder",
    "UseMultilingualEmbedder",
    "clear_embedder_instances",
    "create_embedder",
    "open_embedder",
]
