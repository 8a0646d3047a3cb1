"""Use cases: answer and chat on top of retrieval and generation."""
