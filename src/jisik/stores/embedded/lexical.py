"""In-memory BM25 over token ids, laid out by term (CSR) with precomputed weights.

Scoring a query is a gather of the query terms' posting slices plus one ``np.bincount``;
that keeps a 100k-chunk query well under a millisecond for typical Korean queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

K1 = 1.2
B = 0.75


@dataclass(slots=True)
class Bm25Index:
    vocab: dict[str, int]
    indptr: npt.NDArray[np.int64]  # (V + 1,)
    docs: npt.NDArray[np.int32]  # row positions, grouped by term
    weights: npt.NDArray[np.float32]  # precomputed BM25 term weight per (term, row)
    n_rows: int

    @classmethod
    def build(cls, token_lists: Sequence[Sequence[str]], k1: float = K1, b: float = B) -> Bm25Index:
        vocab: dict[str, int] = {}
        term_ids: list[int] = []
        row_ids: list[int] = []
        lengths = np.zeros(len(token_lists), dtype=np.float32)
        for row, toks in enumerate(token_lists):
            lengths[row] = len(toks)
            for t in toks:
                tid = vocab.get(t)
                if tid is None:
                    tid = vocab[t] = len(vocab)
                term_ids.append(tid)
                row_ids.append(row)
        n = len(token_lists)
        if not term_ids:
            return cls(vocab, np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float32), n)
        terms = np.asarray(term_ids, dtype=np.int64)
        rows = np.asarray(row_ids, dtype=np.int64)
        # term frequency per (term, row): unique pairs with counts
        pair = terms * max(n, 1) + rows
        uniq, tf = np.unique(pair, return_counts=True)
        u_terms = uniq // max(n, 1)
        u_rows = (uniq % max(n, 1)).astype(np.int32)
        df = np.bincount(u_terms, minlength=len(vocab)).astype(np.float64)
        idf = np.log1p((n - df + 0.5) / (df + 0.5))
        avgdl = float(lengths.mean()) if n else 1.0
        dl = lengths[u_rows].astype(np.float64)
        tf64 = tf.astype(np.float64)
        w = idf[u_terms] * tf64 * (k1 + 1.0) / (tf64 + k1 * (1.0 - b + b * dl / max(avgdl, 1e-9)))
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.cumsum(df.astype(np.int64), out=indptr[1:])
        # np.unique sorted pairs by term then row, so they are already grouped by term
        return cls(vocab, indptr, u_rows, w.astype(np.float32), n)

    def scores(self, tokens: Sequence[str]) -> npt.NDArray[np.float32] | None:
        """Dense score vector over rows, or None when no query token is in the vocabulary."""
        slices = []
        for t in dict.fromkeys(tokens):  # unique, order kept
            tid = self.vocab.get(t)
            if tid is not None:
                slices.append((int(self.indptr[tid]), int(self.indptr[tid + 1])))
        if not slices:
            return None
        if len(slices) == 1:
            s, e = slices[0]
            docs, w = self.docs[s:e], self.weights[s:e]
        else:
            docs = np.concatenate([self.docs[s:e] for s, e in slices])
            w = np.concatenate([self.weights[s:e] for s, e in slices])
        return np.bincount(docs, weights=w, minlength=self.n_rows).astype(np.float32)

    def upper_bound(self, tokens: Sequence[str]) -> float:
        """Score of an ideal match: each unique query token once in an average-length row
        (= its idf). Tokens unknown to the corpus count with the largest possible idf, so a
        query whose words are not in the corpus gets a low lexical coverage."""
        n = self.n_rows
        idf_max = float(np.log1p((n + 0.5) / 0.5))
        total = 0.0
        for t in dict.fromkeys(tokens):
            tid = self.vocab.get(t)
            if tid is None:
                total += idf_max
            else:
                df = float(self.indptr[tid + 1] - self.indptr[tid])
                total += float(np.log1p((n - df + 0.5) / (df + 0.5)))
        return total

    def arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        return {"lex_indptr": self.indptr, "lex_docs": self.docs, "lex_weights": self.weights}
