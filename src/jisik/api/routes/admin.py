"""Admin statistics and logs (seed 002), behind the admin API key.

``/api/v1/admin/stats/overview``, ``/stats/trends``, ``/stats/feedback``, ``/stats/questions``,
``/users``, ``/logs``, ``/logs/{user_id}`` and ``POST /spool/replay``. Times are ISO 8601
(``since`` inclusive, ``until`` exclusive, naive = UTC); user ids are shown pseudonymised and
accepted raw or pseudonymised. Statistics are computed by the chat-log database.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from jisik.api.deps import StateDep, require_admin
from jisik.api.schemas import ERRORS
from jisik.api.schemas_admin import (
    FeedbackPage,
    FeedbackStatsOut,
    LogsPage,
    OverviewOut,
    QuestionCountOut,
    ReplayOut,
    TrendsOut,
    UsersPage,
)
from jisik.core.errors import InvalidInput
from jisik.stores.conversations import LogQuery

router = APIRouter(prefix="/api/v1/admin", tags=["admin"], dependencies=[Depends(require_admin)], responses=ERRORS)
Since = Annotated[datetime | None, Query(description="시작 시각 (포함, ISO 8601)")]
Until = Annotated[datetime | None, Query(description="끝 시각 (제외, ISO 8601)")]
AppQ = Annotated[str | None, Query(max_length=128, description="앱 이름으로 거르기")]
Tz = Annotated[str, Query(max_length=64, description="시간대 (예: Asia/Seoul)")]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Label = Annotated[str | None, Query(max_length=128)]
_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def _check(*times: datetime | None) -> None:
    for t in times:
        if t is None:
            continue
        aware = t if t.tzinfo is not None else t.replace(tzinfo=UTC)
        if not _EARLIEST <= aware <= _LATEST:
            raise InvalidInput("시각은 2000년부터 2200년 사이여야 합니다.", "Times must lie between 2000 and 2200.")


@router.get("/stats/overview", response_model=OverviewOut, summary="대시보드 전체 통계")
async def overview(state: StateDep, since: Since = None, until: Until = None, app: AppQ = None) -> OverviewOut:
    _check(since, until)
    o = await asyncio.to_thread(state.stores.chatlogs.overview, since=since, until=until, app=app)
    return OverviewOut.model_validate(o)


@router.get("/stats/trends", response_model=TrendsOut, summary="대화 추이 (일/시간 단위)")
async def trends(state: StateDep, since: Since = None, until: Until = None,
                 bucket: Literal["day", "hour"] = "day", tz: Tz = "UTC", app: AppQ = None) -> TrendsOut:
    _check(since, until)
    end = until or datetime.now(UTC)
    start = since or end - (timedelta(days=30) if bucket == "day" else timedelta(hours=48))
    points = await asyncio.to_thread(state.stores.chatlogs.trends, since=start, until=end, bucket=bucket, tz=tz,
                                     app=app)
    return TrendsOut.model_validate({"bucket": bucket, "tz": tz, "points": points}, from_attributes=True)


@router.get("/stats/feedback", response_model=FeedbackStatsOut, summary="피드백 분포")
async def feedback_stats(state: StateDep, since: Since = None, until: Until = None, app: AppQ = None,
                         tz: Tz = "UTC") -> FeedbackStatsOut:
    _check(since, until)
    f = await asyncio.to_thread(state.stores.chatlogs.feedback_stats, since=since, until=until, app=app, tz=tz)
    return FeedbackStatsOut(
        up=f.up, down=f.down, with_comment=f.with_comment, up_rate=f.up_rate,
        by_day=[{"day": d, "up": u, "down": n} for d, u, n in f.by_day],
        by_collection=[{"collection": c, "up": u, "down": n} for c, u, n in f.by_collection])


@router.get("/stats/questions", response_model=list[QuestionCountOut], summary="많이 묻는 질문")
async def top_questions(state: StateDep, since: Since = None, until: Until = None, app: AppQ = None,
                        kind: Literal["all", "unanswered", "off_topic"] = "all",
                        limit: Annotated[int, Query(ge=1, le=200)] = 20) -> list[QuestionCountOut]:
    _check(since, until)
    rows = await asyncio.to_thread(state.stores.chatlogs.top_questions, since=since, until=until, app=app,
                                   kind=kind, limit=limit)
    return [QuestionCountOut.model_validate(r) for r in rows]


@router.get("/users", response_model=UsersPage, summary="사용자별 AI 사용 통계")
async def users(state: StateDep, since: Since = None, until: Until = None, app: AppQ = None,
                limit: Limit = 50, offset: Offset = 0) -> UsersPage:
    _check(since, until)
    page = await asyncio.to_thread(state.stores.chatlogs.users, since=since, until=until, app=app, limit=limit,
                                   offset=offset)
    return UsersPage.model_validate(page, from_attributes=True)


@router.get("/logs", response_model=LogsPage, summary="대화 로그 목록 (최신순)")
async def logs(state: StateDep, user_id: Annotated[str | None, Query(max_length=255)] = None, app: AppQ = None,
               collection: Label = None, session_id: Label = None, since: Since = None, until: Until = None,
               text: Annotated[str | None, Query(max_length=200, description="질문/답변 검색")] = None,
               answered: bool | None = None, off_topic: bool | None = None, limit: Limit = 50,
               offset: Offset = 0) -> LogsPage:
    _check(since, until)
    q = LogQuery(user_id=user_id, app=app, collection=collection, session_id=session_id, since=since, until=until,
                 text=text, answered=answered, off_topic=off_topic, limit=limit, offset=offset)
    page = await asyncio.to_thread(state.stores.chatlogs.list, q)
    return LogsPage.model_validate(page, from_attributes=True)


@router.get("/logs/{user_id}", response_model=LogsPage, summary="사용자의 대화 상세 내역")
async def user_logs(state: StateDep, user_id: Annotated[str, Path(min_length=1, max_length=255)],
                    since: Since = None, until: Until = None, limit: Limit = 50, offset: Offset = 0) -> LogsPage:
    _check(since, until)
    q = LogQuery(user_id=user_id, since=since, until=until, limit=limit, offset=offset)
    page = await asyncio.to_thread(state.stores.chatlogs.list, q)
    return LogsPage.model_validate(page, from_attributes=True)


@router.get("/feedback", response_model=FeedbackPage, summary="피드백 목록 (의견 포함, 최신순)")
async def feedback_list(state: StateDep, rating: Annotated[Literal["up", "down"] | None, Query()] = None,
                        user_id: Annotated[str | None, Query(max_length=255)] = None, session_id: Label = None,
                        since: Since = None, until: Until = None, limit: Limit = 50,
                        offset: Offset = 0) -> FeedbackPage:
    """좋아요/싫어요와 의견(comment)을 최신순으로 봅니다. 사용자 ID는 원래 값이나 가명 모두 받습니다."""
    _check(since, until)
    page = await asyncio.to_thread(state.stores.feedback.list, user_id=user_id, session_id=session_id,
                                   rating=rating, since=since, until=until, limit=limit, offset=offset)
    return FeedbackPage.model_validate(page, from_attributes=True)


@router.post("/spool/replay", response_model=ReplayOut, summary="대기 중인 로그/피드백을 저장소로 다시 보내기")
async def replay(state: StateDep) -> ReplayOut:
    """DB가 중단된 동안 쌓인 대화 로그와 피드백을 저장합니다 (DB가 아직 중단이면 503)."""
    return ReplayOut(replayed=await asyncio.to_thread(state.stores.replay_spools))
