"""A small real knowledge base (real Kiwi, real e5-small) shared by retrieval tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jisik.core.types import Document
from jisik.models.embedders import create_embedder
from jisik.pipeline.indexing import Indexer
from jisik.retrieval.hybrid import HybridRetriever
from jisik.stores.embedded import EmbeddedIndexStore
from jisik.text.chunking import make_chunker
from jisik.text.tokenize import get_tokenizer

DOCS = [
    Document("join", "[가입절차] 스마트스토어센터 회원가입은 어떻게 하나요?\n네이버 커머스 ID로 판매자 가입을 진행합니다. "
             "사업자 판매자는 사업자등록증이 필요합니다.", "[가입절차] 스마트스토어센터 회원가입은 어떻게 하나요?",
             "faq://join", {"entry": 0}, {"category": "가입절차", "year": 2021}),
    Document("refund", "[반품] 부분 반품 시 초기 배송비도 환불되나요?\n부분 반품이면 초기 배송비는 환불되지 않고 "
             "반품 배송비가 청구될 수 있습니다.", "[반품] 부분 반품 시 초기 배송비도 환불되나요?", "faq://refund",
             {"entry": 1}, {"category": "반품", "year": 2022}),
    Document("settle", "[정산] 정산 계좌를 변경하고 싶어요.\n판매자 정보 메뉴에서 정산 계좌를 변경할 수 있으며 "
             "예금주는 사업자 명의와 같아야 합니다.", "[정산] 정산 계좌를 변경하고 싶어요.", "faq://settle",
             {"entry": 2}, {"category": "정산", "year": 2023}),
    Document("holiday", "[휴무 관리] 공휴일은 휴무일로 자동 설정되나요?\n공휴일은 자동으로 휴무일로 지정되지 않으므로 "
             "휴무일 관리에서 직접 등록해야 합니다.", "[휴무 관리] 공휴일은 휴무일로 자동 설정되나요?", "faq://holiday",
             {"entry": 3}, {"category": "휴무 관리", "year": 2024}),
    Document("holiday-copy", "[휴무 관리] 공휴일은 휴무일로 자동 설정되나요?\n공휴일은 자동으로 휴무일로 지정되지 않으므로 "
             "휴무일 관리에서 직접 등록해야 합니다.", "[휴무 관리] 공휴일은 휴무일로 자동 설정되나요?", "faq://holiday2",
             {"entry": 4}, {"category": "휴무 관리", "year": 2024}),
]


@pytest.fixture(scope="session")
def kb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HybridRetriever]:
    root: Path = tmp_path_factory.mktemp("kb")
    store = EmbeddedIndexStore(root)
    embedder = create_embedder("e5-small")
    Indexer(store, embedder, get_tokenizer(), make_chunker("whole")).index("faq", DOCS)
    yield HybridRetriever(store, embedder, get_tokenizer())
    store.close()
