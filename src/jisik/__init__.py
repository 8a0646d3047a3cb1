"""jisik (지식): a Korean-first, offline-capable RAG platform."""

__version__ = "0.1.0"
