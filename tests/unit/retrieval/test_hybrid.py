import pytest

from jisik.core.errors import InvalidInput, NotFound, PayloadTooLarge
from jisik.retrieval.hybrid import HybridRetriever


@pytest.mark.parametrize(
    ("query", "doc"),
    [
        ("스마트스토어 회원가입 방법", "join"),  # lexical overlap
        ("물건 팔려고 계정 처음 만들려면 어떻게 해요?", "join"),  # paraphrase
        ("택배비 돌려받을 수 있나요 일부만 반품하면", "refund"),
        ("돈 받는 통장 바꾸고 싶어요", "settle"),
    ],
)
def test_finds_the_right_entry(kb: HybridRetriever, query: str, doc: str) -> None:
    result = kb.retrieve(query, "faq", top_k=3)
    assert result.hits[0].chunk.doc_id == doc


def test_every_hit_has_a_citation_with_signal_scores(kb: HybridRetriever) -> None:
    result = kb.retrieve("정산 계좌 변경", "faq", top_k=3)
    cite = result.hits[0].citation
    assert cite.collection == "faq" and cite.doc_id == "settle" and cite.source_uri == "faq://settle"
    assert cite.locator == {"entry": 2} and cite.title.startswith("[정산]")
    assert cite.span[1] > cite.span[0] == 0
    assert {"fused", "lexical", "dense"} <= set(cite.scores)
    assert set(result.timings_ms) >= {"tokenize", "embed", "lexical", "dense", "fuse", "fetch", "dedup", "total"}


def test_near_duplicates_are_removed(kb: HybridRetriever) -> None:
    result = kb.retrieve("공휴일 휴무일 자동 설정", "faq", top_k=5)
    texts = [h.chunk.text for h in result.hits]
    assert len(texts) == len(set(texts))
    assert sum(h.chunk.doc_id.startswith("holiday") for h in result.hits) == 1


def test_filters_restrict_results(kb: HybridRetriever) -> None:
    result = kb.retrieve("정산 계좌 변경", "faq", top_k=5, filters={"year": {"lte": 2022}})
    assert result.hits and all(h.chunk.metadata["year"] <= 2022 for h in result.hits)
    only = kb.retrieve("정산 계좌 변경", "faq", top_k=5, filters={"category": {"in": ["반품"]}})
    assert [h.chunk.doc_id for h in only.hits] == ["refund"]


@pytest.mark.parametrize("mode", ["lexical", "dense"])
def test_single_signal_modes(kb: HybridRetriever, mode: str) -> None:
    result = kb.retrieve("정산 계좌 변경", "faq", top_k=2, overrides={"mode": mode})
    assert result.hits[0].chunk.doc_id == "settle"
    other = "dense" if mode == "lexical" else "lexical"
    assert other not in result.timings_ms


def test_multi_query_and_fusion_overrides(kb: HybridRetriever) -> None:
    result = kb.retrieve("환불 받으려면 어떻게 해야 하나요?", "faq", top_k=3,
                         overrides={"multi_query": True, "fusion": "rrf"})
    assert len(result.variants) > 1
    assert result.hits[0].chunk.doc_id == "refund"


@pytest.mark.parametrize("query", ["", "   ", "\u200b\xa0"])
def test_empty_query(kb: HybridRetriever, query: str) -> None:
    with pytest.raises(InvalidInput):
        kb.retrieve(query, "faq")


def test_oversized_query(kb: HybridRetriever) -> None:
    with pytest.raises(PayloadTooLarge) as info:
        kb.retrieve("가" * 5000, "faq")
    assert info.value.status == 413


def test_unknown_collection_and_bad_filter_and_top_k(kb: HybridRetriever) -> None:
    with pytest.raises(NotFound):
        kb.retrieve("가입", "nope")
    with pytest.raises(InvalidInput):
        kb.retrieve("가입", "faq", filters={"year": {"between": 1}})
    with pytest.raises(InvalidInput):
        kb.retrieve("가입", "faq", top_k=0)


def test_embedder_rerank_keeps_the_right_answer(kb: HybridRetriever) -> None:
    from jisik.retrieval.rerank import EmbedderReranker

    reranking = HybridRetriever(kb.store, kb.embedder, kb.tokenizer, reranker=EmbedderReranker(kb.embedder))
    result = reranking.retrieve("정산 계좌 변경", "faq", top_k=3, overrides={"rerank": "embedder"})
    assert result.hits[0].chunk.doc_id == "settle"
    assert "rerank" in result.hits[0].scores and "rerank" in result.timings_ms
