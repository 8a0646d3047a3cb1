"""Streaming on a REAL uvicorn server: SSE (httpx streaming) and WebSocket (the ``websockets``
client); a client that disconnects or cancels stops the LLM (a real, slow OpenAI-compatible
HTTP server sees its connection closed long before it has sent everything)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Origin

from api_env import ADMIN_KEY, USER_KEY, LiveServer, MakeApp, sse_events
from chat_fixtures import FakeOpenAIServer
from jisik.models.llm import OpenAICompatibleLLM

ADMIN = {"X-API-Key": ADMIN_KEY}


@pytest.fixture
def slow_llm() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(tokens=200, delay_s=0.05) as server:
        yield server


def openai_llm(server: FakeOpenAIServer) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(server.base_url, None, "fake", max_retries=0, timeout_s=10)


def receive(ws: ClientConnection) -> tuple[str, dict[str, Any]]:
    frame = json.loads(ws.recv(timeout=30))
    return frame["type"], frame["data"]


def until(ws: ClientConnection, kind: str) -> list[tuple[str, dict[str, Any]]]:
    frames = [receive(ws)]
    while frames[-1][0] not in (kind, "error"):
        frames.append(receive(ws))
    return frames


def test_sse_typed_events_in_order(make_app: MakeApp) -> None:
    with LiveServer(make_app(api_keys=[USER_KEY])) as live, httpx.Client(base_url=live.url, timeout=60) as c:
        started = time.perf_counter()
        first_event_ms = None
        with c.stream("POST", "/api/v1/chat/stream", json={"question": "정산 계좌를 바꾸고 싶어요", "app": "shop"},
                      headers={"X-API-Key": USER_KEY}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            events = []
            for ev in sse_events(r.iter_lines()):
                first_event_ms = first_event_ms or (time.perf_counter() - started) * 1000
                events.append(ev)
        kinds = [k for k, _, _ in events]
        assert kinds[0] == "retrieval" and kinds[-1] == "done"
        assert [i for _, i, _ in events] == list(range(1, len(events) + 1))
        assert kinds.index("citation") > kinds.index("token") and kinds.index("suggestions") < kinds.index("done")
        tokens = "".join(d["text"] for k, _, d in events if k == "token")
        done = events[-1][2]
        assert done["answer"] == tokens and "[1]" in tokens and done["outcome"] == "answered"
        assert done["provider"]["kind"] == "extractive" and done["provider"]["label_ko"]
        citations = [d for k, _, d in events if k == "citation"]
        assert citations[0]["citation"]["doc_id"] == "settle"
        assert first_event_ms is not None and first_event_ms < 30_000
        refused = c.post("/api/v1/chat/stream", json={"question": "  "}, headers={"X-API-Key": USER_KEY})
        assert refused.status_code == 422  # errors before the stream starts keep their HTTP status
        assert c.post("/api/v1/chat/stream", json={"question": "가입"}).status_code == 401


def test_sse_disconnect_stops_the_llm(make_app: MakeApp, slow_llm: FakeOpenAIServer) -> None:
    with LiveServer(make_app(llm=openai_llm(slow_llm))) as live, httpx.Client(base_url=live.url, timeout=60) as c:
        with c.stream("POST", "/api/v1/chat/stream", json={"question": "반품 배송비는 환불되나요?"}) as r:
            for kind, _, _ in sse_events(r.iter_lines()):
                if kind == "token":
                    break  # leaving the block closes the connection mid-stream
        assert slow_llm.disconnected.wait(5), "the LLM server kept generating after the client left"
        assert slow_llm.sent < slow_llm.tokens and not slow_llm.completed.is_set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            logs = c.get("/api/v1/admin/logs", headers=ADMIN).json()["items"]
            if logs:
                break
            time.sleep(0.05)
        assert logs and logs[0]["answer"].startswith("[cancelled]") and not logs[0]["answered"]
        assert "jisik_chat_cancelled_total 1.0" in c.get("/metrics").text


def test_websocket_conversation_errors_keys_and_origin(make_app: MakeApp) -> None:
    with LiveServer(make_app(api_keys=[USER_KEY], cors_origins=["http://ui.example"])) as live:
        with connect(f"{live.ws_url}/api/v1/chat/ws", additional_headers={"X-API-Key": USER_KEY}) as ws:
            ws.send(json.dumps({"question": "구매평을 지울 수 있나요?", "user_id": "park"}))
            frames = until(ws, "done")
            assert frames[0][0] == "retrieval" and frames[-1][0] == "done"
            sid = frames[-1][1]["session_id"]
            assert any(k == "citation" for k, _ in frames)
            ws.send("not json")
            assert receive(ws)[1]["code"] == "invalid_input"
            ws.send(json.dumps({"question": ""}))
            kind, data = receive(ws)
            assert kind == "error" and data["status"] == 422 and data["details"]["errors"]
            ws.send(json.dumps({"question": "신고는요?", "session_id": sid, "user_id": "park"}))
            follow = until(ws, "done")
            assert follow[-1][1]["session_id"] == sid
        with connect(f"{live.ws_url}/api/v1/chat/ws?api_key=wrong") as ws:
            kind, data = receive(ws)
            assert kind == "error" and data["code"] == "unauthorized"
        with connect(f"{live.ws_url}/api/v1/chat/ws?api_key={USER_KEY}", origin=Origin("http://ui.example")) as ws:
            ws.send(json.dumps({"question": "반품 배송비", "collection": "nope"}))
            assert receive(ws)[1]["status"] == 404
        with connect(f"{live.ws_url}/api/v1/chat/ws?api_key={USER_KEY}", origin=Origin("http://evil.example")) as ws:
            assert receive(ws)[1]["code"] == "forbidden"  # a page of another site cannot use the socket


def test_websocket_close_and_cancel_stop_the_llm(make_app: MakeApp) -> None:
    with FakeOpenAIServer(tokens=200, delay_s=0.05) as first, FakeOpenAIServer(tokens=200, delay_s=0.05) as second:
        with LiveServer(make_app(llm=openai_llm(first))) as live:
            with connect(f"{live.ws_url}/api/v1/chat/ws") as ws:
                ws.send(json.dumps({"question": "반품 배송비는 환불되나요?"}))
                until(ws, "token")
            assert first.disconnected.wait(5) and first.sent < first.tokens
        with LiveServer(make_app(llm=openai_llm(second))) as live, connect(f"{live.ws_url}/api/v1/chat/ws") as ws:
            ws.send(json.dumps({"question": "반품 배송비는 환불되나요?"}))
            until(ws, "token")
            ws.send(json.dumps({"type": "cancel"}))
            frames = until(ws, "error")
            assert frames[-1][1]["code"] == "cancelled"
            assert second.disconnected.wait(5) and second.sent < second.tokens
            ws.send(json.dumps({"question": ""}))  # the socket is still usable
            assert receive(ws)[1]["code"] == "invalid_input"


def test_sse_heartbeat_while_the_llm_is_slow(make_app: MakeApp) -> None:
    with FakeOpenAIServer(tokens=3, delay_s=0.5) as slow, \
            LiveServer(make_app(llm=openai_llm(slow), sse_heartbeat_s=0.1)) as live, \
            httpx.Client(base_url=live.url, timeout=60) as c, \
            c.stream("POST", "/api/v1/chat/stream", json={"question": "반품 배송비는 환불되나요?"}) as r:
        lines = list(r.iter_lines())
    assert ": ping" in lines  # comment lines keep proxies from closing a quiet stream
    events = list(sse_events(iter(lines)))
    assert events[-1][0] == "done" and events[-1][2]["answer"].startswith("토큰0 토큰1 토큰2")
    assert events[-1][2]["grounding"]["flagged"]  # an LLM answer citing nothing is flagged
