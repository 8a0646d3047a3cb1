"""Retrieval quality side by side, on the same corpus, queries, chunks and embedder:

* jisik: lexical only (Kiwi BM25), dense only (e5-small), naive RRF, and the default fusion;
* whitespace BM25 (rank_bm25 BM25Okapi on str.split());
* LlamaIndex hybrid: VectorStoreIndex + BM25Retriever fused by QueryFusionRetriever
  (reciprocal rerank), built over jisik's chunks with jisik's (cached) embedder.

Reports Recall@1/5/10, MRR, nDCG@10 and per-query latency p50/p95 (total, and outside the
query-embedding call). Results go to bench/results/retrieval_quality.json; bench/report.py
renders docs/benchmarks.md.

    python bench/retrieval_quality.py [--datasets allganize,faq,faq_seller] [--skip-llamaindex]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from common import Dataset, datasets, write_result

from jisik.eval.autorag import QAItem, load_corpus, load_qa
from jisik.eval.metrics import percentile_ms, summarise
from jisik.eval.runner import scratch_collection
from jisik.pipeline.indexing import Indexer
from jisik.runtime import Runtime
from jisik.text.chunking import make_chunker
from jisik.text.normalize import normalize

# -> ranked doc ids, seconds spent embedding the query[, seconds spent in Kiwi on the query]
Search = Callable[[str], tuple[Any, ...]]


def run(items: Sequence[QAItem], search: Search) -> dict[str, Any]:
    rankings, total, outside, no_models = [], [], [], []
    for item in items:
        t = time.perf_counter()
        ranked, embed_s, *kiwi = search(item.query)
        dt = time.perf_counter() - t
        rankings.append(ranked)
        total.append(dt)
        outside.append(dt - embed_s)
        no_models.append(dt - embed_s - (kiwi[0] if kiwi else 0.0))
    out: dict[str, Any] = summarise(rankings, [i.gold for i in items])
    out.update({"p50_ms": percentile_ms(total, 50), "p95_ms": percentile_ms(total, 95),
                "overhead_p50_ms": percentile_ms(outside, 50), "overhead_p95_ms": percentile_ms(outside, 95),
                "outside_models_p50_ms": percentile_ms(no_models, 50)})
    return out


def unique_docs(doc_ids: Sequence[str], k: int = 10) -> list[str]:
    return list(dict.fromkeys(doc_ids))[:k]


def jisik_systems(rt: Runtime, ds: Dataset) -> tuple[dict[str, Search], list[Any]]:
    store, name = scratch_collection(rt, ds.corpus, ds.chunker)
    docs = load_corpus(ds.corpus)
    t = time.perf_counter()
    report = Indexer(store, rt.embedder, rt.tokenizer, make_chunker(ds.chunker)).index(name, docs, note="bench")
    print(f"  indexed {ds.name}: {report.chunks_indexed} new chunks in {time.perf_counter() - t:.1f}s", flush=True)
    retriever = rt.retriever_for(store)

    def make(**overrides: Any) -> Search:
        def search(q: str) -> tuple[list[str], float, float]:
            res = retriever.retrieve(q, name, top_k=10, overrides={"max_per_doc": 1, **overrides})
            return ([h.chunk.doc_id for h in res.hits], res.timings_ms.get("embed", 0.0) / 1000,
                    res.timings_ms.get("tokenize", 0.0) / 1000)

        return search

    # the default runs first: its latency is measured with the store's chunk cache as cold as a
    # fresh process has it (later systems find the chunks they share with it cached)
    systems = {
        f"jisik default ({rt.settings.retrieval.fusion}, rerank {rt.settings.retrieval.rerank})": make(),
        "jisik lexical (Kiwi BM25)": make(mode="lexical"),
        "jisik dense (e5-small)": make(mode="dense"),
        "jisik hybrid, naive RRF": make(fusion="rrf", rerank="none"),
        "jisik hybrid, weighted 0.5": make(fusion="weighted", lexical_weight=0.5, rerank="none"),
        f"jisik {rt.settings.retrieval.fusion} fusion, no rerank": make(rerank="none"),
        # the same default again, now that the chunk rows it reads are cached (a warm server)
        "jisik default, second pass (warm chunk cache)": make(),
    }
    chunker = make_chunker(ds.chunker)
    chunks = [c for d in docs for c in chunker.chunk(_normalised(d))]
    return systems, chunks


def _normalised(doc: Any) -> Any:
    doc.text = normalize(doc.text)
    return doc


def whitespace_bm25(chunks: list[Any]) -> Search:
    from rank_bm25 import BM25Okapi

    bm25 = BM25Okapi([c.text.split() for c in chunks])
    ids = [c.doc_id for c in chunks]

    def search(q: str) -> tuple[list[str], float]:
        scores = bm25.get_scores(q.split())
        top = np.argsort(-scores)[:50]
        return unique_docs([ids[i] for i in top]), 0.0

    return search


def llamaindex_hybrid(rt: Runtime, chunks: list[Any]) -> Search:
    from llama_index.core import Settings as LISettings
    from llama_index.core import VectorStoreIndex
    from llama_index.core.embeddings import BaseEmbedding
    from llama_index.core.retrievers import QueryFusionRetriever
    from llama_index.core.schema import TextNode
    from llama_index.retrievers.bm25 import BM25Retriever

    embedder = rt.embedder
    spent = {"s": 0.0}

    class JisikEmbedding(BaseEmbedding):  # type: ignore[misc]
        def _get_query_embedding(self, query: str) -> list[float]:
            t = time.perf_counter()
            v = embedder.embed_queries([query])[0].tolist()
            spent["s"] += time.perf_counter() - t
            return v

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return embedder.embed_passages([text])[0].tolist()

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return embedder.embed_passages(texts).tolist()

    LISettings.embed_model = JisikEmbedding(model_name=embedder.model_id, embed_batch_size=64)
    LISettings.llm = None
    nodes = [TextNode(text=c.text, id_=f"{c.doc_id}#{c.seq}", metadata={"doc_id": c.doc_id},
                      excluded_embed_metadata_keys=["doc_id"], excluded_llm_metadata_keys=["doc_id"])
             for c in chunks]
    index = VectorStoreIndex(nodes, show_progress=False)
    bm25 = BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=50)
    fusion = QueryFusionRetriever([index.as_retriever(similarity_top_k=50), bm25], similarity_top_k=50,
                                  num_queries=1, mode="reciprocal_rerank", use_async=False)

    def search(q: str) -> tuple[list[str], float]:
        spent["s"] = 0.0
        results = fusion.retrieve(q)
        return unique_docs([r.node.metadata["doc_id"] for r in results]), spent["s"]

    return search


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", default="allganize,faq,faq_seller")
    ap.add_argument("--skip-llamaindex", action="store_true")
    args = ap.parse_args()
    rt = Runtime()
    all_ds = datasets()
    results: dict[str, Any] = {"datasets": {}}
    for name in args.datasets.split(","):
        ds = all_ds[name]
        print(f"{ds.name}: {ds.description}", flush=True)
        items = load_qa(ds.qa)
        systems, chunks = jisik_systems(rt, ds)
        systems["whitespace BM25 (rank_bm25)"] = whitespace_bm25(chunks)
        if not args.skip_llamaindex:
            systems["LlamaIndex hybrid (BM25Retriever + vector, RRF)"] = llamaindex_hybrid(rt, chunks)
        rows = {}
        for label, search in systems.items():
            search(items[0].query)  # warm-up
            rows[label] = run(items, search)
            r = rows[label]
            print(f"  {label:52s} R@1 {r['recall@1']:.3f} R@5 {r['recall@5']:.3f} R@10 {r['recall@10']:.3f} "
                  f"MRR {r['mrr']:.3f} p50 {r['p50_ms']:.1f} ms overhead p50 {r['overhead_p50_ms']:.2f} ms",
                  flush=True)
        results["datasets"][name] = {"description": ds.description, "queries": len(items),
                                     "chunks": len(chunks), "systems": rows}
    results["embedder"] = rt.embedder.model_id
    results["settings"] = rt.settings.retrieval.model_dump()
    print(write_result("retrieval_quality", results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
