"""Sessions in SQL (the embedded default is SQLite under ``settings.home``; PostgreSQL and MariaDB
work too). A session idles out ``ttl_s`` seconds after its last append (``expires_at``); expired
rows are invisible at once and removed by :meth:`SqlSessionStore.purge_expired` (also run now and
then by :meth:`create`).

Appends are atomic and numbered without races: the transaction first bumps the session's
``message_count`` (an UPDATE, which takes the row's write lock on every database), then inserts
the messages with the sequence numbers that reserved, then drops messages beyond
``max_messages``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from jisik.core.errors import Conflict, InvalidInput, NotFound

from .base import Page, Session
from .records import (
    MAX_TITLE_CHARS,
    Message,
    check_id,
    check_paging,
    check_text,
    check_user_id,
    clip,
    dumps,
    new_id,
    now_utc,
)
from .sql_db import ConversationDb, aware, naive

_PURGE_EVERY_S = 600.0


def session_not_found(session_id: str) -> NotFound:
    return NotFound("세션을 찾을 수 없습니다 (없거나 만료되었습니다).",
                    "Session not found (it does not exist or has expired).", details={"session_id": session_id})


def check_messages(messages: Sequence[Message]) -> None:
    if not messages:
        raise InvalidInput("추가할 메시지가 없습니다.", "No messages to append")
    for m in messages:
        m.validate()


class SqlSessionStore:
    def __init__(self, db: ConversationDb, *, ttl_s: float = 7 * 86400, max_messages: int = 200) -> None:
        if max_messages < 1:
            raise InvalidInput("max_messages는 1 이상이어야 합니다.", "max_messages must be >= 1")
        self.db = db
        self.ttl_s = ttl_s
        self.max_messages = max_messages
        self._last_purge = 0.0

    def _expiry(self, now: datetime) -> datetime | None:
        return naive(now + timedelta(seconds=self.ttl_s)) if self.ttl_s > 0 else None

    def _live(self, session_id: str, now: datetime) -> ColumnElement[bool]:
        t = self.db.sessions
        return and_(t.c.session_id == session_id, or_(t.c.expires_at.is_(None), t.c.expires_at > naive(now)))

    @staticmethod
    def _session(row: Any) -> Session:
        m = row._mapping
        return Session(
            session_id=m["session_id"], user_id=m["user_id"], app=m["app"], collection=m["collection"],
            created_at=aware(m["created_at"]), updated_at=aware(m["updated_at"]), title=m["title"],
            summary=m["summary"], summary_upto=m["summary_upto"], message_count=m["message_count"],
        )

    def create(self, *, user_id: str = "", app: str = "", collection: str = "", title: str = "",
               session_id: str | None = None) -> Session:
        sid = check_id(session_id, "세션 ID(session id)") if session_id is not None else new_id()
        check_user_id(user_id)
        if time.monotonic() - self._last_purge > _PURGE_EVERY_S:
            self.purge_expired()  # (this also creates the tables on first use, before "now" is taken)
        now = now_utc()
        s = self.db.sessions
        row = {
            "session_id": sid, "user_id": user_id, "app": clip(app), "collection": clip(collection),
            "title": clip(title, MAX_TITLE_CHARS), "summary": "", "summary_upto": 0, "message_count": 0,
            "created_at": naive(now), "updated_at": naive(now), "expires_at": self._expiry(now),
        }
        try:
            with self.db.begin() as conn:
                if session_id is not None:  # an expired session of that id gives way
                    expired = and_(s.c.session_id == sid, s.c.expires_at.is_not(None), s.c.expires_at <= naive(now))
                    if conn.execute(delete(s).where(expired)).rowcount:
                        conn.execute(delete(self.db.messages).where(self.db.messages.c.session_id == sid))
                conn.execute(insert(s), row)
        except IntegrityError as e:
            raise Conflict("같은 ID의 세션이 이미 있습니다.", "A session with this id already exists.",
                           details={"session_id": sid}) from e
        return self._session(_Row(row))

    def get(self, session_id: str) -> Session:
        check_id(session_id, "세션 ID(session id)")
        with self.db.begin() as conn:
            row = conn.execute(select(self.db.sessions).where(self._live(session_id, now_utc()))).first()
        if row is None:
            raise session_not_found(session_id)
        return self._session(row)

    def append(self, session_id: str, messages: Sequence[Message]) -> list[Message]:
        check_id(session_id, "세션 ID(session id)")
        check_messages(messages)
        s, m = self.db.sessions, self.db.messages
        now = now_utc()
        n = len(messages)
        with self.db.begin() as conn:
            bumped = conn.execute(update(s).where(self._live(session_id, now)).values(
                message_count=s.c.message_count + n, updated_at=naive(now), expires_at=self._expiry(now))).rowcount
            if not bumped:
                raise session_not_found(session_id)
            last = conn.execute(select(s.c.message_count).where(s.c.session_id == session_id)).scalar_one()
            stored = [_numbered(msg, session_id, last - n + 1 + i) for i, msg in enumerate(messages)]
            conn.execute(insert(m), [{
                "session_id": session_id, "seq": x.seq, "message_id": x.message_id, "role": x.role, "text": x.text,
                "citations": dumps(x.citations), "meta": dumps(x.meta), "created_at": naive(x.created_at),
            } for x in stored])
            if last > self.max_messages:
                conn.execute(delete(m).where(m.c.session_id == session_id, m.c.seq <= last - self.max_messages))
        return stored

    def history(self, session_id: str, limit: int | None = None) -> list[Message]:
        check_id(session_id, "세션 ID(session id)")
        if limit is not None and limit < 1:
            raise InvalidInput("limit은 1 이상이어야 합니다.", "limit must be >= 1")
        m = self.db.messages
        with self.db.begin() as conn:
            if conn.execute(select(self.db.sessions.c.session_id).where(self._live(session_id, now_utc()))).first() \
                    is None:
                raise session_not_found(session_id)
            q = select(m).where(m.c.session_id == session_id).order_by(m.c.seq.desc())
            rows = conn.execute(q.limit(limit or self.max_messages)).all()
        return [_message(r) for r in reversed(rows)]

    def set_summary(self, session_id: str, summary: str, upto: int) -> Session:
        check_id(session_id, "세션 ID(session id)")
        check_text(summary, "요약(summary)")
        if upto < 0:
            raise InvalidInput("upto는 0 이상이어야 합니다.", "upto must be >= 0")
        s = self.db.sessions
        with self.db.begin() as conn:
            done = conn.execute(update(s).where(self._live(session_id, now_utc()), s.c.message_count >= upto)
                                .values(summary=summary, summary_upto=upto)).rowcount
        if not done:
            self.get(session_id)  # NotFound if missing
            raise InvalidInput("upto가 세션의 메시지 수보다 큽니다.", "upto is beyond the session's last message")
        return self.get(session_id)

    def delete(self, session_id: str) -> bool:
        check_id(session_id, "세션 ID(session id)")
        with self.db.begin() as conn:
            conn.execute(delete(self.db.messages).where(self.db.messages.c.session_id == session_id))
            return bool(conn.execute(delete(self.db.sessions).where(
                self.db.sessions.c.session_id == session_id)).rowcount)

    def list_by_user(self, user_id: str, *, limit: int = 50, offset: int = 0) -> Page[Session]:
        check_user_id(user_id)
        check_paging(limit, offset)
        s = self.db.sessions
        now = naive(now_utc())
        cond = and_(s.c.user_id == user_id, or_(s.c.expires_at.is_(None), s.c.expires_at > now))
        with self.db.begin() as conn:
            total = conn.execute(select(func.count()).select_from(s).where(cond)).scalar_one()
            rows = conn.execute(select(s).where(cond).order_by(s.c.updated_at.desc(), s.c.session_id)
                                .limit(limit).offset(offset)).all()
        return Page([self._session(r) for r in rows], int(total), limit, offset)

    def purge_expired(self) -> int:
        """Delete expired sessions and their messages; returns how many sessions went."""
        self._last_purge = time.monotonic()
        s, m = self.db.sessions, self.db.messages
        now = naive(now_utc())
        with self.db.begin() as conn:
            ids = conn.execute(select(s.c.session_id).where(s.c.expires_at.is_not(None), s.c.expires_at <= now)
                               .limit(1000)).scalars().all()
            if not ids:
                return 0
            conn.execute(delete(m).where(m.c.session_id.in_(ids)))
            return int(conn.execute(delete(s).where(s.c.session_id.in_(ids), s.c.expires_at <= now)).rowcount)

    def close(self) -> None:
        self.db.close()


class _Row:
    """A dict posing as a result row (for building a Session from the values just inserted)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._mapping = values


def _numbered(m: Message, session_id: str, seq: int) -> Message:
    return Message(role=m.role, text=m.text, message_id=m.message_id, session_id=session_id,
                   created_at=m.created_at, citations=list(m.citations), meta=dict(m.meta), seq=seq)


def _message(row: Any) -> Message:
    m = row._mapping
    return Message(role=m["role"], text=m["text"], message_id=m["message_id"], session_id=m["session_id"],
                   created_at=aware(m["created_at"]), citations=json.loads(m["citations"]), meta=json.loads(m["meta"]),
                   seq=m["seq"])
