"""Open the four conversation stores from settings URLs (the one place that picks implementations).

=================  ===================================================================
setting            URL forms
=================  ===================================================================
``sessions_url``   ``sqlite:///file`` (default ``{home}/conversations.sqlite3``) | ``redis://host:port/db?prefix=...``
                   | ``postgresql+psycopg://...`` | ``mysql+pymysql://...``
``chatlog_url``    (chat logs and feedback) ``sqlite:///file`` (default as above) | ``postgresql+psycopg://...``
                   | ``mysql+pymysql://...``
``cache_url``      ``memory://`` (default; ``?max_entries=N``) | ``sqlite:///file`` (in-process LRU backed by the
                   file) | ``redis://...``
=================  ===================================================================

Chat logs and feedback are always wrapped in their durable spools (``{home}/spool``), and user ids
are pseudonymised with the installation's secret (``$JISIK_PSEUDONYM_SALT`` or
``{home}/secrets/pseudonym.salt``: set the variable when several machines share a database).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from jisik.core.errors import ConfigError
from jisik.core.pseudonym import Pseudonymizer, default_pseudonymizer
from jisik.core.settings import Settings

from .base import AnswerCache, SessionStore
from .cache import MemoryAnswerCache
from .durable import DurableChatLog, DurableFeedback, Spool
from .sql_chatlog import SqlChatLogStore, SqlFeedbackStore
from .sql_db import ConversationDb
from .sql_sessions import SqlSessionStore

_SQL_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb")
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def _need_redis() -> None:
    try:
        import redis  # noqa: F401
    except ImportError as e:
        raise ConfigError("Redis 클라이언트(redis)가 설치되어 있지 않습니다.", "The redis client is not installed.",
                          hint="pip install 'jisik[redis]'") from e


@dataclass(slots=True)
class ConversationStores:
    sessions: SessionStore
    chatlogs: DurableChatLog
    feedback: DurableFeedback
    cache: AnswerCache

    def replay_spools(self) -> int:
        """Store what was spooled while the chat-log database was down (raises Unavailable if it still is)."""
        return self.chatlogs.replay() + self.feedback.replay()

    def close(self) -> None:
        for store in (self.sessions, self.chatlogs, self.feedback, self.cache):
            store.close()


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.split("+", 1)[0].lower()


def _is_sql(url: str) -> bool:
    return _scheme(url) in _SQL_SCHEMES


def open_cache(url: str, *, ttl_s: int) -> AnswerCache:
    scheme = _scheme(url)
    if scheme == "memory":
        query = parse_qs(urlsplit(url).query)
        try:
            max_entries = int(query.get("max_entries", ["10000"])[-1])
        except ValueError as e:
            raise ConfigError("max_entries 값이 숫자가 아닙니다.", "max_entries in cache_url must be an integer") from e
        return MemoryAnswerCache(ttl_s=ttl_s, max_entries=max_entries)
    if scheme == "sqlite":
        path = unquote(urlsplit(url).path)[1:]  # sqlite:///relative or sqlite:////absolute, as SQLAlchemy
        if not path:
            raise ConfigError("캐시 SQLite 파일 경로가 비어 있습니다.", "cache_url sqlite:/// needs a file path")
        return MemoryAnswerCache(ttl_s=ttl_s, path=Path(path))
    if scheme in _REDIS_SCHEMES:
        _need_redis()
        from .redis_cache import RedisAnswerCache

        return RedisAnswerCache(url, ttl_s=ttl_s)
    raise ConfigError(f"지원하지 않는 캐시 URL입니다: {scheme}://",
                      f"Unsupported cache_url scheme '{scheme}'; use memory://, sqlite:///file or redis://...")


def open_conversation_stores(settings: Settings, *, pseudonymize: Pseudonymizer | None = None,
                             retry_after_s: float = 5.0) -> ConversationStores:
    sessions_url = settings.resolved_sessions_url()
    chatlog_url = settings.resolved_chatlog_url()
    if not _is_sql(chatlog_url):
        raise ConfigError(f"지원하지 않는 대화 로그 DB URL입니다: {_scheme(chatlog_url)}://",
                          f"Unsupported chatlog_url scheme '{_scheme(chatlog_url)}'",
                          hint="use sqlite:///file, postgresql+psycopg://... or mysql+pymysql://...")
    pz = pseudonymize or default_pseudonymizer(settings.home)
    log_db = ConversationDb(chatlog_url)
    sessions: SessionStore
    if _scheme(sessions_url) in _REDIS_SCHEMES:
        _need_redis()
        from .redis_sessions import RedisSessionStore

        sessions = RedisSessionStore(sessions_url, ttl_s=settings.session_ttl_s,
                                     max_messages=settings.history_max_messages)
    elif _is_sql(sessions_url):
        db = log_db if sessions_url == chatlog_url else ConversationDb(sessions_url)
        sessions = SqlSessionStore(db, ttl_s=settings.session_ttl_s, max_messages=settings.history_max_messages)
    else:
        raise ConfigError(f"지원하지 않는 세션 저장소 URL입니다: {_scheme(sessions_url)}://",
                          f"Unsupported sessions_url scheme '{_scheme(sessions_url)}'",
                          hint="use sqlite:///file or redis://host:6379/0")
    spool_dir = settings.home / "spool"
    return ConversationStores(
        sessions=sessions,
        chatlogs=DurableChatLog(SqlChatLogStore(log_db, pz), Spool(spool_dir, "chat_logs"), pz,
                                retry_after_s=retry_after_s),
        feedback=DurableFeedback(SqlFeedbackStore(log_db, pz), Spool(spool_dir, "feedback"), pz,
                                 retry_after_s=retry_after_s),
        cache=open_cache(settings.cache_url, ttl_s=settings.cache_ttl_s),
    )
