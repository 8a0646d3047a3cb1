"""Conversation stores against the real servers of this machine: Redis (127.0.0.1:6379, a unique key
prefix per run, removed afterwards), PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306), each in
a throw-away database dropped afterwards. A server that cannot be reached FAILS these tests.

Also: chat logs and feedback spooled while the SQL server is unreachable are replayed into the real
database exactly once, and a Redis that is down gives a clear 503 (Unavailable) within a second.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from chat_fixtures import free_port
from conversation_conformance import (
    T0,
    CacheConformance,
    ChatLogConformance,
    FeedbackConformance,
    MakeCache,
    MakeSessions,
    SessionConformance,
)
from jisik.core.errors import Unavailable
from jisik.core.pseudonym import Pseudonymizer
from jisik.core.settings import Settings
from jisik.pipeline.sources.base import expand_env
from jisik.stores.conversations import (
    AnswerCache,
    ChatLog,
    ChatLogStore,
    Feedback,
    FeedbackStore,
    LogQuery,
    Message,
    SessionStore,
    open_conversation_stores,
)
from jisik.stores.conversations.durable import DurableChatLog, DurableFeedback, Spool
from jisik.stores.conversations.redis_cache import RedisAnswerCache
from jisik.stores.conversations.redis_sessions import RedisSessionStore
from jisik.stores.conversations.sql_chatlog import SqlChatLogStore, SqlFeedbackStore
from jisik.stores.conversations.sql_db import ConversationDb
from jisik.stores.conversations.sql_sessions import SqlSessionStore
from redis_env import REDIS, redis_key_prefix

pytestmark = pytest.mark.integration

SERVERS = {
    "postgresql": ("postgresql+psycopg://postgres@127.0.0.1:5432", "postgres", ""),
    "mariadb": ("mysql+pymysql://root:${JISIK_TEST_MARIADB_PASSWORD:}@127.0.0.1:3306", "", "?charset=utf8mb4"),
}
PZ = Pseudonymizer(b"integration-salt")


@pytest.fixture(scope="module")
def redis_prefix() -> Iterator[str]:
    with redis_key_prefix("jisik-test") as prefix:
        yield prefix


def _redis_url(prefix: str) -> str:
    return f"{REDIS}?prefix={prefix}{uuid.uuid4().hex[:6]}:"


@pytest.fixture(scope="module", params=["postgresql", "mariadb"])
def sql_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of a throw-away database on the real server (dropped at the end of the module)."""
    kind = request.param
    base, admin_db, query = SERVERS[kind]
    name = f"jisik_conv_{uuid.uuid4().hex[:10]}"
    admin = create_engine(expand_env(f"{base}/{admin_db}"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}" + (" CHARACTER SET utf8mb4" if kind == "mariadb" else "")))
    except Exception as exc:
        admin.dispose()
        pytest.fail(f"{kind} at {base.rsplit('@', 1)[1]} is not reachable: {exc}", pytrace=False)
    try:
        yield expand_env(f"{base}/{name}{query}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name}" + (" WITH (FORCE)" if kind == "postgresql" else "")))
        admin.dispose()


@pytest.fixture(scope="module")
def shared_db(sql_url: str) -> Iterator[ConversationDb]:
    """The conversation tables, created once per server (tests empty them instead of re-creating)."""
    db = ConversationDb(sql_url, prefix=f"t{uuid.uuid4().hex[:8]}_")
    yield db
    db.drop_all()
    db.close()


@pytest.fixture
def sql_db(shared_db: ConversationDb) -> Iterator[Callable[[], ConversationDb]]:
    """Hands out the shared database (fresh tables, or emptied by the previous test); emptied after the test."""
    def clear() -> None:
        with shared_db.begin() as conn:
            for table in reversed(shared_db.meta.sorted_tables):
                conn.execute(table.delete())

    yield lambda: shared_db
    clear()


class TestRedisSessions(SessionConformance):
    @pytest.fixture
    def make_sessions(self, redis_prefix: str) -> Iterator[MakeSessions]:
        stores: list[RedisSessionStore] = []

        def make(ttl_s: float, max_messages: int) -> SessionStore:
            stores.append(RedisSessionStore(_redis_url(redis_prefix), ttl_s=ttl_s, max_messages=max_messages))
            return stores[-1]

        yield make
        for s in stores:
            s.close()

    def test_keys_expire_and_hide_user_ids(self, redis_prefix: str) -> None:
        store = RedisSessionStore(_redis_url(redis_prefix), ttl_s=60)
        s = store.create(user_id="kim@example.com")
        store.append(s.session_id, [Message("user", "q")])
        keys = sorted(store.client.scan_iter(match=f"{store.prefix}*"))
        assert len(keys) == 3 and not any("kim" in k for k in keys)
        assert all(0 < store.client.ttl(k) <= 60 for k in keys)
        store.close()


class TestRedisCache(CacheConformance):
    @pytest.fixture
    def make_cache(self, redis_prefix: str) -> Iterator[MakeCache]:
        caches: list[AnswerCache] = []

        def make(ttl_s: float) -> AnswerCache:
            caches.append(RedisAnswerCache(_redis_url(redis_prefix), ttl_s=ttl_s))
            return caches[-1]

        yield make
        for c in caches:
            c.close()


class TestSqlServerSessions(SessionConformance):
    @pytest.fixture
    def make_sessions(self, sql_db: Callable[[], ConversationDb]) -> MakeSessions:
        return lambda ttl_s, max_messages: SqlSessionStore(sql_db(), ttl_s=ttl_s, max_messages=max_messages)


class TestSqlServerChatLogs(ChatLogConformance):
    @pytest.fixture
    def logs(self, sql_db: Callable[[], ConversationDb]) -> tuple[ChatLogStore, FeedbackStore]:
        db = sql_db()
        return SqlChatLogStore(db, PZ), SqlFeedbackStore(db, PZ)


class TestSqlServerFeedback(FeedbackConformance):
    @pytest.fixture
    def logs(self, sql_db: Callable[[], ConversationDb]) -> tuple[ChatLogStore, FeedbackStore]:
        db = sql_db()
        return SqlChatLogStore(db, PZ), SqlFeedbackStore(db, PZ)


def test_long_korean_texts_roundtrip(sql_db: Callable[[], ConversationDb]) -> None:
    """MEDIUMTEXT on MariaDB: an answer longer than 64 KB of UTF-8 is stored whole; 4-byte emoji too."""
    store = SqlChatLogStore(sql_db(), PZ)
    answer = "예금자보호 한도는 1인당 5천만 원입니다. 😀 " * 1500  # ~ 100 KB of UTF-8
    stored = store.record(ChatLog(session_id="s1", question="한도는? 😀", answer=answer, user_id="u1"))
    got = store.get(stored.log_id)
    assert got.answer == answer and got.question == "한도는? 😀"


def test_spooled_while_down_then_replayed_once(sql_db: Callable[[], ConversationDb], tmp_path: Path) -> None:
    spool_dir = tmp_path / "spool"
    down_url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    down_db = ConversationDb(down_url)
    down_logs = DurableChatLog(SqlChatLogStore(down_db, PZ), Spool(spool_dir, "chat_logs"), PZ, retry_after_s=30)
    down_fb = DurableFeedback(SqlFeedbackStore(down_db, PZ), Spool(spool_dir, "feedback"), PZ, retry_after_s=30)
    logs = [ChatLog(session_id="s1", question=f"질문 {i}", answer="답변", user_id="kim", created_at=T0 + timedelta(
        minutes=i)) for i in range(5)]
    start = time.monotonic()
    stored = [down_logs.record(x) for x in logs]
    vote = down_fb.record(Feedback(message_id=stored[0].message_id, rating="down", user_id="kim", created_at=T0))
    newer = down_fb.record(Feedback(message_id=stored[0].message_id, rating="up", user_id="kim",
                                    created_at=T0 + timedelta(minutes=1)))
    assert time.monotonic() - start < 5 and vote.feedback_id == newer.feedback_id
    spooled = (spool_dir / "chat_logs.jsonl").read_text(encoding="utf-8")
    assert spooled.count("\n") == 5 and "kim" not in spooled  # pseudonymised before touching the disk
    with pytest.raises(Unavailable):
        down_logs.list(LogQuery())  # reads cannot be served, but nothing was lost
    down_db.close()

    db = sql_db()  # the database is back (the real server)
    up_logs = DurableChatLog(SqlChatLogStore(db, PZ), Spool(spool_dir, "chat_logs"), PZ, retry_after_s=0)
    up_fb = DurableFeedback(SqlFeedbackStore(db, PZ), Spool(spool_dir, "feedback"), PZ, retry_after_s=0)
    assert up_logs.replay() == 5 and up_fb.replay() == 2
    assert up_logs.replay() == 0 and not up_logs.spool.pending() and not up_fb.spool.pending()
    page = up_logs.list(LogQuery(user_id="kim"))
    assert page.total == 5 and {x.log_id for x in page.items} == {x.log_id for x in logs}
    assert up_fb.get(vote.feedback_id).rating == "up"  # the newer vote won, whatever the replay order
    up_logs.record(logs[0])  # recording again (a client retry) adds nothing
    assert up_logs.list(LogQuery()).total == 5
    assert up_logs.overview().feedback_up == 1


def test_next_write_after_outage_drains_the_spool(sql_db: Callable[[], ConversationDb], tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool", "chat_logs")
    down = DurableChatLog(SqlChatLogStore(ConversationDb(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}"
                                                         "/nowhere"), PZ), spool, PZ)
    first = down.record(ChatLog(session_id="s", question="q1", answer="a"))
    assert spool.pending()
    up = DurableChatLog(SqlChatLogStore(sql_db(), PZ), spool, PZ, retry_after_s=0)
    second = up.record(ChatLog(session_id="s", question="q2", answer="a"))
    assert not spool.pending()
    assert {x.log_id for x in up.list(LogQuery()).items} == {first.log_id, second.log_id}


def test_redis_down_is_a_clear_503() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    sessions, cache = RedisSessionStore(url), RedisAnswerCache(url)
    start = time.monotonic()
    for call in (lambda: sessions.create(user_id="u"), lambda: sessions.get("abc"), lambda: sessions.history("abc"),
                 lambda: sessions.append("abc", [Message("user", "q")]), lambda: sessions.list_by_user("u"),
                 lambda: cache.get("k1"), lambda: cache.set("k1", {"a": 1})):
        with pytest.raises(Unavailable) as err:
            call()
        assert err.value.status == 503 and "Redis" in err.value.message_ko and "Redis" in err.value.message_en
    assert time.monotonic() - start < 2


@pytest.mark.parametrize("sql_url", ["postgresql"], indirect=True)  # MariaDB DDL costs 1.5 s; stores tested above
def test_factory_with_server_urls(redis_prefix: str, sql_url: str, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", sessions_url=_redis_url(redis_prefix), chatlog_url=sql_url,
                        cache_url=_redis_url(redis_prefix), session_ttl_s=60, cache_ttl_s=60)
    stores = open_conversation_stores(settings, pseudonymize=PZ)
    try:
        assert isinstance(stores.sessions, RedisSessionStore) and isinstance(stores.cache, RedisAnswerCache)
        s = stores.sessions.create(user_id="lee")
        [_, answer] = stores.sessions.append(s.session_id, [Message("user", "q"), Message("assistant", "a")])
        log = stores.chatlogs.record(ChatLog(session_id=s.session_id, question="q", answer="a", user_id="lee",
                                             message_id=answer.message_id))
        stores.feedback.record(Feedback(message_id=answer.message_id, rating="up", user_id="lee"))
        assert stores.chatlogs.overview().feedback_up == 1 and stores.chatlogs.get(log.log_id).user_id == PZ("lee")
        stores.cache.set("k" + s.session_id, {"answer": "a"})
        assert stores.cache.get("k" + s.session_id) == {"answer": "a"}
    finally:
        stores.chatlogs.store.db.drop_all()  # type: ignore[attr-defined]
        stores.close()
