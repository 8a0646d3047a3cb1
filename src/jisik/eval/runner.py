"""`jisik eval`: index an AutoRAG corpus into a scratch collection (cached by content hash)
and measure retrieval on its QA set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jisik.core.hashing import content_hash, sha256_file
from jisik.eval.autorag import evaluate, load_corpus, load_qa
from jisik.pipeline.indexing import Indexer, ProgressFactory, progress_or_none, stored_vector_parts
from jisik.stores.embedded import EmbeddedIndexStore
from jisik.text.chunking import make_chunker


def scratch_collection(rt: Any, corpus: Path, chunker: str) -> tuple[EmbeddedIndexStore, str]:
    """Index ``corpus`` into ``<home>/eval-index`` under a name derived from its content,
    the embedder, the chunker, the window size (multi-vector passages) and FAQ question vectors, so a
    second run reuses it."""
    parts = stored_vector_parts(rt.settings.dense_window_tokens, rt.settings.dense_question_vectors)
    name = "eval-" + content_hash(sha256_file(corpus), rt.embedder.model_id, chunker, *parts, length=16)
    store = EmbeddedIndexStore(rt.settings.home / "eval-index")
    return store, name


def run_eval(
    rt: Any, qa_path: Path, corpus_path: Path, *, fusion: str | None = None, mode: str = "hybrid",
    rerank: str | None = None, limit: int | None = None, chunker: str = "page",
    progress: ProgressFactory | None = None, top_k: int = 10,
) -> dict[str, Any]:
    items = load_qa(qa_path)[:limit] if limit else load_qa(qa_path)
    store, name = scratch_collection(rt, corpus_path, chunker)
    existing = {c.name: c for c in store.list_collections()}
    if name not in existing or existing[name].version == 0:
        docs = load_corpus(corpus_path)
        indexer = Indexer(store, rt.embedder, rt.tokenizer, make_chunker(chunker),
                          window_tokens=rt.settings.dense_window_tokens,
                          question_vectors=rt.settings.dense_question_vectors)
        with progress_or_none(progress, f"평가용 색인 {corpus_path.name}", len(docs)) as update:
            indexer.index(name, docs, note="eval scratch", progress=update)
    retriever = rt.retriever_for(store)
    overrides: dict[str, Any] = {"mode": mode, "max_per_doc": 1}
    if fusion:
        overrides["fusion"] = fusion
    if rerank:
        overrides["rerank"] = rerank

    def search(query: str) -> list[str]:
        result = retriever.retrieve(query, name, top_k=top_k, overrides=overrides)
        return [h.chunk.doc_id for h in result.hits]

    metrics = evaluate(items, search)
    metrics["collection"] = name
    metrics["mode"] = mode
    metrics["fusion"] = fusion or rt.settings.retrieval.fusion
    return metrics
