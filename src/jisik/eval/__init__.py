"""Retrieval evaluation (AutoRAG format) and metrics."""
