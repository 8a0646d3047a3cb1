"""Test helper: a real local HTTP server speaking OpenAI's streaming ``POST /v1/chat/completions`` (stdlib, in a
thread, HTTP/1.1 chunked server-sent events). The request's ``model`` picks the behaviour:

ok, no-usage           deltas, finish_reason, [usage], [DONE]
429-then-ok            429 (Retry-After: 0) on the first request, then ok
500-then-ok            500 on the first request, then ok
close-then-ok          200 headers then an abrupt close on the first request, then ok
always-503, 401, 404, 400
stall                  headers and the role event, then nothing for 2 s
cut                    two deltas, then the connection drops (no terminating chunk)
error-event            an ``{"error": ...}`` event before any delta
slow                   a delta every 20 ms for 10 s; ``disconnected`` is set when the client goes
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler
from typing import Any

from http_fixtures import send_json, serve_local

DELTAS = ["예금자보호 ", "한도는 ", "1억 원입니다 ", "[1]."]


def _event(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


class ChatServer:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.calls: Counter[str] = Counter()
        self.disconnected = threading.Event()
        self.slow_sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                model = str(body.get("model"))
                server.calls[model] += 1
                if self.path != "/v1/chat/completions":
                    return send_json(self, 404, {"error": {"message": "no such route"}})
                first = server.calls[model] == 1
                if model == "429-then-ok" and first:
                    return send_json(self, 429, {"error": {"message": "slow down"}}, {"Retry-After": "0"})
                if model == "500-then-ok" and first:
                    return send_json(self, 500, {"error": {"message": "boom"}})
                if model == "always-503":
                    return send_json(self, 503, {"error": {"message": "overloaded"}})
                if model in ("401", "404", "400"):
                    return send_json(self, int(model), {"error": {"message": f"scripted {model}"}})
                self._start_stream()
                if model == "close-then-ok" and first:
                    return self._drop()
                self._send(_event(_chunk(model, {"role": "assistant", "content": None})))
                if model == "stall":
                    time.sleep(2.0)
                    return self._drop()
                if model == "error-event":
                    self._send(_event({"error": {"message": "context overflow"}}))
                    return self._end()
                if model == "cut":
                    for d in DELTAS[:2]:
                        self._send(_event(_chunk(model, {"content": d})))
                    return self._drop()
                if model == "slow":
                    return self._slow(model)
                for d in DELTAS:
                    self._send(_event(_chunk(model, {"content": d})))
                self._send(_event(_chunk(model, {}, "stop")))
                if model != "no-usage":
                    self._send(_event({"id": "chatcmpl-test", "model": model, "choices": [],
                                       "usage": {"prompt_tokens": 42, "completion_tokens": len(DELTAS),
                                                 "total_tokens": 42 + len(DELTAS)}}))
                self._send(_event("[DONE]"))
                self._end()

            def _slow(self, model: str) -> None:
                deadline = time.monotonic() + 10
                try:
                    while time.monotonic() < deadline:
                        self._send(_event(_chunk(model, {"content": "토큰 "})))
                        server.slow_sent += 1
                        time.sleep(0.02)
                except OSError:  # BrokenPipe / ConnectionReset: the client closed the stream
                    server.disconnected.set()
                    self.close_connection = True

            def _start_stream(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.flush()

            def _send(self, data: bytes) -> None:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

            def _end(self) -> None:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()

            def _drop(self) -> None:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        self.httpd, self.base_url, self.thread = serve_local(Handler)
