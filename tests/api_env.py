"""API test helpers: settings of test apps, clients through ASGI (lifespan run), a REAL uvicorn
server on a free port (SSE, WebSocket, schemathesis) and an SSE parser."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from chat_fixtures import free_port
from jisik.core.settings import Settings


def wait_until_ok(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; fails with the server's log if the process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, log.read_text(encoding="utf-8")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text(encoding="utf-8")
        time.sleep(0.2)


ADMIN_KEY = "admin-secret-key"
USER_KEY = "user-secret-key"


def api_settings(home: Path, **overrides: Any) -> Settings:
    """Settings of a test app: its own home (stores), admin key set, no rate limit, no replay loop."""
    base: dict[str, Any] = {"home": home, "admin_api_key": ADMIN_KEY, "rate_limit_per_min": 0,
                            "spool_replay_interval_s": 0, "default_collection": "faq"}
    return Settings(**(base | overrides))


MakeApp = Callable[..., FastAPI]


@contextlib.asynccontextmanager
async def asgi_client(app: FastAPI, **headers: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client calling the app in-process, with its lifespan (stores, LLM) started and stopped."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test", headers=headers) as client:
            yield client


class LiveServer:
    """The app on a real uvicorn server (own thread) at ``url``."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on",
                                ws="websockets-sansio", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the uvicorn test server did not start", pytrace=False)
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(event, id, data) of a text/event-stream, in order (comments skipped)."""
    import json

    event, ident, data = "", 0, ""
    for line in lines:
        if line.startswith(":"):
            continue
        if not line:
            if event:
                yield event, ident, json.loads(data)
            event, ident, data = "", 0, ""
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("id: "):
            ident = int(line[4:])
        elif line.startswith("data: "):
            data += line[6:]
