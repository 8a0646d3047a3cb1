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
    # one small Gram matrix of the candidates instead of a product per candidate
    check_vectors = vectors is not None and threshold < 1.0 and len(hits) > 1
    gram = vectors @ vectors.T if check_vectors and vectors is not None else None
    per_doc: dict[str, int] = {}
    seen_text: set[str] = set()
    for i, hit in enumerate(hits):
        doc = hit.chunk.doc_id
        if max_per_doc > 0 and per_doc.get(doc, 0) >= max_per_doc:
            continue
        text = hit.chunk.text  # normalised at index time (NFKC, whitespace)
        if text in seen_text:
            continue
        if gram is not None and kept_rows and float(gram[i, kept_rows].max()) >= threshold:
            continue
        kept.append(hit)
        seen_text.add(text)
        kept_rows.append(i)
        per_doc[doc] = per_doc.get(doc, 0) + 1
        if len(kept) >= limit:
            break
    return kept
