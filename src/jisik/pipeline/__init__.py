"""Sources, landing, transfer, chunking and indexing jobs."""
