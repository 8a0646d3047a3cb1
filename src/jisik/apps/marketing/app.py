"""The marketing app (seed 000, scene01), registered as ``marketing`` on import.

Its main use case is ``POST /api/v1/scene01/generate`` (:mod:`.service`). The same knowledge base
also answers chat questions about the products (``app: marketing`` in ``/api/v1/chat``), with the
``marketing`` prompt and its default variables.
"""

from __future__ import annotations

from jisik.apps.base import App, register
from jisik.core.settings import Settings, get_settings

MARKETING_TITLE = "마케팅 문구 생성 (scene01)"
MARKETING_DESCRIPTION = (
    "지식 저장소의 상품·이벤트 정보를 근거로 PUSH, 알림톡, 친구톡, SMS, LMS 채널별 광고 문구를 만들고, "
    "채널 길이 규칙과 광고심의 기준(금지 표현, 필수 고지, 개인정보)을 검사합니다."
)
MARKETING_EXAMPLES = [
    "시니어 고객에게 맞는 예금 상품 혜택은 무엇인가요?",
    "청년 고객 대상 카드 이벤트를 알려 주세요.",
    "파킹 통장 이벤트 금리는 얼마인가요?",
]


def marketing_app(settings: Settings | None = None) -> App:
    settings = settings or get_settings()
    return App(name="marketing", collection=settings.scene01_collection, prompt="marketing", title=MARKETING_TITLE,
               description=MARKETING_DESCRIPTION, top_k=settings.scene01_top_k,
               refusal="죄송합니다. 등록된 금융상품과 이벤트 정보에 관한 질문에만 답변할 수 있습니다.",
               examples=list(MARKETING_EXAMPLES))


register("marketing", lambda: marketing_app(get_settings()))
