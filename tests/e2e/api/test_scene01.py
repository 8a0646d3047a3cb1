"""``POST /api/v1/scene01/generate`` through the real FastAPI app (ASGI, lifespan run) on a real
knowledge base (bundled event tables + finlife samples, real Kiwi + e5-small): the seed's example
request without and with an LLM (a real OpenAI-compatible HTTP server), validation errors in the
project's error format, and file_url SSRF attempts against real local servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from api_env import USER_KEY, api_settings, asgi_client
from jisik.api import create_app
from jisik.api.routes.scene01 import get_fetcher
from jisik.apps.marketing import SEED_EXAMPLE
from jisik.apps.marketing.fetch import FetchPolicy, SafeFetcher
from jisik.models.llm.openai_compat import OpenAICompatibleLLM
from jisik.runtime import Runtime
from llm_chat_server import DELTAS, ChatServer
from unit.apps.marketing.marketing_helpers import (
    FileServer,
    build_marketing_runtime,
    internal_server,
    pdf_route,
    redirect_route,
)
from unit.models.llm.conftest import chat_server  # noqa: F401  (the fixture: a real OpenAI-compatible server)

pytestmark = pytest.mark.anyio
URL = "/api/v1/scene01/generate"
BROCHURE = ["가람은행 시니어 고객님은 신규 가입 때 전용 상담 창구에서 우대 상담을 받으실 수 있습니다."]


@pytest.fixture(scope="module")
def scene01_kb(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = build_marketing_runtime(tmp_path_factory.mktemp("scene01-kb"), shared_data)
    yield rt
    rt.close()


@pytest.fixture
def make(scene01_kb: Runtime, tmp_path: Path) -> Any:
    def make_app(llm: Any = None, **overrides: Any) -> FastAPI:
        return create_app(api_settings(tmp_path / "app", **overrides), runtime=scene01_kb, llm=llm)

    return make_app


@pytest.fixture
def servers() -> Iterator[tuple[FileServer, FileServer]]:
    """(the trusted file server, an internal server that nothing may ever reach)."""
    with internal_server() as other, FileServer({
            "/sample.pdf": pdf_route(BROCHURE), "/to-loopback": redirect_route(f"{other.url}/secret"),
            "/to-metadata": redirect_route("http://169.254.169.254/latest/meta-data/")}) as files:
        yield files, other


def trusting(files: FileServer) -> dict[str, Any]:
    """Settings that allow http and trust the local file server (as the first hop only)."""
    return {"fetch_allowed_schemes": ["http", "https"], "fetch_private_hosts": [f"127.0.0.1:{files.port}"]}


async def no_dns(host: str, port: int) -> list[str]:
    raise OSError("closed network: no DNS")


async def test_the_seed_example_end_to_end(make: Any) -> None:
    app = make()
    # a closed network: the seed's https://your-s3-url.com cannot be resolved (and tests use no network)
    app.dependency_overrides[get_fetcher] = lambda: SafeFetcher(FetchPolicy(), resolver=no_dns)
    async with asgi_client(app) as c:
        r = await c.post(URL, content=json.dumps(SEED_EXAMPLE, ensure_ascii=False).encode(),
                         headers={"Content-Type": "application/json", "X-Request-ID": "seed-000"})
        spec = (await c.get("/openapi.json")).json()
    assert r.status_code == 200 and r.headers["x-request-id"] == "seed-000"
    body = r.json()
    assert URL in spec["paths"] and spec["paths"][URL]["post"]["requestBody"]
    assert body["session_id"] == "session_abc123" and body["message_type"] == "광고심의문구"
    assert body["outcome"] == "generated" and body["generation"] == "template"
    assert body["provider"]["kind"] == "extractive" and "LLM 없이" in body["notice_ko"]
    assert body["history_summary"].startswith("이전 대화 요약:") and body["file"] is None
    assert any("your-s3-url.com" in w for w in body["warnings"])
    push, talk = body["messages"]
    assert (push["channel"], talk["channel"]) == ("PUSH", "알림톡")
    assert push["title"].startswith("(광고) ") and push["length"]["text"] <= push["length"]["text_limit"]
    assert len(push["body"]) <= 100 and push["passed"] and push["citations"]
    assert talk["violations"][0]["rule_id"] == "AD-NOT-ALLOWED" and not talk["passed"]
    for message in (push, talk):
        for v in message["violations"]:
            assert v["rule_id"] and v["message"] and v["severity"] in ("error", "warning")
            if v["span"] is not None:
                assert message[v["field"]][v["span"][0]:v["span"][1]] == v["text"]
    cited = {c["n"] for c in body["citations"]}
    assert set(push["citations"]) | set(talk["citations"]) == cited
    assert all(c["collection"] == "marketing" and c["text"] and c["locator"]["table"] for c in body["citations"])
    assert body["text"].startswith("[PUSH]") and "[알림톡]" in body["text"]


async def test_the_seed_example_with_an_llm_and_the_pdf(make: Any, chat_server: ChatServer,  # noqa: F811
                                                        servers: tuple[FileServer, FileServer]) -> None:
    files = servers[0]
    llm = OpenAICompatibleLLM(chat_server.base_url, None, "ok", max_retries=0)
    seed = {**SEED_EXAMPLE, "file_url": f"{files.url}/sample.pdf?X-Amz-Signature=abc"}
    try:
        async with asgi_client(make(llm, **trusting(files))) as c:
            r = await c.post(URL, json=seed)
    finally:
        await llm.aclose()
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["generation"] == "llm" and body["provider"]["kind"] == "llm"
    assert body["file"] == {"url": f"{files.url}/sample.pdf", "content_type": "application/pdf",
                            "bytes": body["file"]["bytes"], "pages": 1, "chars_used": len(BROCHURE[0]),
                            "truncated": False}
    # the history was summarised by the model, and every channel's prompt carried the summary and the PDF
    written = "".join(DELTAS)
    assert body["history_summary"] == "이전 대화 요약:\n" + written
    prompts = [req["messages"][-1]["content"] for req in chat_server.requests[1:]]
    assert len(prompts) == 2 and all(BROCHURE[0] in p and written in p for p in prompts)
    assert all(req["max_tokens"] == 600 for req in chat_server.requests[1:])
    push, talk = body["messages"]
    assert push["body"] == talk["body"] == written.replace(" [1]", "")  # what the model wrote, markers removed
    assert push["citations"] == [1] and body["citations"][0]["n"] == 1
    assert "title_from_facts" in push["adjustments"] and push["title"].startswith("(광고) ")


async def test_an_llm_server_that_is_down_is_a_503(make: Any, chat_server: ChatServer) -> None:  # noqa: F811
    llm = OpenAICompatibleLLM(chat_server.base_url, None, "always-503", max_retries=0)
    try:
        async with asgi_client(make(llm)) as c:
            r = await c.post(URL, json={**SEED_EXAMPLE, "file_url": None, "channels": ["PUSH", "SMS", "LMS"]})
    finally:
        await llm.aclose()
    assert r.status_code == 503 and r.headers["retry-after"]
    err = r.json()["error"]
    assert err["code"] == "unavailable" and err["message_ko"] and err["request_id"]


@pytest.mark.parametrize(("change", "field"), [
    ({"channels": ["PUSH", "팩스"]}, "channels"),
    ({"message_type": "전단지"}, "message_type"),
    ({"life_stage": "우주세대"}, "life_stage"),
])
async def test_unknown_values_are_422_with_the_allowed_values(make: Any, change: dict[str, Any], field: str) -> None:
    async with asgi_client(make()) as c:
        r = await c.post(URL, json={**SEED_EXAMPLE, "file_url": None, **change})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_input" and err["status"] == 422 and err["request_id"]
    assert err["details"]["field"] == field and err["details"]["allowed"]
    assert "사용 가능" in err["message_ko"] and "Allowed" in err["message_en"]
    assert all(a in err["message_ko"] for a in err["details"]["allowed"])


@pytest.mark.parametrize(("change", "where"), [
    ({"channels": []}, "body.channels"),
    ({"channels": "PUSH"}, "body.channels"),
    ({"prompt": ""}, "body.prompt"),
    ({"prompt": "가" * 2001}, "body.prompt"),
    ({"budget": 100}, "body.budget"),
    ({"history": [{"user": "안녕", "ai": "네", "extra": 1}]}, "body.history.0.extra"),
    ({"history": [{"user": "요청"}] * 51}, "body.history"),
    ({"file_url": "https://" + "a" * 2100}, "body.file_url"),
])
async def test_malformed_requests_are_422(make: Any, change: dict[str, Any], where: str) -> None:
    async with asgi_client(make()) as c:
        r = await c.post(URL, json={**SEED_EXAMPLE, **change})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_input" and any(".".join(e["loc"]) == where for e in err["details"]["errors"])


@pytest.mark.parametrize(("url", "reason", "hop"), [
    ("http://127.0.0.1:{other}/secret", "private_address", 0),
    ("http://localhost:{other}/secret", "private_address", 0),
    ("http://169.254.169.254/latest/meta-data/", "private_address", 0),
    ("{files}/to-loopback", "private_address", 1),
    ("{files}/to-metadata", "private_address", 1),
    ("file:///etc/passwd", "scheme", 0),
])
async def test_ssrf_attempts_are_rejected(make: Any, servers: tuple[FileServer, FileServer], url: str, reason: str,
                                          hop: int) -> None:
    files, other = servers
    async with asgi_client(make(**trusting(files))) as c:
        r = await c.post(URL, json={**SEED_EXAMPLE, "file_url": url.format(other=other.port, files=files.url)})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "url_not_allowed" and err["message_ko"] and err["message_en"]
    assert err["details"]["reason"] == reason and err["details"]["hop"] == hop
    assert other.seen == []  # nothing ever reached the internal server


async def test_api_keys_apply(make: Any) -> None:
    async with asgi_client(make(api_keys=[USER_KEY])) as c:
        denied = await c.post(URL, json={**SEED_EXAMPLE, "file_url": None})
        allowed = await c.post(URL, json={**SEED_EXAMPLE, "file_url": None, "channels": ["SMS"]},
                               headers={"X-API-Key": USER_KEY})
    assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
    assert allowed.status_code == 200 and allowed.json()["messages"][0]["length"]["unit"] == "euc-kr"
