"""Response models of the admin statistics API (seed 002), read from the store's dataclasses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _FromStore(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class OverviewOut(_FromStore):
    questions: int = Field(description="질문 수")
    users: int = Field(description="질문한 사용자 수 (익명 제외)")
    sessions: int
    answered: int
    off_topic: int
    answered_rate: float
    off_topic_rate: float
    avg_latency_ms: float | None
    p95_latency_ms: int | None
    feedback_up: int
    feedback_down: int


class TrendPointOut(_FromStore):
    start: datetime = Field(description="구간 시작 (요청한 시간대)")
    questions: int
    answered: int
    off_topic: int
    avg_latency_ms: float | None
    conversations: int = Field(description="구간에 질문이 있었던 대화(세션) 수")


class TrendsOut(BaseModel):
    bucket: str
    tz: str
    points: list[TrendPointOut]


class FeedbackStatsOut(BaseModel):
    up: int
    down: int
    with_comment: int
    up_rate: float
    by_day: list[dict[str, int | str]] = Field(description="[{day, up, down}]")
    by_collection: list[dict[str, int | str]] = Field(description="[{collection, up, down}]")


class QuestionCountOut(_FromStore):
    question: str
    count: int
    last_at: datetime
    answered: int
    off_topic: int


class UserStatsOut(_FromStore):
    user_id: str = Field(description="가명 처리된 사용자 ID")
    questions: int
    sessions: int
    answered: int
    off_topic: int
    first_at: datetime
    last_at: datetime
    feedback_up: int
    feedback_down: int


class UsersPage(BaseModel):
    items: list[UserStatsOut]
    total: int
    limit: int
    offset: int


class ChatLogOut(_FromStore):
    log_id: str
    session_id: str
    user_id: str
    question: str
    answer: str
    app: str
    collection: str
    answered: bool
    off_topic: bool
    latency_ms: int | None
    provider: str
    model: str
    message_id: str
    created_at: datetime


class FeedbackOut(_FromStore):
    feedback_id: str
    message_id: str = Field(description="평가한 답변의 message_id")
    rating: str = Field(description="up | down")
    comment: str
    session_id: str
    user_id: str = Field(description="가명 처리된 사용자 ID")
    citations: list[dict[str, Any]] = Field(description="평가 당시 답변의 출처")
    created_at: datetime


class FeedbackPage(BaseModel):
    items: list[FeedbackOut]
    total: int
    limit: int
    offset: int


class LogsPage(BaseModel):
    items: list[ChatLogOut]
    total: int
    limit: int
    offset: int


class ReplayOut(BaseModel):
    replayed: int = Field(description="저장소로 다시 보낸 대화 로그/피드백 수")
