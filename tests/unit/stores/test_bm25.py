import math

import numpy as np

from jisik.stores.embedded.lexical import K1, B, Bm25Index


def reference_bm25(corpus: list[list[str]], query: list[str]) -> np.ndarray:
    n = len(corpus)
    avgdl = sum(len(d) for d in corpus) / n
    out = np.zeros(n)
    for t in dict.fromkeys(query):
        df = sum(1 for d in corpus if t in d)
        if df == 0:
            continue
        idf = math.log1p((n - df + 0.5) / (df + 0.5))
        for i, d in enumerate(corpus):
            tf = d.count(t)
            if tf:
                out[i] += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * len(d) / avgdl))
    return out


def test_scores_match_reference_formula() -> None:
    corpus = [["회원", "가입", "방법"], ["배송", "환불", "환불", "규정"], ["가입", "서류", "사업자", "가입"], []]
    index = Bm25Index.build(corpus)
    for query in (["가입"], ["환불", "규정"], ["가입", "사업자", "없는말"]):
        got = index.scores(query)
        assert got is not None
        np.testing.assert_allclose(got, reference_bm25(corpus, query), rtol=1e-5)


def test_unknown_tokens_give_none_and_upper_bound_penalises_them() -> None:
    index = Bm25Index.build([["회원", "가입"], ["배송"]])
    assert index.scores(["없음"]) is None
    known = index.upper_bound(["회원"])
    assert index.upper_bound(["회원", "없음"]) > known > 0


def test_empty_corpus() -> None:
    index = Bm25Index.build([])
    assert index.scores(["가입"]) is None
