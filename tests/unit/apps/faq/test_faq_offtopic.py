"""The FAQ off-topic gate on a few clear cases, with real e5 embeddings and real retrieval.

Accuracy on many questions is the benchmark's job (bench/faq_offtopic.py); these check the
behaviour: both decision paths, the fallbacks, and that re-ingestion is picked up.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from faq_fixtures import FaqKB
from jisik.apps.faq import CALIBRATED, FaqOffTopicFilter, Prototypes, retrieval_evidence
from jisik.apps.faq.prototypes import load_prototypes, prototypes_path, save_prototypes
from jisik.core.settings import Settings
from jisik.core.types import Hit

RELATED = ["정산 받는 계좌를 다른 은행 계좌로 바꾸고 싶어요", "반품 배송비는 판매자랑 구매자 중 누가 내요?",
           "스마트스토어 판매자 회원가입은 어떻게 해요?"]
UNRELATED = ["고양이 발톱 깎는 법 알려줘", "비 오는 날 듣기 좋은 노래 추천해줘", "김치찌개 맛있게 끓이는 법"]
E5 = CALIBRATED["e5-small"]


def hits(kb: FaqKB, q: str) -> list[Hit]:
    return kb.runtime.retriever.retrieve(q, "faq", top_k=5, overrides={"max_per_doc": 3}).hits


@pytest.fixture()
def gate(faq_kb: FaqKB) -> FaqOffTopicFilter:
    return FaqOffTopicFilter(E5, settings=faq_kb.runtime.settings)


@pytest.mark.parametrize("question", RELATED)
def test_seller_questions_are_on_topic(faq_kb: FaqKB, gate: FaqOffTopicFilter, question: str) -> None:
    d = gate.check(question, hits(faq_kb, question))
    assert d.on_topic and d.score >= E5.prototype_threshold and d.reason.startswith("prototype")


@pytest.mark.parametrize("question", UNRELATED)
def test_everyday_questions_are_off_topic(faq_kb: FaqKB, gate: FaqOffTopicFilter, question: str) -> None:
    d = gate.check(question, hits(faq_kb, question))
    assert not d.on_topic and d.score < E5.prototype_threshold
    assert question not in d.reason  # no question text in what gets logged


def test_fallback_on_retrieval_evidence(faq_kb: FaqKB) -> None:
    only_hits = FaqOffTopicFilter(E5, settings=faq_kb.runtime.settings, use_prototypes=False)
    on = only_hits.check(RELATED[1], hits(faq_kb, RELATED[1]))
    off = only_hits.check(UNRELATED[2], hits(faq_kb, UNRELATED[2]))
    assert on.on_topic and not off.on_topic and on.reason.startswith("retrieval")
    assert 0.0 <= off.score < 0.5 <= on.score <= 1.0
    assert not only_hits.check(RELATED[1], []).on_topic  # nothing retrieved: no evidence
    dense, lexical = retrieval_evidence(hits(faq_kb, RELATED[1]))
    assert 0.8 < dense <= 1.0 and 0.0 < lexical <= 1.5


def test_missing_or_foreign_prototypes_fall_back(faq_kb: FaqKB, tmp_path: Path) -> None:
    q = RELATED[1]
    h = hits(faq_kb, q)
    missing = FaqOffTopicFilter(E5, settings=Settings(home=tmp_path), embedder=faq_kb.runtime.embedder)
    assert missing.check(q, h).reason.startswith("retrieval")
    protos = load_prototypes(prototypes_path(faq_kb.runtime.settings.home, "faq"))
    assert protos is not None
    foreign = replace(protos, embedder_id="another-model")
    gate = FaqOffTopicFilter(E5, embedder=faq_kb.runtime.embedder, prototypes=foreign)
    d = gate.check(q, h)
    assert d.on_topic and d.reason.startswith("retrieval")
    given = FaqOffTopicFilter(E5, embedder=faq_kb.runtime.embedder, prototypes=protos)
    assert given.check(q, h).reason.startswith("prototype")


def test_a_new_prototype_file_is_picked_up(faq_kb: FaqKB, tmp_path: Path) -> None:
    rt = faq_kb.runtime
    settings = Settings(home=tmp_path)
    protos = load_prototypes(prototypes_path(rt.settings.home, "faq"))
    assert protos is not None
    path = prototypes_path(tmp_path, "faq")
    empty = Prototypes(np.zeros((0, rt.embedder.dim), np.float32), [], rt.embedder.model_id)
    save_prototypes(path, empty)
    gate = FaqOffTopicFilter(E5, settings=settings, embedder=rt.embedder)
    q = RELATED[0]
    assert not gate.check(q, hits(faq_kb, q)).on_topic  # no FAQ question to be close to
    save_prototypes(path, protos)  # what a re-ingestion does
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert gate.check(q, hits(faq_kb, q)).on_topic


def test_gate_is_fast(faq_kb: FaqKB, gate: FaqOffTopicFilter) -> None:
    q = RELATED[2]
    h = hits(faq_kb, q)  # the retriever embeds the question: the gate reuses it from the embedder's LRU
    gate.check(q, h)
    t = time.perf_counter()
    for _ in range(20):
        gate.check(q, h)
    assert (time.perf_counter() - t) / 20 < 0.05
