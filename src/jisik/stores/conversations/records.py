"""Value types of the conversation stores, their validation and JSON forms, and the cache key.

Times are timezone-aware UTC ``datetime`` values. Identifiers coming from outside (session ids in
URL paths, user ids) are checked once here, so every store rejects the same inputs with the same
Korean+English :class:`~jisik.core.errors.InvalidInput`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Generic, Literal, TypeVar

from jisik.core.errors import InvalidInput
from jisik.text.normalize import normalize_query

Role = Literal["user", "assistant", "system"]
Rating = Literal["up", "down"]
ROLES: frozenset[str] = frozenset({"user", "assistant", "system"})
RATINGS: frozenset[str] = frozenset({"up", "down"})

MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 200_000  # one message, question, answer or comment
MAX_LABEL_CHARS = 128  # app, collection, provider, model
MAX_TITLE_CHARS = 255
_ID = re.compile(r"[A-Za-z0-9_.:@-]{1,128}")
_QUESTION_TAIL = re.compile(r"[\s?!.。？！~…]+$")

T = TypeVar("T")


def now_utc() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A 24-hex-digit id that sorts by creation time (milliseconds), then randomly."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(6)}"


def check_id(value: str, what: str = "id") -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise InvalidInput(
            f"{what} 형식이 올바르지 않습니다 (영문, 숫자, _ . : @ - 로 1~{MAX_ID_CHARS}자).",
            f"Invalid {what}: use 1-{MAX_ID_CHARS} characters from A-Z a-z 0-9 _ . : @ -",
        )
    return value


def check_user_id(value: str) -> str:
    """User ids may be empty (anonymous); otherwise 1-255 printable characters."""
    if not isinstance(value, str) or len(value) > 255 or not value.isprintable():
        raise InvalidInput("사용자 ID 형식이 올바르지 않습니다 (출력 가능한 문자 255자 이하).",
                           "Invalid user id: at most 255 printable characters")
    return value


def check_text(value: str, what: str = "text") -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} 값은 문자열이어야 합니다.", f"{what} must be a string")
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidInput(f"{what}이(가) 너무 깁니다 (최대 {MAX_TEXT_CHARS:,}자).",
                           f"{what} is too long (max {MAX_TEXT_CHARS:,} characters)")
    return value


def clip(value: str, n: int = MAX_LABEL_CHARS) -> str:
    return value[:n]


def as_utc(t: datetime) -> datetime:
    """Aware UTC (a naive value is taken as UTC already)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def normalise_question(question: str) -> str:
    """Questions that differ only in spacing, width, case or final punctuation are the same."""
    return _QUESTION_TAIL.sub("", normalize_query(question).casefold())


def question_key(question: str) -> str:
    return hashlib.sha256(normalise_question(question).encode("utf-8")).hexdigest()


def answer_cache_key(
    question: str, *, collection: str, index_version: str | int, app: str = "", provider: str = "", model: str = "",
) -> str:
    """sha256 of the normalised question + collection + index version + app + provider/model.

    A new index version gives new keys, so answers computed on an old index are never served.
    """
    parts = [normalise_question(question), collection, str(index_version), app, provider, model]
    h = hashlib.sha256()
    for p in parts:
        data = p.encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _json_ready(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{what} 값을 JSON으로 저장할 수 없습니다.", f"{what} is not JSON-serialisable: {e}") from e


def dumps(value: Any, what: str = "value") -> str:
    return _json_ready(value, what)


def _to_json_dict(obj: Any) -> dict[str, Any]:
    d = asdict(obj)
    for k, v in d.items():
        if isinstance(v, datetime):
            d[k] = as_utc(v).isoformat()
    return d


def _from_json_dict(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for k, v in data.items():
        if k not in names:
            continue
        if isinstance(v, str) and k.endswith("_at"):
            v = as_utc(datetime.fromisoformat(v))
        kwargs[k] = v
    return cls(**kwargs)


@dataclass(slots=True)
class Message:
    """One chat message. ``seq`` is assigned by the store (1, 2, ... per session).

    ``meta`` holds answer facts: provider, model, latency_ms, tokens, cache_hit, off_topic,
    collection, app.
    """

    role: Role
    text: str
    message_id: str = field(default_factory=new_id)
    session_id: str = ""
    created_at: datetime = field(default_factory=now_utc)
    citations: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    def validate(self) -> Message:
        if self.role not in ROLES:
            raise InvalidInput(f"메시지 역할은 user, assistant, system 중 하나여야 합니다: {self.role!r}",
                               f"Message role must be user, assistant or system, got {self.role!r}")
        check_id(self.message_id, "메시지 ID(message id)")
        check_text(self.text, "메시지(message)")
        dumps(self.citations, "citations")
        dumps(self.meta, "meta")
        return self

    def to_dict(self) -> dict[str, Any]:
        return _to_json_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        return _from_json_dict(cls, data)


@dataclass(slots=True)
class Session:
    session_id: str
    user_id: str = ""
    app: str = ""
    collection: str = ""
    created_at: datetime = field(default_factory=now_utc)
    updated_at: datetime = field(default_factory=now_utc)
    title: str = ""
    summary: str = ""
    summary_upto: int = 0  # seq of the last message folded into ``summary`` (0 = none)
    message_count: int = 0  # messages ever appended (the last seq)

    def to_dict(self) -> dict[str, Any]:
        return _to_json_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        return _from_json_dict(cls, data)


@dataclass(slots=True)
class Feedback:
    """Thumbs up/down on an answer. One per (message, user); anonymous users count per session.

    ``feedback_id`` is derived from that pair by the stores, so recording twice updates (the newer
    ``created_at`` wins) and a replay of the same record is a no-op.
    """

    message_id: str
    rating: Rating
    session_id: str = ""
    user_id: str = ""
    comment: str = ""
    citations: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime = field(default_factory=now_utc)
    feedback_id: str = ""

    def validate(self) -> Feedback:
        check_id(self.message_id, "메시지 ID(message id)")
        if self.session_id:
            check_id(self.session_id, "세션 ID(session id)")
        check_user_id(self.user_id)
        if self.rating not in RATINGS:
            raise InvalidInput(f"평가는 up 또는 down이어야 합니다: {self.rating!r}",
                               f"Rating must be 'up' or 'down', got {self.rating!r}")
        if not self.user_id and not self.session_id:
            raise InvalidInput("피드백에는 사용자 ID나 세션 ID가 필요합니다.",
                               "Feedback needs a user id or a session id")
        check_text(self.comment, "코멘트(comment)")
        dumps(self.citations, "citations")
        return self

    def to_dict(self) -> dict[str, Any]:
        return _to_json_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Feedback:
        return _from_json_dict(cls, data)


def feedback_id(message_id: str, user_id: str, session_id: str) -> str:
    """The id of the one feedback of a (pseudonymised) user, or of an anonymous session, on a message."""
    who = f"u:{user_id}" if user_id else f"s:{session_id}"
    return hashlib.sha256(f"{message_id}\x00{who}".encode()).hexdigest()[:40]


@dataclass(slots=True)
class ChatLog:
    """One answered question. ``user_id`` is stored pseudonymised; ``message_id`` is the answer's
    message (feedback joins on it; defaults to ``log_id``)."""

    session_id: str
    question: str
    answer: str
    user_id: str = ""
    app: str = ""
    collection: str = ""
    answered: bool = True
    off_topic: bool = False
    latency_ms: int | None = None
    provider: str = ""
    model: str = ""
    log_id: str = field(default_factory=new_id)
    message_id: str = ""
    created_at: datetime = field(default_factory=now_utc)

    def validate(self) -> ChatLog:
        check_id(self.log_id, "로그 ID(log id)")
        if self.message_id:
            check_id(self.message_id, "메시지 ID(message id)")
        if self.session_id:
            check_id(self.session_id, "세션 ID(session id)")
        check_user_id(self.user_id)
        check_text(self.question, "질문(question)")
        check_text(self.answer, "답변(answer)")
        if self.latency_ms is not None and (not isinstance(self.latency_ms, int) or self.latency_ms < 0):
            raise InvalidInput("응답 시간은 0 이상의 정수(ms)여야 합니다.", "latency_ms must be a non-negative integer")
        return self

    def to_dict(self) -> dict[str, Any]:
        return _to_json_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChatLog:
        return _from_json_dict(cls, data)


@dataclass(slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


def check_paging(limit: int, offset: int, max_limit: int = 1000) -> None:
    if not 1 <= limit <= max_limit or offset < 0:
        raise InvalidInput(f"limit은 1~{max_limit}, offset은 0 이상이어야 합니다.",
                           f"limit must be 1-{max_limit} and offset >= 0")
