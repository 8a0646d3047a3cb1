"""Offline generation: a GGUF model on the CPU behind llama.cpp's OpenAI-compatible server.

:class:`LocalLlamaServer` runs the server of ``xllamacpp`` (prebuilt llama.cpp wheels) in a
child process (:mod:`jisik.models.llm.serve`) on a free 127.0.0.1 port with a random API key,
and waits until it is healthy. A child process keeps a crash or an abort inside llama.cpp away
from the API process, gives the memory back when it stops, and is stopped with its parent.
:class:`LocalLLM` is the provider: the OpenAI-compatible client pointed at that server, which
starts on first use (or at :meth:`LocalLLM.start`) and stops on :meth:`LocalLLM.aclose`.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import select
import subprocess
import sys
import threading
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

import httpx

from jisik.core.errors import ModelNotInstalled, Unavailable
from jisik.core.logging import get_logger
from jisik.core.types import Hit

from .base import ChatMessage, CompletesFromStream, ProviderKind, TokenStream
from .openai_compat import OpenAICompatibleLLM

log = get_logger("jisik.models.llm.local")

XLLAMACPP_PIP = "xllamacpp"


def require_xllamacpp() -> None:
    if importlib.util.find_spec("xllamacpp") is None:
        raise ModelNotInstalled(
            "로컬 LLM 실행 엔진(xllamacpp)이 설치되어 있지 않습니다. `pip install xllamacpp` 로 설치하세요.",
            "The local LLM engine (xllamacpp) is not installed. Install it with `pip install xllamacpp`.",
            hint=f"pip install {XLLAMACPP_PIP}", details={"package": XLLAMACPP_PIP},
        )


class LocalLlamaServer:
    """One llama.cpp server child process for one GGUF file. ``start`` and ``stop`` are idempotent
    and thread-safe; ``base_url`` is the OpenAI-compatible root (``http://127.0.0.1:PORT/v1``)."""

    def __init__(
        self,
        model_path: Path,
        *,
        alias: str = "local",
        threads: int = 2,
        context_tokens: int = 4096,
        parallel: int = 1,
        startup_timeout_s: float = 300.0,
        log_path: Path | None = None,
    ) -> None:
        self.model_path = model_path
        self.alias = alias
        self.threads = threads
        self.context_tokens = context_tokens
        self.parallel = parallel
        self.startup_timeout_s = startup_timeout_s
        self.log_path = log_path or model_path.with_name(model_path.name + ".server.log")
        self.api_key = secrets.token_urlsafe(24)
        self._proc: subprocess.Popen[bytes] | None = None
        self._address: str | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def base_url(self) -> str:
        if self._address is None:
            raise Unavailable("로컬 LLM 서버가 시작되지 않았습니다.", "The local LLM server has not been started.")
        return f"{self._address}/v1"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> str:
        with self._lock:
            if self.running and self._address:
                return self.base_url
            self._stop_locked()
            require_xllamacpp()
            started = time.perf_counter()
            self._spawn()
            log.info("local llm server started", extra={
                "model": self.alias, "pid": self.pid, "threads": self.threads, "ctx": self.context_tokens,
                "s": round(time.perf_counter() - started, 1)})
            return self.base_url

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    # -- internals ---------------------------------------------------------------------------
    def _spawn(self) -> None:
        # the script by path (``-m`` would import jisik: numpy, Kiwi...); -P: its folder (gguf.py,
        # local.py...) must not shadow modules that xllamacpp imports
        cmd = [sys.executable, "-P", str(Path(__file__).with_name("serve.py")), "--model", str(self.model_path),
               "--alias", self.alias, "--threads", str(self.threads), "--ctx", str(self.context_tokens),
               "--parallel", str(self.parallel)]
        env = dict(os.environ, JISIK_LLAMA_API_KEY=self.api_key)
        # llama.cpp's OpenMP threads spin while they wait; on a busy 2-core machine that spinning
        # starves everyone (measured: 1-4 -> 12-13 tokens/s generation with passive waiting)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log_file:
            proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, env=env)
        self._proc = proc
        try:
            message = self._read_announcement(proc)
            if "address" not in message:
                raise self._failed(str(message.get("error", message)), message.get("kind"))
            self._address = str(message["address"]).rstrip("/")
            self._wait_healthy()
        except BaseException:
            self._stop_locked()
            raise

    def _read_announcement(self, proc: subprocess.Popen[bytes]) -> dict[str, Any]:
        assert proc.stdout is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stdout], [], [], 0.2)
            if ready:
                line = proc.stdout.readline()
                if not line:
                    break  # the child exited without a word
                with contextlib.suppress(ValueError):
                    message = json.loads(line)
                    if isinstance(message, dict):
                        return message
            elif proc.poll() is not None:
                break
        if proc.poll() is None:
            raise Unavailable(
                f"로컬 LLM 서버가 {self.startup_timeout_s:g}초 안에 시작되지 않았습니다.",
                f"The local LLM server did not start within {self.startup_timeout_s:g} s.",
                hint="JISIK_LLM_STARTUP_TIMEOUT_S", details={"log": str(self.log_path)})
        raise self._failed(f"exit code {proc.poll()}", None)

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + min(60.0, self.startup_timeout_s)
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self._address}/health", timeout=2.0).status_code == 200:
                    return
            if time.monotonic() > deadline or not self.running:
                raise self._failed("the server never became healthy", None)
            time.sleep(0.1)

    def _failed(self, reason: str, kind: Any) -> Exception:
        tail = self._log_tail()
        if kind == "not_installed":
            return ModelNotInstalled(
                "로컬 LLM 실행 엔진(xllamacpp)을 불러올 수 없습니다. `pip install --force-reinstall xllamacpp`",
                f"The local LLM engine could not be imported: {reason}",
                hint="pip install --force-reinstall xllamacpp", details={"log_tail": tail})
        return Unavailable(
            f"로컬 LLM 서버를 시작하지 못했습니다: {self.model_path.name}",
            f"The local LLM server failed to start ({reason}).",
            hint=f"자세한 내용은 로그를 보세요. (See the log: {self.log_path})",
            details={"model": str(self.model_path), "log_tail": tail})

    def _log_tail(self, n: int = 15) -> list[str]:
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []
        return lines[-n:]

    def _stop_locked(self) -> None:
        proc, self._proc, self._address = self._proc, None, None
        if proc is None:
            return
        if proc.stdin is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # the child's cue to shut down cleanly
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        log.info("local llm server stopped", extra={"model": self.alias, "pid": proc.pid, "code": proc.returncode})

    def __del__(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(Exception):
                proc.kill()


class LocalLLM(CompletesFromStream):
    """The provider for a local GGUF model: starts its server on first use."""

    kind: ProviderKind = "llm"
    name = "local"

    def __init__(
        self,
        server: LocalLlamaServer,
        *,
        model_name: str,
        timeout_s: float = 120.0,
        max_tokens: int = 512,
        temperature: float = 0.2,
        max_retries: int = 1,
    ) -> None:
        self.server = server
        self.model_name = model_name
        self.model_id = f"local/{model_name}"
        self._options: dict[str, Any] = {"timeout_s": timeout_s, "max_tokens": max_tokens,
                                         "temperature": temperature, "max_retries": max_retries}
        self._client: OpenAICompatibleLLM | None = None

    async def start(self) -> None:
        """Start the server now (e.g. at application start-up) instead of at the first request."""
        base_url = await asyncio.to_thread(self.server.start)
        if self._client is None or self._client.base_url != base_url.rstrip("/"):
            if self._client is not None:
                await self._client.aclose()
            self._client = OpenAICompatibleLLM(base_url, self.server.api_key, self.server.alias, name="local",
                                               connect_timeout_s=2.0, backoff_s=0.2, **self._options)

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
        return TokenStream(lambda out: self._generate(out, messages, max_tokens, temperature, stop))

    async def _generate(self, out: TokenStream, messages: Sequence[ChatMessage], max_tokens: int | None,
                        temperature: float | None, stop: Sequence[str] | None) -> AsyncGenerator[str, None]:
        await self.start()
        assert self._client is not None
        async with self._client.stream(messages, max_tokens=max_tokens, temperature=temperature,
                                       stop=stop) as inner:
            async for delta in inner:
                yield delta
            out.usage, out.finish_reason = inner.usage, inner.finish_reason
            out.model = self.model_id

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        await asyncio.to_thread(self.server.stop)

    def close(self) -> None:
        """Stop the server from synchronous code (the HTTP client is dropped)."""
        self._client = None
        self.server.stop()

    def __repr__(self) -> str:
        return f"LocalLLM(model_id={self.model_id!r}, running={self.server.running})"
