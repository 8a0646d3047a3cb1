"""Deduplication of ranked hits: at most ``max_per_doc`` chunks per document, and no two
chunks whose vectors are nearly identical (cosine >= threshold) or whose texts are equal."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from jisik.core.types import Hit


def dedup_hits(
    hits: Sequence[Hit], vectors: npt.NDArray[np.float32] | None, *, max_per_doc: int, threshold: float,
    limit: int,
) -> list[Hit]:
    kept: list[Hit] = []
    kept_rows: list[int] = []
    # similarities only against what is kept (at most ``limit`` rows): no full pairwise matrix
    check_vectors = vectors is not None and threshold < 1.0 and len(hits) > 1
    per_doc: dict[str, int] = {}
    seen_text: set[str] = set()
    for i, hit in enumerate(hits):
        doc = hit.chunk.doc_id
        if max_per_doc > 0 and per_doc.get(doc, 0) >= max_per_doc:
            continue
        text_key = " ".join(hit.chunk.text.split())
        if text_key in seen_text:
            continue
        if check_vectors and kept_rows and vectors is not None \
                and float((vectors[kept_rows] @ vectors[i]).max()) >= threshold:
            continue
        kept.append(hit)
        seen_text.add(text_key)
        kept_rows.append(i)
        per_doc[doc] = per_doc.get(doc, 0) + 1
        if len(kept) >= limit:
            break
    return kept
