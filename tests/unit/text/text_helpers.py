"""Helpers shared by the jisik.text tests (a plain module: imported by name, not a conftest)."""

from __future__ import annotations

import random

from jisik.core.types import Chunk, Document

SENTENCES = [
    "스마트스토어센터 회원가입은 네이버 커머스 ID로 할 수 있습니다.",
    "판매자 유형에 따라 필요한 서류가 다릅니다!",
    "배송비는 3,000원이며 제주 지역은 추가 요금이 붙어요.",
    "정산은 구매확정 후 1영업일 이내에 진행됩니다",
    "상품 등록 시 KC 인증 정보를 입력해야 하나요?",
    "반품 요청이 들어오면 판매자센터에서 승인해 주세요.",
    "iPhone 15 Pro 케이스를 판매하려면 카테고리를 선택하세요.",
    "주문 취소는 발송 전까지 가능합니다.",
    "자세한 내용은 https://help.sell.smartstore.naver.com 을 참고하세요.",
    "문의: abc@naver.com",
]
SEPARATORS = [" ", " ", " ", "", "\n", "\n\n", "\n- ", "\n1) ", "  "]


def make_text(n_chars: int, seed: int) -> str:
    """A varied Korean text of about ``n_chars`` characters (normalised shape, seeded)."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < n_chars:
        s = rng.choice(SENTENCES)
        sep = rng.choice(SEPARATORS)
        parts.append(s + sep)
        size += len(s) + len(sep)
    return "".join(parts).strip()


def assert_valid_spans(text: str, spans: list[tuple[int, int]]) -> None:
    """In order, non-overlapping, non-empty, stripped, and only whitespace between them."""
    last = 0
    for start, end in spans:
        assert last <= start < end <= len(text), (last, start, end)
        assert text[last:start].strip() == "", repr(text[last:start])
        assert not text[start].isspace() and not text[end - 1].isspace()
        last = end
    assert text[last:].strip() == ""


def check_chunks(doc: Document, chunks: list[Chunk], max_len: float) -> None:
    """Invariants shared by all chunkers; also that no non-whitespace text is lost."""
    covered = [False] * len(doc.text)
    for seq, c in enumerate(chunks):
        assert c.seq == seq
        assert doc.text[c.start : c.end] == c.text
        assert c.text and c.text == c.text.strip()
        assert len(c.text) <= max_len
        assert c.doc_id == doc.doc_id and c.title == doc.title and c.source_uri == doc.source_uri
        assert c.metadata == doc.metadata and c.metadata is not doc.metadata
        assert c.locator is not doc.locator
        for i in range(c.start, c.end):
            covered[i] = True
        if seq:
            assert chunks[seq - 1].start < c.start and chunks[seq - 1].end < c.end
    assert all(ch.isspace() for ch, cov in zip(doc.text, covered, strict=True) if not cov)
    assert len({c.chunk_id for c in chunks}) == len(chunks)
