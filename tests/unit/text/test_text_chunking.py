from __future__ import annotations

import itertools

import pytest
from text_helpers import check_chunks, make_text

from jisik.core.errors import InvalidInput
from jisik.core.hashing import content_hash
from jisik.core.types import Document
from jisik.text.chunking import (
    PageChunker,
    SentenceChunker,
    WholeDocumentChunker,
    chunk_documents,
    make_chunker,
    split_long_span,
)
from jisik.text.sentences import split_sentences
from jisik.text.tables import TableRowChunker


def doc_of(text: str, doc_id: str = "doc-1", **kw: object) -> Document:
    return Document(doc_id=doc_id, text=text, title="제목", source_uri="file:///a.md", metadata={"lang": "ko"}, **kw)


TEXTS = [make_text(n, seed=n) for n in (100, 900, 3_000, 20_000)]


@pytest.mark.parametrize("text", TEXTS, ids=lambda t: f"{len(t)}chars")
@pytest.mark.parametrize(("max_chars", "overlap"), [(700, 120), (300, 0), (200, 150)])
def test_sentence_chunker_invariants(text: str, max_chars: int, overlap: int) -> None:
    doc = doc_of(text)
    chunker = SentenceChunker(max_chars=max_chars, overlap_chars=overlap)
    chunks = chunker.chunk(doc)
    check_chunks(doc, chunks, max_chars * SentenceChunker.MERGE_FACTOR)
    assert all(len(c.text) <= max_chars for c in chunks[:-1])
    sentences = split_sentences(text)
    starts = {a for a, _ in sentences}
    ends = {b for _, b in sentences}
    for prev, nxt in itertools.pairwise(chunks):
        if nxt.start < prev.end:  # overlap: sentence-aligned and within budget
            assert nxt.start in starts
            assert prev.end - nxt.start <= overlap
        else:
            assert overlap == 0 or text[prev.end : nxt.start].strip() == ""
    for c in chunks:  # no word cut: boundaries are sentence boundaries or next to whitespace
        assert c.start in starts or text[c.start - 1].isspace()
        assert c.end in ends or text[c.end].isspace()


def test_ids_are_stable_and_depend_on_doc_id() -> None:
    text = TEXTS[2]
    a = SentenceChunker().chunk(doc_of(text))
    b = SentenceChunker().chunk(doc_of(text))
    other = SentenceChunker().chunk(doc_of(text, doc_id="doc-2"))
    assert [c.chunk_id for c in a] == [c.chunk_id for c in b]
    assert a[0].chunk_id == content_hash("doc-1", a[0].text)
    assert not {c.chunk_id for c in a} & {c.chunk_id for c in other}


def test_repeated_text_gets_distinct_ids() -> None:
    text = "\n\n".join(["같은 문단이 반복됩니다."] * 3)
    chunks = SentenceChunker(max_chars=20, overlap_chars=0, min_chars=0).chunk(doc_of(text))
    assert len(chunks) == 3 and len({c.text for c in chunks}) == 1
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_long_sentence_split_at_whitespace() -> None:
    text = " ".join(f"단어{i}" for i in range(400))  # one sentence, ~2.3k chars
    chunks = SentenceChunker(max_chars=300, overlap_chars=0).chunk(doc_of(text))
    check_chunks(doc_of(text), chunks, 300 * 1.2)
    assert len(chunks) > 5
    for c in chunks:
        assert c.start == 0 or text[c.start - 1] == " "
        assert c.end == len(text) or text[c.end] == " "


def test_word_longer_than_max_is_cut_hard() -> None:
    text = "앞 " + "가" * 250 + " 뒤"
    spans = split_long_span(text, (0, len(text)), 100)
    assert [text[a:b] for a, b in spans] == ["앞", "가" * 100, "가" * 100, "가" * 50 + " 뒤"]


def test_tiny_last_chunk_is_merged() -> None:
    text = "가나다라마바사아자차 " * 9 + "끝."  # 101 chars: one sentence
    chunks = SentenceChunker(max_chars=95, overlap_chars=0, min_chars=20).chunk(doc_of(text))
    assert len(chunks) == 1 and chunks[0].text == text.strip()
    chunks = SentenceChunker(max_chars=95, overlap_chars=0, min_chars=0).chunk(doc_of(text))
    assert len(chunks) == 2


def test_empty_document() -> None:
    assert SentenceChunker().chunk(doc_of("")) == []
    assert WholeDocumentChunker().chunk(doc_of("  ")) == []


def test_whole_document_chunker() -> None:
    faq = "스마트스토어 가입은 어떻게 하나요?\n네이버 커머스 ID로 가입할 수 있습니다."
    [chunk] = WholeDocumentChunker().chunk(doc_of(faq))
    assert (chunk.start, chunk.end, chunk.text) == (0, len(faq), faq)
    long_doc = doc_of(TEXTS[3])
    chunks = WholeDocumentChunker(max_chars=4000).chunk(long_doc)
    assert len(chunks) > 1  # falls back to sentences instead of truncating
    check_chunks(long_doc, chunks, 700 * 1.2)


def test_page_chunker_keeps_page() -> None:
    page = doc_of(TEXTS[1], locator={"page": 3})
    [chunk] = PageChunker().chunk(page)
    assert chunk.locator == {"page": 3}
    long_page = doc_of(TEXTS[2], locator={"page": 4})
    chunks = PageChunker(max_chars=1500).chunk(long_page)
    assert len(chunks) > 1 and all(c.locator == {"page": 4} for c in chunks)
    with pytest.raises(InvalidInput):
        PageChunker().chunk(doc_of("페이지 번호가 없는 문서"))


def test_make_chunker() -> None:
    assert isinstance(make_chunker("sentence", max_chars=500), SentenceChunker)
    assert isinstance(make_chunker("whole"), WholeDocumentChunker)
    assert isinstance(make_chunker("page"), PageChunker)
    assert isinstance(make_chunker("rows", rows_per_chunk=5), TableRowChunker)
    with pytest.raises(InvalidInput):
        make_chunker("paragraph")
    with pytest.raises(InvalidInput):
        make_chunker("sentence", size=3)
    with pytest.raises(InvalidInput):
        make_chunker("sentence", max_chars=100, overlap_chars=100)


def test_repr_is_stable_config() -> None:
    assert repr(make_chunker("sentence")) == "SentenceChunker(max_chars=700, overlap_chars=120, min_chars=50)"
    assert repr(make_chunker("whole")) == repr(WholeDocumentChunker())
    assert "0x" not in repr(make_chunker("page")) + repr(make_chunker("rows"))


def test_chunk_documents_uses_batch_path() -> None:
    docs = [doc_of(t, doc_id=f"d{i}") for i, t in enumerate(TEXTS[:3])]
    chunker = SentenceChunker()
    assert chunk_documents(chunker, docs) == [c for d in docs for c in chunker.chunk(d)]
