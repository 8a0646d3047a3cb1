"""Text processing: normalisation, Korean tokenisation, sentence splitting and chunking."""

from __future__ import annotations

from jisik.text.chunking import (
    CHUNKER_KINDS,
    Chunker,
    PageChunker,
    SentenceChunker,
    WholeDocumentChunker,
    build_chunks,
    chunk_documents,
    make_chunker,
)
from jisik.text.normalize import normalize, normalize_query
from jisik.text.sentences import split_sentences, split_sentences_batch
from jisik.text.tables import TableRowChunker, render_row, rows_to_documents
from jisik.text.tokenize import KoreanTokenizer, get_tokenizer

__all__ = [
    "CHUNKER_KINDS",
    "Chunker",
    "KoreanTokenizer",
    "PageChunker",
    "SentenceChunker",
    "TableRowChunker",
    "WholeDocumentChunker",
    "build_chunks",
    "chunk_documents",
    "get_tokenizer",
    "make_chunker",
    "normalize",
    "normalize_query",
    "render_row",
    "rows_to_documents",
    "split_sentences",
    "split_sentences_batch",
]
