"""open_conversation_stores picks implementations from the settings URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from jisik.core.errors import ConfigError
from jisik.core.settings import Settings
from jisik.stores.conversations import ChatLog, Message, open_cache, open_conversation_stores
from jisik.stores.conversations.cache import MemoryAnswerCache
from jisik.stores.conversations.redis_common import split_prefix
from jisik.stores.conversations.sql_sessions import SqlSessionStore


def test_embedded_defaults_live_under_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stores = open_conversation_stores(Settings(home=home, session_ttl_s=60, history_max_messages=3))
    try:
        assert isinstance(stores.sessions, SqlSessionStore) and isinstance(stores.cache, MemoryAnswerCache)
        assert stores.sessions.ttl_s == 60 and stores.sessions.max_messages == 3
        assert stores.sessions.db is stores.chatlogs.store.db  # type: ignore[attr-defined]  # one SQLite file
        s = stores.sessions.create(user_id="u")
        stores.sessions.append(s.session_id, [Message("user", str(i)) for i in range(5)])
        assert [m.text for m in stores.sessions.history(s.session_id)] == ["2", "3", "4"]
        stores.chatlogs.record(ChatLog(session_id=s.session_id, question="q", answer="a", user_id="u"))
        assert (home / "conversations.sqlite3").is_file() and (home / "secrets" / "pseudonym.salt").is_file()
        assert stores.replay_spools() == 0
    finally:
        stores.close()


def test_cache_urls(tmp_path: Path) -> None:
    small = open_cache("memory://?max_entries=2", ttl_s=60)
    for k in ("k1", "k2", "k3"):
        small.set(k, {"k": k})
    assert small.get("k1") is None and small.get("k3") == {"k": "k3"}  # least recently used evicted

    path = tmp_path / "c" / "answers.sqlite3"
    first = open_cache(f"sqlite:///{path}", ttl_s=60)
    first.set("k1", {"answer": "a"})
    second = open_cache(f"sqlite:///{path}", ttl_s=60)  # another process / a restart sees it
    assert path.is_file() and second.get("k1") == {"answer": "a"}
    first.close()
    second.close()
    with pytest.raises(ConfigError):
        open_cache("memcached://x", ttl_s=60)
    with pytest.raises(ConfigError):
        open_cache("memory://?max_entries=many", ttl_s=60)


def test_bad_urls_are_config_errors(tmp_path: Path) -> None:
    for kwargs in ({"chatlog_url": "redis://127.0.0.1:6379/0"}, {"sessions_url": "mongodb://x"},
                   {"chatlog_url": "oracle://x/y"}):
        with pytest.raises(ConfigError) as err:
            open_conversation_stores(Settings(home=tmp_path, **kwargs))
        assert err.value.message_ko and err.value.message_en


def test_redis_url_prefix() -> None:
    assert split_prefix("redis://h:6379/0") == ("redis://h:6379/0", "jisik:")
    assert split_prefix("redis://h:6379/1?prefix=app1:&socket_timeout=3") == ("redis://h:6379/1?socket_timeout=3",
                                                                              "app1:")
    with pytest.raises(ConfigError):
        split_prefix("http://h")
