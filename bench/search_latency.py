"""Search latency on a 100k-chunk embedded index, including the real query embedding.

Index: 100,000 chunks whose lexical tokens are real Kiwi tokens of Smartstore FAQ and
allganize sentence chunks (cycled), and whose vectors are synthetic clustered 384-dim unit
vectors (embedding 100k real chunks with e5-small would take hours on 2 cores and does not
change search cost). The HNSW path is active (>= 20k rows). Queries: the 114 allganize
questions + 120 FAQ paraphrases, each embedded for real by e5-small (uncached).

Reports p50/p95 of the full HybridRetriever.retrieve() call and of the part outside the
query-embedding call, for unfiltered and filtered queries.

    python bench/search_latency.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import SHARED, datasets, write_result

from jisik.core.settings import get_settings
from jisik.core.threads import limit_blas_threads
from jisik.core.types import Chunk
from jisik.eval.autorag import load_corpus, load_qa
from jisik.eval.metrics import percentile_ms
from jisik.models.embedders import create_embedder
from jisik.retrieval.hybrid import HybridRetriever
from jisik.stores.embedded import EmbeddedIndexStore
from jisik.text.chunking import make_chunker
from jisik.text.normalize import normalize
from jisik.text.tokenize import get_tokenizer


def source_chunks(limit: int) -> list[Chunk]:
    ds = datasets()
    chunker = make_chunker("sentence", max_chars=500, overlap_chars=0)
    out: list[Chunk] = []
    for name in ("faq", "allganize"):
        for doc in load_corpus(ds[name].corpus):
            doc.text = normalize(doc.text)
            out.extend(chunker.chunk(doc))
            if len(out) >= limit:
                return out
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--unique", type=int, default=8000, help="distinct real chunks to tokenise and cycle")
    args = ap.parse_args()
    limit_blas_threads(1)  # what jisik.runtime.Runtime does for serving
    tok = get_tokenizer()
    base = source_chunks(args.unique)
    t = time.perf_counter()
    base_tokens = tok.tokens_batch([c.text for c in base])
    print(f"tokenised {len(base)} chunks in {time.perf_counter() - t:.1f}s", flush=True)

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(1000, 384)).astype(np.float32)
    vecs = centers[rng.integers(0, 1000, args.rows)] + 0.6 * rng.normal(size=(args.rows, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)

    root = Path(tempfile.mkdtemp(prefix="jisik-latency-"))
    store = EmbeddedIndexStore(root)
    store.ensure_collection("big", dim=384, embedder_id="synthetic")
    t = time.perf_counter()
    with store.open_batch("big") as batch:
        for i in range(args.rows):
            src = base[i % len(base)]
            chunk = Chunk(chunk_id=f"c{i}", doc_id=f"d{i}", text=src.text, title=src.title,
                          metadata={"shard": i % 10, "year": 2000 + i % 25})
            batch.upsert_document(f"d{i}", "fp", [chunk], vecs[i : i + 1], [base_tokens[i % len(base)]])
    build_s = time.perf_counter() - t
    print(f"built {args.rows} rows (incl. HNSW) in {build_s:.1f}s", flush=True)

    ds = datasets()
    queries = [q.query for q in load_qa(ds["allganize"].qa)] + [q.query for q in load_qa(ds["faq"].qa)]
    results = {}
    # the default (fp32 queries), then queries on the int8 copy of e5 (passages stay fp32)
    for precision, suffix in (("fp32", ""), ("int8", ", int8 queries")):
        settings = get_settings().model_copy(update={"embedder_query_precision": precision})
        retriever = HybridRetriever(store, create_embedder("e5-small", settings), tok)
        retriever.retrieve(queries[0], "big")  # warm-up: load snapshot, first embedding
        for label, flt in (("unfiltered", None), ("filtered shard=3, year>=2010", {"shard": 3, "year": {"gte": 2010}})):
            total, outside, embed = [], [], []
            for q in queries:
                res = retriever.retrieve(q, "big", top_k=10, filters=flt)
                total.append(res.timings_ms["total"] / 1000)
                embed.append(res.timings_ms["embed"] / 1000)
                outside.append((res.timings_ms["total"] - res.timings_ms["embed"]) / 1000)
            results[label + suffix] = {
                "p50_ms": percentile_ms(total, 50), "p95_ms": percentile_ms(total, 95),
                "embed_p50_ms": percentile_ms(embed, 50), "embed_p95_ms": percentile_ms(embed, 95),
                "overhead_p50_ms": percentile_ms(outside, 50), "overhead_p95_ms": percentile_ms(outside, 95),
            }
            print(label + suffix, json.dumps(results[label + suffix]), flush=True)
    disk = store.disk_usage("big")
    print(write_result("search_latency", {
        "rows": args.rows, "distinct_texts": len(base), "build_s": round(build_s, 1), "disk_mb": round(disk / 2**20, 1),
        "queries": len(queries), "results": results, "shared_data": str(SHARED),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
