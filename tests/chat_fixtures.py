"""Shared by the chat use-case and API tests: a small real knowledge base (real Kiwi, real e5-small),
an app with an off-topic gate and suggestions, an LLM provider that streams a scripted answer, and a
real OpenAI-compatible HTTP server (slow, counting what it sent and noticing when the client left)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import Any

from jisik.apps.base import App, TopicDecision
from jisik.core.settings import Settings
from jisik.core.types import Document, Hit
from jisik.models.llm.base import ChatMessage, Completion, ProviderKind, TokenStream, Usage
from jisik.runtime import Runtime
from jisik.text.chunking import make_chunker

COLLECTION = "faq"
DOCS = [
    Document("join", "[가입절차] 스마트스토어센터 회원가입은 어떻게 하나요?\n네이버 커머스 ID로 판매자 가입을 진행합니다. "
             "사업자 판매자는 사업자등록증이 필요합니다.", "[가입절차] 스마트스토어센터 회원가입은 어떻게 하나요?",
             "faq://join", {"entry": 0}, {"category": "가입절차"}),
    Document("refund", "[반품] 부분 반품 시 초기 배송비도 환불되나요?\n부분 반품이면 초기 배송비는 환불되지 않고 "
             "반품 배송비가 청구될 수 있습니다.", "[반품] 부분 반품 시 초기 배송비도 환불되나요?", "faq://refund",
             {"entry": 1}, {"category": "반품"}),
    Document("settle", "[정산] 정산 계좌를 변경하고 싶어요.\n판매자 정보 메뉴에서 정산 계좌를 변경할 수 있으며 "
             "예금주는 사업자 명의와 같아야 합니다.", "[정산] 정산 계좌를 변경하고 싶어요.", "faq://settle",
             {"entry": 2}, {"category": "정산"}),
    Document("holiday", "[휴무 관리] 공휴일은 휴무일로 자동 설정되나요?\n공휴일은 자동으로 휴무일로 지정되지 않으므로 "
             "휴무일 관리에서 직접 등록해야 합니다.", "[휴무 관리] 공휴일은 휴무일로 자동 설정되나요?", "faq://holiday",
             {"entry": 3}, {"category": "휴무 관리"}),
    Document("review", "[리뷰] 구매평을 삭제할 수 있나요?\n판매자는 구매평을 임의로 삭제할 수 없으며 부적절한 구매평은 "
             "신고할 수 있습니다.", "[리뷰] 구매평을 삭제할 수 있나요?", "faq://review", {"entry": 4},
             {"category": "리뷰"}),
]


def build_runtime(home: Path, **settings: Any) -> Runtime:
    """A runtime over ``home`` with the ``faq`` collection indexed (real e5-small + Kiwi)."""
    rt = Runtime(Settings(home=home, **settings))
    rt.indexer(make_chunker("whole")).index(COLLECTION, DOCS, sync=True, note="test")
    return rt


class LexicalGate:
    """Off topic when no hit matches the question's words (the lexical signal stays low)."""

    def __init__(self, min_lexical: float = 0.3) -> None:
        self.min_lexical = min_lexical

    def check(self, question: str, hits: Sequence[Hit]) -> TopicDecision:
        best = max((h.scores.get("lexical", 0.0) for h in hits), default=0.0)
        return TopicDecision(best >= self.min_lexical, best, "lexical" if best >= self.min_lexical else "no match")


class TitleSuggester:
    """Suggests the titles of the other retrieved entries."""

    async def suggest(self, question: str, answer: str, hits: Sequence[Hit], *, llm: Any | None = None,
                      limit: int = 3) -> list[str]:
        titles = [h.chunk.title.split("] ", 1)[-1] for h in hits[1:]]
        return [t for t in titles if t and t != question][:limit]


def shop_app() -> App:
    return App(name="shop", collection=COLLECTION, prompt="faq", title="쇼핑 FAQ", top_k=3,
               offtopic=LexicalGate(), suggester=TitleSuggester(),
               refusal="죄송합니다. 스마트스토어 이용에 관한 질문에만 답변할 수 있습니다.")


class ScriptedLLM:
    """An LLM provider streaming a fixed answer word by word (``delay_s`` apart); records calls and
    whether each stream was closed before its end."""

    kind: ProviderKind = "llm"
    name = "scripted"
    model_id = "test/scripted"

    def __init__(self, answer: str = "정산 계좌는 판매자 정보 메뉴에서 바꿉니다 [1]. 없는 출처 [9].",
                 delay_s: float = 0.0) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self.calls: list[list[ChatMessage]] = []
        self.closed_early = 0
        self.finished = 0

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None,
               temperature: float | None = None, stop: Sequence[str] | None = None, hits: Sequence[Hit] = (),
               question: str | None = None) -> TokenStream:
        self.calls.append(list(messages))
        return TokenStream(self._gen)

    async def _gen(self, out: TokenStream) -> AsyncGenerator[str, None]:
        words = self.answer.split(" ")
        done = False
        try:
            for i, w in enumerate(words):
                await asyncio.sleep(self.delay_s)
                out.usage = Usage(10, i + 1)
                yield w if i == 0 else " " + w
            out.finish_reason = "stop"
            done = True
            self.finished += 1
        finally:
            if not done:
                self.closed_early += 1

    async def complete(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None,
                       temperature: float | None = None, stop: Sequence[str] | None = None,
                       hits: Sequence[Hit] = (), question: str | None = None) -> Completion:
        return await self.stream(messages).collect()

    async def aclose(self) -> None:
        return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeOpenAIServer:
    """A real HTTP server speaking OpenAI's streaming ``/v1/chat/completions`` (its own thread and
    event loop). Sends ``tokens`` deltas ``delay_s`` apart; ``sent`` counts them and
    ``disconnected`` is set when the client closed the connection before the end."""

    def __init__(self, tokens: int = 200, delay_s: float = 0.05) -> None:
        self.tokens = tokens
        self.delay_s = delay_s
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.sent = 0
        self.requests = 0
        self.disconnected = threading.Event()
        self.completed = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake LLM server did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()
        self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            length = next((int(v) for k, _, v in (ln.partition(":") for ln in lines[1:])
                           if k.strip().lower() == "content-length"), 0)
            if length:
                await reader.readexactly(length)
            if " /v1/models" in lines[0]:
                body = b'{"object":"list","data":[{"id":"fake"}]}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
                             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                await writer.drain()
                return
            self.requests += 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n")
            await writer.drain()
            eof = asyncio.ensure_future(reader.read(1))  # b"" when the client hangs up
            for i in range(self.tokens):
                if eof.done():
                    self.disconnected.set()
                    return
                chunk = {"model": "fake", "choices": [{"index": 0, "delta": {"content": f"토큰{i} "}}]}
                writer.write(f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode())
                await writer.drain()
                self.sent += 1
                await asyncio.sleep(self.delay_s)
            end = {"model": "fake", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                   "usage": {"prompt_tokens": 50, "completion_tokens": self.tokens}}
            writer.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
            await writer.drain()
            self.completed.set()
            eof.cancel()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.disconnected.set()
        finally:
            writer.close()
