"""Chunkers: turn a (normalised) :class:`Document` into retrievable :class:`Chunk` objects.

Invariants every chunker here keeps:

* ``doc.text[chunk.start:chunk.end] == chunk.text``; chunks never start or end with whitespace;
* ``chunk.seq`` runs 0..n-1 in text order;
* ``chunk.chunk_id == content_hash(doc.doc_id, chunk.text)``: stable across runs and different for
  different documents. If the same text occurs twice in one document, the n-th repeat (n >= 1)
  gets ``content_hash(doc.doc_id, chunk.text, f"#{n}")`` so that ids stay unique;
* title, source_uri, locator and metadata are copied from the document (deep copies).

Every chunker has a stable ``repr`` (its class and settings, no memory address): the indexer
uses it in document fingerprints, so it must not change between runs.

Texts are expected to be normalised already (:func:`jisik.text.normalize.normalize`), because
offsets are defined on the normalised text. Empty documents give no chunks.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from jisik.core.errors import InvalidInput
from jisik.core.hashing import content_hash
from jisik.core.types import Chunk, Document, JsonDict
from jisik.text.sentences import split_sentences_batch, strip_span

__all__ = [
    "CHUNKER_KINDS",
    "Chunker",
    "PageChunker",
    "SentenceChunker",
    "WholeDocumentChunker",
    "build_chunks",
    "chunk_documents",
    "make_chunker",
    "pack_spans",
    "split_long_span",
]

Span = tuple[int, int]

CHUNKER_KINDS = ("sentence", "whole", "page", "rows")

_WS_RUN = re.compile(r"\s+")


@runtime_checkable
class Chunker(Protocol):
    def chunk(self, doc: Document) -> list[Chunk]: ...


def build_chunks(doc: Document, spans: Sequence[Span], locators: Sequence[JsonDict] | None = None) -> list[Chunk]:
    """Chunks for ``spans`` (in order) of ``doc.text``; ``locators`` overrides the doc's per chunk."""
    chunks: list[Chunk] = []
    seen: dict[str, int] = {}
    for seq, (start, end) in enumerate(spans):
        text = doc.text[start:end]
        repeat = seen.get(text, 0)
        seen[text] = repeat + 1
        chunk_id = content_hash(doc.doc_id, text) if repeat == 0 else content_hash(doc.doc_id, text, f"#{repeat}")
        locator = locators[seq] if locators is not None else doc.locator
        chunks.append(
            Chunk(
                chunk_id=chunk_id,
                doc_id=doc.doc_id,
                text=text,
                seq=seq,
                start=start,
                end=end,
                title=doc.title,
                source_uri=doc.source_uri,
                locator=copy.deepcopy(locator),
                metadata=copy.deepcopy(doc.metadata),
            )
        )
    return chunks


def split_long_span(text: str, span: Span, max_chars: int) -> list[Span]:
    """Cut a span longer than ``max_chars`` at the last whitespace before the limit.

    A piece is cut mid-word only when a single whitespace-free run is longer than ``max_chars``.
    """
    start, end = span
    pieces: list[Span] = []
    while end - start > max_chars:
        limit = start + max_chars
        last_ws = None
        for m in _WS_RUN.finditer(text, start + 1, limit + 1):
            last_ws = m
        if last_ws is not None:
            piece_end, next_start = last_ws.start(), last_ws.end()
        else:  # one "word" longer than max_chars: nothing better than a hard cut
            piece_end = next_start = limit
        piece = strip_span(text, start, piece_end)
        if piece is not None:
            pieces.append(piece)
        start = next_start
        while start < end and text[start].isspace():
            start += 1
    rest = strip_span(text, start, end)
    if rest is not None:
        pieces.append(rest)
    return pieces


def pack_spans(units: Sequence[Span], max_chars: int, overlap_chars: int = 0) -> list[Span]:
    """Greedily pack consecutive units (each <= ``max_chars``) into spans of <= ``max_chars``.

    Each span after the first starts with the trailing units of the previous span whose total
    extent is <= ``overlap_chars`` (unit-aligned overlap), as long as at least one new unit fits.
    """
    spans: list[Span] = []
    n = len(units)
    i = 0
    while i < n:
        start = units[i][0]
        j = i
        while j + 1 < n and units[j + 1][1] - start <= max_chars:
            j += 1
        spans.append((start, units[j][1]))
        if j + 1 >= n:
            break
        end = units[j][1]
        nxt = j + 1
        while (
            nxt - 1 > i
            and end - units[nxt - 1][0] <= overlap_chars
            and units[j + 1][1] - units[nxt - 1][0] <= max_chars
        ):
            nxt -= 1
        i = nxt
    return spans


def _validate(max_chars: int, overlap_chars: int = 0, min_chars: int = 0) -> None:
    if max_chars < 20:
        raise InvalidInput("청크 최대 길이는 20자 이상이어야 합니다.", "max_chars must be >= 20.")
    if not 0 <= overlap_chars < max_chars:
        raise InvalidInput(
            "청크 겹침 길이는 0 이상, 최대 길이 미만이어야 합니다.", "overlap_chars must be in [0, max_chars)."
        )
    if not 0 <= min_chars <= max_chars:
        raise InvalidInput(
            "청크 최소 길이는 0 이상, 최대 길이 이하여야 합니다.", "min_chars must be in [0, max_chars]."
        )


class SentenceChunker:
    """Packs whole sentences into chunks of <= ``max_chars`` with sentence-aligned overlap.

    A sentence longer than ``max_chars`` is cut at whitespace (:func:`split_long_span`). A last
    chunk that adds fewer than ``min_chars`` new characters is merged into the previous chunk if
    the result stays <= ``1.2 * max_chars`` (the only case where a chunk exceeds ``max_chars``).
    """

    MERGE_FACTOR = 1.2

    def __init__(
        self, max_chars: int = 700, overlap_chars: int = 120, min_chars: int = 50, *, kiwi: Any = None
    ) -> None:
        _validate(max_chars, overlap_chars, min_chars)
        self.max_chars = max_chars
        self.overlap_chars = overlap_chars
        self.min_chars = min_chars
        self._kiwi = kiwi

    def __repr__(self) -> str:  # stable: used in index fingerprints
        return (
            f"SentenceChunker(max_chars={self.max_chars}, overlap_chars={self.overlap_chars}, "
            f"min_chars={self.min_chars})"
        )

    def spans(self, text: str, sentences: Sequence[Span]) -> list[Span]:
        """Chunk spans over ``text`` given its sentence spans."""
        units = [piece for s in sentences for piece in split_long_span(text, s, self.max_chars)]
        spans = pack_spans(units, self.max_chars, self.overlap_chars)
        if len(spans) >= 2:
            (p_start, p_end), (l_start, l_end) = spans[-2], spans[-1]
            tiny = l_end - l_start < self.min_chars or l_end - p_end < self.min_chars
            if tiny and l_end - p_start <= self.max_chars * self.MERGE_FACTOR:
                spans[-2:] = [(p_start, l_end)]
        return spans

    def chunk(self, doc: Document) -> list[Chunk]:
        return self.chunk_many([doc])[0]

    def chunk_many(self, docs: Sequence[Document]) -> list[list[Chunk]]:
        """Chunk many documents; sentence splitting runs through Kiwi's batch API."""
        sentence_lists = split_sentences_batch([d.text for d in docs], kiwi=self._kiwi)
        return [build_chunks(d, self.spans(d.text, s)) for d, s in zip(docs, sentence_lists, strict=True)]


class WholeDocumentChunker:
    """One chunk per document (FAQ entries: question + "\\n" + answer).

    A document longer than ``max_chars`` is sentence-chunked instead, so nothing is truncated.
    """

    def __init__(self, max_chars: int = 4000, *, fallback: SentenceChunker | None = None, kiwi: Any = None) -> None:
        _validate(max_chars)
        self.max_chars = max_chars
        self.fallback = fallback or SentenceChunker(kiwi=kiwi)

    def __repr__(self) -> str:  # stable: used in index fingerprints
        return f"{type(self).__name__}(max_chars={self.max_chars}, fallback={self.fallback!r})"

    def chunk(self, doc: Document) -> list[Chunk]:
        span = strip_span(doc.text, 0, len(doc.text))
        if span is None:
            return []
        if span[1] - span[0] <= self.max_chars:
            return build_chunks(doc, [span])
        return self.fallback.chunk(doc)


class PageChunker(WholeDocumentChunker):
    """One chunk per PDF page (``doc.locator["page"]`` is required and kept on every chunk).

    A page longer than ``max_chars`` is sentence-chunked.
    """

    def __init__(self, max_chars: int = 1500, *, fallback: SentenceChunker | None = None, kiwi: Any = None) -> None:
        super().__init__(max_chars, fallback=fallback, kiwi=kiwi)

    def chunk(self, doc: Document) -> list[Chunk]:
        if "page" not in doc.locator:
            raise InvalidInput(
                "페이지 청크 분할에는 locator에 'page'가 있는 문서가 필요합니다.",
                "PageChunker needs documents whose locator has a 'page'.",
                details={"doc_id": doc.doc_id},
            )
        return super().chunk(doc)


def chunk_documents(chunker: Chunker, docs: Sequence[Document]) -> list[Chunk]:
    """All chunks of ``docs`` in order, using the chunker's batch path when it has one."""
    many = getattr(chunker, "chunk_many", None)
    groups: list[list[Chunk]] = many(docs) if callable(many) else [chunker.chunk(d) for d in docs]
    return [c for group in groups for c in group]


def make_chunker(kind: str, **opts: Any) -> Chunker:
    """A chunker by name: "sentence", "whole", "page" or "rows"; ``opts`` go to its constructor."""
    from jisik.text.tables import TableRowChunker

    classes: dict[str, type[Any]] = {
        "sentence": SentenceChunker,
        "whole": WholeDocumentChunker,
        "page": PageChunker,
        "rows": TableRowChunker,
    }
    cls = classes.get(kind)
    if cls is None:
        raise InvalidInput(
            f"알 수 없는 청크 분할 방식입니다: {kind!r}",
            f"Unknown chunker kind {kind!r}.",
            hint=f"one of {', '.join(CHUNKER_KINDS)}",
        )
    try:
        chunker: Chunker = cls(**opts)
    except TypeError as exc:
        raise InvalidInput(
            f"청크 분할 옵션이 올바르지 않습니다: {exc}", f"Invalid chunker options: {exc}", details={"kind": kind}
        ) from exc
    return chunker
