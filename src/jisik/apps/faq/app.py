"""The Smartstore FAQ chatbot (seed 001): FAQ entries as the knowledge base, an off-topic gate
measured on real questions, and follow-up suggestions from retrieval (or an LLM when present)."""

from __future__ import annotations

from jisik.apps.base import App, register
from jisik.core.settings import Settings, get_settings

from .ingest import FAQ_COLLECTION
from .offtopic import FaqOffTopicFilter
from .suggest import RetrievalSuggester

FAQ_TITLE = "스마트스토어 FAQ 챗봇"
FAQ_DESCRIPTION = (
    "네이버 스마트스토어 판매자 FAQ(2,717개 항목)를 근거로 가입, 상품 등록, 주문·배송, 반품·교환, "
    "정산·수수료, 광고·마케팅 등 스토어 운영에 관한 질문에 답하고, 근거가 된 FAQ 항목을 함께 보여 줍니다."
)
FAQ_REFUSAL = (
    "죄송합니다. 저는 네이버 스마트스토어 판매자 FAQ를 안내하는 챗봇이라, 스마트스토어 운영과 관련된 "
    "질문에만 답변드릴 수 있어요. 판매자 가입과 서류, 상품 등록, 주문·배송, 반품·교환, 정산·수수료, "
    "광고·마케팅처럼 스토어 운영에 대해 궁금한 점을 물어봐 주세요."
)
FAQ_EXAMPLES = [
    "개인 판매자로 가입하려면 어떤 서류가 필요한가요?",
    "정산금은 구매확정 후 언제 들어오나요?",
    "반품 배송비는 판매자와 구매자 중 누가 내나요?",
    "상품을 엑셀로 한꺼번에 등록할 수 있나요?",
]
FAQ_TOP_K = 5


def faq_app(settings: Settings | None = None) -> App:
    """The ``faq`` app. The off-topic gate's parameters follow the configured embedder
    (they were calibrated on its similarity scale; see :mod:`jisik.apps.faq.offtopic`)."""
    settings = settings or get_settings()
    return App(
        name="faq",
        collection=FAQ_COLLECTION,
        prompt="faq",
        title=FAQ_TITLE,
        description=FAQ_DESCRIPTION,
        top_k=FAQ_TOP_K,
        offtopic=FaqOffTopicFilter.for_embedder(settings.embedder, settings=settings),
        suggester=RetrievalSuggester(llm_timeout_s=min(6.0, settings.llm_timeout_s)),
        refusal=FAQ_REFUSAL,
        examples=list(FAQ_EXAMPLES),
    )


register("faq", lambda: faq_app(get_settings()))
