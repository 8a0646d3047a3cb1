"""Multi-vector passages at index time: window texts, one batched embedder call, the embedding
cache, fingerprints that follow the window size, and retrieval of a long chunk by a sentence in
its middle (real Kiwi, real e5-small)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from jisik.core.settings import Settings
from jisik.core.types import Document
from jisik.models.base import l2_normalize
from jisik.models.cache import CachedEmbedder, EmbeddingCache
from jisik.models.embedders import create_embedder
from jisik.pipeline.indexing import Indexer, sentence_windows, token_counter
from jisik.retrieval.filters import parse_filter
from jisik.stores.embedded import EmbeddedIndexStore
from jisik.text.chunking import make_chunker
from jisik.text.sentences import split_sentences
from jisik.text.tokenize import get_tokenizer

NOFILTER = parse_filter(None)

# one long page on a shop's policies (nineteen sentences); only one of them is about pets
SENTENCES = [
    "저희 매장은 평일 오전 10시부터 오후 9시까지 운영합니다.",
    "주말과 공휴일에는 오전 11시에 문을 열고 오후 8시에 닫습니다.",
    "주차는 건물 지하 2층부터 4층까지 이용하실 수 있으며 구매 금액에 따라 무료 주차 시간이 달라집니다.",
    "5만 원 이상 구매하시면 2시간, 10만 원 이상 구매하시면 3시간 무료 주차가 제공됩니다.",
    "멤버십 회원은 구매 금액의 1퍼센트를 포인트로 적립받고 다음 구매 때 현금처럼 사용할 수 있습니다.",
    "반려견은 목줄을 착용하고 이동장에 넣은 경우에만 매장 안에 함께 들어올 수 있습니다.",
    "교환과 환불은 영수증을 지참하고 구매일로부터 14일 이내에 고객센터에서 신청해 주세요.",
    "세일 상품은 교환만 가능하며 환불은 되지 않으니 구매 전에 꼭 확인해 주시기 바랍니다.",
    "선물 포장은 1층 안내 데스크에서 무료로 해 드리며 쇼핑백은 유료로 판매합니다.",
    "분실물은 안내 데스크에서 한 달 동안 보관한 뒤 경찰서로 인계합니다.",
]
LONG = Document("policy", " ".join(SENTENCES + SENTENCES[:5] + SENTENCES[6:]), title="매장 이용 안내")
# short pages closer to the question than the long page's average, not as close as its pets sentence
SHORT = [
    Document("terrace", "반려동물 동반 고객은 야외 테라스 좌석을 이용할 수 있습니다.", title="테라스"),
    Document("guide-dog", "안내견은 언제든지 매장에 들어올 수 있습니다.", title="안내견"),
]
QUERY = "반려견과 함께 매장에 입장할 수 있나요?"


class RecordingEmbedder:
    """A real embedder that records each embed_passages call."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.model_id = inner.model_id  # type: ignore[attr-defined]
        self.dim = inner.dim  # type: ignore[attr-defined]
        self.calls: list[list[str]] = []
        if hasattr(inner, "token_count"):
            self.token_count = inner.token_count

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self.inner.embed_queries(texts)  # type: ignore[attr-defined,no-any-return]

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.embed_passages(texts)  # type: ignore[attr-defined,no-any-return]


class HashEmbedder:
    """Deterministic 8-dim vectors from the text bytes; it cannot count tokens."""

    model_id = "hash-8"
    dim = 8

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def _vec(self, texts: Sequence[str]) -> np.ndarray:
        rows = [np.frombuffer(t.encode().ljust(8, b"\0")[:8], dtype=np.uint8).astype(np.float32) + 1 for t in texts]
        return l2_normalize(np.stack(rows)) if rows else np.zeros((0, 8), np.float32)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._vec(texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self._vec(texts)


@pytest.fixture(scope="module")
def e5() -> object:
    return create_embedder("e5-small", Settings(embedder_threads=2))


def test_sentence_windows_are_whole_sentences_within_budget() -> None:
    text = "하나 둘 셋. 넷 다섯. 여섯 일곱 여덟 아홉 열 열하나 열둘. 열셋. 열넷 열다섯 열여섯."
    spans = split_sentences(text)
    sentences = [text[a:b] for a, b in spans]
    assert len(sentences) == 5
    words = lambda s: len(s.split())  # noqa: E731
    windows = sentence_windows(text, spans, 5, words)
    # the 7-word sentence exceeds the budget and stands alone; the rest are packed up to 5 words
    assert windows == [sentences[0] + " " + sentences[1], sentences[2], sentences[3] + " " + sentences[4]]
    assert " ".join(windows) == " ".join(sentences)  # every sentence once, in order
    assert all(words(w) <= 5 or w in sentences for w in windows)
    assert sentence_windows(text, spans, 100, words) == [" ".join(sentences)]
    assert sentence_windows("", [], 5, words) == []


def test_token_counter_uses_the_model_or_four_chars_per_token(e5: object) -> None:
    count = token_counter(e5)  # type: ignore[arg-type]
    assert count(SENTENCES[0]) == e5.token_count(SENTENCES[0])  # type: ignore[attr-defined]
    assert token_counter(HashEmbedder())("가" * 9) == 3  # type: ignore[arg-type]
    # the cache wrapper exposes the inner model's count, and none when the model has none
    cache = EmbeddingCache(":memory:")
    assert token_counter(CachedEmbedder(e5, cache))(SENTENCES[0]) == count(SENTENCES[0])  # type: ignore[arg-type]
    assert not hasattr(CachedEmbedder(HashEmbedder(), cache), "token_count")  # type: ignore[arg-type]


def test_long_chunk_is_found_by_a_sentence_in_its_middle(tmp_path: Path, e5: object) -> None:
    store = EmbeddedIndexStore(tmp_path, refresh_interval_s=0.0)
    emb = RecordingEmbedder(e5)
    tok = get_tokenizer()
    with_windows = Indexer(store, emb, tok, make_chunker("whole"), window_tokens=48).index("w", [LONG, *SHORT])
    # chunks and their windows went to the model in one call (it sorts them into length buckets)
    assert len(emb.calls) == 1
    texts = emb.calls[0]
    assert with_windows.chunks_indexed == 3 and with_windows.windows_indexed == len(texts) - 3 >= 3
    windows = texts[3:]
    assert all(e5.token_count(w) <= 48 for w in windows)  # type: ignore[attr-defined]
    assert sum(SENTENCES[5] in w for w in windows) == 1  # the pets sentence is in exactly one window, whole
    assert "매장 이용 안내" in windows[0]  # the passage (title + text) is what is windowed
    assert store.get_collection("w").windows == with_windows.windows_indexed

    without = Indexer(store, RecordingEmbedder(e5), tok, make_chunker("whole"), window_tokens=0).index(
        "p", [LONG, *SHORT])
    assert without.windows_indexed == 0 and store.get_collection("p").windows == 0

    q = e5.embed_queries([QUERY])[0]  # type: ignore[attr-defined]
    ranked, scores = {}, {}
    for name in ("w", "p"):
        keys, sc = store.search_dense(name, q, 3, NOFILTER)
        ranked[name] = [c.doc_id for c in store.fetch(name, keys.tolist())]
        scores[name] = dict(zip(ranked[name], sc.tolist(), strict=True))
    # one vector for the whole page: the short pages win; with windows, the page's pets sentence does
    assert ranked["p"][-1] == "policy"
    assert ranked["w"][0] == "policy"
    # the page scores max(own vector, best window), computed here independently
    own = e5.embed_passages([texts[0]])[0]  # type: ignore[attr-defined]
    best = max(float(own @ q), float((e5.embed_passages(windows) @ q).max()))  # type: ignore[attr-defined]
    assert scores["w"]["policy"] == pytest.approx(best, abs=1e-4)
    assert scores["p"]["policy"] == pytest.approx(float(own @ q), abs=1e-4)
    # short pages fit in one window and got no extra vectors: same scores either way
    for d in ("terrace", "guide-dog"):
        assert scores["w"][d] == pytest.approx(scores["p"][d], abs=1e-5)


def test_windows_are_cached_and_follow_the_window_size(tmp_path: Path) -> None:
    store = EmbeddedIndexStore(tmp_path, refresh_interval_s=0.0)
    inner = HashEmbedder()
    emb = CachedEmbedder(inner, EmbeddingCache(":memory:"))  # type: ignore[arg-type]
    tok = get_tokenizer()
    docs = [LONG, *SHORT]
    # no token_count: a budget of 16 tokens is ~64 characters per window
    first = Indexer(store, emb, tok, make_chunker("whole"), window_tokens=16).index("a", docs)
    windows = inner.calls[0][3:]  # what the model saw: each distinct window once (the page repeats itself)
    assert len(set(windows)) == len(windows) > 3 and first.windows_indexed > len(windows)
    assert all(len(w) <= 64 + w.count(" ") or w in SENTENCES for w in windows)
    assert emb.misses == 3 + len(windows)
    # windows are cached by content like chunks: indexing the same documents elsewhere embeds nothing
    again = Indexer(store, emb, tok, make_chunker("whole"), window_tokens=16).index("b", docs)
    assert again.windows_indexed == first.windows_indexed and len(inner.calls) == 1
    assert emb.misses == 3 + len(windows)
    # the window size is part of a document's fingerprint: changing it re-indexes, keeping it does not
    same = Indexer(store, emb, tok, make_chunker("whole"), window_tokens=16).index("a", docs)
    assert (same.unchanged, same.version) == (3, 1)
    off = Indexer(store, emb, tok, make_chunker("whole"), window_tokens=0).index("a", docs)
    assert (off.updated, off.windows_indexed) == (3, 0)
    assert store.get_collection("a").windows == 0 and store.get_collection("b").windows == first.windows_indexed
    with pytest.raises(Exception, match="window_tokens"):
        Indexer(store, emb, tok, make_chunker("whole"), window_tokens=-1)


def test_window_size_comes_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jisik.core.settings import get_settings

    store = EmbeddedIndexStore(tmp_path)
    assert Indexer(store, HashEmbedder(), get_tokenizer(), make_chunker("whole")).window_tokens == 128  # type: ignore[arg-type]
    monkeypatch.setenv("JISIK_DENSE_WINDOW_TOKENS", "0")
    get_settings.cache_clear()
    assert Indexer(store, HashEmbedder(), get_tokenizer(), make_chunker("whole")).window_tokens == 0  # type: ignore[arg-type]
