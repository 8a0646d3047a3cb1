"""Server-sent events for the chat stream, with disconnect detection.

Each event is ``event: <type>`` + ``id: <n>`` + ``data: <json>``; a comment line (``: ping``)
goes out when nothing was sent for ``heartbeat_s`` so proxies keep the connection open.

Starlette's StreamingResponse notices a client that went away only when its next write fails,
which can be long while an LLM thinks. This response also listens for ``http.disconnect`` and
then cancels the event generator at once: the cancellation reaches the pending LLM read, whose
HTTP stream is closed, so the LLM server stops generating.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable
from typing import Any

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from jisik.rag.chat_types import ChatEvent


def format_event(ev: ChatEvent, n: int) -> bytes:
    data = json.dumps(ev.data, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"event: {ev.type}\nid: {n}\ndata: {data}\n\n".encode()


class EventStreamResponse(Response):
    media_type = "text/event-stream"

    def __init__(self, events: AsyncGenerator[ChatEvent, None], *, heartbeat_s: float = 15.0,
                 on_event: Callable[[ChatEvent], None] | None = None,
                 on_disconnect: Callable[[], None] | None = None) -> None:
        # no Response.__init__: it would set Content-Length of an empty body
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.events = events
        self.heartbeat_s = heartbeat_s
        self.on_event = on_event
        self.on_disconnect = on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        disconnected = False
        last_sent = anyio.current_time()
        lock = anyio.Lock()

        async def write(body: bytes, more: bool = True) -> None:
            nonlocal last_sent
            async with lock:
                await send({"type": "http.response.body", "body": body, "more_body": more})
                last_sent = anyio.current_time()

        async def watch(scope_: anyio.CancelScope) -> None:
            nonlocal disconnected
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    disconnected = True
                    scope_.cancel()
                    return

        async def heartbeat() -> None:
            while True:
                await anyio.sleep(max(0.05, self.heartbeat_s - (anyio.current_time() - last_sent)))
                if anyio.current_time() - last_sent >= self.heartbeat_s:
                    await write(b": ping\n\n")

        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch, tg.cancel_scope)
                tg.start_soon(heartbeat)
                try:
                    n = 0
                    async for ev in self.events:
                        n += 1
                        if self.on_event is not None:
                            self.on_event(ev)
                        await write(format_event(ev, n))
                    await write(b"", more=False)
                except OSError:  # the server noticed the client left while writing
                    disconnected = True
                finally:
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.events.aclose()
            if disconnected and self.on_disconnect is not None:
                self.on_disconnect()


def sse_schema() -> dict[int | str, dict[str, Any]]:
    """OpenAPI description of the stream (for /docs)."""
    return {200: {"description": "text/event-stream: retrieval, token*, citation*, suggestions?, done | error",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}}}}
