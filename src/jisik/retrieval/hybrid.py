"""The hybrid retriever: lexical top-N + dense top-N -> fusion -> optional rerank -> dedup -> top-k.

Every hit carries a citation (collection, document, title, source, page/row locator, span) and
the score from each signal. Timings of each step are returned with the hits.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jisik.core.errors import InvalidInput, PayloadTooLarge
from jisik.core.settings import RetrievalSettings
from jisik.core.types import Hit
from jisik.models.embedders import Embedder
from jisik.retrieval.dedup import dedup_hits
from jisik.retrieval.filters import Filter, parse_filter
from jisik.retrieval.fusion import SignalResult, fuse
from jisik.retrieval.multiquery import expand_query
from jisik.retrieval.rerank import Reranker, blend_dense
from jisik.stores.index_base import IndexStore
from jisik.text.normalize import normalize_query
from jisik.text.tokenize import KoreanTokenizer

# Query embeddings run here, overlapping Kiwi tokenisation and the lexical search. Embedders
# serialise their own model calls, so a few workers are enough for many concurrent queries.
_EMBED_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="jisik-embed")


@dataclass(slots=True)
class RetrievalResult:
    query: str
    collection: str
    hits: list[Hit]
    timings_ms: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    variants: list[str] = field(default_factory=list)


class HybridRetriever:
    def __init__(
        self, store: IndexStore, embedder: Embedder, tokenizer: KoreanTokenizer,
        settings: RetrievalSettings | None = None, *, reranker: Reranker | None = None,
        max_query_chars: int = 2000,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.settings = settings or RetrievalSettings()
        self.reranker = reranker
        self.max_query_chars = max_query_chars

    def validate_query(self, query: Any) -> str:
        if not isinstance(query, str):
            raise InvalidInput("질문은 문자열이어야 합니다.", "The query must be a string.")
        if len(query) > self.max_query_chars:
            raise PayloadTooLarge(
                f"질문이 너무 깁니다 ({len(query)}자, 최대 {self.max_query_chars}자).",
                f"Query too long ({len(query)} chars; max {self.max_query_chars}).",
                hint="질문을 줄이거나 핵심만 남겨 주세요.",
            )
        q = normalize_query(query)
        if not q:
            raise InvalidInput("질문이 비어 있습니다.", "The query is empty.", hint="검색할 내용을 입력하세요.")
        return q

    def _hits(
        self, collection: str, keys: np.ndarray, scores: np.ndarray, per_signal: Mapping[str, Mapping[int, float]]
    ) -> list[Hit]:
        chunks = self.store.fetch(collection, keys.tolist())
        return [
            Hit(chunk=c, score=float(s), collection=collection,
                scores={"fused": float(s), **{n: sig[key] for n, sig in per_signal.items() if key in sig}})
            for c, key, s in zip(chunks, keys.tolist(), scores.tolist(), strict=True)
        ]

    def _embed(self, variants: list[str]) -> tuple[np.ndarray, float]:
        t = time.perf_counter()
        vecs = self.embedder.embed_queries(variants)
        return vecs, (time.perf_counter() - t) * 1000

    def retrieve(
        self, query: str, collection: str, *, top_k: int | None = None,
        filters: Mapping[str, Any] | Filter | None = None, overrides: Mapping[str, Any] | None = None,
        variants: Sequence[str] | None = None,
    ) -> RetrievalResult:
        """Hybrid search. ``variants``: rewrites of the query to search as well (e.g. written by an LLM);
        without them, ``multi_query`` settings add the rule-based variants."""
        t0 = time.perf_counter()
        cfg = self.settings.model_copy(update=dict(overrides)) if overrides else self.settings
        k = cfg.top_k if top_k is None else top_k
        if not 1 <= k <= 200:
            raise InvalidInput(f"top_k는 1~200 사이여야 합니다 (받은 값: {k}).", f"top_k must be 1..200 (got {k}).")
        q = self.validate_query(query)
        flt = parse_filter(filters)
        timings: dict[str, float] = {}

        if variants:
            extra = (normalize_query(v) for v in variants if isinstance(v, str))
            queries = list(dict.fromkeys([q, *(v for v in extra if v and len(v) <= self.max_query_chars)]))
        else:
            queries = expand_query(q) if cfg.multi_query else [q]
        rerank_embedder = self.reranker is not None and cfg.rerank == "embedder"
        # The query embedding (a model call that releases the GIL) runs on a worker thread while
        # this thread tokenises the query with Kiwi and searches the lexical index.
        pending = _EMBED_POOL.submit(self._embed, queries) if cfg.mode != "lexical" or rerank_embedder else None

        signals: dict[str, SignalResult] = {}
        if cfg.mode in ("hybrid", "lexical"):
            t = time.perf_counter()
            token_lists = [self.tokenizer.tokens(v) for v in queries]
            timings["tokenize"] = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            lexical = [self.store.search_lexical(collection, toks, cfg.lexical_top_n, flt) for toks in token_lists]
            timings["lexical"] = (time.perf_counter() - t) * 1000
            signals["lexical"] = _merge_variants(lexical, coverage=True)
        qvecs: np.ndarray | None = None
        if pending is not None:
            t = time.perf_counter()
            qvecs, timings["embed"] = pending.result()
            timings["embed_wait"] = (time.perf_counter() - t) * 1000
        if cfg.mode in ("hybrid", "dense") and qvecs is not None:
            t = time.perf_counter()
            dense = [self.store.search_dense(collection, v, cfg.dense_top_n, flt) for v in qvecs]
            timings["dense"] = (time.perf_counter() - t) * 1000
            signals["dense"] = _merge_variants(dense, coverage=False)

        t = time.perf_counter()
        method = cfg.fusion if len(signals) > 1 else "rrf"
        fused = fuse(signals, method=method, lexical_weight=cfg.lexical_weight, rrf_k=cfg.rrf_k,
                     floor=cfg.adaptive_floor, ceiling=cfg.adaptive_ceiling)
        pool = max(k * 4, 20)
        keys = fused.keys[:pool]
        scores = fused.scores[:pool]
        timings["fuse"] = (time.perf_counter() - t) * 1000
        per_signal: Mapping[str, Mapping[int, float]] = fused.per_signal
        if cfg.rerank == "dense" and len(signals) > 1 and qvecs is not None and keys.size:
            t = time.perf_counter()
            qv = qvecs[0]
            # hits report the fused score before the blend; their ``score`` is the blended one
            per_signal = {**fused.per_signal, "fused": dict(zip(keys.tolist(), scores.tolist(), strict=True))}
            keys, scores = blend_dense(
                keys, scores, fused.per_signal.get("dense", {}),
                lambda ks: self.store.vectors(collection, ks) @ qv,
                weight=cfg.rerank_weight, candidates=cfg.rerank_candidates)
            timings["rerank"] = (time.perf_counter() - t) * 1000

        t = time.perf_counter()
        # fetch only what dedup is likely to need; fetch the rest only if too much was dropped
        first = len(keys) if rerank_embedder else min(len(keys), 2 * k)
        hits = self._hits(collection, keys[:first], scores[:first], per_signal)
        vectors = self.store.vectors(collection, keys[:first].tolist()) if first else None
        timings["fetch"] = (time.perf_counter() - t) * 1000
        if rerank_embedder and hits and self.reranker is not None and qvecs is not None:
            t = time.perf_counter()
            hits, vectors = self.reranker.rerank(q, qvecs[0], hits, vectors)
            timings["rerank"] = (time.perf_counter() - t) * 1000
        t = time.perf_counter()
        kept = dedup_hits(hits, vectors, max_per_doc=cfg.max_per_doc, threshold=cfg.dedup_threshold, limit=k)
        if len(kept) < k and first < len(keys):
            hits += self._hits(collection, keys[first:], scores[first:], per_signal)
            vectors = self.store.vectors(collection, keys.tolist())
            kept = dedup_hits(hits, vectors, max_per_doc=cfg.max_per_doc, threshold=cfg.dedup_threshold, limit=k)
        hits = kept
        timings["dedup"] = (time.perf_counter() - t) * 1000
        timings["total"] = (time.perf_counter() - t0) * 1000
        return RetrievalResult(q, collection, hits, timings, fused.weights, queries)


def _merge_variants(results: Sequence[tuple[np.ndarray, np.ndarray]], *, coverage: bool) -> SignalResult:
    """Combine one signal's results over query variants: max score per key."""
    if len(results) == 1:
        keys, scores = results[0]
    else:
        best: dict[int, float] = {}
        for ks, ss in results:
            for key, s in zip(ks.tolist(), ss.tolist(), strict=True):
                if s > best.get(key, float("-inf")):
                    best[key] = s
        order = sorted(best, key=lambda x: -best[x])
        keys = np.asarray(order, dtype=np.int64)
        scores = np.asarray([best[x] for x in order], dtype=np.float32)
    cov = float(scores[0]) if coverage and scores.size else (0.0 if coverage else None)
    return SignalResult(keys, scores, cov)
