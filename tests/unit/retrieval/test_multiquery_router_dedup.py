import numpy as np

from jisik.core.types import Chunk, Hit
from jisik.models.embedders import create_embedder
from jisik.retrieval.dedup import dedup_hits
from jisik.retrieval.multiquery import expand_query, strip_question_tail
from jisik.retrieval.router import CollectionProfile, QueryRouter


def test_question_tail_is_stripped() -> None:
    assert strip_question_tail("정산 계좌 변경은 어떻게 해야 하나요?") == "정산 계좌 변경은"
    assert strip_question_tail("배송비는 얼마인가요?") == "배송비는 얼마"
    assert strip_question_tail("환불 규정") == "환불 규정"


def test_expansion_keeps_original_first_and_adds_synonyms() -> None:
    variants = expand_query("환불은 언제 되나요?", max_variants=4)
    assert variants[0] == "환불은 언제 되나요?"
    assert any("반품" in v for v in variants)
    assert len(variants) == len(set(variants)) <= 4


def test_router_picks_collection_by_keywords_and_meaning() -> None:
    router = QueryRouter(
        [CollectionProfile("faq", "스마트스토어 판매자 FAQ: 가입, 배송, 정산", ("스마트스토어", "정산")),
         CollectionProfile("finance", "예금과 적금 금융상품 금리 비교", ("금리", "예금"))],
        create_embedder("e5-small"),
    )
    assert router.route("정기예금 금리 높은 곳 알려줘")[0][0] == "finance"
    assert router.route("판매자 가입할 때 필요한 서류가 뭐예요")[0][0] == "faq"


def test_dedup_per_document_text_and_vectors() -> None:
    def hit(doc: str, text: str) -> Hit:
        return Hit(Chunk(chunk_id=f"{doc}{text}", doc_id=doc, text=text), 1.0)

    hits = [hit("a", "가"), hit("a", "나"), hit("b", "가"), hit("c", "다"), hit("d", "라")]
    vecs = np.eye(5, dtype=np.float32)
    vecs[4] = vecs[3]  # d duplicates c by meaning
    kept = dedup_hits(hits, vecs, max_per_doc=1, threshold=0.95, limit=10)
    assert [h.chunk.doc_id for h in kept] == ["a", "c"]
    assert len(dedup_hits(hits, None, max_per_doc=0, threshold=1.0, limit=10)) == 4  # identical text only
