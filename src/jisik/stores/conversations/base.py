"""Protocols of the conversation stores (sessions, chat logs + admin statistics, feedback, answer
cache) and the result types of the statistics. Value types live in :mod:`.records`.

Rules every implementation follows (pinned by ``tests/conversation_conformance.py``):

* an unknown (or expired) session, log or feedback raises :class:`NotFound`; malformed input
  raises :class:`InvalidInput`; a server that is down raises :class:`Unavailable` (HTTP 503) with a
  Korean+English message; message texts never appear in log lines;
* chat logs are idempotent by ``log_id`` and feedback by (message, user): recording twice stores
  one row, so spooled records can be replayed safely;
* user ids in chat logs and feedback are stored pseudonymised (:mod:`jisik.core.pseudonym`);
  every ``user_id`` argument accepts the raw id or its pseudonym;
* ``since`` is inclusive, ``until`` exclusive; naive datetimes are taken as UTC;
* statistics are computed by the database (aggregates, group-by), never by loading all rows.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from .records import ChatLog, Feedback, Message, Page, Rating, Session

__all__ = [
    "AnswerCache", "ChatLog", "ChatLogStore", "Feedback", "FeedbackStats", "FeedbackStore", "LogQuery", "Message",
    "Overview", "Page", "QuestionCount", "Session", "SessionStore", "TrendPoint", "UserStats",
]

Bucket = Literal["day", "hour"]
QuestionKind = Literal["all", "unanswered", "off_topic"]


@dataclass(slots=True)
class LogQuery:
    """Filters of the admin log listing (all optional) and paging (newest first)."""

    user_id: str | None = None
    app: str | None = None
    collection: str | None = None
    session_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    text: str | None = None  # substring of the question or the answer, case-insensitive
    answered: bool | None = None
    off_topic: bool | None = None
    limit: int = 50
    offset: int = 0


@dataclass(slots=True)
class Overview:
    questions: int
    users: int  # distinct known users (anonymous questions not counted)
    sessions: int
    answered: int
    off_topic: int
    answered_rate: float  # 0..1 (0 when there is no question)
    off_topic_rate: float
    avg_latency_ms: float | None
    p95_latency_ms: int | None  # nearest-rank 95th percentile
    feedback_up: int
    feedback_down: int


@dataclass(slots=True)
class TrendPoint:
    start: datetime  # bucket start in the requested time zone
    questions: int = 0
    answered: int = 0
    off_topic: int = 0
    avg_latency_ms: float | None = None
    conversations: int = 0  # distinct sessions with a question in the bucket


@dataclass(slots=True)
class FeedbackStats:
    up: int
    down: int
    with_comment: int
    up_rate: float  # up / (up + down), 0 when there is none
    by_day: list[tuple[str, int, int]] = field(default_factory=list)  # (YYYY-MM-DD, up, down)
    by_collection: list[tuple[str, int, int]] = field(default_factory=list)  # (collection, up, down)


@dataclass(slots=True)
class QuestionCount:
    question: str  # one of the grouped questions as asked
    count: int
    last_at: datetime
    answered: int = 0
    off_topic: int = 0


@dataclass(slots=True)
class UserStats:
    user_id: str  # pseudonym
    questions: int
    sessions: int
    answered: int
    off_topic: int
    first_at: datetime
    last_at: datetime
    feedback_up: int = 0
    feedback_down: int = 0


@runtime_checkable
class SessionStore(Protocol):
    """Conversation state: a session and its recent messages (oldest dropped beyond a limit)."""

    def create(self, *, user_id: str = "", app: str = "", collection: str = "", title: str = "",
               session_id: str | None = None) -> Session:
        """A new session (``session_id`` given and taken -> :class:`Conflict`)."""
        ...

    def get(self, session_id: str) -> Session: ...

    def append(self, session_id: str, messages: Sequence[Message]) -> list[Message]:
        """Append atomically (all or none), numbering them; returns the stored messages."""
        ...

    def history(self, session_id: str, limit: int | None = None) -> list[Message]:
        """The last ``limit`` (default all kept) messages, oldest first."""
        ...

    def set_summary(self, session_id: str, summary: str, upto: int) -> Session:
        """Store the running summary of messages with ``seq <= upto``."""
        ...

    def delete(self, session_id: str) -> bool:
        """Remove a session and its messages; False when there was none."""
        ...

    def list_by_user(self, user_id: str, *, limit: int = 50, offset: int = 0) -> Page[Session]:
        """The user's live sessions, most recently updated first."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class ChatLogStore(Protocol):
    def record(self, log: ChatLog) -> ChatLog:
        """Store one log (pseudonymising its user); a known ``log_id`` is a no-op."""
        ...

    def record_many(self, logs: Sequence[ChatLog]) -> int:
        """Store logs not stored yet; returns how many were new."""
        ...

    def get(self, log_id: str) -> ChatLog: ...

    def list(self, query: LogQuery) -> Page[ChatLog]: ...

    def overview(self, *, since: datetime | None = None, until: datetime | None = None,
                 app: str | None = None) -> Overview: ...

    def trends(self, *, since: datetime, until: datetime, bucket: Bucket = "day", tz: str = "UTC",
               app: str | None = None) -> builtins.list[TrendPoint]:
        """One point per bucket in [since, until), empty buckets included."""
        ...

    def feedback_stats(self, *, since: datetime | None = None, until: datetime | None = None,
                       app: str | None = None, tz: str = "UTC") -> FeedbackStats: ...

    def top_questions(self, *, since: datetime | None = None, until: datetime | None = None,
                      app: str | None = None, kind: QuestionKind = "all",
                      limit: int = 20) -> builtins.list[QuestionCount]:
        """Most asked (normalised) questions; ``kind`` keeps only unanswered or off-topic ones."""
        ...

    def users(self, *, since: datetime | None = None, until: datetime | None = None, app: str | None = None,
              limit: int = 50, offset: int = 0) -> Page[UserStats]:
        """Known users by number of questions (most first)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class FeedbackStore(Protocol):
    def record(self, feedback: Feedback) -> Feedback:
        """Insert or update the (message, user) feedback; an older record never overwrites a newer one."""
        ...

    def record_many(self, items: Sequence[Feedback]) -> int: ...

    def get(self, feedback_id: str) -> Feedback: ...

    def list(self, *, message_id: str | None = None, session_id: str | None = None, user_id: str | None = None,
             rating: Rating | None = None, since: datetime | None = None, until: datetime | None = None,
             limit: int = 50, offset: int = 0) -> Page[Feedback]:
        """Newest first."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class AnswerCache(Protocol):
    """JSON values under keys from :func:`~.records.answer_cache_key`, with a TTL."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def set(self, key: str, value: dict[str, Any], ttl_s: float | None = None) -> None:
        """``ttl_s`` None -> the store's default; 0 -> not stored."""
        ...

    def delete(self, key: str) -> None: ...

    def close(self) -> None: ...
