"""Follow-up suggestions: from retrieval (real KB) and LLM-written through a real local
OpenAI-compatible streaming server, with every fallback (server error, timeout, unusable reply)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from faq_fixtures import FaqKB
from http_fixtures import send_json, serve_local
from jisik.apps.faq import RetrievalSuggester, clean_title
from jisik.apps.faq.suggest import similarity
from jisik.core.types import Chunk, Hit
from jisik.models.llm import ExtractiveLLM, OpenAICompatibleLLM

QUESTION = "반품 배송비는 판매자랑 구매자 중 누가 내요?"
GOOD_REPLY = "추천 질문입니다:\n1. 구매자가 반품배송비를 결제했는지 어디서 확인해요?\n2) 반품 배송비가 착불로 오면 어떻게 하나요?\n" \
             "- 반품 배송비는 판매자랑 구매자 중 누가 내나요?\n- 반품 배송비가 자동으로 청구되나요?"


def faq_hits(kb: FaqKB, q: str = QUESTION) -> list[Hit]:
    return kb.runtime.retriever.retrieve(q, "faq", top_k=5, overrides={"max_per_doc": 3}).hits


def hit(doc_id: str, title: str, score: float = 1.0) -> Hit:
    return Hit(Chunk(f"c-{doc_id}", doc_id, f"{title}\n답변 내용", title=title), score, "faq", {"fused": score})


def test_clean_title_and_similarity() -> None:
    assert clean_title("[가입절차] 스마트스토어센터 회원가입은  어떻게 하나요?") == "스마트스토어센터 회원가입은 어떻게 하나요?"
    assert clean_title("[스마트스토어][사업자 대출] 정산계좌 변경은?") == "정산계좌 변경은?"
    assert clean_title("태그 없는 질문") == "태그 없는 질문"
    assert similarity("반품 배송비는 누가 내나요?", "반품배송비는 누가 내나요") == 1.0
    assert similarity("반품 배송비", "정산 계좌 변경") == 0.0


def test_retrieval_suggestions_from_the_kb(faq_kb: FaqKB) -> None:
    hits = faq_hits(faq_kb)
    out = asyncio.run(RetrievalSuggester().suggest(QUESTION, "답변", hits))
    assert 2 <= len(out) <= 3 and len(set(out)) == len(out)
    answered = clean_title(hits[0].chunk.title)
    for s in out:
        assert not s.startswith("[") and s != answered and similarity(s, QUESTION) < 0.6
        assert s in {clean_title(h.chunk.title) for h in hits[1:]}
    assert asyncio.run(RetrievalSuggester().suggest(QUESTION, "답변", hits, limit=2)) == out[:2]
    assert asyncio.run(RetrievalSuggester().suggest(QUESTION, "답변", [])) == []


def test_mmr_skips_near_duplicates_and_the_answered_entry() -> None:
    hits = [hit("a", "[반품] 반품배송비는 누가 부담하나요?"), hit("b", "[반품] 반품 배송비는 누가 부담하나요"),
            hit("c", "[정산] 정산 계좌 변경은 어떻게 하나요?"), hit("d", "[정산] 정산계좌 변경은 어떻게 하나요?!"),
            hit("c", "[정산] 정산 계좌 변경은 어떻게 하나요?"),  # a second chunk of entry c
            hit("e", "[휴무] 주말은 휴무일로 자동 설정되나요?"), hit("f", "[가입] 회원가입 시 계좌인증이 안돼요")]
    out = RetrievalSuggester().from_hits("반품 배송비 누가 내요?", hits, limit=3)
    assert out == ["정산 계좌 변경은 어떻게 하나요?", "주말은 휴무일로 자동 설정되나요?", "회원가입 시 계좌인증이 안돼요"]


def test_parse_llm_replies() -> None:
    s = RetrievalSuggester()
    assert s.parse(GOOD_REPLY, QUESTION) == ["구매자가 반품배송비를 결제했는지 어디서 확인해요?",
                                             "반품 배송비가 착불로 오면 어떻게 하나요?", "반품 배송비가 자동으로 청구되나요?"]
    fenced = '```json\n["정산은 언제 되나요?", "정산 계좌는 어디서 바꿔요?"]\n```'
    assert s.parse(fenced, QUESTION) == ["정산은 언제 되나요?", "정산 계좌는 어디서 바꿔요?"]
    assert s.parse("I cannot help with that.", QUESTION) == []
    grounded = s.parse("주말 휴무일 설정은 어떻게 하나요?\n우주여행 비용은 얼마예요?", QUESTION, {"휴무", "주말", "설정"})
    assert grounded == ["주말 휴무일 설정은 어떻게 하나요?"]


class SuggestServer:
    """A real local server for ``POST /v1/chat/completions`` (SSE). The model name picks the reply:
    ``good``, ``junk`` (nothing usable), ``fail`` (HTTP 500), ``slow`` (waits 3 s before answering)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                model = body["model"]
                if model == "fail":
                    return send_json(self, 500, {"error": {"message": "boom"}})
                if model == "slow":
                    time.sleep(3)
                text = GOOD_REPLY if model in ("good", "slow") else "잘 모르겠습니다."
                events: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"content": part}, "finish_reason": None}]}
                          for part in (text[:20], text[20:])]
                events.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                payload = b"".join(f"data: {json.dumps(e, ensure_ascii=False)}\n\n".encode() for e in events)
                payload += b"data: [DONE]\n\n"
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up waiting (the "slow" case)
                    self.close_connection = True

        self.httpd, self.base_url, self.thread = serve_local(Handler)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server() -> Iterator[SuggestServer]:
    s = SuggestServer()
    yield s
    s.close()


def run_llm(server: SuggestServer, model: str, hits: list[Hit], timeout_s: float = 5.0) -> list[str]:
    async def go() -> list[str]:
        llm = OpenAICompatibleLLM(server.base_url, None, model, max_retries=0)
        try:
            return await RetrievalSuggester(llm_timeout_s=timeout_s).suggest(QUESTION, "판매자가 부담합니다 [1].", hits,
                                                                           llm=llm)
        finally:
            await llm.aclose()

    return asyncio.run(go())


def test_llm_written_suggestions(faq_kb: FaqKB, server: SuggestServer) -> None:
    hits = faq_hits(faq_kb)
    out = run_llm(server, "good", hits)
    assert out == ["구매자가 반품배송비를 결제했는지 어디서 확인해요?", "반품 배송비가 착불로 오면 어떻게 하나요?",
                   "반품 배송비가 자동으로 청구되나요?"]
    prompt = server.requests[0]["messages"][-1]["content"]
    assert QUESTION in prompt and clean_title(hits[1].chunk.title) in prompt and "[" + "1] " in prompt


def test_llm_failures_fall_back_to_retrieval(faq_kb: FaqKB, server: SuggestServer) -> None:
    hits = faq_hits(faq_kb)
    expected = RetrievalSuggester().from_hits(QUESTION, hits)
    assert run_llm(server, "fail", hits) == expected
    assert run_llm(server, "junk", hits) == expected  # nothing usable: topped up from retrieval
    t = time.perf_counter()
    assert run_llm(server, "slow", hits, timeout_s=0.5) == expected
    assert time.perf_counter() - t < 2.5
    # an extractive provider writes no suggestions: retrieval only, no request
    n = len(server.requests)
    out = asyncio.run(RetrievalSuggester().suggest(QUESTION, "답변", hits, llm=ExtractiveLLM()))
    assert out == expected and len(server.requests) == n
