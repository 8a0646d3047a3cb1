"""Indexing job: documents -> normalised text -> chunks -> Kiwi tokens + embeddings -> one
versioned batch. Incremental: unchanged documents (same fingerprint) cost nothing; with
``sync=True`` documents absent from the input are deleted. The batch is published only when
every document went through, so an interrupted run leaves the previous version in service.

Multi-vector passages: a chunk whose passage is longer than ``window_tokens`` embedder tokens
also gets one vector per *window* — a run of whole sentences of at most ``window_tokens`` tokens
(a longer sentence is a window alone) — embedded in the same batched call as the chunks. Dense
search scores the chunk by the best of its own vector and its windows (see
:mod:`jisik.stores.index_base`).

Question vectors: a FAQ entry (chunk metadata ``kind == "faq"`` with a title) also gets the vector
of its question embedded *as a query* (e5's ``query:`` side), stored as one more window of its
chunk. A user's question is then also matched question-to-question (symmetric), which is how a
colloquial paraphrase finds the entry whose answer shares few of its words."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from itertools import islice

import numpy as np

from jisik.core.errors import ConfigError, InvalidInput, Unavailable
from jisik.core.hashing import content_hash
from jisik.core.logging import get_logger
from jisik.core.settings import get_settings
from jisik.core.types import Chunk, Document
from jisik.models.embedders import Embedder
from jisik.pipeline.loaders import clean_title
from jisik.stores.index_base import IndexBatch, IndexStore
from jisik.text.chunking import Chunker
from jisik.text.normalize import normalize
from jisik.text.sentences import split_sentences_batch
from jisik.text.tokenize import KoreanTokenizer

log = get_logger(__name__)
# errors that say nothing about the document or object being processed (never dead-lettered)
NOT_THE_OBJECTS_FAULT: tuple[type[BaseException], ...] = (Unavailable, ConfigError, MemoryError)
Progress = Callable[[int, int], None]  # (documents done, chunks done)
# (label, total) -> context yielding a Progress callback (the CLI passes a Rich progress bar)
ProgressFactory = Callable[[str, int | None], AbstractContextManager[Progress]]
CHARS_PER_TOKEN = 4  # token budget -> characters, for embedders that cannot count their tokens


def progress_or_none(
    factory: ProgressFactory | None, label: str, total: int
) -> AbstractContextManager[Progress | None]:
    """The factory's progress context, or a no-op context yielding None when there is none."""
    return factory(label, total) if factory is not None else nullcontext(None)


@dataclass(slots=True)
class IndexReport:
    collection: str
    version: int = 0
    documents_seen: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks_indexed: int = 0
    windows_indexed: int = 0  # window vectors of long chunks (multi-vector passages)
    seconds: float = 0.0
    timings_s: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


def fingerprint(doc: Document, chunker_id: str, volatile: frozenset[str] = frozenset()) -> str:
    """What makes a document "changed". ``volatile`` names what is left out: metadata keys,
    ``"source_uri"`` and ``"locator.<key>"`` — lineage such as the landed object, the run and the
    row position that delivered the same content again."""
    metadata = {k: v for k, v in doc.metadata.items() if k not in volatile} if volatile else doc.metadata
    locator = {k: v for k, v in doc.locator.items() if f"locator.{k}" not in volatile} if volatile else doc.locator
    return content_hash(
        doc.text, doc.title, "" if "source_uri" in volatile else doc.source_uri,
        json.dumps(locator, sort_keys=True, ensure_ascii=False),
        json.dumps(metadata, sort_keys=True, ensure_ascii=False, default=str), chunker_id,
    )


def _batched(it: Iterable[Document], n: int) -> Iterator[list[Document]]:
    iterator = iter(it)
    while group := list(islice(iterator, n)):
        yield group


class Indexer:
    def __init__(
        self, store: IndexStore, embedder: Embedder, tokenizer: KoreanTokenizer, chunker: Chunker,
        *, group_size: int = 256, volatile: Iterable[str] = (), window_tokens: int | None = None,
        question_vectors: bool | None = None,
    ) -> None:
        """``window_tokens``: multi-vector passages (see the module docstring); None = the
        ``dense_window_tokens`` setting, 0 = off. ``question_vectors``: FAQ question vectors;
        None = the ``dense_question_vectors`` setting."""
        self.store = store
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.chunker = chunker
        self.group_size = group_size
        self.window_tokens = get_settings().dense_window_tokens if window_tokens is None else int(window_tokens)
        if self.window_tokens < 0:
            raise InvalidInput("window_tokens는 0 이상이어야 합니다.", "window_tokens must be >= 0.")
        self.question_vectors = (get_settings().dense_question_vectors if question_vectors is None
                                 else bool(question_vectors))
        self.token_count = token_counter(embedder)
        self.chunker_id = repr(chunker) + "".join(
            f"|{part}" for part in stored_vector_parts(self.window_tokens, self.question_vectors))
        # lineage fields: a document that differs only there is unchanged and keeps its stored lineage
        self.volatile = frozenset(volatile)

    def index(
        self, collection: str, documents: Iterable[Document], *, sync: bool = False, note: str = "",
        progress: Progress | None = None, sync_prefixes: Sequence[str] | None = None,
        keep_prefixes: Sequence[str] = (),
    ) -> IndexReport:
        """Index ``documents`` into ``collection`` as one new version.

        With ``sync``, existing documents missing from ``documents`` are deleted — all of them,
        or with ``sync_prefixes`` only those whose id starts with one of the prefixes (one
        source's documents in a collection fed by several sources) — except the documents of
        ``keep_prefixes`` (an id equal to one or under it + ``/``: an object left out of this batch).
        A document that cannot be chunked is :class:`DocumentFailed` naming it and its lineage.
        """
        t0 = time.perf_counter()
        report = IndexReport(collection)
        self.store.ensure_collection(collection, dim=self.embedder.dim, embedder_id=self.embedder.model_id)
        existing = self.store.doc_fingerprints(collection)
        seen: set[str] = set()
        written: dict[str, str] = {}  # doc_id -> fingerprint upserted by this batch
        duplicates = 0
        timings = {"chunk": 0.0, "tokenize": 0.0, "windows": 0.0, "embed": 0.0, "write": 0.0, "publish": 0.0}
        with self.store.open_batch(collection, note=note) as batch:
            for group in _batched(documents, self.group_size):
                todo: list[tuple[Document, str]] = []
                for doc in group:
                    report.documents_seen += 1
                    duplicates += doc.doc_id in seen  # e.g. a row delivered by two pending extractions
                    seen.add(doc.doc_id)
                    doc = Document(doc.doc_id, normalize(doc.text), doc.title, doc.source_uri,
                                   dict(doc.locator), dict(doc.metadata))
                    fp = fingerprint(doc, self.chunker_id, self.volatile)
                    old = written.get(doc.doc_id, existing.get(doc.doc_id))
                    if old == fp:
                        report.unchanged += 1
                        continue
                    if old is None:
                        report.added += 1
                    else:
                        report.updated += 1
                    written[doc.doc_id] = fp  # a later duplicate compares with this one
                    todo.append((doc, fp))
                self._index_group(batch, todo, timings, report)
                if progress is not None:
                    progress(report.documents_seen, report.chunks_indexed)
            if duplicates:
                log.warning("duplicate document ids in input; the last of each wins",
                            extra={"collection": collection, "duplicates": duplicates})
            if sync:
                prefixes = tuple(sync_prefixes) if sync_prefixes is not None else ("",)
                kept = tuple(keep_prefixes)
                for doc_id in sorted(existing.keys() - seen):
                    if not doc_id.startswith(prefixes) or _under(doc_id, kept):
                        continue
                    batch.delete_document(doc_id)
                    report.deleted += 1
            t = time.perf_counter()
            info = batch.commit()
            timings["publish"] += time.perf_counter() - t
        report.version = info.version
        report.seconds = time.perf_counter() - t0
        report.timings_s = {k: round(v, 3) for k, v in timings.items()}
        log.info("indexed", extra={"collection": collection, "version": info.version, "chunks": report.chunks_indexed,
                                   "windows": report.windows_indexed, "seconds": round(report.seconds, 2)})
        return report

    def _index_group(
        self, batch: IndexBatch, todo: Sequence[tuple[Document, str]], timings: dict[str, float],
        report: IndexReport,
    ) -> None:
        if not todo:
            return
        t = time.perf_counter()
        docs = [doc for doc, _ in todo]
        many = getattr(self.chunker, "chunk_many", None)  # batch sentence splitting when available
        try:
            per_doc: list[list[Chunk]] = many(docs) if callable(many) else [self.chunker.chunk(d) for d in docs]
        except NOT_THE_OBJECTS_FAULT:
            raise
        except Exception as exc:
            culprit = self._failing_document(docs)
            if culprit is None:
                raise
            raise DocumentFailed(*culprit) from exc
        flat = [c for chunks in per_doc for c in chunks]
        timings["chunk"] += time.perf_counter() - t
        t = time.perf_counter()
        tokens = self.tokenizer.tokens_batch([_lexical_text(c) for c in flat])
        timings["tokenize"] += time.perf_counter() - t
        t = time.perf_counter()
        passages = [_dense_text(c) for c in flat]
        windows = self._windows(passages)
        timings["windows"] += time.perf_counter() - t
        t = time.perf_counter()
        # one call: the embedder sorts chunks and windows together into length-bucketed batches
        texts = passages + [w for ws in windows for w in ws]
        all_vectors = (self.embedder.embed_passages(texts) if texts
                       else np.zeros((0, self.embedder.dim), np.float32))
        vectors = all_vectors[: len(flat)]
        questions = {i: q for i, c in enumerate(flat) if (q := faq_question(c))} if self.question_vectors else {}
        qvecs = (dict(zip(questions, self.embedder.embed_queries(list(questions.values())), strict=True))
                 if questions else {})
        timings["embed"] += time.perf_counter() - t
        t = time.perf_counter()
        pos, wpos = 0, len(flat)
        for (doc, fp), chunks in zip(todo, per_doc, strict=True):
            n = len(chunks)
            doc_windows: list[np.ndarray] | None = None
            if any(windows[pos : pos + n]) or any(i in qvecs for i in range(pos, pos + n)):
                doc_windows = []
                for i, ws in enumerate(windows[pos : pos + n], start=pos):
                    own = all_vectors[wpos : wpos + len(ws)]
                    wpos += len(ws)
                    doc_windows.append(np.vstack([own, qvecs[i][None, :]]) if i in qvecs else own)
            batch.upsert_document(doc.doc_id, fp, chunks, vectors[pos : pos + n], tokens[pos : pos + n],
                                  windows=doc_windows)
            pos += n
        report.chunks_indexed += len(flat)
        report.windows_indexed += len(texts) - len(flat) + len(qvecs)
        timings["write"] += time.perf_counter() - t

    def _windows(self, passages: Sequence[str]) -> list[list[str]]:
        """Window texts of each passage; empty for a passage that fits in one window."""
        out: list[list[str]] = [[] for _ in passages]
        budget = self.window_tokens
        if not budget:
            return out
        long = [i for i, p in enumerate(passages) if self.token_count(p) > budget]
        if not long:
            return out
        spans = split_sentences_batch([passages[i] for i in long])
        for i, sp in zip(long, spans, strict=True):
            ws = sentence_windows(passages[i], sp, budget, self.token_count)
            if len(ws) > 1:
                out[i] = ws
        return out


    def _failing_document(self, docs: Sequence[Document]) -> tuple[Document, Exception] | None:
        """The first document the chunker fails on alone (after a whole group failed), with its error."""
        for doc in docs:
            try:
                self.chunker.chunk(doc)
            except Exception as exc:
                return doc, exc
        return None


class DocumentFailed(InvalidInput):
    """The chunker failed on one document; ``details`` name it and its landed object (``lineage_key``)."""

    code = "document_failed"

    def __init__(self, doc: Document, error: Exception) -> None:
        super().__init__(
            f"문서를 청크로 나눌 수 없습니다: {doc.doc_id}",
            f"Cannot chunk document {doc.doc_id}: {type(error).__name__}: {error}",
            details={"doc_id": doc.doc_id, "lineage_key": doc.metadata.get("lineage_key")},
        )


def _under(doc_id: str, prefixes: tuple[str, ...]) -> bool:
    return any(doc_id == p or doc_id.startswith(p + "/") for p in prefixes)


def token_counter(embedder: Embedder) -> Callable[[str], int]:
    """The embedder's own passage token count when it has one, else ~4 characters per token."""
    count = getattr(embedder, "token_count", None)
    if callable(count):
        return lambda text: int(count(text))
    return lambda text: math.ceil(len(text) / CHARS_PER_TOKEN)


def sentence_windows(
    text: str, spans: Sequence[tuple[int, int]], budget: int, count: Callable[[str], int]
) -> list[str]:
    """Runs of whole sentences (``spans`` over ``text``) whose token counts add up to at most
    ``budget``; a sentence longer than that is a window alone. Sentences are joined by a space.

    Each sentence is counted on its own (with the model's prefix and special tokens), so a
    window as embedded stays within the budget.
    """
    out: list[str] = []
    current: list[str] = []
    used = 0
    for a, b in spans:
        sentence = text[a:b]
        n = count(sentence)
        if current and used + n > budget:
            out.append(" ".join(current))
            current, used = [], 0
        current.append(sentence)
        used += n
    if current:
        out.append(" ".join(current))
    return out


def stored_vector_parts(window_tokens: int, question_vectors: bool) -> tuple[str, ...]:
    """What a document's stored vectors depend on besides its chunks and the embedder: the window
    size and FAQ question vectors (part of fingerprints and of eval scratch-collection names)."""
    return ((f"windows={window_tokens}",) if window_tokens else ()) + (("questions",) if question_vectors else ())


def faq_question(chunk: Chunk) -> str:
    """The question of a FAQ entry's chunk (its title without ``[카테고리]`` tags), else ""."""
    if chunk.metadata.get("kind") != "faq" or not chunk.title:
        return ""
    return clean_title(chunk.title) or chunk.title.strip()


def _lexical_text(chunk: Chunk) -> str:
    """Title words count for lexical search when the chunk body does not repeat them."""
    if chunk.title and chunk.title not in chunk.text:
        return f"{chunk.title}\n{chunk.text}"
    return chunk.text


def _dense_text(chunk: Chunk) -> str:
    return _lexical_text(chunk)
