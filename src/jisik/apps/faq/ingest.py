"""FAQ ingestion: the Smartstore FAQ pickle (``{question: answer}``) -> the ``faq`` collection.

One document per entry (question + answer, the question is the title), one chunk per document
(:class:`~jisik.text.chunking.WholeDocumentChunker`). Re-running is idempotent: unchanged entries
cost nothing (fingerprints), entries that left the pickle are deleted (``sync``), and the
embeddings of re-indexed texts come from the embedding cache.

The data is third-party and never bundled: the path is given, or ``JISIK_FAQ_PKL``, or
``smartstore_faq/final_result.pkl`` under ``JISIK_SHARED_DATA`` / ``../shared/data`` next to the
repository (or the working directory).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jisik.core.errors import NotFound
from jisik.core.logging import get_logger
from jisik.pipeline.indexing import IndexReport, ProgressFactory, progress_or_none
from jisik.pipeline.loaders import load_faq_pickle
from jisik.text.chunking import WholeDocumentChunker

from .prototypes import build_prototypes, load_prototypes, prototypes_path, save_prototypes

log = get_logger(__name__)

FAQ_COLLECTION = "faq"
FAQ_RELATIVE = Path("smartstore_faq") / "final_result.pkl"
_REPO = Path(__file__).resolve().parents[4]  # src/jisik/apps/faq/ingest.py -> repository root


def faq_chunker() -> WholeDocumentChunker:
    """One chunk per FAQ entry (the longest answers, over 4,000 characters, are sentence-chunked)."""
    return WholeDocumentChunker()


def default_faq_path() -> Path:
    """Where the FAQ pickle is looked for when no path is given (the first that exists)."""
    if env := os.environ.get("JISIK_FAQ_PKL"):
        return Path(env)
    candidates = []
    if shared := os.environ.get("JISIK_SHARED_DATA"):
        candidates.append(Path(shared) / FAQ_RELATIVE)
    candidates += [_REPO.parent / "shared" / "data" / FAQ_RELATIVE,
                   Path.cwd().parent / "shared" / "data" / FAQ_RELATIVE]
    for path in candidates:
        if path.is_file():
            return path
    raise NotFound(
        "FAQ 파일(final_result.pkl)을 찾을 수 없습니다.",
        "The FAQ pickle (final_result.pkl) was not found.",
        hint="경로를 인자로 주거나 JISIK_FAQ_PKL을 설정하세요. (Pass PATH or set JISIK_FAQ_PKL.)",
        details={"looked_in": [str(p) for p in candidates]},
    )


@dataclass(slots=True)
class FaqIngestReport:
    index: IndexReport
    prototypes: int  # FAQ questions in the prototype file of the off-topic gate
    prototypes_rebuilt: bool
    prototypes_path: str

    def to_dict(self) -> dict[str, object]:
        return {**self.index.to_dict(), "prototypes": self.prototypes,
                "prototypes_rebuilt": self.prototypes_rebuilt, "prototypes_path": self.prototypes_path}


def ingest_faq(
    runtime: Any, path: Path | None = None, collection: str = FAQ_COLLECTION, *,
    progress: ProgressFactory | None = None,
) -> FaqIngestReport:
    """Index the FAQ pickle at ``path`` (default :func:`default_faq_path`) into ``collection`` and
    save the embedded FAQ questions the off-topic gate compares with (rebuilt only when the
    entries or the embedder changed).

    ``runtime`` is a :class:`jisik.runtime.Runtime` (``indexer(chunker)``, ``embedder``, ``settings``).
    """
    src = path if path is not None else default_faq_path()
    docs = load_faq_pickle(src)
    indexer = runtime.indexer(faq_chunker())
    with progress_or_none(progress, f"FAQ 색인: {collection}", len(docs)) as update:
        report: IndexReport = indexer.index(collection, docs, sync=True, note=f"faq ingest {src.name}",
                                            progress=update)
    target = prototypes_path(runtime.settings.home, collection)
    embedder = runtime.embedder
    current = load_prototypes(target)
    # a doc id is the hash of the entry's question, so equal ids mean equal questions
    rebuilt = current is None or current.embedder_id != embedder.model_id or \
        current.doc_ids != [d.doc_id for d in docs]
    if current is None or rebuilt:
        with progress_or_none(progress, "FAQ 질문 임베딩 (주제 판별용)", 1) as step:
            current = build_prototypes(embedder, docs)
            save_prototypes(target, current)
            if step is not None:
                step(1, len(docs))
    log.info("faq ingested", extra={"collection": collection, "entries": len(docs), "added": report.added,
                                    "updated": report.updated, "deleted": report.deleted,
                                    "prototypes_rebuilt": rebuilt})
    return FaqIngestReport(report, len(current.doc_ids), rebuilt, str(target))
