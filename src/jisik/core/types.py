"""Shared value types passed between layers: documents, chunks, hits and citations."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

JsonDict = dict[str, Any]


@dataclass(slots=True)
class Document:
    """A unit of source content (a FAQ entry, a PDF, a table row group, a Markdown file).

    ``locator`` says where in the source the document sits (``{"page": 3}``,
    ``{"rows": [10, 19]}``, ``{"table": "products", "key": "id=7"}``); ``metadata`` is
    filterable (scalars only: str, int, float, bool).
    """

    doc_id: str
    text: str
    title: str = ""
    source_uri: str = ""
    locator: JsonDict = field(default_factory=dict)
    metadata: JsonDict = field(default_factory=dict)


@dataclass(slots=True)
class Chunk:
    """A retrievable piece of a document. ``chunk_id`` is a stable content hash.

    ``start``/``end`` are character offsets of ``text`` inside the normalised document text.
    """

    chunk_id: str
    doc_id: str
    text: str
    seq: int = 0
    start: int = 0
    end: int = 0
    title: str = ""
    source_uri: str = ""
    locator: JsonDict = field(default_factory=dict)
    metadata: JsonDict = field(default_factory=dict)

    def to_dict(self) -> JsonDict:
        return asdict(self)


@dataclass(slots=True)
class Citation:
    collection: str
    doc_id: str
    chunk_id: str
    title: str
    source_uri: str
    locator: JsonDict
    span: tuple[int, int]
    scores: dict[str, float]

    def to_dict(self) -> JsonDict:
        d = asdict(self)
        d["span"] = list(self.span)
        return d


@dataclass(slots=True)
class Hit:
    """One retrieved chunk with its final score and the score from each signal."""

    chunk: Chunk
    score: float
    collection: str = ""
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def citation(self) -> Citation:
        c = self.chunk
        return Citation(
            collection=self.collection,
            doc_id=c.doc_id,
            chunk_id=c.chunk_id,
            title=c.title,
            source_uri=c.source_uri,
            locator=dict(c.locator),
            span=(c.start, c.end),
            scores={k: round(float(v), 6) for k, v in self.scores.items()},
        )
