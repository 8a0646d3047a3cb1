"""The marketing app (seed 000, scene01): channel copy grounded in product facts, with an
ad-compliance (광고심의) check. Registered as ``marketing`` on import.

* :class:`MarketingService` — the use case behind ``POST /api/v1/scene01/generate``;
* :func:`load_rules` — channel, compliance, tone and message-type rules (YAML data);
* :class:`ComplianceChecker`, :func:`fit_text`, :class:`SafeFetcher` — its parts;
* :func:`ingest_marketing` — product / event tables into the ``marketing`` collection.
"""

from .app import marketing_app
from .compliance import ComplianceChecker, Violation
from .fetch import FetchFailed, FetchPolicy, SafeFetcher, UrlNotAllowed
from .knowledge import MARKETING_COLLECTION, ingest_marketing, load_table, marketing_documents
from .length import fit_text, measure, to_cp949
from .rules import MarketingRules, load_rules
from .schemas import SEED_EXAMPLE, HistoryTurn, Scene01Request
from .service import GenerateResult, MarketingService

__all__ = [
    "MARKETING_COLLECTION",
    "SEED_EXAMPLE",
    "ComplianceChecker",
    "FetchFailed",
    "FetchPolicy",
    "GenerateResult",
    "HistoryTurn",
    "MarketingRules",
    "MarketingService",
    "SafeFetcher",
    "Scene01Request",
    "UrlNotAllowed",
    "Violation",
    "fit_text",
    "ingest_marketing",
    "load_rules",
    "load_table",
    "marketing_app",
    "marketing_documents",
    "measure",
    "to_cp949",
]
