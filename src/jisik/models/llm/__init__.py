"""Generation providers: one streaming interface for OpenAI-compatible servers, a local GGUF
model on the CPU, and the extractive (no-LLM) answerer. Use :func:`create_llm`."""

from .base import ChatMessage, Completion, LLMProvider, ProviderKind, TokenStream, Usage
from .extractive import EXTRACTIVE_LABEL_EN, EXTRACTIVE_LABEL_KO, EXTRACTIVE_MODEL_ID, ExtractiveLLM
from .factory import LLM_NAMES, create_llm, llm_model_dir
from .gguf import DEFAULT_LOCAL_MODEL, LOCAL_MODELS, GgufModel, ensure_gguf
from .local import LocalLlamaServer, LocalLLM
from .openai_compat import OpenAICompatibleLLM

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "EXTRACTIVE_LABEL_EN",
    "EXTRACTIVE_LABEL_KO",
    "EXTRACTIVE_MODEL_ID",
    "LLM_NAMES",
    "LOCAL_MODELS",
    "ChatMessage",
    "Completion",
    "ExtractiveLLM",
    "GgufModel",
    "LLMProvider",
    "LocalLLM",
    "LocalLlamaServer",
    "OpenAICompatibleLLM",
    "ProviderKind",
    "TokenStream",
    "Usage",
    "create_llm",
    "ensure_gguf",
    "llm_model_dir",
]
