"""LLM-written query rewrites (multi-query) on the FAQ paraphrases, with the offline local GGUF model.

Same scratch FAQ index as ``jisik eval`` (the shared embedding cache under JISIK_HOME); per question:
no expansion (the default), rule-based variants, and rewrites written by the local LLM
(``jisik.retrieval.multiquery.expand_with_llm``), each searched with the default hybrid retriever.
Needs the ``llm-local-small`` extra (Qwen2.5-Coder 0.5B, ~480 MB; ``--model`` for another local model).
Results: bench/results/multiquery_llm.json (rendered by bench/report.py).

    python bench/multiquery_llm.py [--model qwen2.5-coder-0.5b] [--limit 120]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from typing import Any

from common import datasets, write_result

from jisik.core.settings import get_settings
from jisik.eval.autorag import load_corpus, load_qa
from jisik.eval.runner import scratch_collection
from jisik.models.llm import create_llm
from jisik.pipeline.indexing import Indexer
from jisik.retrieval.multiquery import expand_query, expand_with_llm
from jisik.runtime import Runtime
from jisik.text.chunking import make_chunker


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    ds = datasets()["faq"]
    settings = get_settings().model_copy(update={"llm": f"local:{args.model}", "llm_temperature": 0.0})
    rt = Runtime(settings)
    store, name = scratch_collection(rt, ds.corpus, "whole")
    if name not in {c.name for c in store.list_collections()}:
        Indexer(store, rt.embedder, rt.tokenizer, make_chunker("whole"), window_tokens=settings.dense_window_tokens
                ).index(name, load_corpus(ds.corpus), note="eval scratch")
    retriever = rt.retriever_for(store)
    qa = load_qa(ds.qa)[: args.limit]
    llm = create_llm(settings, tokenizer=rt.tokenizer)

    async def rewrites() -> tuple[list[list[str]], list[float]]:
        out, ms = [], []
        for item in qa:
            t = time.perf_counter()
            out.append(await expand_with_llm(item.query, llm, timeout_s=60))
            ms.append((time.perf_counter() - t) * 1000)
        await llm.aclose()
        return out, ms

    llm_variants, llm_ms = asyncio.run(rewrites())
    systems: dict[str, list[list[str] | None]] = {
        "no expansion (default)": [None] * len(qa),
        "rule-based variants": [expand_query(x.query) for x in qa],
        f"LLM rewrites ({args.model})": llm_variants,
    }
    results: dict[str, Any] = {}
    for label, variants in systems.items():
        r1 = r5 = r10 = mrr = 0.0
        for item, v in zip(qa, variants, strict=True):
            gold = {g for group in item.gold for g in group}
            hits = retriever.retrieve(item.query, name, top_k=10, variants=v, overrides={"max_per_doc": 1}).hits
            ranks = [i for i, h in enumerate(hits) if h.chunk.doc_id in gold]
            if ranks:
                r1 += ranks[0] < 1
                r5 += ranks[0] < 5
                r10 += ranks[0] < 10
                mrr += 1 / (ranks[0] + 1)
        n = len(qa)
        results[label] = {"recall@1": round(r1 / n, 4), "recall@5": round(r5 / n, 4), "recall@10": round(r10 / n, 4),
                          "mrr": round(mrr / n, 4)}
        print(label, results[label], flush=True)
    rewritten = sum(len(v) > 1 and v[1:] != expand_query(x.query)[1:] for x, v in zip(qa, llm_variants, strict=True))
    rt.close()
    print(write_result("multiquery_llm", {
        "model": args.model, "queries": len(qa), "results": results,
        "llm_rewrite_ms_p50": round(statistics.median(llm_ms), 1), "llm_rewritten_queries": rewritten,
        "examples": [{"query": x.query, "variants": v[1:]} for x, v in list(zip(qa, llm_variants, strict=True))[:5]],
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
