"""Chat logs and feedback in SQL (SQLite | PostgreSQL | MySQL/MariaDB); statistics in :mod:`.sql_stats`.

Writes are idempotent: a chat log is identified by ``log_id`` (a second insert is ignored), a
feedback by (message, pseudonymised user) (an update applies only if it is not older than what
is stored). Both are written "write first" (INSERT, or UPDATE then INSERT), which never needs a
read lock upgraded to a write lock, so SQLite in WAL mode serves several processes.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from jisik.core.errors import NotFound
from jisik.core.logging import get_logger
from jisik.core.pseudonym import Pseudonymizer

from .base import Bucket, FeedbackStats, LogQuery, Overview, Page, QuestionCount, QuestionKind, TrendPoint, UserStats
from .records import ChatLog, Feedback, Rating, check_id, check_paging, clip, dumps, feedback_id, question_key
from .sql_db import ConversationDb, aware, hour_bucket, naive
from .sql_stats import StatsQueries, time_range

log = get_logger(__name__)
_BATCH = 200


def prepare_log(log_: ChatLog, pseudonymize: Pseudonymizer) -> ChatLog:
    """Validated copy with the user pseudonymised, labels clipped and ``message_id`` set."""
    log_.validate()
    return ChatLog(
        session_id=log_.session_id, question=log_.question, answer=log_.answer,
        user_id=pseudonymize(log_.user_id), app=clip(log_.app), collection=clip(log_.collection),
        answered=bool(log_.answered), off_topic=bool(log_.off_topic), latency_ms=log_.latency_ms,
        provider=clip(log_.provider), model=clip(log_.model), log_id=log_.log_id,
        message_id=log_.message_id or log_.log_id, created_at=aware(log_.created_at),
    )


def prepare_feedback(fb: Feedback, pseudonymize: Pseudonymizer) -> Feedback:
    fb.validate()
    user = pseudonymize(fb.user_id)
    return Feedback(message_id=fb.message_id, rating=fb.rating, session_id=fb.session_id, user_id=user,
                    comment=fb.comment, citations=list(fb.citations), created_at=aware(fb.created_at),
                    feedback_id=feedback_id(fb.message_id, user, fb.session_id))


class SqlChatLogStore:
    def __init__(self, db: ConversationDb, pseudonymize: Pseudonymizer) -> None:
        self.db = db
        self.pseudonymize = pseudonymize
        self._stats = StatsQueries(db)
        # one statement, parameters per call: building ``insert().values(...)`` anew cost ~0.4 ms a row
        self._insert_log = insert(db.chat_logs)

    def _values(self, x: ChatLog) -> dict[str, Any]:
        return {
            "log_id": x.log_id, "message_id": x.message_id, "session_id": x.session_id, "user_id": x.user_id,
            "app": x.app, "collection": x.collection, "question": x.question, "question_key": question_key(x.question),
            "answer": x.answer, "answered": x.answered, "off_topic": x.off_topic, "latency_ms": x.latency_ms,
            "provider": x.provider, "model": x.model, "created_at": naive(x.created_at),
            "hour": hour_bucket(x.created_at),
        }

    def record(self, log_: ChatLog) -> ChatLog:
        x = prepare_log(log_, self.pseudonymize)
        try:
            with self.db.begin() as conn:
                conn.execute(self._insert_log, self._values(x))
        except IntegrityError:
            log.debug("chat log already stored", extra={"log_id": x.log_id})
        return x

    def record_many(self, logs: Sequence[ChatLog]) -> int:
        t = self.db.chat_logs
        items = list({x.log_id: x for x in (prepare_log(y, self.pseudonymize) for y in logs)}.values())
        new = 0
        for start in range(0, len(items), _BATCH):
            part = items[start:start + _BATCH]
            with self.db.begin() as conn:
                known = set(conn.execute(select(t.c.log_id).where(t.c.log_id.in_([x.log_id for x in part])))
                            .scalars())
            fresh = [x for x in part if x.log_id not in known]
            if not fresh:
                continue
            try:
                with self.db.begin() as conn:
                    conn.execute(self._insert_log, [self._values(x) for x in fresh])
                new += len(fresh)
            except IntegrityError:  # a concurrent writer stored some meanwhile: one by one
                for x in fresh:
                    try:
                        with self.db.begin() as conn:
                            conn.execute(self._insert_log, self._values(x))
                        new += 1
                    except IntegrityError:
                        pass
        return new

    def get(self, log_id: str) -> ChatLog:
        check_id(log_id, "로그 ID(log id)")
        with self.db.begin() as conn:
            row = conn.execute(select(self.db.chat_logs).where(self.db.chat_logs.c.log_id == log_id)).first()
        if row is None:
            raise NotFound("대화 로그를 찾을 수 없습니다.", "Chat log not found.", details={"log_id": log_id})
        return _chat_log(row)

    def _filters(self, q: LogQuery) -> list[ColumnElement[bool]]:
        t = self.db.chat_logs
        conds: list[ColumnElement[bool]] = list(time_range(t.c.created_at, q.since, q.until))
        if q.user_id is not None:
            conds.append(t.c.user_id == self.pseudonymize(q.user_id))
        if q.app is not None:
            conds.append(t.c.app == q.app)
        if q.collection is not None:
            conds.append(t.c.collection == q.collection)
        if q.session_id is not None:
            conds.append(t.c.session_id == q.session_id)
        if q.answered is not None:
            conds.append(t.c.answered.is_(q.answered))
        if q.off_topic is not None:
            conds.append(t.c.off_topic.is_(q.off_topic))
        if q.text:
            conds.append(t.c.question.icontains(q.text, autoescape=True)
                         | t.c.answer.icontains(q.text, autoescape=True))
        return conds

    def list(self, query: LogQuery) -> Page[ChatLog]:
        check_paging(query.limit, query.offset)
        t = self.db.chat_logs
        cond = and_(True, *self._filters(query))
        with self.db.begin() as conn:
            total = conn.execute(select(func.count()).select_from(t).where(cond)).scalar_one()
            rows = conn.execute(select(t).where(cond).order_by(t.c.created_at.desc(), t.c.log_id.desc())
                                .limit(query.limit).offset(query.offset)).all()
        return Page([_chat_log(r) for r in rows], int(total), query.limit, query.offset)

    def overview(self, *, since: datetime | None = None, until: datetime | None = None,
                 app: str | None = None) -> Overview:
        return self._stats.overview(since, until, app)

    def trends(self, *, since: datetime, until: datetime, bucket: Bucket = "day", tz: str = "UTC",
               app: str | None = None) -> builtins.list[TrendPoint]:
        return self._stats.trends(since, until, bucket, tz, app)

    def feedback_stats(self, *, since: datetime | None = None, until: datetime | None = None,
                       app: str | None = None, tz: str = "UTC") -> FeedbackStats:
        return self._stats.feedback(since, until, app, tz)

    def top_questions(self, *, since: datetime | None = None, until: datetime | None = None,
                      app: str | None = None, kind: QuestionKind = "all",
                      limit: int = 20) -> builtins.list[QuestionCount]:
        return self._stats.top_questions(since, until, app, kind, limit)

    def users(self, *, since: datetime | None = None, until: datetime | None = None, app: str | None = None,
              limit: int = 50, offset: int = 0) -> Page[UserStats]:
        return self._stats.users(since, until, app, limit, offset)

    def close(self) -> None:
        self.db.close()


class SqlFeedbackStore:
    def __init__(self, db: ConversationDb, pseudonymize: Pseudonymizer) -> None:
        self.db = db
        self.pseudonymize = pseudonymize

    @staticmethod
    def _values(x: Feedback) -> dict[str, Any]:
        return {"message_id": x.message_id, "session_id": x.session_id, "user_id": x.user_id, "rating": x.rating,
                "comment": x.comment, "citations": dumps(x.citations), "created_at": naive(x.created_at),
                "hour": hour_bucket(x.created_at)}

    def _write(self, x: Feedback) -> bool:
        """Apply one prepared feedback; False when a newer one is stored already."""
        t = self.db.feedback
        values = self._values(x)
        newer_or_same = and_(t.c.feedback_id == x.feedback_id, t.c.created_at <= values["created_at"])
        for _ in range(2):
            with self.db.begin() as conn:
                if conn.execute(update(t).where(newer_or_same).values(**values)).rowcount:
                    return True
            try:
                with self.db.begin() as conn:
                    conn.execute(insert(t).values(feedback_id=x.feedback_id, **values))
                return True
            except IntegrityError:  # it exists and is newer, or a concurrent insert won: check again
                continue
        return False

    def record(self, feedback: Feedback) -> Feedback:
        x = prepare_feedback(feedback, self.pseudonymize)
        self._write(x)
        return x

    def record_many(self, items: Sequence[Feedback]) -> int:
        prepared = sorted((prepare_feedback(f, self.pseudonymize) for f in items), key=lambda f: f.created_at)
        return sum(self._write(x) for x in prepared)

    def get(self, feedback_id: str) -> Feedback:
        check_id(feedback_id, "피드백 ID(feedback id)")
        with self.db.begin() as conn:
            row = conn.execute(select(self.db.feedback).where(self.db.feedback.c.feedback_id == feedback_id)).first()
        if row is None:
            raise NotFound("피드백을 찾을 수 없습니다.", "Feedback not found.", details={"feedback_id": feedback_id})
        return _feedback(row)

    def list(self, *, message_id: str | None = None, session_id: str | None = None, user_id: str | None = None,
             rating: Rating | None = None, since: datetime | None = None, until: datetime | None = None,
             limit: int = 50, offset: int = 0) -> Page[Feedback]:
        check_paging(limit, offset)
        t = self.db.feedback
        conds: list[ColumnElement[bool]] = list(time_range(t.c.created_at, since, until))
        for col, value in ((t.c.message_id, message_id), (t.c.session_id, session_id), (t.c.rating, rating)):
            if value is not None:
                conds.append(col == value)
        if user_id is not None:
            conds.append(t.c.user_id == self.pseudonymize(user_id))
        cond = and_(True, *conds)
        with self.db.begin() as conn:
            total = conn.execute(select(func.count()).select_from(t).where(cond)).scalar_one()
            rows = conn.execute(select(t).where(cond).order_by(t.c.created_at.desc(), t.c.feedback_id)
                                .limit(limit).offset(offset)).all()
        return Page([_feedback(r) for r in rows], int(total), limit, offset)

    def close(self) -> None:
        self.db.close()


def _chat_log(row: Any) -> ChatLog:
    m = row._mapping
    return ChatLog(
        session_id=m["session_id"], question=m["question"], answer=m["answer"], user_id=m["user_id"], app=m["app"],
        collection=m["collection"], answered=bool(m["answered"]), off_topic=bool(m["off_topic"]),
        latency_ms=m["latency_ms"], provider=m["provider"], model=m["model"], log_id=m["log_id"],
        message_id=m["message_id"], created_at=aware(m["created_at"]),
    )


def _feedback(row: Any) -> Feedback:
    m = row._mapping
    return Feedback(message_id=m["message_id"], rating=m["rating"], session_id=m["session_id"], user_id=m["user_id"],
                    comment=m["comment"], citations=json.loads(m["citations"]), created_at=aware(m["created_at"]),
                    feedback_id=m["feedback_id"])
