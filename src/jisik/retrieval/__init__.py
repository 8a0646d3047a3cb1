"""Hybrid retrieval: lexical (Kiwi BM25) + dense, fused, optionally reranked, deduplicated, cited."""
