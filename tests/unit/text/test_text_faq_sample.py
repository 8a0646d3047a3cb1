"""Chunking invariants on 50 real Smartstore FAQ entries (question + "\\n" + answer)."""

from __future__ import annotations

from typing import Any

import pytest
from text_helpers import check_chunks

from jisik.core.types import Document
from jisik.text.chunking import SentenceChunker, WholeDocumentChunker, chunk_documents
from jisik.text.normalize import normalize
from jisik.text.tokenize import KoreanTokenizer


@pytest.fixture(scope="module")
def faq_docs(faq_entries: list[dict[str, Any]]) -> list[Document]:
    return [
        Document(
            doc_id=f"smartstore-faq/{e['id']}",
            text=normalize(e["question"] + "\n" + e["answer"]),
            title=normalize(e["question"]),
            source_uri="smartstore_faq/final_result.jsonl",
            locator={"id": e["id"]},
            metadata={"category": e.get("categories") or ""},
        )
        for e in faq_entries
    ]


def test_sample_is_raw(faq_entries: list[dict[str, Any]]) -> None:
    assert len(faq_entries) == 50
    assert any("\xa0" in e["answer"] for e in faq_entries)  # normalisation has work to do


def test_sentence_chunker_on_faq(faq_docs: list[Document]) -> None:
    chunker = SentenceChunker()
    per_doc = chunker.chunk_many(faq_docs)
    for doc, chunks in zip(faq_docs, per_doc, strict=True):
        assert "\xa0" not in doc.text
        check_chunks(doc, chunks, 700 * SentenceChunker.MERGE_FACTOR)
        assert chunks[0].start == 0
    assert sum(len(c) > 1 for c in per_doc) >= 5  # some answers are long enough to split
    again = chunk_documents(SentenceChunker(), faq_docs)
    assert [c.chunk_id for cs in per_doc for c in cs] == [c.chunk_id for c in again]


def test_whole_document_chunker_on_faq(faq_docs: list[Document]) -> None:
    chunker = WholeDocumentChunker()
    for doc in faq_docs:
        chunks = chunker.chunk(doc)
        if len(doc.text) <= chunker.max_chars:
            assert len(chunks) == 1 and chunks[0].text == doc.text
        check_chunks(doc, chunks, max(chunker.max_chars, 700 * SentenceChunker.MERGE_FACTOR))


def test_tokenizer_on_faq(faq_docs: list[Document], tokenizer: KoreanTokenizer) -> None:
    tokens = tokenizer.tokens_batch([d.text for d in faq_docs])
    assert all(tokens)
    assert "스마트스토어" in tokens[0] and "가입" in tokens[0]
    vocab = {t for ts in tokens for t in ts}
    # forms that can only be particles, endings or punctuation (가/이 can be stems: 가다, 이다)
    assert not vocab & {"는", "를", "에서", "습니다", "ᆸ니다", "어요", "세요", ".", "?", "!", "》"}
