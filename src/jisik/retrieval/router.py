"""Query routing to collections: each collection has a profile (description + keywords);
a query goes to the collections whose profile it matches best (keyword hits first, then
embedding similarity between the query and the profile description)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from jisik.models.embedders import Embedder


@dataclass(slots=True)
class CollectionProfile:
    name: str
    description: str
    keywords: Sequence[str] = field(default_factory=tuple)


@dataclass
class QueryRouter:
    profiles: Sequence[CollectionProfile]
    embedder: Embedder
    min_similarity: float = 0.0
    _matrix: np.ndarray | None = None

    def _profile_vectors(self) -> np.ndarray:
        if self._matrix is None:
            texts = [f"{p.description} {' '.join(p.keywords)}".strip() for p in self.profiles]
            self._matrix = self.embedder.embed_passages(texts)
        return self._matrix

    def route(self, query: str, *, top: int = 1) -> list[tuple[str, float]]:
        """Best collections for ``query`` with a score, best first."""
        if not self.profiles:
            return []
        keyword_hits = [sum(1 for k in p.keywords if k and k in query) for p in self.profiles]
        sims = self._profile_vectors() @ self.embedder.embed_queries([query])[0]
        scored = [
            (p.name, float(hits) + float(sim))
            for p, hits, sim in zip(self.profiles, keyword_hits, sims, strict=True)
            if hits > 0 or sim >= self.min_similarity
        ]
        scored.sort(key=lambda x: -x[1])
        return scored[:top]
