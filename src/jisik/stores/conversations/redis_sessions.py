"""Sessions in Redis (for API replicas behind a load balancer).

Keys, under the URL's prefix ``P``::

    P sess:<id>        hash: the session's fields
    P sess:<id>:msgs   list: JSON messages, oldest first, trimmed to ``max_messages``
    P user:<sha>       sorted set: the user's session ids scored by last update (the user id is
                       hashed, so key listings show no user ids)

All three expire ``ttl_s`` after the session's last append (0 = never). Every change runs in one
MULTI/EXEC transaction guarded by WATCH on the session hash: an append numbers its messages from
the hash's ``message_count``, pushes them, trims the list and bumps the count atomically, and is
retried if another client changed the session meanwhile; a session deleted or expired
meanwhile makes the append fail with :class:`NotFound` instead of resurrecting it.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import redis

from jisik.core.errors import Conflict, InvalidInput, Unavailable

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
from .redis_common import connect, redis_errors
from .sql_sessions import _numbered, check_messages, session_not_found

R = TypeVar("R")
_RETRIES = 50


class RedisSessionStore:
    def __init__(self, url: str, *, ttl_s: float = 7 * 86400, max_messages: int = 200) -> None:
        if max_messages < 1:
            raise InvalidInput("max_messages는 1 이상이어야 합니다.", "max_messages must be >= 1")
        self.client, self.prefix = connect(url)
        self.ttl_s = ttl_s
        self.max_messages = max_messages

    # keys
    def _hkey(self, sid: str) -> str:
        return f"{self.prefix}sess:{sid}"

    def _mkey(self, sid: str) -> str:
        return f"{self.prefix}sess:{sid}:msgs"

    def _ukey(self, user_id: str) -> str:
        return f"{self.prefix}user:{hashlib.sha256(user_id.encode('utf-8')).hexdigest()[:32]}"

    def _expire(self, pipe: Any, *keys: str) -> None:
        for k in keys:
            if self.ttl_s > 0:
                pipe.pexpire(k, max(int(self.ttl_s * 1000), 1))
            else:
                pipe.persist(k)

    def _watched(self, sid: str, body: Callable[[Any], R]) -> R:
        """Run ``body(pipe)`` with the session hash WATCHed; retried when the session changed."""
        with redis_errors(self.client, "sessions"):
            for attempt in range(_RETRIES):
                with self.client.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(self._hkey(sid))
                        return body(pipe)
                    except redis.WatchError:
                        time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
        raise Unavailable("세션이 동시에 너무 많이 변경되어 저장하지 못했습니다. 다시 시도하세요.",
                          "The session changed concurrently too often; try again.")

    @staticmethod
    def _session(sid: str, h: dict[str, str]) -> Session:
        return Session(
            session_id=sid, user_id=h.get("user_id", ""), app=h.get("app", ""), collection=h.get("collection", ""),
            created_at=datetime.fromisoformat(h["created_at"]), updated_at=datetime.fromisoformat(h["updated_at"]),
            title=h.get("title", ""), summary=h.get("summary", ""), summary_upto=int(h.get("summary_upto", 0)),
            message_count=int(h.get("message_count", 0)),
        )

    def create(self, *, user_id: str = "", app: str = "", collection: str = "", title: str = "",
               session_id: str | None = None) -> Session:
        sid = check_id(session_id, "세션 ID(session id)") if session_id is not None else new_id()
        check_user_id(user_id)
        now = now_utc()
        session = Session(session_id=sid, user_id=user_id, app=clip(app), collection=clip(collection),
                          created_at=now, updated_at=now, title=clip(title, MAX_TITLE_CHARS))
        fields = {k: str(v) for k, v in session.to_dict().items() if k != "session_id"}

        def body(pipe: Any) -> Session:
            if pipe.exists(self._hkey(sid)):
                raise Conflict("같은 ID의 세션이 이미 있습니다.", "A session with this id already exists.",
                               details={"session_id": sid})
            pipe.multi()
            pipe.delete(self._mkey(sid))  # leftovers of an expired session of that id
            pipe.hset(self._hkey(sid), mapping=fields)
            self._index(pipe, session, now.timestamp())
            self._expire(pipe, self._hkey(sid))
            pipe.execute()
            return session

        return self._watched(sid, body)

    def _index(self, pipe: Any, s: Session, score: float) -> None:
        if s.user_id:
            pipe.zadd(self._ukey(s.user_id), {s.session_id: score})
            self._expire(pipe, self._ukey(s.user_id))

    def _hash(self, sid: str) -> dict[str, str]:
        with redis_errors(self.client, "sessions"):
            h: dict[str, str] = self.client.hgetall(self._hkey(sid))  # type: ignore[assignment]
        if not h:
            raise session_not_found(sid)
        return h

    def get(self, session_id: str) -> Session:
        check_id(session_id, "세션 ID(session id)")
        return self._session(session_id, self._hash(session_id))

    def append(self, session_id: str, messages: Sequence[Message]) -> list[Message]:
        sid = check_id(session_id, "세션 ID(session id)")
        check_messages(messages)
        now = now_utc()

        def body(pipe: Any) -> list[Message]:
            h: dict[str, str] = pipe.hgetall(self._hkey(sid))
            if not h:
                raise session_not_found(sid)
            first = int(h.get("message_count", 0)) + 1
            stored = [_numbered(m, sid, first + i) for i, m in enumerate(messages)]
            pipe.multi()
            pipe.rpush(self._mkey(sid), *(dumps(m.to_dict()) for m in stored))
            pipe.ltrim(self._mkey(sid), -self.max_messages, -1)
            pipe.hset(self._hkey(sid), mapping={"message_count": str(stored[-1].seq), "updated_at": now.isoformat()})
            self._index(pipe, Session(session_id=sid, user_id=h.get("user_id", "")), now.timestamp())
            self._expire(pipe, self._hkey(sid), self._mkey(sid))
            pipe.execute()
            return stored

        return self._watched(sid, body)

    def history(self, session_id: str, limit: int | None = None) -> list[Message]:
        sid = check_id(session_id, "세션 ID(session id)")
        if limit is not None and limit < 1:
            raise InvalidInput("limit은 1 이상이어야 합니다.", "limit must be >= 1")
        with redis_errors(self.client, "sessions"), self.client.pipeline(transaction=True) as pipe:
            pipe.exists(self._hkey(sid))
            pipe.lrange(self._mkey(sid), -(limit or self.max_messages), -1)
            exists, items = pipe.execute()
        if not exists:
            raise session_not_found(sid)
        return [Message.from_dict(json.loads(x)) for x in items]

    def set_summary(self, session_id: str, summary: str, upto: int) -> Session:
        sid = check_id(session_id, "세션 ID(session id)")
        check_text(summary, "요약(summary)")
        if upto < 0:
            raise InvalidInput("upto는 0 이상이어야 합니다.", "upto must be >= 0")

        def body(pipe: Any) -> Session:
            h: dict[str, str] = pipe.hgetall(self._hkey(sid))
            if not h:
                raise session_not_found(sid)
            if upto > int(h.get("message_count", 0)):
                raise InvalidInput("upto가 세션의 메시지 수보다 큽니다.", "upto is beyond the session's last message")
            pipe.multi()
            pipe.hset(self._hkey(sid), mapping={"summary": summary, "summary_upto": str(upto)})
            pipe.execute()
            return self._session(sid, {**h, "summary": summary, "summary_upto": str(upto)})

        return self._watched(sid, body)

    def delete(self, session_id: str) -> bool:
        sid = check_id(session_id, "세션 ID(session id)")

        def body(pipe: Any) -> bool:
            user = pipe.hget(self._hkey(sid), "user_id")
            pipe.multi()
            pipe.delete(self._hkey(sid), self._mkey(sid))
            if user:
                pipe.zrem(self._ukey(user), sid)
            return bool(pipe.execute()[0])

        return self._watched(sid, body)

    def list_by_user(self, user_id: str, *, limit: int = 50, offset: int = 0) -> Page[Session]:
        check_user_id(user_id)
        check_paging(limit, offset)
        ukey = self._ukey(user_id)
        with redis_errors(self.client, "sessions"):
            if self.ttl_s > 0:  # scores are last updates: older than the TTL means expired
                self.client.zremrangebyscore(ukey, "-inf", f"({now_utc().timestamp() - self.ttl_s}")
            ids: list[str] = self.client.zrevrange(ukey, offset, offset + limit - 1)  # type: ignore[assignment]
            with self.client.pipeline(transaction=False) as pipe:
                for sid in ids:
                    pipe.hgetall(self._hkey(sid))
                hashes: list[dict[str, str]] = pipe.execute()
            gone = [sid for sid, h in zip(ids, hashes, strict=True) if not h]
            if gone:
                self.client.zrem(ukey, *gone)
            total = int(self.client.zcard(ukey))
        items = [self._session(sid, h) for sid, h in zip(ids, hashes, strict=True) if h]
        return Page(items, total, limit, offset)

    def close(self) -> None:
        self.client.close()
