"""OpenAICompatibleLLM against a real local streaming server (tests/llm_chat_server.py)."""

from __future__ import annotations

import asyncio
import gc
import time
from typing import Any

import pytest

from jisik.core.errors import ConfigError, InvalidInput, JisikError, Unavailable
from jisik.models.llm import ChatMessage, LLMProvider, OpenAICompatibleLLM, TokenStream
from llm_chat_server import DELTAS, ChatServer

MESSAGES: list[ChatMessage] = [
    {"role": "system", "content": "문서에 근거해 답하세요."},
    {"role": "user", "content": "예금자보호 한도는?"},
]


def make(server: ChatServer | str, model: str, **kw: Any) -> OpenAICompatibleLLM:
    base = server.base_url if isinstance(server, ChatServer) else server
    opts: dict[str, Any] = {"backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 5.0, **kw}
    return OpenAICompatibleLLM(base, "sk-test", model, **opts)


async def _drain(llm: OpenAICompatibleLLM, **kw: Any) -> tuple[list[str], TokenStream]:
    deltas: list[str] = []
    async with llm.stream(MESSAGES, **kw) as stream:
        async for d in stream:
            deltas.append(d)
    await llm.aclose()
    return deltas, stream


def test_streams_deltas_usage_and_request_fields(chat_server: ChatServer) -> None:
    llm = make(chat_server, "ok", extra_body={"chat_template_kwargs": {"enable_thinking": False}})
    assert isinstance(llm, LLMProvider) and llm.kind == "llm" and llm.model_id == "openai/ok"
    deltas, stream = asyncio.run(_drain(llm, max_tokens=64, temperature=0.0, stop=["\n\n"]))
    assert deltas == DELTAS  # the role-only first event yields nothing
    assert stream.text == "".join(DELTAS)
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (42, len(DELTAS))
    assert not stream.usage.estimated and stream.finish_reason == "stop" and stream.model == "ok"
    body, headers = chat_server.requests[0], chat_server.headers[0]
    assert body["stream"] is True and body["max_tokens"] == 64 and body["temperature"] == 0.0
    assert body["stop"] == ["\n\n"] and body["stream_options"] == {"include_usage": True}
    assert body["chat_template_kwargs"] == {"enable_thinking": False}
    assert body["messages"] == [dict(m) for m in MESSAGES]
    assert headers["authorization"] == "Bearer sk-test"


def test_complete_and_defaults(chat_server: ChatServer) -> None:
    llm = make(chat_server, "ok", max_tokens=7, temperature=0.3)
    done = asyncio.run(llm.complete(MESSAGES))
    assert done.text == "".join(DELTAS) and done.finish_reason == "stop" and done.usage.total_tokens == 46
    assert chat_server.requests[0]["max_tokens"] == 7 and chat_server.requests[0]["temperature"] == 0.3


def test_usage_is_estimated_when_the_server_reports_none(chat_server: ChatServer) -> None:
    done = asyncio.run(make(chat_server, "no-usage").complete(MESSAGES))
    assert done.usage.completion_tokens == len(DELTAS) and done.usage.estimated


@pytest.mark.parametrize("model", ["429-then-ok", "500-then-ok", "close-then-ok"])
def test_retries_before_the_first_token(chat_server: ChatServer, model: str) -> None:
    done = asyncio.run(make(chat_server, model).complete(MESSAGES))
    assert done.text == "".join(DELTAS)
    assert chat_server.calls[model] == 2


def test_gives_up_after_max_retries_with_503(chat_server: ChatServer) -> None:
    with pytest.raises(Unavailable) as err:
        asyncio.run(make(chat_server, "always-503", max_retries=2).complete(MESSAGES))
    assert chat_server.calls["always-503"] == 3
    assert err.value.status == 503 and err.value.details["upstream_status"] == 503
    assert err.value.message_ko.startswith("LLM 서버가") and "HTTP 503" in err.value.message_en


@pytest.mark.parametrize(("model", "kind", "status"), [("401", ConfigError, 500), ("404", ConfigError, 500),
                                                       ("400", InvalidInput, 422)])
def test_client_errors_are_typed_and_not_retried(chat_server: ChatServer, model: str, kind: type[JisikError],
                                                 status: int) -> None:
    with pytest.raises(kind) as err:
        asyncio.run(make(chat_server, model).complete(MESSAGES))
    assert err.value.status == status and err.value.details["upstream_status"] == int(model)
    assert f"scripted {model}" in err.value.message_en
    assert chat_server.calls[model] == 1


def test_unreachable_server_is_503_after_retries(closed_port: int) -> None:
    llm = make(f"http://127.0.0.1:{closed_port}/v1", "ok", max_retries=1, connect_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(Unavailable) as err:
        asyncio.run(llm.complete(MESSAGES))
    assert time.monotonic() - started < 3
    assert err.value.status == 503 and err.value.details["attempts"] == 2
    assert "연결할 수 없습니다" in err.value.message_ko and "Cannot reach" in err.value.message_en


def test_a_stalled_stream_times_out_with_503(chat_server: ChatServer) -> None:
    started = time.monotonic()
    with pytest.raises(Unavailable) as err:
        asyncio.run(make(chat_server, "stall", timeout_s=0.3).complete(MESSAGES))
    assert time.monotonic() - started < 1.5  # no retry of a read timeout
    assert "응답하지 않았습니다" in err.value.message_ko and chat_server.calls["stall"] == 1


def test_a_stream_cut_after_tokens_is_not_retried(chat_server: ChatServer) -> None:
    got: list[str] = []

    async def run() -> None:
        async for d in make(chat_server, "cut").stream(MESSAGES):
            got.append(d)

    with pytest.raises(Unavailable) as err:
        asyncio.run(run())
    assert got == DELTAS[:2]  # what was shown stays shown; nothing is repeated
    assert chat_server.calls["cut"] == 1 and err.value.details["tokens_streamed"] == 2
    assert "끊겼습니다" in err.value.message_ko


def test_an_error_event_in_the_stream_is_503(chat_server: ChatServer) -> None:
    with pytest.raises(Unavailable) as err:
        asyncio.run(make(chat_server, "error-event").complete(MESSAGES))
    assert "context overflow" in err.value.message_en


def test_cancelling_the_consumer_closes_the_connection(chat_server: ChatServer) -> None:
    got: list[str] = []

    async def run() -> None:
        llm = make(chat_server, "slow")

        async def consume() -> None:
            async for d in llm.stream(MESSAGES):
                got.append(d)

        task = asyncio.create_task(consume())
        while len(got) < 3:
            await asyncio.sleep(0.01)
        task.cancel()  # what the API does when the client disconnects
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert chat_server.disconnected.wait(3), "the server kept streaming to a cancelled consumer"
    assert chat_server.slow_sent < 100


def test_closing_the_stream_early_closes_the_connection(chat_server: ChatServer) -> None:
    async def run() -> int:
        n = 0
        async with make(chat_server, "slow").stream(MESSAGES) as stream:
            async for _ in stream:
                n += 1
                if n == 2:
                    break
        return n

    assert asyncio.run(run()) == 2
    assert chat_server.disconnected.wait(3)


def test_an_abandoned_stream_is_closed_by_the_event_loop(chat_server: ChatServer) -> None:
    async def run() -> None:
        stream = make(chat_server, "slow").stream(MESSAGES)
        async for _ in stream:
            break
        del stream  # no aclose(): the loop's async-generator finaliser closes it
        gc.collect()
        await asyncio.sleep(0.1)

    asyncio.run(run())
    assert chat_server.disconnected.wait(3)


def test_one_provider_serves_several_event_loops(chat_server: ChatServer) -> None:
    llm = make(chat_server, "ok")
    assert asyncio.run(llm.complete(MESSAGES)).text == asyncio.run(llm.complete(MESSAGES)).text


def test_invalid_configuration_and_input(chat_server: ChatServer) -> None:
    with pytest.raises(InvalidInput):
        OpenAICompatibleLLM(chat_server.base_url, None, "")
    with pytest.raises(InvalidInput):
        OpenAICompatibleLLM(chat_server.base_url, None, "ok", timeout_s=0)
    with pytest.raises(InvalidInput):
        make(chat_server, "ok").stream([])
