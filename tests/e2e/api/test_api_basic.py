"""The API through ASGI (httpx, lifespan run): query, chat, sessions, feedback, admin, errors,
keys, rate limits, size limits, CORS, request ids and metrics. Extractive provider, real stores."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from api_env import ADMIN_KEY, USER_KEY, MakeApp, asgi_client

pytestmark = pytest.mark.anyio
ADMIN = {"X-API-Key": ADMIN_KEY}


async def test_root_health_readiness_and_docs(make_app: MakeApp) -> None:
    async with asgi_client(make_app()) as c:
        root = (await c.get("/")).json()
        assert root["name"] == "jisik" and root["version"] and "shop" in root["apps"]
        assert root["llm"]["kind"] == "extractive" and root["llm"]["label_ko"].startswith("추출형")
        assert (await c.get("/health")).json() == {"status": "ok"}
        ready = await c.get("/health/ready")
        assert ready.status_code == 200
        deps = ready.json()["dependencies"]
        assert set(deps) == {"index", "sessions", "chat_logs", "cache", "llm"}
        assert all(d["status"] == "ok" for d in deps.values())
        spec = (await c.get("/openapi.json")).json()
        for path in ("/query", "/api/v1/chat", "/api/v1/chat/stream", "/api/v1/chat/feedback",
                     "/api/v1/sessions/{session_id}", "/api/v1/admin/stats/overview", "/api/v1/admin/stats/trends",
                     "/api/v1/admin/stats/feedback", "/api/v1/admin/feedback", "/api/v1/admin/users", "/api/v1/admin/logs",
                     "/api/v1/admin/logs/{user_id}", "/api/v1/ingest", "/metrics"):
            assert path in spec["paths"], path
        assert (await c.get("/docs")).status_code == 200


async def test_query_answers_with_citations_timings_and_request_id(make_app: MakeApp) -> None:
    async with asgi_client(make_app()) as c:
        r = await c.post("/query", json={"query": "정산 계좌를 바꾸고 싶어요", "collection": "faq", "top_k": 3},
                         headers={"X-Request-ID": "req-42"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-42"
        body = r.json()
        assert body["outcome"] == "answered" and "[1]" in body["answer"]
        assert body["citations"][0]["n"] == 1 and body["citations"][0]["doc_id"] == "settle"
        assert body["citations"][0]["source_uri"] == "faq://settle" and body["citations"][0]["text"]
        assert body["provider"]["kind"] == "extractive" and body["provider"]["label_en"].startswith("Extractive")
        assert body["timings_ms"]["retrieval"] > 0 and not body["cached"]
        again = (await c.post("/query", json={"query": "정산 계좌를 바꾸고 싶어요?", "collection": "faq",
                                              "top_k": 3})).json()
        assert again["cached"] and again["answer"] == body["answer"]
        generated = await c.post("/query", json={"query": "반품 배송비"})  # default collection
        assert generated.status_code == 200 and len(generated.headers["x-request-id"]) == 24


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"query": ""}, 422, "invalid_input"),
    ({"query": "   "}, 422, "invalid_input"),
    ({"query": "가입", "collection": "nope"}, 404, "not_found"),
    ({"query": "가입", "app": "nope"}, 404, "not_found"),
    ({"query": "가" * 3000}, 413, "payload_too_large"),
    ({"query": "가입", "top_k": 0}, 422, "invalid_input"),
    ({"query": "가입", "filters": {"category": {"between": 1}}}, 422, "invalid_input"),
    ({"top_k": 3}, 422, "invalid_input"),
])
async def test_query_errors_have_one_shape(make_app: MakeApp, body: dict[str, object], status: int,
                                           code: str) -> None:
    async with asgi_client(make_app()) as c:
        r = await c.post("/query", json=body)
        assert r.status_code == status
        err = r.json()["error"]
        assert err["code"] == code and err["status"] == status and err["message_ko"] and err["message_en"]
        assert err["request_id"] == r.headers["x-request-id"]


async def test_transport_errors_have_the_same_shape(make_app: MakeApp) -> None:
    async with asgi_client(make_app(max_request_bytes=2048)) as c:
        big = await c.post("/query", json={"query": "가" * 3000})
        assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
        async def body() -> AsyncIterator[bytes]:  # no Content-Length: the streamed bytes are counted
            for part in (b'{"query": "', b"x" * 4000, b'"}'):
                yield part

        chunked = await c.post("/query", content=body(), headers={"content-type": "application/json"})
        assert chunked.status_code == 413
        bad_json = await c.post("/query", content=b"{not json", headers={"content-type": "application/json"})
        assert bad_json.status_code == 422 and bad_json.json()["error"]["code"] == "invalid_input"
        missing = await c.get("/nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        wrong_method = await c.get("/query")
        assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"


async def test_chat_session_feedback_and_admin_statistics(make_app: MakeApp) -> None:
    async with asgi_client(make_app()) as c:
        first = (await c.post("/api/v1/chat", json={"question": "정산 계좌 변경은 어디서 하나요?", "app": "shop",
                                                    "user_id": "kim"})).json()
        assert first["outcome"] == "answered" and first["suggestions"] and first["citations"]
        sid, mid = first["session_id"], first["message_id"]
        second = (await c.post("/api/v1/chat", json={"question": "예금주 조건은요?", "session_id": sid,
                                                     "user_id": "kim"})).json()
        assert second["session_id"] == sid and second["app"] == "shop"
        off = (await c.post("/api/v1/chat", json={"question": "내일 서울 날씨 알려줘", "app": "shop"})).json()
        assert off["outcome"] == "off_topic" and off["citations"] == []

        session = (await c.get(f"/api/v1/sessions/{sid}")).json()
        assert [m["role"] for m in session["messages"]] == ["user", "assistant"] * 2
        assert session["messages"][1]["message_id"] == mid and session["app"] == "shop"

        fb = await c.post("/api/v1/chat/feedback", json={"message_id": mid, "session_id": sid, "user_id": "kim",
                                                         "rating": "up", "comment": "정확해요"})
        assert fb.status_code == 200 and fb.json()["citations"] == len(first["citations"])
        bad = await c.post("/api/v1/chat/feedback", json={"message_id": mid, "rating": "meh", "session_id": sid})
        assert bad.status_code == 422

        overview = (await c.get("/api/v1/admin/stats/overview", headers=ADMIN)).json()
        assert overview["questions"] == 3 and overview["off_topic"] == 1 and overview["feedback_up"] == 1
        trends = (await c.get("/api/v1/admin/stats/trends", headers=ADMIN, params={"tz": "Asia/Seoul"})).json()
        assert sum(p["questions"] for p in trends["points"]) == 3
        fstats = (await c.get("/api/v1/admin/stats/feedback", headers=ADMIN)).json()
        assert fstats["up"] == 1 and fstats["with_comment"] == 1
        listed = (await c.get("/api/v1/admin/feedback", headers=ADMIN, params={"user_id": "kim"})).json()
        assert listed["total"] == 1 and listed["items"][0]["comment"] == "정확해요"
        item = listed["items"][0]
        assert item["message_id"] == mid and item["rating"] == "up" and item["user_id"].startswith("u_")
        assert len(item["citations"]) == len(first["citations"])
        assert (await c.get("/api/v1/admin/feedback", headers=ADMIN, params={"rating": "down"})).json()["total"] == 0
        assert (await c.get("/api/v1/admin/feedback", headers=ADMIN, params={"rating": "meh"})).status_code == 422
        assert (await c.get("/api/v1/admin/feedback")).status_code in (401, 403)
        users = (await c.get("/api/v1/admin/users", headers=ADMIN)).json()
        assert users["total"] == 1 and users["items"][0]["user_id"].startswith("u_")
        logs = (await c.get("/api/v1/admin/logs", headers=ADMIN, params={"off_topic": "false"})).json()
        assert logs["total"] == 2 and {x["session_id"] for x in logs["items"]} == {sid}
        mine = (await c.get("/api/v1/admin/logs/kim", headers=ADMIN)).json()
        assert mine["total"] == 2 and mine["items"][0]["question"] == "예금주 조건은요?"
        top = (await c.get("/api/v1/admin/stats/questions", headers=ADMIN, params={"kind": "off_topic"})).json()
        assert [q["count"] for q in top] == [1]
        tz = await c.get("/api/v1/admin/stats/trends", headers=ADMIN, params={"tz": "Mars/Base"})
        assert tz.status_code == 422

        assert (await c.delete(f"/api/v1/sessions/{sid}")).status_code == 204
        assert (await c.get(f"/api/v1/sessions/{sid}")).status_code == 404
        assert (await c.delete(f"/api/v1/sessions/{sid}")).status_code == 404


async def test_api_keys_and_the_separate_admin_key(make_app: MakeApp) -> None:
    async with asgi_client(make_app(api_keys=[USER_KEY])) as c:
        q = {"query": "반품 배송비"}
        assert (await c.post("/query", json=q)).status_code == 401
        assert (await c.post("/query", json=q, headers={"X-API-Key": "wrong"})).status_code == 401
        assert (await c.post("/query", json=q, headers={"X-API-Key": USER_KEY})).status_code == 200
        assert (await c.post("/query", json=q, headers={"Authorization": f"Bearer {USER_KEY}"})).status_code == 200
        assert (await c.get("/api/v1/admin/stats/overview")).status_code == 401
        user_as_admin = await c.get("/api/v1/admin/stats/overview", headers={"X-API-Key": USER_KEY})
        assert user_as_admin.status_code == 403 and user_as_admin.json()["error"]["code"] == "forbidden"
        assert (await c.get("/api/v1/admin/stats/overview", headers=ADMIN)).status_code == 200
        assert (await c.get("/health")).status_code == 200 and (await c.get("/metrics")).status_code == 200
    async with asgi_client(make_app(admin_api_key=None)) as c:
        disabled = await c.get("/api/v1/admin/logs", headers=ADMIN)
        assert disabled.status_code == 403 and "JISIK_ADMIN_API_KEY" in disabled.json()["error"]["hint"]


async def test_rate_limit_per_key_and_ip(make_app: MakeApp) -> None:
    async with asgi_client(make_app(rate_limit_per_min=3, api_keys=[USER_KEY, "other-key"])) as c:
        h = {"X-API-Key": USER_KEY}
        codes = [(await c.post("/query", json={"query": "반품 배송비"}, headers=h)).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        limited = await c.post("/query", json={"query": "반품 배송비"}, headers=h)
        assert limited.json()["error"]["code"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1
        other = await c.post("/query", json={"query": "반품 배송비"}, headers={"X-API-Key": "other-key"})
        assert other.status_code == 200
        assert "jisik_rate_limited_total 2.0" in (await c.get("/metrics")).text


async def test_cors_from_settings(make_app: MakeApp) -> None:
    async with asgi_client(make_app(cors_origins=["http://ui.example"])) as c:
        pre = await c.options("/query", headers={"Origin": "http://ui.example", "Access-Control-Request-Method": "POST",
                                                 "Access-Control-Request-Headers": "content-type,x-api-key"})
        assert pre.status_code == 200 and pre.headers["access-control-allow-origin"] == "http://ui.example"
        other = await c.get("/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers


async def test_metrics_count_requests_retrieval_cache_and_feedback(make_app: MakeApp) -> None:
    async with asgi_client(make_app()) as c:
        for _ in range(2):
            await c.post("/query", json={"query": "구매평 삭제", "collection": "faq"})
        chat = (await c.post("/api/v1/chat", json={"question": "구매평 삭제되나요", "user_id": "lee"})).json()
        await c.post("/api/v1/chat/feedback", json={"message_id": chat["message_id"], "user_id": "lee",
                                                    "rating": "down"})
        text = (await c.get("/metrics")).text
        assert 'jisik_http_requests_total{method="POST",route="/query",status="200"} 2.0' in text
        assert 'jisik_answer_cache_total{result="hit"} 1.0' in text
        assert 'jisik_answer_cache_total{result="miss"} 2.0' in text
        assert "jisik_retrieval_seconds_count 2.0" in text
        assert 'jisik_feedback_total{rating="down"} 1.0' in text
        assert 'jisik_answers_total{app="default",outcome="answered"} 3.0' in text
