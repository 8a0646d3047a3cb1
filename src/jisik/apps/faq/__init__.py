"""The Smartstore FAQ chatbot app (seed 001), registered as ``faq`` on import.

* :func:`faq_app` — the :class:`~jisik.apps.base.App` (collection ``faq``, prompt ``faq``);
* :func:`ingest_faq` / ``jisik faq ingest`` — the FAQ pickle into the collection, plus the
  embedded FAQ questions the off-topic gate compares with;
* :class:`FaqOffTopicFilter`, :class:`RetrievalSuggester`.
"""

from .app import FAQ_REFUSAL, faq_app
from .ingest import FAQ_COLLECTION, FaqIngestReport, default_faq_path, ingest_faq
from .offtopic import CALIBRATED, FaqOffTopicFilter, OffTopicParams, retrieval_evidence
from .prototypes import Prototypes, build_prototypes, load_prototypes, prototypes_path
from .suggest import RetrievalSuggester, clean_title

__all__ = [
    "CALIBRATED",
    "FAQ_COLLECTION",
    "FAQ_REFUSAL",
    "FaqIngestReport",
    "FaqOffTopicFilter",
    "OffTopicParams",
    "Prototypes",
    "RetrievalSuggester",
    "build_prototypes",
    "clean_title",
    "default_faq_path",
    "faq_app",
    "ingest_faq",
    "load_prototypes",
    "prototypes_path",
    "retrieval_evidence",
]
