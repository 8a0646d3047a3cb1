"""Query routing to collections: each collection has a profile (description + keywords);
a query goes to the collections whose profile it matches best (keyword hits first, then
embedding similarity between the query and the profile description)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from jisik.core.errors import ConfigError, NotFound
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


def profiles_path(home: Path) -> Path:
    return home / "collections.yaml"


def load_profiles(home: Path) -> list[CollectionProfile]:
    """Collection profiles saved with ``jisik index describe`` (``{home}/collections.yaml``)."""
    path = profiles_path(home)
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return [CollectionProfile(name, str(p.get("description", "")), tuple(p.get("keywords") or ()))
                for name, p in dict(data).items()]
    except (yaml.YAMLError, AttributeError, TypeError, ValueError) as exc:
        raise ConfigError(f"컬렉션 프로필 파일이 올바르지 않습니다: {path}",
                          f"Invalid collection profiles {path}: {exc}") from exc


def save_profile(home: Path, profile: CollectionProfile) -> None:
    profiles = {p.name: p for p in load_profiles(home)}
    profiles[profile.name] = profile
    data = {p.name: {"description": p.description, "keywords": list(p.keywords)} for p in profiles.values()}
    path = profiles_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=True), encoding="utf-8")
    tmp.replace(path)


def route_or_error(router: QueryRouter, query: str) -> tuple[str, float]:
    routed = router.route(query, top=1)
    if not routed:
        raise NotFound("질문에 맞는 컬렉션을 찾지 못했습니다.", "No collection matches the query.",
                       hint="jisik index describe <컬렉션> --description ... --keyword ... 로 프로필을 등록하세요.")
    return routed[0]
