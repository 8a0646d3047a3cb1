"""FAQ question vectors at index time: the question of a FAQ entry is embedded as a query and
stored as one more window of its chunk, so dense search matches question to question (real e5)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jisik.core.settings import Settings, get_settings
from jisik.core.types import Chunk, Document
from jisik.models.embedders import create_embedder
from jisik.pipeline.indexing import Indexer, faq_question
from jisik.retrieval.filters import parse_filter
from jisik.stores.embedded import EmbeddedIndexStore
from jisik.text.chunking import make_chunker
from jisik.text.tokenize import get_tokenizer

NOFILTER = parse_filter(None)
FAQ = [
    ("[정산] 정산 대금은 언제 입금되나요?", "구매확정 후 영업일 기준 1일 뒤에 등록하신 계좌로 지급됩니다."),
    ("[배송] 택배사를 변경하려면 어떻게 하나요?", "판매자센터의 배송 설정 메뉴에서 기본 택배사를 바꿀 수 있습니다."),
    ("[반품] 반품 배송비는 누가 부담하나요?", "단순 변심은 구매자가, 상품 하자는 판매자가 부담합니다."),
]
FAQ_DOCS = [Document(f"faq-{i}", f"{q}\n{a}", title=q, metadata={"kind": "faq"}) for i, (q, a) in enumerate(FAQ)]
PAGE = Document("page", "택배 회사는 배송 설정에서 언제든지 바꿀 수 있습니다.", title="배송 안내")


@pytest.fixture(scope="module")
def e5() -> object:
    return create_embedder("e5-small", Settings(embedder_threads=2))


def test_faq_question_is_the_title_without_category_tags() -> None:
    chunk = Chunk("c", "d", "본문", title="[정산][계좌] 정산 계좌를 바꾸고 싶어요", metadata={"kind": "faq"})
    assert faq_question(chunk) == "정산 계좌를 바꾸고 싶어요"
    assert faq_question(Chunk("c", "d", "본문", title="[태그만]", metadata={"kind": "faq"})) == "[태그만]"
    # only FAQ entries with a title have a question
    assert faq_question(Chunk("c", "d", "본문", title="배송 안내")) == ""
    assert faq_question(Chunk("c", "d", "본문", metadata={"kind": "faq"})) == ""


def test_faq_chunks_are_scored_by_their_question_too(tmp_path: Path, e5: object) -> None:
    store = EmbeddedIndexStore(tmp_path, refresh_interval_s=0.0)
    tok = get_tokenizer()
    on = Indexer(store, e5, tok, make_chunker("whole"), window_tokens=0, question_vectors=True)  # type: ignore[arg-type]
    report = on.index("q", [*FAQ_DOCS, PAGE])
    # one question vector per FAQ entry, none for the ordinary page
    assert report.windows_indexed == len(FAQ) and store.get_collection("q").windows == len(FAQ)
    off = Indexer(store, e5, tok, make_chunker("whole"), window_tokens=0, question_vectors=False)  # type: ignore[arg-type]
    assert off.index("p", [*FAQ_DOCS, PAGE]).windows_indexed == 0

    query = "택배 회사 바꾸는 법 알려줘"
    q = e5.embed_queries([query])[0]  # type: ignore[attr-defined]
    scores = {}
    for name in ("q", "p"):
        keys, sc = store.search_dense(name, q, 4, NOFILTER)
        scores[name] = {c.doc_id: s for c, s in zip(store.fetch(name, keys.tolist()), sc.tolist(), strict=True)}
    # an entry scores max(its passage vector, its question embedded as a query), computed independently
    passage = e5.embed_passages([f"{FAQ[1][0]}\n{FAQ[1][1]}"])[0]  # type: ignore[attr-defined]
    question = e5.embed_queries(["택배사를 변경하려면 어떻게 하나요?"])[0]  # type: ignore[attr-defined]
    assert scores["p"]["faq-1"] == pytest.approx(float(passage @ q), abs=1e-4)
    assert scores["q"]["faq-1"] == pytest.approx(max(float(passage @ q), float(question @ q)), abs=1e-4)
    # question-to-question similarity is the stronger match here, and the page is untouched
    assert scores["q"]["faq-1"] > scores["p"]["faq-1"]
    assert scores["q"]["page"] == pytest.approx(scores["p"]["page"], abs=1e-5)
    assert max(scores["q"], key=scores["q"].__getitem__) == "faq-1"


def test_question_vectors_follow_the_setting_and_the_fingerprint(
    tmp_path: Path, e5: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EmbeddedIndexStore(tmp_path, refresh_interval_s=0.0)
    tok = get_tokenizer()
    assert Indexer(store, e5, tok, make_chunker("whole")).question_vectors is True  # type: ignore[arg-type]
    first = Indexer(store, e5, tok, make_chunker("whole")).index("a", FAQ_DOCS)  # type: ignore[arg-type]
    assert first.windows_indexed == len(FAQ)
    monkeypatch.setenv("JISIK_DENSE_QUESTION_VECTORS", "false")
    get_settings.cache_clear()
    off = Indexer(store, e5, tok, make_chunker("whole"))  # type: ignore[arg-type]
    assert off.question_vectors is False
    # turning them off changes what the documents' vectors are: every entry is re-indexed
    again = off.index("a", FAQ_DOCS)
    assert (again.updated, again.windows_indexed) == (len(FAQ), 0)
    assert store.get_collection("a").windows == 0
