"""The embedded conversation stores (SQLite, in-process cache) and the factory's durable wrappers
pass the shared conformance suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conversation_conformance import (
    CacheConformance,
    ChatLogConformance,
    FeedbackConformance,
    MakeCache,
    MakeSessions,
    SessionConformance,
)
from jisik.core.pseudonym import Pseudonymizer
from jisik.core.settings import Settings
from jisik.stores.conversations import AnswerCache, ChatLogStore, FeedbackStore, SessionStore, open_conversation_stores
from jisik.stores.conversations.cache import MemoryAnswerCache
from jisik.stores.conversations.sql_chatlog import SqlChatLogStore, SqlFeedbackStore
from jisik.stores.conversations.sql_db import ConversationDb
from jisik.stores.conversations.sql_sessions import SqlSessionStore

PZ = Pseudonymizer(b"unit-test-salt")


def _sqlite(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'conv.sqlite3'}"


class TestSqliteSessions(SessionConformance):
    @pytest.fixture
    def make_sessions(self, tmp_path: Path) -> Iterator[MakeSessions]:
        stores: list[SessionStore] = []

        def make(ttl_s: float, max_messages: int) -> SessionStore:
            store = SqlSessionStore(ConversationDb(_sqlite(tmp_path)), ttl_s=ttl_s, max_messages=max_messages)
            stores.append(store)
            return store

        yield make
        for s in stores:
            s.close()


class TestSqliteChatLogs(ChatLogConformance):
    @pytest.fixture
    def logs(self, tmp_path: Path) -> Iterator[tuple[ChatLogStore, FeedbackStore]]:
        db = ConversationDb(_sqlite(tmp_path))
        yield SqlChatLogStore(db, PZ), SqlFeedbackStore(db, PZ)
        db.close()


class TestSqliteFeedback(FeedbackConformance):
    @pytest.fixture
    def logs(self, tmp_path: Path) -> Iterator[tuple[ChatLogStore, FeedbackStore]]:
        db = ConversationDb(_sqlite(tmp_path))
        yield SqlChatLogStore(db, PZ), SqlFeedbackStore(db, PZ)
        db.close()


class TestFactoryDurableChatLogs(ChatLogConformance):
    """The stores the factory hands out (durable wrappers over SQLite under home) behave the same."""

    @pytest.fixture
    def logs(self, tmp_path: Path) -> Iterator[tuple[ChatLogStore, FeedbackStore]]:
        stores = open_conversation_stores(Settings(home=tmp_path / "home"))
        yield stores.chatlogs, stores.feedback
        stores.close()


class TestFactoryDurableFeedback(FeedbackConformance):
    @pytest.fixture
    def logs(self, tmp_path: Path) -> Iterator[tuple[ChatLogStore, FeedbackStore]]:
        stores = open_conversation_stores(Settings(home=tmp_path / "home"))
        yield stores.chatlogs, stores.feedback
        stores.close()


class TestMemoryCache(CacheConformance):
    @pytest.fixture
    def make_cache(self) -> MakeCache:
        return lambda ttl_s: MemoryAnswerCache(ttl_s=ttl_s)


class TestSqliteBackedCache(CacheConformance):
    @pytest.fixture
    def make_cache(self, tmp_path: Path) -> Iterator[MakeCache]:
        caches: list[AnswerCache] = []

        def make(ttl_s: float) -> AnswerCache:
            caches.append(MemoryAnswerCache(ttl_s=ttl_s, path=tmp_path / "cache.sqlite3"))
            return caches[-1]

        yield make
        for c in caches:
            c.close()
