from __future__ import annotations

import logging
import sys
import threading

import pytest

from jisik.core.errors import ModelNotInstalled
from jisik.text.tokenize import KoreanTokenizer, get_tokenizer, load_kiwi


def test_brief_example(tokenizer: KoreanTokenizer) -> None:
    toks = tokenizer.tokens("스마트스토어센터 회원가입은 어떻게 하나요?")
    assert {"스마트", "스토어", "센터", "회원", "가입"} <= set(toks)
    assert "은" not in toks
    assert "나요" not in toks and "?" not in toks


def test_drops_particles_and_endings_keeps_stems(tokenizer: KoreanTokenizer) -> None:
    toks = tokenizer.tokens("판매자가 상품을 팔았습니다. 예쁜 옷이 좋아요.")
    assert {"판매자", "상품", "팔", "예쁘", "옷", "좋"} <= set(toks)
    for dropped in ["가", "을", "었", "습니다", "이", ".", "ᆫ", "아요"]:
        assert dropped not in toks


def test_numbers_latin_hanja_patterns(tokenizer: KoreanTokenizer) -> None:
    toks = tokenizer.tokens("iPhone 15 Pro를 3,000원에 팔았다. 漢字 https://Naver.com #해시태그")
    assert {"iphone", "15", "pro", "3000", "漢字", "https://naver.com", "해시태그"} <= set(toks)
    assert "원" not in toks  # bound noun


def test_input_is_normalised(tokenizer: KoreanTokenizer) -> None:
    assert tokenizer.tokens("ＫＣ\xa0인증") == tokenizer.tokens("KC 인증") == ["kc", "인증"]


def test_compound_bigrams_configurable(tokenizer: KoreanTokenizer) -> None:
    text = "스마트스토어센터 스마트 스토어"
    with_bigrams = tokenizer.tokens(text)
    assert "스마트스토어" in with_bigrams and "스토어센터" in with_bigrams
    assert with_bigrams.count("스마트스토어") == 1  # "스마트 스토어" (with a space) is no compound
    plain = KoreanTokenizer(compound_bigrams=False, kiwi=tokenizer.kiwi)
    assert plain.tokens(text) == ["스마트", "스토어", "센터", "스마트", "스토어"]


def test_batch_matches_single(tokenizer: KoreanTokenizer) -> None:
    texts = ["스마트스토어 정산 일정", "", "   ", "배송비는 얼마인가요?", "ABC 123"]
    assert tokenizer.tokens_batch(texts) == [tokenizer.tokens(t) for t in texts]
    assert tokenizer.tokens_batch([]) == []


def test_get_tokenizer_is_a_thread_safe_singleton() -> None:
    seen: list[KoreanTokenizer] = []
    threads = [threading.Thread(target=lambda: seen.append(get_tokenizer())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and all(tok is seen[0] for tok in seen)


def test_stable_repr() -> None:
    assert repr(get_tokenizer()) == "KoreanTokenizer(model_type='cong', compound_bigrams=True)"


def test_user_words() -> None:
    tok = KoreanTokenizer(user_words=[("톡톡파트너센터", "NNP")])  # own Kiwi: user words change it
    assert "톡톡파트너센터" in tok.tokens("톡톡파트너센터에서 문의하세요")
    assert tok.add_user_words([("톡톡파트너센터", "NNP")]) == 0  # already there


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_missing_model_falls_back_with_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="jisik"):
        kiwi = load_kiwi("knlm")  # model file not shipped in kiwipiepy-model
    assert kiwi.tokenize("상품")[0].form == "상품"
    assert any("falling back" in r.getMessage() for r in caplog.records)


def test_missing_kiwipiepy_raises_model_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kiwipiepy", None)  # makes `import kiwipiepy` fail
    with pytest.raises(ModelNotInstalled) as err:
        load_kiwi()
    assert "pip install kiwipiepy kiwipiepy-model" in str(err.value)
    assert "kiwipiepy" in err.value.message_ko
