"""Dependencies that are down: the session store (Redis at a closed port) and the chat-log
database (a PostgreSQL database that does not exist yet on the real server) -> clear 503s, the
stateless /query still answers, chat logs and feedback are spooled and later replayed into the
real PostgreSQL; an unreachable LLM server -> 503 response / error event, the question logged."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from api_env import ADMIN_KEY, MakeApp, asgi_client
from chat_fixtures import free_port
from jisik.core.pseudonym import Pseudonymizer
from jisik.models.llm import OpenAICompatibleLLM
from jisik.stores.conversations import LogQuery
from jisik.stores.conversations.sql_chatlog import SqlChatLogStore, SqlFeedbackStore
from jisik.stores.conversations.sql_db import ConversationDb

pytestmark = [pytest.mark.anyio, pytest.mark.integration]
ADMIN = {"X-API-Key": ADMIN_KEY}
PG = "postgresql+psycopg://postgres@127.0.0.1:5432"


@pytest.fixture
def pg_later() -> Iterator[tuple[str, Any]]:
    """(URL of a database that does not exist yet, a function creating it); dropped afterwards."""
    name = f"jisik_e2e_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}", pytrace=False)

    def create() -> None:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))

    try:
        yield f"{PG}/{name}", create
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


async def test_session_store_down_is_503_and_logs_and_feedback_are_not_lost(
        make_app: MakeApp, pg_later: tuple[str, Any]) -> None:
    url, create_database = pg_later
    app = make_app(sessions_url=f"redis://127.0.0.1:{free_port()}/0", chatlog_url=url)
    async with asgi_client(app) as c:
        started = time.monotonic()
        r = await c.post("/api/v1/chat", json={"question": "반품 배송비는 환불되나요?", "user_id": "choi"})
        assert r.status_code == 503 and time.monotonic() - started < 5
        err = r.json()["error"]
        assert err["code"] == "unavailable" and "Redis" in err["message_ko"] + err["message_en"]
        assert r.headers["retry-after"]
        stream = await c.post("/api/v1/chat/stream", json={"question": "정산 계좌 변경", "user_id": "choi"})
        assert stream.status_code == 503  # refused before the stream starts
        q = await c.post("/query", json={"query": "구매평 삭제", "collection": "faq"})
        assert q.status_code == 200 and q.json()["outcome"] == "answered"  # no session needed
        fb = await c.post("/api/v1/chat/feedback", json={"message_id": q.json()["message_id"], "user_id": "choi",
                                                         "rating": "down", "comment": "더 자세히"})
        assert fb.status_code == 200

        ready = await c.get("/health/ready")
        deps = ready.json()["dependencies"]
        assert ready.status_code == 503 and deps["sessions"]["status"] == "down"
        assert deps["chat_logs"]["status"] == "degraded"
        stores = app.state.api.stores
        assert stores.chatlogs.spool.pending() and stores.feedback.spool.pending()
        spooled = [json.loads(x) for x in (stores.chatlogs.spool.path.read_text("utf-8").splitlines())]
        assert [x["question"] for x in spooled] == ["반품 배송비는 환불되나요?", "정산 계좌 변경", "구매평 삭제"]
        assert spooled[0]["user_id"].startswith("u_")  # pseudonymised before touching the disk
        assert (await c.post("/api/v1/admin/spool/replay", headers=ADMIN)).status_code == 503  # still down

        create_database()
        replayed = await c.post("/api/v1/admin/spool/replay", headers=ADMIN)
        assert replayed.status_code == 200 and replayed.json() == {"replayed": 4}
        assert not stores.chatlogs.spool.pending()

    db = ConversationDb(url)
    try:
        logs = SqlChatLogStore(db, Pseudonymizer(b"unused")).list(LogQuery(limit=10)).items
        assert sorted(x.question for x in logs) == sorted(["반품 배송비는 환불되나요?", "정산 계좌 변경", "구매평 삭제"])
        failed = [x for x in logs if x.answer.startswith("[unavailable]")]
        assert len(failed) == 2 and not any(x.answered for x in failed)
        feedback = SqlFeedbackStore(db, Pseudonymizer(b"unused")).list().items
        assert [(f.rating, f.comment) for f in feedback] == [("down", "더 자세히")]
    finally:
        db.close()


async def test_unreachable_llm_is_503_and_the_question_is_logged(make_app: MakeApp) -> None:
    llm = OpenAICompatibleLLM(f"http://127.0.0.1:{free_port()}/v1", None, "qwen3", max_retries=0,
                              connect_timeout_s=1)
    async with asgi_client(make_app(llm=llm)) as c:
        r = await c.post("/api/v1/chat", json={"question": "정산 계좌를 바꾸고 싶어요", "user_id": "jung"})
        assert r.status_code == 503
        err = r.json()["error"]
        assert err["message_ko"].startswith("LLM 서버에 연결할 수 없습니다") and err["hint"]
        stream = await c.post("/api/v1/chat/stream", json={"question": "반품 배송비", "user_id": "jung"})
        assert stream.status_code == 200
        kinds = [ln[7:] for ln in stream.text.splitlines() if ln.startswith("event: ")]
        assert kinds == ["retrieval", "error"] and '"status":503' in stream.text
        ready = (await c.get("/health/ready")).json()
        assert ready["status"] == "down" and ready["dependencies"]["llm"]["status"] == "down"
        logs = (await c.get("/api/v1/admin/logs", headers=ADMIN)).json()
        assert logs["total"] == 2 and all(x["answer"].startswith("[unavailable]") for x in logs["items"])
