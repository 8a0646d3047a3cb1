"""The SQL database of the conversation stores: engine, tables and error mapping.

SQLAlchemy Core, so one code path serves SQLite (the embedded default: one file, WAL mode, busy
timeout, safe for several threads and processes), PostgreSQL (psycopg 3) and MySQL/MariaDB
(pymysql). Portability choices:

* times are naive UTC ``DATETIME(6)`` (MySQL's default DATETIME drops the fraction);
* long texts are MEDIUMTEXT on MySQL (TEXT holds only 64 KB), tables are utf8mb4 with binary
  collation (ids and labels compare case-sensitively, as on PostgreSQL and SQLite);
* an ``hour`` column (``YYYY-MM-DDTHH``, UTC) makes per-hour/per-day trends a plain GROUP BY;
* ``question_key`` (sha256 of the normalised question) groups "top questions" on an indexed column;
* the schema is created lazily on first use, so a store can be built while its server is down
  (the durable wrappers spool meanwhile).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, NoSuchModuleError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from jisik.core.errors import ConfigError, Unavailable
from jisik.core.logging import get_logger

log = get_logger(__name__)

LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
Stamp = DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# binary collation: ids and labels compare exactly (case-sensitive), as on PostgreSQL and SQLite
_MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def naive(t: datetime) -> datetime:
    return (t.astimezone(UTC) if t.tzinfo is not None else t).replace(tzinfo=None)


def aware(t: datetime) -> datetime:
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def hour_bucket(t: datetime) -> str:
    return naive(t).strftime("%Y-%m-%dT%H")


def _tables(meta: MetaData, prefix: str) -> dict[str, Table]:
    sessions = Table(
        f"{prefix}sessions", meta,
        Column("session_id", String(128), primary_key=True),
        Column("user_id", String(255), nullable=False),
        Column("app", String(128), nullable=False),
        Column("collection", String(128), nullable=False),
        Column("title", String(255), nullable=False),
        Column("summary", LongText, nullable=False),
        Column("summary_upto", Integer, nullable=False),
        Column("message_count", Integer, nullable=False),
        Column("created_at", Stamp, nullable=False),
        Column("updated_at", Stamp, nullable=False),
        Column("expires_at", Stamp),
        Index(f"ix_{prefix}sessions_user", "user_id", "updated_at"),
        Index(f"ix_{prefix}sessions_expires", "expires_at"),
        **_MYSQL,
    )
    messages = Table(
        f"{prefix}messages", meta,
        Column("session_id", String(128), primary_key=True),
        Column("seq", Integer, primary_key=True, autoincrement=False),
        Column("message_id", String(128), nullable=False),
        Column("role", String(16), nullable=False),
        Column("text", LongText, nullable=False),
        Column("citations", LongText, nullable=False),
        Column("meta", LongText, nullable=False),
        Column("created_at", Stamp, nullable=False),
        **_MYSQL,
    )
    chat_logs = Table(
        f"{prefix}chat_logs", meta,
        Column("log_id", String(128), primary_key=True),
        Column("message_id", String(128), nullable=False),
        Column("session_id", String(128), nullable=False),
        Column("user_id", String(64), nullable=False),
        Column("app", String(128), nullable=False),
        Column("collection", String(128), nullable=False),
        Column("question", LongText, nullable=False),
        Column("question_key", String(64), nullable=False),
        Column("answer", LongText, nullable=False),
        Column("answered", Boolean, nullable=False),
        Column("off_topic", Boolean, nullable=False),
        Column("latency_ms", Integer),
        Column("provider", String(128), nullable=False),
        Column("model", String(128), nullable=False),
        Column("created_at", Stamp, nullable=False),
        Column("hour", String(13), nullable=False),
        Index(f"ix_{prefix}chat_logs_created", "created_at"),
        Index(f"ix_{prefix}chat_logs_user", "user_id", "created_at"),
        Index(f"ix_{prefix}chat_logs_app", "app", "created_at"),
        Index(f"ix_{prefix}chat_logs_session", "session_id"),
        Index(f"ix_{prefix}chat_logs_message", "message_id"),
        Index(f"ix_{prefix}chat_logs_hour", "hour"),
        Index(f"ix_{prefix}chat_logs_question", "question_key"),
        **_MYSQL,
    )
    feedback = Table(
        f"{prefix}feedback", meta,
        Column("feedback_id", String(64), primary_key=True),
        Column("message_id", String(128), nullable=False),
        Column("session_id", String(128), nullable=False),
        Column("user_id", String(64), nullable=False),
        Column("rating", String(8), nullable=False),
        Column("comment", LongText, nullable=False),
        Column("citations", LongText, nullable=False),
        Column("created_at", Stamp, nullable=False),
        Column("hour", String(13), nullable=False),
        Index(f"ix_{prefix}feedback_message", "message_id"),
        Index(f"ix_{prefix}feedback_session", "session_id"),
        Index(f"ix_{prefix}feedback_user", "user_id", "created_at"),
        Index(f"ix_{prefix}feedback_created", "created_at"),
        **_MYSQL,
    )
    return {"sessions": sessions, "messages": messages, "chat_logs": chat_logs, "feedback": feedback}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def redact_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid url>"


class ConversationDb:
    """One engine + the four tables; shared by the SQL session, chat-log and feedback stores."""

    def __init__(self, url: str, *, prefix: str = "jisik_", connect_timeout_s: int = 3) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as e:
            raise ConfigError(f"대화 저장소 DB URL이 올바르지 않습니다: {url!r}",
                              f"Invalid conversation database URL: {url!r}") from e
        backend = parsed.get_backend_name()
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if backend == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        elif backend == "postgresql":
            if parsed.drivername == "postgresql":
                parsed = parsed.set(drivername="postgresql+psycopg")
            kwargs["connect_args"] = {"connect_timeout": connect_timeout_s}
        elif backend in ("mysql", "mariadb"):
            kwargs["connect_args"] = {"connect_timeout": connect_timeout_s, "charset": "utf8mb4"}
        else:
            raise ConfigError(f"지원하지 않는 대화 저장소 DB입니다: {parsed.drivername}",
                              f"Unsupported conversation database '{parsed.drivername}'",
                              hint="use sqlite:///file, postgresql+psycopg://... or mysql+pymysql://...")
        try:
            self.engine: Engine = create_engine(parsed, **kwargs)
        except (NoSuchModuleError, ImportError) as e:
            raise ConfigError(f"DB 드라이버가 설치되어 있지 않습니다: {parsed.drivername}",
                              f"Database driver not installed: {parsed.drivername}") from e
        if backend == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.backend = backend
        self.url = redact_url(url)
        self.meta = MetaData()
        t = _tables(self.meta, prefix)
        self.sessions, self.messages, self.chat_logs, self.feedback = (
            t["sessions"], t["messages"], t["chat_logs"], t["feedback"])
        self._ready = False
        self._lock = threading.Lock()

    def _unavailable(self, e: Exception) -> Unavailable:
        orig = getattr(e, "orig", None) or e
        log.warning("conversation database unavailable", extra={"db": self.url, "error": type(orig).__name__})
        return Unavailable("대화 기록 DB에 연결할 수 없습니다. 잠시 후 다시 시도하세요.",
                           f"The conversation database is unavailable ({type(orig).__name__}); try again later.",
                           details={"database": self.url})

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction; connection failures become :class:`Unavailable`."""
        self._ensure_schema()
        try:
            with self.engine.begin() as conn:
                yield conn
        except (OperationalError, InterfaceError, PoolTimeout) as e:
            raise self._unavailable(e) from e
        except DBAPIError as e:
            if e.connection_invalidated:
                raise self._unavailable(e) from e
            raise

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            try:
                conn = self.engine.connect()
            except (DBAPIError, PoolTimeout) as e:
                raise self._unavailable(e) from e
            with conn:
                for attempt in (1, 2):
                    try:
                        with conn.begin():
                            self.meta.create_all(conn, checkfirst=True)
                        break
                    except DBAPIError as e:  # e.g. another process created a table between check and CREATE
                        if e.connection_invalidated:
                            raise self._unavailable(e) from e
                        if attempt == 2:
                            raise
            self._ready = True

    def drop_all(self) -> None:
        """Drop the tables (tests)."""
        with self.begin() as conn:
            self.meta.drop_all(conn, checkfirst=True)

    def close(self) -> None:
        self.engine.dispose()
