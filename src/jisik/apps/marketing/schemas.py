"""The request of ``POST /api/v1/scene01/generate``: seed 000's shape, exactly (the response model
lives with the route, :mod:`jisik.api.routes.scene01`).

Field values that come from the rule files (message types, life stages, channels) are plain
strings here and are checked against the rules by the use case, so an unknown value is a 422
that lists the allowed values in Korean and English (and editing a rule file needs no code).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SEED_EXAMPLE: dict[str, Any] = {
    "message_type": "광고심의문구",
    "life_stage": "시니어세대",
    "channels": ["PUSH", "알림톡"],
    "prompt": "신규 가입 고객에게 혜택을 안내하는 문구를 100자 이내로 만들어줘",
    "file_url": "https://your-s3-url.com/sample.pdf",
    "session_id": "session_abc123",
    "history": [
        {"user": "이벤트에 대한 안내 문구를 작성해줘", "ai": "고객님을 위한 특별한 이벤트! 지금 바로 확인하세요."},
        {"user": "조금 더 포멀한 톤으로 바꿔줘", "ai": "고객님의 성원에 감사드리며, 특별한 혜택을 준비했습니다."},
        {"user": "100자 이내로 요약해줘", "ai": "감사 이벤트! 지금 확인하세요."},
    ],
}


class HistoryTurn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: str = Field(min_length=1, max_length=4000, description="이전 요청")
    ai: str = Field("", max_length=4000, description="그때 작성한 문구")


class Scene01Request(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [SEED_EXAMPLE]})

    message_type: str = Field(min_length=1, max_length=50,
                              description="메시지 유형: 광고심의문구 | 이벤트안내 | 상품안내 | 정보성안내")
    life_stage: str = Field(min_length=1, max_length=50, description="생애단계: 전체 | 청년세대 | 사회초년생 | "
                            "신혼·육아세대 | 중장년세대 | 시니어세대")
    channels: list[str] = Field(min_length=1, max_length=5, description="채널: PUSH | 알림톡 | 친구톡 | SMS | LMS")
    prompt: str = Field(min_length=1, max_length=2000, description="작성 요청 (예: '100자 이내로')")
    file_url: str | None = Field(None, max_length=2048, description="추가 참고 자료(PDF, 텍스트) URL: 허용된 "
                                 "공개 호스트만 (JISIK_FETCH_ALLOWED_HOSTS)")
    session_id: str | None = Field(None, max_length=128, description="클라이언트의 세션 ID (응답에 그대로)")
    history: list[HistoryTurn] = Field(default_factory=list, max_length=50, description="이전 요청과 문구")
