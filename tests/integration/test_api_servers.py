"""Two API replicas on the server stores of this machine: sessions, the answer cache and the rate
limit in the real Redis (a unique key prefix, removed afterwards), chat logs and feedback in the real
PostgreSQL (a throw-away database). A conversation continues on the other replica, an answer cached
by one is served by the other, the rate limit is shared, and admin statistics come from PostgreSQL.
Fails, never skips, when Redis or PostgreSQL is unreachable."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from api_env import ADMIN_KEY, USER_KEY, api_settings, asgi_client
from chat_fixtures import build_runtime
from jisik.api import create_app
from jisik.runtime import Runtime
from redis_env import REDIS, redis_key_prefix

pytestmark = [pytest.mark.integration, pytest.mark.anyio]
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"
ADMIN = {"X-API-Key": ADMIN_KEY}
USER = {"X-API-Key": USER_KEY}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = build_runtime(tmp_path_factory.mktemp("kb"))
    yield rt
    rt.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    with redis_key_prefix("jisik-test-api") as prefix:
        yield prefix


@pytest.fixture
def pg_url() -> Iterator[str]:
    name = f"jisik_api_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}", pytrace=False)
    try:
        yield f"{PG}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


async def test_replicas_share_redis_sessions_cache_and_limits_and_postgres_logs(
        kb: Runtime, redis_prefix: str, pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    redis_url = f"{REDIS}?prefix={redis_prefix}"
    shared = {"sessions_url": redis_url, "cache_url": redis_url, "chatlog_url": pg_url, "api_keys": [USER_KEY]}
    monkeypatch.setenv("JISIK_PSEUDONYM_SALT", uuid.uuid4().hex)  # replicas sharing a database share the secret
    a = create_app(api_settings(tmp_path / "a", **shared), runtime=kb)
    b = create_app(api_settings(tmp_path / "b", **shared), runtime=kb)
    async with asgi_client(a, **USER) as ca, asgi_client(b, **USER) as cb:
        first = (await ca.post("/api/v1/chat", json={"question": "정산 계좌를 바꾸고 싶어요", "user_id": "han"})).json()
        sid = first["session_id"]
        second = (await cb.post("/api/v1/chat", json={"question": "예금주 조건은요?", "session_id": sid,
                                                      "user_id": "han"})).json()
        assert second["session_id"] == sid
        session = (await ca.get(f"/api/v1/sessions/{sid}")).json()
        assert len(session["messages"]) == 4 and session["messages"][3]["message_id"] == second["message_id"]

        q = {"query": "공휴일은 휴무일로 자동 설정되나요?", "collection": "faq"}
        assert not (await ca.post("/query", json=q)).json()["cached"]
        assert (await cb.post("/query", json=q)).json()["cached"]  # the answer cache lives in Redis

        fb = await cb.post("/api/v1/chat/feedback", json={"message_id": first["message_id"], "session_id": sid,
                                                          "user_id": "han", "rating": "up"})
        assert fb.status_code == 200 and fb.json()["citations"] >= 1

        overview = (await ca.get("/api/v1/admin/stats/overview", headers=ADMIN)).json()
        assert overview["questions"] == 4 and overview["users"] == 1 and overview["feedback_up"] == 1
        logs = (await cb.get("/api/v1/admin/logs/han", headers=ADMIN)).json()
        assert logs["total"] == 2 and {x["session_id"] for x in logs["items"]} == {sid}

    # the rate limit is one bucket per key in Redis, shared by the replicas (2 per minute here)
    limited = {**shared, "rate_limit_per_min": 2}
    c, d = (create_app(api_settings(tmp_path / n, **limited), runtime=kb) for n in ("c", "d"))
    async with asgi_client(c, **USER) as cc, asgi_client(d, **USER) as cd:
        codes = [(await client.get("/api/v1/sessions/none")).status_code for client in (cc, cd, cc)]
        assert codes == [404, 404, 429]
        other = await cd.get("/api/v1/sessions/none", headers={"X-API-Key": ADMIN_KEY})
        assert other.status_code == 404  # another key, another bucket

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            tables = [r[0] for r in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))]
            chat_table = next(t for t in tables if t.endswith("chat_logs"))
            rows = conn.execute(text(f"SELECT question, answered FROM {chat_table} ORDER BY created_at")).all()
        assert [r[0] for r in rows][:2] == ["정산 계좌를 바꾸고 싶어요", "예금주 조건은요?"] and all(r[1] for r in rows)
    finally:
        engine.dispose()
