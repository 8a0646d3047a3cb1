"""The web UI in a real browser (headless Debian chromium via Playwright) against real uvicorn
servers of the API with the extractive provider and a small indexed Korean FAQ collection.

Every test records each request its pages make and checks that all went to the jisik server;
screenshots are saved as test artifacts (see conftest.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx

from api_env import ADMIN_KEY, USER_KEY
from chat_fixtures import free_port
from jisik.models.llm import OpenAICompatibleLLM
from jisik.pipeline.runner import RunReport, StageReport

QUESTION = "정산 계좌를 바꾸려면 어떻게 하나요?"
# counts how often an answer's text changed while it was still streaming (aria-busy="true")
COUNT_STREAM_UPDATES = """
window.__streamUpdates = 0;
new MutationObserver((records) => {
  for (const r of records) {
    const el = r.target.nodeType === 1 ? r.target : r.target.parentElement;
    if (el && el.matches && el.matches('.msg.assistant[aria-busy="true"] .text')) window.__streamUpdates++;
  }
}).observe(document, { subtree: true, childList: true, characterData: true });
"""
FOCUS_VISIBLE = """() => {
  const el = document.activeElement;
  const s = getComputedStyle(el);
  return s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2;
}"""


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as pw_expect

    return pw_expect(locator)


def ask(page: Any, question: str) -> Any:
    """Type a question, send it with Enter and wait for the finished answer (its <li>)."""
    before = page.locator(".msg.assistant").count()
    page.fill("#question", question)
    page.press("#question", "Enter")
    answer = page.locator(".msg.assistant").nth(before)
    expect(answer).to_have_attribute("aria-busy", "false")
    return answer


def login_admin(page: Any) -> None:
    expect(page.locator("#login")).to_be_visible()
    page.get_by_label("관리자 API 키").fill(ADMIN_KEY)
    page.get_by_role("button", name="대시보드 열기").click()
    expect(page.locator("#admin-main")).to_be_visible()


def test_question_streams_with_citation_and_feedback_counts_on_dashboard(web: Any) -> None:
    s = web()
    s.context.add_init_script(COUNT_STREAM_UPDATES)
    page = s.page("/")  # a browser asking for / lands on the chat page
    assert page.url == s.origin + "/ui/"
    expect(page.locator("#provider-note")).to_contain_text("추출형 답변")
    page.select_option("#target", "app:shop")

    answer = ask(page, QUESTION)
    assert page.evaluate("window.__streamUpdates") >= 3  # rendered token by token before it finished
    expect(answer.locator(".text")).to_contain_text("판매자 정보 메뉴에서 정산 계좌를 변경할 수 있으며")
    marker = answer.locator("button.cite").first
    expect(marker).to_have_text("[1]")
    expect(answer.locator(".sources")).to_contain_text("정산 계좌를 변경하고 싶어요")
    expect(answer.locator(".chips .chip").first).to_be_visible()  # follow-up suggestions
    s.screenshot(page, "chat-answer")

    marker.click()
    dialog = page.locator("#citation-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#citation-title")).to_contain_text("[1] [정산] 정산 계좌를 변경하고 싶어요.")
    expect(page.locator("#citation-text")).to_contain_text("예금주는 사업자 명의와 같아야 합니다")
    expect(page.locator("#citation-facts")).to_contain_text("faq://settle")
    expect(page.locator("#citation-facts")).to_contain_text("항목 #2")
    s.screenshot(page, "chat-citation")
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    assert page.evaluate("document.activeElement.classList.contains('cite')")  # focus back on the marker

    answer.get_by_role("button", name="좋아요").click()
    expect(answer.locator(".fb-status")).to_have_text("평가를 보냈습니다. 고맙습니다!")
    expect(answer.get_by_role("button", name="좋아요")).to_have_attribute("aria-pressed", "true")
    answer.get_by_label("의견 (선택)").fill("정확하고 빨라요")
    answer.get_by_role("button", name="의견 보내기").click()
    expect(answer.locator(".fb-status")).to_have_text("의견을 보냈습니다. 고맙습니다!")

    admin = s.page("/ui/admin")
    login_admin(admin)
    expect(admin.locator("[data-stat=feedback_up] .value")).to_have_text("1")
    expect(admin.locator("[data-stat=feedback_down] .value")).to_have_text("0")
    expect(admin.locator("[data-stat=questions] .value")).to_have_text("1")
    expect(admin.locator("#feedback-summary")).to_contain_text("의견이 있는 평가 1건")
    expect(admin.locator("#table-feedback-comments")).to_contain_text("정확하고 빨라요")  # the comment itself
    expect(admin.locator("#table-top")).to_contain_text(QUESTION)
    expect(admin.locator("#table-logs")).to_contain_text(QUESTION)
    expect(admin.locator("#index-list")).to_contain_text("faq — 현재 버전 1, 문서 5개")
    for canvas in ("chart-trends", "chart-latency", "chart-feedback", "chart-feedback-days"):
        assert admin.evaluate(f"!!window.Chart.getChart(document.getElementById('{canvas}'))"), canvas
    s.finish(admin, "admin-dashboard")


def test_suggestion_follow_up_and_session_history(web: Any) -> None:
    s = web()
    page = s.page()
    page.select_option("#target", "app:shop")
    first = ask(page, QUESTION)
    chip = first.locator(".chips .chip").first
    follow_up = chip.inner_text()
    chip.click()
    second = page.locator(".msg.assistant").nth(1)
    expect(second).to_have_attribute("aria-busy", "false")
    expect(page.locator(".msg.user").nth(1)).to_contain_text(follow_up)

    sessions = page.locator("#session-list li")
    expect(sessions).to_have_count(1)
    expect(sessions.first).to_contain_text(QUESTION[:20])
    page.get_by_role("button", name="새 대화").click()
    expect(page.locator("#messages > li")).to_have_count(0)
    expect(page.locator("#intro")).to_be_visible()

    page.locator("#session-list .session-open").first.click()  # history comes back from the server
    expect(page.locator("#messages > li")).to_have_count(4)
    expect(page.locator(".msg.assistant button.cite").first).to_be_visible()
    expect(page.locator("#session-list .session-open").first).to_have_attribute("aria-current", "true")
    ask(page, "부분 반품 시 배송비는 환불되나요?")  # continues the same session
    expect(sessions).to_have_count(1)

    user_id = page.evaluate("localStorage.getItem('jisik.userId')")
    listed = httpx.get(f"{s.origin}/api/v1/sessions", params={"user_id": user_id}).json()
    assert listed["total"] == 1 and listed["items"][0]["message_count"] == 6
    s.finish(page, "chat-session-history")


def test_keyboard_only(web: Any) -> None:
    s = web()
    page = s.page()
    kb = page.keyboard
    expect(page.locator("#target option[value='app:shop']")).to_have_count(1)

    kb.press("Tab")  # the skip link comes first and is visible when focused
    assert page.evaluate("document.activeElement.classList.contains('skip-link')")
    assert page.evaluate(FOCUS_VISIBLE)
    box = page.locator(".skip-link").bounding_box()
    assert box is not None and box["y"] >= 0

    def tab_to(selector: str, *, back: bool = False, limit: int = 40) -> None:
        for _ in range(limit):
            if page.evaluate(f"document.activeElement.matches({json.dumps(selector)})"):
                assert page.evaluate(FOCUS_VISIBLE), f"focus on {selector} is not visible"
                return
            kb.press("Shift+Tab" if back else "Tab")
        raise AssertionError(f"{selector} not reachable with the keyboard")

    tab_to("#target")
    kb.press("Home")
    kb.press("ArrowDown")
    expect(page.locator("#target")).to_have_value("app:shop")
    tab_to("#question")
    kb.type(QUESTION)
    kb.press("Enter")
    answer = page.locator(".msg.assistant").first
    expect(answer).to_have_attribute("aria-busy", "false")

    tab_to(".msg.assistant button.cite", back=True)
    kb.press("Enter")
    expect(page.locator("#citation-dialog")).to_be_visible()
    s.screenshot(page, "keyboard-citation")
    kb.press("Escape")
    expect(page.locator("#citation-dialog")).to_be_hidden()
    assert page.evaluate("document.activeElement.classList.contains('cite')")

    tab_to(".feedback button[aria-pressed]")  # 좋아요 comes first
    kb.press("Space")
    expect(answer.locator(".fb-status")).to_have_text("평가를 보냈습니다. 고맙습니다!")
    tab_to(".feedback textarea")
    kb.type("키보드로도 잘 됩니다")
    tab_to(".feedback form button")
    kb.press("Enter")
    expect(answer.locator(".fb-status")).to_have_text("의견을 보냈습니다. 고맙습니다!")
    s.finish(page, "keyboard-feedback")


def test_phone_sized_viewport(web: Any) -> None:
    s = web(viewport={"width": 375, "height": 667}, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = s.page()
    page.select_option("#target", "app:shop")
    answer = ask(page, QUESTION)
    expect(answer.locator("button.cite").first).to_be_visible()

    def fits(p: Any) -> None:
        assert p.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "page scrolls sideways"

    fits(page)
    for selector in ("#question", "#send", "#target", "#key-button", "#sessions-toggle"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, selector
    expect(page.locator("#sessions")).to_be_hidden()  # the session list folds away on a phone
    page.get_by_role("button", name="대화 목록").click()
    expect(page.locator("#sessions")).to_be_visible()
    expect(page.locator("#sessions-toggle")).to_have_attribute("aria-expanded", "true")
    expect(page.locator("#session-list li")).to_have_count(1)
    s.screenshot(page, "phone-chat")

    admin = s.page("/ui/admin/")
    login_admin(admin)
    expect(admin.locator("[data-stat=questions] .value")).to_have_text("1")
    fits(admin)
    s.finish(admin, "phone-admin")


def test_missing_key_llm_down_and_server_gone_show_korean_banners(serve: Any, web: Any) -> None:
    unreachable = OpenAICompatibleLLM(f"http://127.0.0.1:{free_port()}/v1", None, "qwen3", max_retries=0,
                                      connect_timeout_s=1)
    server = serve(api_keys=[USER_KEY], llm=unreachable)
    s = web(server)
    page = s.page()
    banners = page.locator("#banners")
    expect(banners).to_contain_text("API 키가 필요하거나 올바르지 않습니다.")
    expect(banners).to_contain_text("일부 서비스가 중단되었습니다: LLM 서버")
    s.screenshot(page, "error-key-missing")

    banners.get_by_role("button", name="API 키 입력").click()
    expect(page.locator("#key-dialog")).to_be_visible()
    page.get_by_role("textbox", name="API 키").fill(USER_KEY)
    page.get_by_role("button", name="저장").click()
    expect(page.locator("#target option[value='app:shop']")).to_have_count(1)
    assert page.evaluate("localStorage.getItem('jisik.apiKey')") == USER_KEY
    page.select_option("#target", "app:shop")

    answer = ask(page, QUESTION)
    expect(answer.locator(".status")).to_have_text("답변을 만들지 못했습니다.")
    expect(banners).to_contain_text("서비스를 잠시 사용할 수 없습니다 (LLM 서버 또는 저장소가 응답하지 않습니다).")
    s.screenshot(page, "error-llm-down")

    server.__exit__(None, None, None)  # the whole service goes away
    ask(page, "정산은 언제 되나요?")
    expect(banners).to_contain_text("서버에 연결할 수 없습니다.")
    s.finish(page, "error-server-down")


def _seed_dashboard(server: Any) -> None:
    """Real traffic through the API: two users, an off-topic question, feedback, an upload ingest
    job; plus pipeline run reports written as the pipeline writes them."""
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for user, question in (("kim", QUESTION), ("lee", "부분 반품 시 초기 배송비도 환불되나요?"),
                               ("lee", "오늘 서울 날씨 어때요?")):
            r = c.post("/api/v1/chat", json={"question": question, "app": "shop", "user_id": user})
            r.raise_for_status()
            if user == "lee" and r.json()["outcome"] == "answered":
                c.post("/api/v1/chat/feedback", json={"message_id": r.json()["message_id"], "user_id": "lee",
                                                      "rating": "down", "comment": "배송비 설명이 부족해요"}
                       ).raise_for_status()
        files = {"file": ("안내.md", "# 영업시간\n\n고객센터는 평일 오전 9시부터 오후 6시까지 운영합니다.\n".encode())}
        job = c.post("/api/v1/ingest", data={"collection": "webnotes"}, files=files).json()
        deadline = time.monotonic() + 120
        while (status := c.get(f"/api/v1/ingest/{job['job_id']}").json()["status"]) not in ("done", "failed"):
            assert time.monotonic() < deadline, "the ingest job did not finish"
            time.sleep(0.1)
        assert status == "done"
    runs = Path(server.home) / "pipeline" / "runs"
    runs.mkdir(parents=True)
    report = RunReport("20260101T000000-ab12", "2026-01-01T00:00:00+00:00", "2026-01-01T00:00:09+00:00", "failed", [
        StageReport("extract", "shop_db", "ok", {"objects": 1, "rows": 120, "landed": 1}),
        StageReport("index", "products", "failed", {}, {"code": "unavailable", "message_ko": "색인 저장소에 연결할 수 없습니다.",
                                                        "message_en": "Index store unreachable."}, 1.5)])
    (runs / f"{report.run_id}.json").write_text(json.dumps(report.to_dict(), ensure_ascii=False), "utf-8")


def test_dashboard_logs_search_drilldown_indexes_and_ingest_runs(serve: Any, web: Any, kb: Any) -> None:
    server = serve()
    try:
        _seed_dashboard(server)
        s = web(server)
        page = s.page("/ui/admin/")
        login_admin(page)
        expect(page.locator("[data-stat=questions] .value")).to_have_text("3")
        expect(page.locator("[data-stat=users] .value")).to_have_text("2")
        expect(page.locator("#table-offtopic")).to_contain_text("오늘 서울 날씨 어때요?")

        page.get_by_label("질문·답변 검색").fill("반품")
        page.get_by_role("button", name="검색", exact=True).click()
        logs = page.locator("#table-logs tbody tr")
        expect(logs).to_have_count(1)
        expect(logs.first).to_contain_text("부분 반품 시 초기 배송비도 환불되나요?")
        page.get_by_label("질문·답변 검색").fill("")
        page.get_by_label("결과").select_option("off_topic")
        page.get_by_role("button", name="검색", exact=True).click()
        expect(logs).to_have_count(1)
        expect(logs.first).to_contain_text("날씨")
        expect(logs.first).to_contain_text("주제 밖")

        logs.first.locator("button.link-btn").click()  # drill down to that user (lee, pseudonymised)
        detail = page.locator("#user-detail")
        expect(detail).to_be_visible()
        expect(detail.locator("tbody tr")).to_have_count(2)
        expect(detail).to_contain_text("부분 반품 시 초기 배송비도 환불되나요?")
        assert page.evaluate("document.activeElement.id") == "user-detail-title"

        index = page.locator("#index-list")
        expect(index).to_contain_text("webnotes — 현재 버전 1, 문서 1개")
        expect(index).to_contain_text("faq — 현재 버전 1, 문서 5개")
        runs = page.locator("#table-ingest tbody tr")
        expect(runs).to_have_count(2)
        expect(runs.filter(has_text="API 업로드")).to_contain_text("성공")
        failed = runs.filter(has_text="파이프라인")
        expect(failed).to_contain_text("실패")
        expect(failed).to_contain_text("120")
        expect(failed).to_contain_text("index products: 색인 저장소에 연결할 수 없습니다.")
        s.finish(page, "admin-logs-indexes-runs")
    finally:
        kb.store.drop_collection("webnotes")

