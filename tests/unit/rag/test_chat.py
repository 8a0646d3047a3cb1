"""The chat use case on a real small knowledge base (real Kiwi + e5-small, embedded stores)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chat_fixtures import COLLECTION, ScriptedLLM, build_runtime, free_port, shop_app
from jisik.apps.base import App, get_app
from jisik.core.errors import InvalidInput, NotFound, PayloadTooLarge, Unavailable
from jisik.core.pseudonym import Pseudonymizer
from jisik.core.settings import Settings
from jisik.core.types import Document
from jisik.models.llm import ExtractiveLLM, OpenAICompatibleLLM
from jisik.rag.chat import ChatService
from jisik.rag.chat_types import ChatEvent, ChatRequest
from jisik.rag.extractive import NOT_FOUND_KO
from jisik.runtime import Runtime
from jisik.stores.conversations import ConversationStores, LogQuery, open_conversation_stores
from jisik.text.chunking import make_chunker


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = build_runtime(tmp_path_factory.mktemp("kb"))
    yield rt
    rt.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path, history_keep_turns=2)


@pytest.fixture
def stores(settings: Settings) -> Iterator[ConversationStores]:
    st = open_conversation_stores(settings, pseudonymize=Pseudonymizer(b"test"))
    yield st
    st.close()


def service(runtime: Runtime, stores: ConversationStores, settings: Settings, llm: Any = None) -> ChatService:
    apps = {"shop": shop_app}

    def lookup(name: str) -> App:
        return apps[name]() if name in apps else get_app(name)

    return ChatService(runtime, stores, llm or ExtractiveLLM(runtime.tokenizer), settings=settings, apps=lookup)


async def events_of(svc: ChatService, req: ChatRequest) -> list[ChatEvent]:
    return [ev async for ev in svc.stream(req)]


def test_stream_events_citations_and_saved_session(runtime: Runtime, stores: ConversationStores,
                                                    settings: Settings) -> None:
    svc = service(runtime, stores, settings)
    evs = asyncio.run(events_of(svc, ChatRequest("정산 계좌를 바꾸고 싶어요", collection=COLLECTION, user_id="kim")))
    kinds = [e.type for e in evs]
    assert kinds[0] == "retrieval" and kinds[-1] == "done" and "error" not in kinds
    assert kinds.index("citation") > max(i for i, k in enumerate(kinds) if k == "token")
    done = evs[-1].data
    assert done["outcome"] == "answered" and "[1]" in done["answer"]
    assert done["provider"]["kind"] == "extractive" and done["provider"]["label_ko"].startswith("추출형")
    cites = [e.data for e in evs if e.type == "citation"]
    assert cites[0]["n"] == 1 and cites[0]["citation"]["doc_id"] == "settle"
    assert cites[0]["citation"]["source_uri"] == "faq://settle" and "정산 계좌" in cites[0]["citation"]["text"]
    assert evs[0].data["hits"][0]["doc_id"] == "settle" and evs[0].data["timings_ms"]["retrieval"] > 0

    sid = done["session_id"]
    history = stores.sessions.history(sid)
    assert [m.role for m in history] == ["user", "assistant"]
    assert history[1].message_id == done["message_id"] and history[1].citations[0]["doc_id"] == "settle"
    logs = stores.chatlogs.list(LogQuery(session_id=sid)).items
    assert len(logs) == 1 and logs[0].answered and logs[0].message_id == done["message_id"]
    assert logs[0].user_id.startswith("u_")  # pseudonymised


def test_answer_cache_is_keyed_by_index_version(tmp_path: Path, stores: ConversationStores,
                                                settings: Settings) -> None:
    rt = build_runtime(tmp_path / "own-kb")
    try:
        svc = service(rt, stores, settings)
        first = asyncio.run(svc.query("공휴일도 휴무일로 자동 설정되나요?", collection=COLLECTION))
        again = asyncio.run(svc.query("공휴일도  휴무일로 자동 설정되나요", collection=COLLECTION))
        assert not first.cached and again.cached and again.answer == first.answer
        assert again.citations == first.citations
        other_k = asyncio.run(svc.query("공휴일도 휴무일로 자동 설정되나요?", collection=COLLECTION, top_k=2))
        assert not other_k.cached
        extra = Document("holiday2", "[휴무 관리] 임시 휴무는 어떻게 등록하나요?\n휴무일 관리에서 임시 휴무를 등록합니다.",
                         "[휴무 관리] 임시 휴무 등록")
        rt.indexer(make_chunker("whole")).index(COLLECTION, [extra], note="new version")
        svc.forget_version(COLLECTION)
        after = asyncio.run(svc.query("공휴일도 휴무일로 자동 설정되나요?", collection=COLLECTION))
        assert not after.cached  # a new index version: old answers are never served
    finally:
        rt.close()


def test_nothing_relevant_is_not_found_without_asking_the_llm(runtime: Runtime, stores: ConversationStores,
                                                               tmp_path: Path) -> None:
    strict = Settings(home=tmp_path, answer_min_score=0.9, answer_score_signal="lexical")
    llm = ScriptedLLM()
    svc = service(runtime, stores, strict, llm)
    r = asyncio.run(svc.answer(ChatRequest("내일 서울 날씨는 맑을까요?", collection=COLLECTION)))
    assert r.outcome == "not_found" and r.answer == NOT_FOUND_KO and r.citations == []
    assert llm.calls == []
    log = stores.chatlogs.list(LogQuery(session_id=r.session_id)).items[0]
    assert not log.answered and not log.off_topic


def test_off_topic_gate_refuses_and_is_logged(runtime: Runtime, stores: ConversationStores,
                                             settings: Settings) -> None:
    llm = ScriptedLLM()
    svc = service(runtime, stores, settings, llm)
    evs = asyncio.run(events_of(svc, ChatRequest("내일 서울 날씨는 맑을까요?", app="shop")))
    done = evs[-1].data
    assert done["outcome"] == "off_topic" and done["answer"].startswith("죄송합니다")
    assert not any(e.type in ("citation", "suggestions") for e in evs) and llm.calls == []
    log = stores.chatlogs.list(LogQuery(session_id=done["session_id"])).items[0]
    assert log.off_topic and not log.answered and log.app == "shop"


def test_app_prompt_suggestions_and_follow_up_by_session(runtime: Runtime, stores: ConversationStores,
                                                        settings: Settings) -> None:
    llm = ScriptedLLM()
    svc = service(runtime, stores, settings, llm)
    first = asyncio.run(svc.answer(ChatRequest("정산 계좌 변경은 어디서 하나요?", app="shop")))
    assert first.app == "shop" and first.suggestions and len(first.suggestions) <= 3
    assert "FAQ 항목" in llm.calls[0][-1]["content"]  # the faq prompt of the app
    follow = asyncio.run(svc.answer(ChatRequest("예금주 조건은요?", session_id=first.session_id)))
    assert follow.app == "shop" and follow.session_id == first.session_id


def test_llm_answer_is_checked_and_history_summarised(runtime: Runtime, stores: ConversationStores,
                                                      settings: Settings) -> None:
    llm = ScriptedLLM()
    svc = service(runtime, stores, settings, llm)
    r = asyncio.run(svc.answer(ChatRequest("정산 계좌를 바꾸고 싶어요", collection=COLLECTION)))
    assert "[9]" not in r.answer and "[1]" in r.answer
    assert r.grounding["invalid"] == [9] and r.grounding["used"] == [1]
    assert [c["n"] for c in r.citations] == [1] and r.provider["kind"] == "llm"
    assert r.usage["completion_tokens"] > 0 and r.timings_ms["generation"] >= 0
    sid = r.session_id
    for q in ["반품 배송비는요?", "회원가입은 어떻게 해요?", "구매평 삭제 되나요?", "공휴일 휴무 설정은요?"]:
        asyncio.run(svc.answer(ChatRequest(q, session_id=sid)))
    last = llm.calls[-1]
    assert [m["role"] for m in last[-5:]] == ["user", "assistant", "user", "assistant", "user"]
    assert [last[-5]["content"], last[-3]["content"]] == ["회원가입은 어떻게 해요?", "구매평 삭제 되나요?"]
    assert "이전 대화 요약" in last[-1]["content"] and "[1]" not in last[-4]["content"]
    assert sum(m["content"] == "반품 배송비는요?" for m in last) == 0  # folded into the summary
    session = stores.sessions.get(sid)
    assert session.summary and session.summary_upto > 0
    again = asyncio.run(svc.answer(ChatRequest("공휴일 휴무 설정은요?", session_id=sid)))
    assert not again.cached  # the LLM saw a history: its answer is not reused


def test_stopping_the_consumer_closes_the_llm_stream_and_logs(runtime: Runtime, stores: ConversationStores,
                                                              settings: Settings) -> None:
    llm = ScriptedLLM(" ".join(["단어"] * 200), delay_s=0.02)
    svc = service(runtime, stores, settings, llm)

    async def read_two_tokens_then_stop() -> str:
        gen = svc.stream(ChatRequest("정산 계좌를 바꾸고 싶어요", collection=COLLECTION))
        seen = 0
        sid = ""
        async for ev in gen:
            sid = ev.data.get("session_id") or sid
            seen += ev.type == "token"
            if seen == 2:
                break
        await gen.aclose()
        return sid

    sid = asyncio.run(read_two_tokens_then_stop())
    assert llm.closed_early == 1 and llm.finished == 0

    async def cancel_task() -> None:
        task = asyncio.create_task(svc.answer(ChatRequest("반품 배송비", collection=COLLECTION)))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_task())
    assert llm.closed_early == 2
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        logs = stores.chatlogs.list(LogQuery(session_id=sid)).items
        if logs:
            break
        time.sleep(0.05)
    assert logs and logs[0].answer.startswith("[cancelled]") and not logs[0].answered


def test_unreachable_llm_is_an_error_event_and_a_logged_question(runtime: Runtime, stores: ConversationStores,
                                                                 settings: Settings) -> None:
    llm = OpenAICompatibleLLM(f"http://127.0.0.1:{free_port()}/v1", None, "m", max_retries=0, connect_timeout_s=1)
    svc = service(runtime, stores, settings, llm)
    evs = asyncio.run(events_of(svc, ChatRequest("정산 계좌를 바꾸고 싶어요", collection=COLLECTION)))
    assert [e.type for e in evs] == ["retrieval", "error"]
    assert evs[-1].data["status"] == 503 and "LLM" in evs[-1].data["message_ko"]
    with pytest.raises(Unavailable):
        asyncio.run(svc.answer(ChatRequest("정산 계좌를 바꾸고 싶어요", collection=COLLECTION)))
    logs = stores.chatlogs.list(LogQuery(collection=COLLECTION)).items
    assert len(logs) == 2 and all(x.answer.startswith("[unavailable]") and not x.answered for x in logs)


@pytest.mark.parametrize(("req", "error"), [
    (ChatRequest("   ", collection=COLLECTION), InvalidInput),
    (ChatRequest("가" * 3000, collection=COLLECTION), PayloadTooLarge),
    (ChatRequest("가입", collection="nope"), NotFound),
    (ChatRequest("가입", app="nope"), NotFound),
    (ChatRequest("가입", app="shop", collection="other"), InvalidInput),
    (ChatRequest("가입", collection=COLLECTION, variables={"nope": "x"}), InvalidInput),
    (ChatRequest("가입", collection=COLLECTION, top_k=0), InvalidInput),
    (ChatRequest("가입", session_id="bad id!"), InvalidInput),
])
def test_prepare_rejects_bad_requests(runtime: Runtime, stores: ConversationStores, settings: Settings,
                                      req: ChatRequest, error: type[Exception]) -> None:
    svc = service(runtime, stores, settings)
    with pytest.raises(error):
        asyncio.run(svc.prepare(req))
    assert stores.chatlogs.list(LogQuery()).total == 0  # client errors are not chat-logged


class KeywordGate:
    """On topic when the question names a store topic (judges the text only)."""

    def check(self, question: str, hits: Any) -> Any:
        from jisik.apps.base import TopicDecision

        on = any(k in question for k in ("정산", "반품", "배송"))
        return TopicDecision(on, 1.0 if on else 0.0, "keyword" if on else "no keyword")


def test_a_short_follow_up_is_judged_with_the_previous_question(runtime: Runtime, stores: ConversationStores,
                                                                settings: Settings) -> None:
    from chat_fixtures import shop_app as base_app

    def gated() -> App:
        app = base_app()
        app.offtopic = KeywordGate()
        return app

    svc = ChatService(runtime, stores, ExtractiveLLM(runtime.tokenizer), settings=settings,
                      apps=lambda name: gated())
    first = asyncio.run(svc.answer(ChatRequest("정산 계좌 변경은 어디서 하나요?", app="shop")))
    assert first.outcome != "off_topic"
    follow = asyncio.run(svc.answer(ChatRequest("그럼 예금주 조건은요?", session_id=first.session_id)))
    assert follow.outcome != "off_topic"  # alone it has no store keyword; with the previous question it does
    fresh = asyncio.run(svc.answer(ChatRequest("그럼 예금주 조건은요?", app="shop")))
    assert fresh.outcome == "off_topic"  # a new session has nothing to lean on


def test_multi_query_with_an_llm_searches_its_rewrites_too(runtime: Runtime, stores: ConversationStores,
                                                           settings: Settings) -> None:
    from jisik.retrieval.multiquery import EXPAND_SYSTEM_KO

    original = runtime.retriever.settings
    runtime.retriever.settings = original.model_copy(update={"multi_query": True})
    try:
        llm = ScriptedLLM("정산 계좌는 판매자 정보 메뉴에서 바꿉니다 [1].")
        svc = service(runtime, stores, settings, llm)
        evs = asyncio.run(events_of(svc, ChatRequest("대금 받을 통장 바꾸려면?", collection=COLLECTION)))
        done = evs[-1].data
        assert done["outcome"] == "answered" and "expand" in done["timings_ms"]
        assert len(llm.calls) == 2 and llm.calls[0][0]["content"] == EXPAND_SYSTEM_KO  # rewrite, then answer
        assert evs[0].data["hits"][0]["doc_id"] == "settle"
        result = runtime.retriever.retrieve("대금 받을 통장 바꾸려면?", COLLECTION, variants=["정산 계좌 변경"])
        assert result.variants == ["대금 받을 통장 바꾸려면?", "정산 계좌 변경"]
        assert result.hits[0].chunk.doc_id == "settle"
    finally:
        runtime.retriever.settings = original
