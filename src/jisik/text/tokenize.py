"""Korean lexical tokenizer (for BM25 and other lexical signals), built on Kiwi (kiwipiepy).

Kept morphemes (Kiwi tag -> token):

* nouns: NNG (common), NNP (proper), NR (numerals: 하나, 둘), XR (roots: 깨끗 in 깨끗하다);
* verb / adjective stems: VV, VA as Kiwi gives them (``팔`` for 팔았다, ``예쁘`` for 예쁜);
  irregular variants (``VV-R``, ``VA-I``, ...) count as VV/VA;
* SL (foreign / Latin words, lowercased), SN (numbers, thousands separators removed: ``3,000`` ->
  ``3000``), SH (hanja);
* Kiwi's pattern tokens W_URL, W_EMAIL, W_SERIAL (lowercased, kept whole) and W_HASHTAG,
  W_MENTION (lowercased, without the leading ``#``/``@``).

Dropped: particles (J*), endings (E*), suffixes/prefixes (XS*, XPN), copula (VCP/VCN), auxiliary
verbs (VX), bound nouns (NNB: 것, 수, 년, 개), pronouns (NP), adverbs/determiners/interjections
(MAG, MAJ, MM, IC), punctuation and symbols (SF, SP, SS*, SE, SO, SW, SB), emoji and unknowns.

Compound nouns: Kiwi splits ``스마트스토어센터`` into 스마트/스토어/센터 and every noun morpheme is
emitted. With ``compound_bigrams=True`` (the default) each pair of *adjacent* nouns (no space
between them in the text) is also emitted joined: 스마트스토어, 스토어센터. Measured with plain
BM25 (k1=1.2, b=0.75) on two local sets, bigrams help a little but consistently, so they are on
(allganize: 114 questions over 720 PDF pages, gold pages given; smartstore: each of the 2,717
FAQ questions, without its [tag], must find its own answer):

==========================  ========================  ===============================
setting                     allganize                 smartstore FAQ question->answer
==========================  ========================  ===============================
nouns only (NNG, NNP)       R@1 .807  MRR@10 .883     R@1 .410  MRR@10 .545
kept set above, no bigrams  R@1 .851  MRR@10 .912     R@1 .407  MRR@10 .543
kept set above + bigrams    R@1 .877  MRR@10 .928     R@1 .413  MRR@10 .549
+ NNB / + NP, MAG / + VX    no gain or worse          no gain or worse
==========================  ========================  ===============================

Speed, measured with ``tokens_batch`` on 1,000 smartstore FAQ entries (question + answer,
521k chars, 141k output tokens), cong model, 2-core VM: about **27,000 output tokens/s**
(190 texts/s, 100k chars/s, ~48k morphemes/s) when the machine was quiet, ~15,000 tokens/s
while other jobs loaded it. On 2 cores the batch API gains little over ``tokens`` in a loop; it
scales with more cores (Kiwi's worker threads). Loading the model takes ~1.5 s, so it is lazy
and cached: use :func:`get_tokenizer`.

Kiwi analysis is thread-safe (and releases the GIL), so one instance serves all threads. Adding
user words changes the dictionary: do it at start-up, before the tokenizer is shared.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from jisik.core.errors import ModelNotInstalled
from jisik.core.logging import get_logger
from jisik.text.normalize import normalize

__all__ = ["KEEP_TAGS", "KoreanTokenizer", "get_tokenizer", "load_kiwi"]

log = get_logger(__name__)

KEEP_TAGS: frozenset[str] = frozenset(
    {"NNG", "NNP", "NR", "XR", "VV", "VA", "SL", "SN", "SH", "W_URL", "W_EMAIL", "W_HASHTAG", "W_MENTION", "W_SERIAL"}
)
_NOUNS = frozenset({"NNG", "NNP"})
_LOWER = frozenset({"SL", "W_URL", "W_EMAIL", "W_HASHTAG", "W_MENTION", "W_SERIAL"})
_STRIP_SIGIL = frozenset({"W_HASHTAG", "W_MENTION"})
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3})")

_INSTALL_HINT = "pip install kiwipiepy kiwipiepy-model"


def load_kiwi(model_type: str = "cong", num_workers: int | None = None) -> Any:
    """Create a Kiwi analyser. Falls back to Kiwi's default model if ``model_type`` is missing.

    Raises :class:`ModelNotInstalled` when kiwipiepy (or any model for it) is not installed.
    """
    try:
        from kiwipiepy import Kiwi
    except ImportError as exc:
        raise ModelNotInstalled(
            "한국어 형태소 분석기(kiwipiepy)가 설치되어 있지 않습니다.",
            "The Korean morphological analyser kiwipiepy is not installed.",
            hint=_INSTALL_HINT,
        ) from exc
    try:
        return Kiwi(model_type=model_type, num_workers=num_workers)
    except (OSError, ValueError) as exc:
        log.warning("kiwi model %r unavailable (%s); falling back to the default model", model_type, exc)
    try:
        return Kiwi(num_workers=num_workers)
    except (OSError, ValueError) as exc:
        raise ModelNotInstalled(
            "Kiwi 형태소 분석 모델을 찾을 수 없습니다.",
            "No Kiwi language model is installed.",
            hint=_INSTALL_HINT,
            details={"model_type": model_type},
        ) from exc


class KoreanTokenizer:
    """Lexical tokens for Korean (and mixed Korean/Latin) text. See the module docstring.

    ``tokens`` normalises its input first (:func:`jisik.text.normalize.normalize` is idempotent,
    so passing already normalised text is fine), which keeps queries and documents consistent.
    """

    def __init__(
        self,
        *,
        model_type: str = "cong",
        compound_bigrams: bool = True,
        user_words: Sequence[tuple[str, str]] = (),
        num_workers: int | None = None,
        kiwi: Any = None,
    ) -> None:
        self.model_type = model_type
        self.compound_bigrams = compound_bigrams
        self._kiwi = kiwi if kiwi is not None else load_kiwi(model_type, num_workers)
        self._lock = threading.Lock()
        self.add_user_words(user_words)

    def __repr__(self) -> str:  # stable (no address): usable in fingerprints
        return f"KoreanTokenizer(model_type={self.model_type!r}, compound_bigrams={self.compound_bigrams})"

    @property
    def kiwi(self) -> Any:
        """The underlying ``kiwipiepy.Kiwi`` (shared with the sentence splitter)."""
        return self._kiwi

    def add_user_words(self, words: Iterable[tuple[str, str]]) -> int:
        """Add ``(word, tag)`` pairs (e.g. ``("스마트스토어", "NNP")``); returns how many were new."""
        added = 0
        with self._lock:
            for word, tag in words:
                if self._kiwi.add_user_word(word, tag):
                    added += 1
        return added

    def tokens(self, text: str) -> list[str]:
        text = normalize(text)
        if not text:
            return []
        return self._select(self._kiwi.tokenize(text, z_coda=False))

    def tokens_batch(self, texts: Sequence[str]) -> list[list[str]]:
        """Tokens for many texts at once (Kiwi's multi-threaded batch API); order is kept."""
        if not texts:
            return []
        normalised = [normalize(t) for t in texts]
        results = self._kiwi.tokenize(normalised, z_coda=False)
        return [self._select(morphs) for morphs in results]

    def _select(self, morphs: Iterable[Any]) -> list[str]:
        out: list[str] = []
        prev_noun = ""
        prev_end = -1
        for m in morphs:
            tag = str(m.tag).split("-", 1)[0]
            if tag not in KEEP_TAGS:
                prev_noun = ""
                continue
            form: str = m.form
            if tag in _LOWER:
                form = form.lower()
                if tag in _STRIP_SIGIL:
                    form = form[1:] or form
            elif tag == "SN":
                form = _THOUSANDS.sub("", form)
            out.append(form)
            if tag in _NOUNS:
                if self.compound_bigrams and prev_noun and prev_end == m.start:
                    out.append(prev_noun + form)
                prev_noun, prev_end = form, m.start + m.len
            else:
                prev_noun = ""
        return out


_default: KoreanTokenizer | None = None
_default_lock = threading.Lock()


def get_tokenizer() -> KoreanTokenizer:
    """The process-wide tokenizer with default settings (created on first use, thread-safe)."""
    global _default
    tok = _default
    if tok is None:
        with _default_lock:
            tok = _default
            if tok is None:
                tok = _default = KoreanTokenizer()
    return tok
