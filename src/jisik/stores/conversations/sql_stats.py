"""Admin statistics over the chat-log and feedback tables, computed by the database.

Every query is an aggregate (COUNT/SUM/AVG with GROUP BY on indexed columns); the 95th latency
percentile is one ORDER BY ... LIMIT 1 OFFSET k (nearest rank), which runs the same on SQLite,
PostgreSQL and MariaDB. Trends group by the stored UTC ``hour`` column and fold those (at most
24 per day) into hours or days of the requested time zone, so a dashboard in Asia/Seoul gets
Korean calendar days (exact for zones whose offset is whole hours).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import and_, case, func, select
from sqlalchemy.sql.elements import ColumnElement

from jisik.core.errors import InvalidInput

from .base import Bucket, FeedbackStats, Overview, Page, QuestionCount, QuestionKind, TrendPoint, UserStats
from .records import check_paging
from .sql_db import ConversationDb, aware, naive

MAX_BUCKETS = 24 * 400


def time_range(col: Any, since: datetime | None, until: datetime | None) -> Iterator[ColumnElement[bool]]:
    if since is not None:
        yield col >= naive(since)
    if until is not None:
        yield col < naive(until)


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise InvalidInput(f"알 수 없는 시간대입니다: {tz!r}", f"Unknown time zone {tz!r} (e.g. UTC, Asia/Seoul)"
                           ) from e


def _count_if(cond: ColumnElement[bool]) -> Any:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _local_hour(hour: str, tzinfo: ZoneInfo) -> datetime:
    return datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC).astimezone(tzinfo)


def _bucket_start(t: datetime, bucket: Bucket) -> datetime:
    t = t.replace(minute=0, second=0, microsecond=0)
    return t.replace(hour=0) if bucket == "day" else t


def _buckets(since: datetime, until: datetime, bucket: Bucket, tzinfo: ZoneInfo) -> list[datetime]:
    if until <= since:
        raise InvalidInput("until은 since보다 뒤여야 합니다.", "until must be after since")
    out: list[datetime] = []
    if bucket == "hour":
        t = aware(since).replace(minute=0, second=0, microsecond=0)
        while t < aware(until) and len(out) <= MAX_BUCKETS:
            out.append(t.astimezone(tzinfo))
            t += timedelta(hours=1)
    else:
        day = aware(since).astimezone(tzinfo).date()
        last = aware(until).astimezone(tzinfo)
        while len(out) <= MAX_BUCKETS:
            start = datetime(day.year, day.month, day.day, tzinfo=tzinfo)
            if start >= last:
                break
            out.append(start)
            day += timedelta(days=1)
    if len(out) > MAX_BUCKETS:
        raise InvalidInput(f"구간이 너무 많습니다 (최대 {MAX_BUCKETS}개).", f"Too many buckets (max {MAX_BUCKETS})")
    return out


class StatsQueries:
    def __init__(self, db: ConversationDb) -> None:
        self.db = db

    def _log_conds(self, since: datetime | None, until: datetime | None, app: str | None) -> ColumnElement[bool]:
        t = self.db.chat_logs
        conds = list(time_range(t.c.created_at, since, until))
        if app is not None:
            conds.append(t.c.app == app)
        return and_(True, *conds)

    def _feedback_conds(self, since: datetime | None, until: datetime | None, app: str | None) -> ColumnElement[bool]:
        f, t = self.db.feedback, self.db.chat_logs
        conds = list(time_range(f.c.created_at, since, until))
        if app is not None:
            conds.append(f.c.message_id.in_(select(t.c.message_id).where(t.c.app == app)))
        return and_(True, *conds)

    def overview(self, since: datetime | None, until: datetime | None, app: str | None) -> Overview:
        t, f = self.db.chat_logs, self.db.feedback
        cond = self._log_conds(since, until, app)
        q = select(
            func.count(),
            func.count(func.distinct(case((t.c.user_id != "", t.c.user_id)))),
            func.count(func.distinct(case((t.c.session_id != "", t.c.session_id)))),
            _count_if(t.c.answered.is_(True)),
            _count_if(t.c.off_topic.is_(True)),
            func.avg(t.c.latency_ms),
            func.count(t.c.latency_ms),
        ).where(cond)
        with self.db.begin() as conn:
            total, users, sessions, answered, off_topic, avg, n_lat = conn.execute(q).one()
            p95 = None
            if n_lat:
                k = max(math.ceil(0.95 * n_lat) - 1, 0)
                p95 = conn.execute(select(t.c.latency_ms).where(cond, t.c.latency_ms.is_not(None))
                                   .order_by(t.c.latency_ms).limit(1).offset(k)).scalar_one()
            ratings: dict[str, int] = dict(conn.execute(select(f.c.rating, func.count()).where(
                self._feedback_conds(since, until, app)).group_by(f.c.rating)).all())
        total, answered, off_topic = int(total), int(answered), int(off_topic)
        return Overview(
            questions=total, users=int(users), sessions=int(sessions), answered=answered, off_topic=off_topic,
            answered_rate=_rate(answered, total), off_topic_rate=_rate(off_topic, total),
            avg_latency_ms=float(avg) if avg is not None else None, p95_latency_ms=p95,
            feedback_up=int(ratings.get("up", 0)), feedback_down=int(ratings.get("down", 0)),
        )

    def trends(self, since: datetime, until: datetime, bucket: Bucket, tz: str, app: str | None) -> list[TrendPoint]:
        if bucket not in ("day", "hour"):
            raise InvalidInput(f"bucket은 day 또는 hour여야 합니다: {bucket!r}", "bucket must be 'day' or 'hour'")
        tzinfo = zone(tz)
        points = {b: TrendPoint(start=b) for b in _buckets(since, until, bucket, tzinfo)}
        latency: dict[datetime, tuple[float, int]] = {}
        t = self.db.chat_logs
        q = select(t.c.hour, func.count(), _count_if(t.c.answered.is_(True)), _count_if(t.c.off_topic.is_(True)),
                   func.coalesce(func.sum(t.c.latency_ms), 0), func.count(t.c.latency_ms)
                   ).where(self._log_conds(since, until, app)).group_by(t.c.hour)
        sessions_q = select(t.c.hour, t.c.session_id).where(self._log_conds(since, until, app)).distinct()
        with self.db.begin() as conn:
            rows = conn.execute(q).all()
            hour_sessions = conn.execute(sessions_q).all()
        active: dict[datetime, set[str]] = {}  # a session spanning hours of one day counts once that day
        for hour, session_id in hour_sessions:
            active.setdefault(_bucket_start(_local_hour(hour, tzinfo), bucket), set()).add(session_id)
        for key, ids in active.items():
            if key in points:
                points[key].conversations = len(ids)
        for hour, n, answered, off_topic, lat_sum, lat_n in rows:
            key = _bucket_start(_local_hour(hour, tzinfo), bucket)
            p = points.get(key)
            if p is None:  # only possible at a partial edge hour of a non-whole-hour zone
                continue
            p.questions += int(n)
            p.answered += int(answered)
            p.off_topic += int(off_topic)
            s, c = latency.get(key, (0.0, 0))
            latency[key] = (s + float(lat_sum), c + int(lat_n))
        for key, (s, c) in latency.items():
            points[key].avg_latency_ms = s / c if c else None
        return list(points.values())

    def feedback(self, since: datetime | None, until: datetime | None, app: str | None, tz: str) -> FeedbackStats:
        f, t = self.db.feedback, self.db.chat_logs
        tzinfo = zone(tz)
        cond = self._feedback_conds(since, until, app)
        with self.db.begin() as conn:
            up, down, with_comment = conn.execute(select(
                _count_if(f.c.rating == "up"), _count_if(f.c.rating == "down"), _count_if(f.c.comment != ""),
            ).where(cond)).one()
            by_hour = conn.execute(select(f.c.hour, f.c.rating, func.count()).where(cond)
                                   .group_by(f.c.hour, f.c.rating)).all()
            by_coll = conn.execute(
                select(t.c.collection, f.c.rating, func.count(func.distinct(f.c.feedback_id)))
                .select_from(f.join(t, t.c.message_id == f.c.message_id)).where(cond)
                .group_by(t.c.collection, f.c.rating)).all()
        days: dict[str, list[int]] = {}
        for hour, rating, n in by_hour:
            day = _local_hour(hour, tzinfo).date().isoformat()
            days.setdefault(day, [0, 0])[0 if rating == "up" else 1] += int(n)
        colls: dict[str, list[int]] = {}
        for coll, rating, n in by_coll:
            colls.setdefault(coll, [0, 0])[0 if rating == "up" else 1] += int(n)
        up, down = int(up), int(down)
        return FeedbackStats(
            up=up, down=down, with_comment=int(with_comment), up_rate=_rate(up, up + down),
            by_day=[(d, u, n) for d, (u, n) in sorted(days.items())],
            by_collection=sorted(((c, u, n) for c, (u, n) in colls.items()), key=lambda x: (-(x[1] + x[2]), x[0])),
        )

    def top_questions(self, since: datetime | None, until: datetime | None, app: str | None, kind: QuestionKind,
                      limit: int) -> list[QuestionCount]:
        check_paging(limit, 0)
        t = self.db.chat_logs
        cond = self._log_conds(since, until, app)
        if kind == "unanswered":
            cond = and_(cond, t.c.answered.is_(False))
        elif kind == "off_topic":
            cond = and_(cond, t.c.off_topic.is_(True))
        elif kind != "all":
            raise InvalidInput("kind는 all, unanswered, off_topic 중 하나여야 합니다.",
                               "kind must be all, unanswered or off_topic")
        n = func.count().label("n")
        last = func.max(t.c.created_at).label("last_at")
        q = (select(t.c.question_key, n, func.min(t.c.question), last, _count_if(t.c.answered.is_(True)),
                    _count_if(t.c.off_topic.is_(True)))
             .where(cond).group_by(t.c.question_key).order_by(n.desc(), last.desc(), t.c.question_key).limit(limit))
        with self.db.begin() as conn:
            rows = conn.execute(q).all()
        return [QuestionCount(question=question, count=int(count), last_at=aware(last_at), answered=int(a),
                              off_topic=int(o)) for _, count, question, last_at, a, o in rows]

    def users(self, since: datetime | None, until: datetime | None, app: str | None, limit: int,
              offset: int) -> Page[UserStats]:
        check_paging(limit, offset)
        t, f = self.db.chat_logs, self.db.feedback
        cond = and_(self._log_conds(since, until, app), t.c.user_id != "")
        n = func.count().label("n")
        q = (select(t.c.user_id, n, func.count(func.distinct(t.c.session_id)), _count_if(t.c.answered.is_(True)),
                    _count_if(t.c.off_topic.is_(True)), func.min(t.c.created_at), func.max(t.c.created_at))
             .where(cond).group_by(t.c.user_id).order_by(n.desc(), t.c.user_id).limit(limit).offset(offset))
        with self.db.begin() as conn:
            total = conn.execute(select(func.count(func.distinct(t.c.user_id))).where(cond)).scalar_one()
            rows = conn.execute(q).all()
            ids = [r[0] for r in rows]
            ratings = conn.execute(select(f.c.user_id, f.c.rating, func.count()).where(
                self._feedback_conds(since, until, app), f.c.user_id.in_(ids)).group_by(f.c.user_id, f.c.rating)
            ).all() if ids else []
        fb: dict[tuple[str, str], int] = {(u, r): int(c) for u, r, c in ratings}
        items = [UserStats(user_id=u, questions=int(q_), sessions=int(s), answered=int(a), off_topic=int(o),
                           first_at=aware(first), last_at=aware(last), feedback_up=fb.get((u, "up"), 0),
                           feedback_down=fb.get((u, "down"), 0))
                 for u, q_, s, a, o, first, last in rows]
        return Page(items, int(total), limit, offset)
