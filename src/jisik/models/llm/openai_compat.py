"""A streaming client for any server speaking OpenAI's ``POST /chat/completions``.

Covers OpenAI itself, vLLM (e.g. serving Qwen3), Ollama (``/v1``), llama.cpp's server and the
local GGUF server of :mod:`jisik.models.llm.local`. Responses are read as server-sent events
(``data: {...}`` lines ending with ``data: [DONE]``).

Failures before the first token (connection refused or reset, 408/429/5xx) are retried with
exponential backoff (a numeric ``Retry-After`` is honoured, capped); once a token has been
streamed nothing is retried, because the caller has already shown it. Waiting longer than
``timeout_s`` for the next token is a timeout (503), not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

import httpx
from pydantic import SecretStr

from jisik.core.errors import ConfigError, InvalidInput, JisikError, Unavailable
from jisik.core.logging import get_logger
from jisik.core.types import Hit

from .base import ChatMessage, CompletesFromStream, ProviderKind, TokenStream, Usage

log = get_logger("jisik.models.llm")

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_HINT_SERVER = ("LLM 서버가 실행 중인지, JISIK_LLM_BASE_URL 설정이 맞는지 확인하세요. "
                "(Check that the LLM server is running and JISIK_LLM_BASE_URL is right.)")


class _Retryable(Exception):
    """Raised inside one attempt when it may be repeated (nothing was streamed yet)."""

    def __init__(self, reason: str, retry_after: str | None = None, error: JisikError | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.error = error


class OpenAICompatibleLLM(CompletesFromStream):
    """Streams chat completions from ``{base_url}/chat/completions``."""

    kind: ProviderKind = "llm"

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr | None,
        model: str,
        *,
        name: str = "openai",
        timeout_s: float = 120.0,
        connect_timeout_s: float = 5.0,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        max_tokens: int = 512,
        temperature: float = 0.2,
        extra_body: Mapping[str, Any] | None = None,
        stream_usage: bool = True,
    ) -> None:
        if not model:
            raise InvalidInput("LLM 모델 이름이 비어 있습니다.", "The LLM model name is empty.",
                               hint="JISIK_LLM=openai:<model>")
        if timeout_s <= 0 or connect_timeout_s <= 0 or max_retries < 0 or max_tokens < 1:
            raise InvalidInput(
                "timeout_s, connect_timeout_s는 0보다 크고 max_retries는 0 이상, max_tokens는 1 이상이어야 합니다.",
                "timeout_s and connect_timeout_s must be > 0, max_retries >= 0 and max_tokens >= 1.",
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = name
        self.model_id = f"{name}/{model}"
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.extra_body = dict(extra_body or {})
        self.stream_usage = stream_usage
        self._timeout = httpx.Timeout(timeout_s, connect=connect_timeout_s)
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    # -- LLMProvider -------------------------------------------------------------------------
    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int | None = None,
        temperature: float | None = None,
        stop: Sequence[str] | None = None,
        hits: Sequence[Hit] = (),
        question: str | None = None,
    ) -> TokenStream:
        payload = self._payload(messages, max_tokens, temperature, stop)
        return TokenStream(lambda out: self._generate(out, payload))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RuntimeError):  # its event loop may be gone already
                await client.aclose()

    # -- internals ---------------------------------------------------------------------------
    def _payload(self, messages: Sequence[ChatMessage], max_tokens: int | None, temperature: float | None,
                 stop: Sequence[str] | None) -> dict[str, Any]:
        if not messages:
            raise InvalidInput("LLM에 보낼 메시지가 없습니다.", "No messages to send to the LLM.")
        payload: dict[str, Any] = {
            **self.extra_body,
            "model": self.model,
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "stream": True,
            "max_tokens": int(max_tokens if max_tokens is not None else self.max_tokens),
            "temperature": float(temperature if temperature is not None else self.temperature),
        }
        if stop:
            payload["stop"] = list(stop)
        if self.stream_usage:
            payload["stream_options"] = {"include_usage": True}
        return payload

    def _http(self) -> httpx.AsyncClient:
        """One client per event loop (a pooled connection cannot move between loops)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = httpx.AsyncClient(timeout=self._timeout, headers=self._headers)
            self._client_loop = loop
        return self._client

    async def _generate(self, out: TokenStream, payload: dict[str, Any]) -> AsyncGenerator[str, None]:
        url = f"{self.base_url}/chat/completions"
        client = self._http()
        started = time.perf_counter()
        first_token_ms: float | None = None
        n_deltas = 0
        attempt = 0
        while True:
            try:
                async with client.stream("POST", url, json=payload) as resp:
                    if resp.status_code >= 400:
                        await resp.aread()
                        error = self._http_error(resp, attempt + 1)
                        if resp.status_code in _RETRY_STATUSES:
                            raise _Retryable(f"HTTP {resp.status_code}", resp.headers.get("retry-after"), error)
                        raise error
                    async with contextlib.aclosing(self._deltas(resp, out)) as deltas:
                        async for delta in deltas:
                            if first_token_ms is None:
                                first_token_ms = (time.perf_counter() - started) * 1000
                            n_deltas += 1
                            yield delta
                break
            except _Retryable as exc:
                if attempt >= self.max_retries:
                    raise (exc.error or self._unreachable(exc.reason, attempt + 1)) from None
                delay = self._delay(attempt, exc.retry_after)
            except (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout) as exc:
                raise Unavailable(
                    f"LLM 서버가 {self._timeout.read:g}초 동안 응답하지 않았습니다.",
                    f"The LLM server sent nothing for {self._timeout.read:g} s ({type(exc).__name__}).",
                    hint="서버 부하를 확인하거나 JISIK_LLM_TIMEOUT_S를 늘리세요. "
                         "(Check the server's load or raise JISIK_LLM_TIMEOUT_S.)",
                    details={"base_url": self.base_url, "model": self.model, "tokens_streamed": n_deltas},
                ) from exc
            except httpx.TransportError as exc:
                if n_deltas:
                    raise self._interrupted(type(exc).__name__, n_deltas) from exc
                if attempt >= self.max_retries:
                    raise self._unreachable(type(exc).__name__, attempt + 1) from exc
                delay = self._delay(attempt, None)
            attempt += 1
            log.warning("llm request failed before the first token, retrying",
                        extra={"attempt": attempt, "delay_s": round(delay, 3), "base_url": self.base_url})
            await asyncio.sleep(delay)
        if out.usage.completion_tokens == 0 and out.usage.prompt_tokens == 0:
            out.usage = Usage(0, n_deltas, estimated=True)
        log.info("llm stream done", extra={
            "model": self.model_id, "prompt_tokens": out.usage.prompt_tokens,
            "completion_tokens": out.usage.completion_tokens, "finish_reason": out.finish_reason,
            "attempts": attempt + 1, "ttft_ms": round(first_token_ms or 0.0, 1),
            "ms": round((time.perf_counter() - started) * 1000, 1)})

    async def _deltas(self, resp: httpx.Response, out: TokenStream) -> AsyncGenerator[str, None]:
        """Text deltas of one response; fills ``out``'s usage, finish reason and model."""
        done = False
        streamed = 0
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, ": ping" comments, event:/id: fields
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError as exc:
                raise Unavailable("LLM 서버의 응답 형식이 올바르지 않습니다.",
                                  f"The LLM server sent a malformed event: {data[:200]!r}",
                                  details={"base_url": self.base_url}) from exc
            if not isinstance(chunk, dict):
                continue
            if chunk.get("error"):
                raise Unavailable("LLM 서버가 생성 중 오류를 보냈습니다.",
                                  f"The LLM server reported an error while streaming: {_error_text(chunk)}",
                                  details={"base_url": self.base_url, "model": self.model})
            out.model = str(chunk.get("model") or out.model)
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                out.usage = Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
            for choice in chunk.get("choices") or ():
                if int(choice.get("index", 0)) != 0:
                    continue
                content = (choice.get("delta") or {}).get("content")
                if content:  # the role-only first event and reasoning deltas carry no content
                    streamed += 1
                    yield str(content)
                if choice.get("finish_reason"):
                    out.finish_reason = str(choice["finish_reason"])
        if not done and out.finish_reason is None:
            if streamed:
                raise self._interrupted("no [DONE]", streamed)
            raise _Retryable("stream closed before any token")

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        delay = self.backoff_s * (2 ** attempt) * (1 + 0.1 * random.random())
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, float(retry_after))
        return min(delay, self.max_backoff_s)

    def _unreachable(self, reason: str, attempts: int) -> Unavailable:
        return Unavailable(
            f"LLM 서버에 연결할 수 없습니다: {self.base_url}",
            f"Cannot reach the LLM server at {self.base_url} ({reason}, {attempts} attempts).",
            hint=_HINT_SERVER,
            details={"base_url": self.base_url, "model": self.model, "attempts": attempts},
        )

    def _interrupted(self, reason: str, n_tokens: int) -> Unavailable:
        return Unavailable(
            "LLM 응답이 도중에 끊겼습니다. 다시 시도하세요.",
            f"The LLM stream was cut off after {n_tokens} tokens ({reason}). Retry.",
            details={"base_url": self.base_url, "model": self.model, "tokens_streamed": n_tokens},
        )

    def _http_error(self, resp: httpx.Response, attempts: int) -> JisikError:
        status = resp.status_code
        detail = _error_text(resp)
        details = {"upstream_status": status, "base_url": self.base_url, "model": self.model, "attempts": attempts}
        if status in _RETRY_STATUSES or status >= 500:
            return Unavailable(
                f"LLM 서버가 응답하지 못했습니다 (HTTP {status}).",
                f"The LLM server failed with HTTP {status}: {detail}",
                hint="잠시 후 다시 시도하세요. (Retry later.)", details=details)
        if status in (401, 403):
            return ConfigError(
                f"LLM 서버가 인증을 거부했습니다 (HTTP {status}). API 키를 확인하세요.",
                f"The LLM server rejected the credentials (HTTP {status}): {detail}",
                hint="JISIK_LLM_API_KEY", details=details)
        if status == 404:
            return ConfigError(
                f"LLM 서버에 해당 모델이나 경로가 없습니다 (HTTP 404): {self.model}",
                f"The LLM server has no such model or route (HTTP 404): {detail}",
                hint="JISIK_LLM=openai:<model>, JISIK_LLM_BASE_URL (…/v1)", details=details)
        return InvalidInput(
            f"LLM 서버가 요청을 거부했습니다 (HTTP {status}): {detail}",
            f"The LLM server rejected the request (HTTP {status}): {detail}",
            hint="질문이나 문맥이 너무 길면 줄이세요. (Shorten the question or context if it is too long.)",
            details=details)

    def __repr__(self) -> str:
        return f"OpenAICompatibleLLM(model_id={self.model_id!r}, base_url={self.base_url!r})"


def _error_text(source: httpx.Response | dict[str, Any]) -> str:
    body: Any = source
    if isinstance(source, httpx.Response):
        try:
            body = source.json()
        except ValueError:
            return source.text[:300]
    if isinstance(body, dict):
        err = body.get("error", body.get("detail", body))
        if isinstance(err, dict):
            err = err.get("message", err)
        return str(err)[:300]
    return str(body)[:300]
