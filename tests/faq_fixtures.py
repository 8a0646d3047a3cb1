"""Test helper: a small subset of the shared Smartstore FAQ pickle for the faq app tests
(tests/unit/apps/faq/conftest.py builds the session knowledge base from it)."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

from jisik.apps.faq.ingest import FaqIngestReport
from jisik.runtime import Runtime

# entries the tests ask about (joining, settlement account, return shipping fees, holidays, ...)
CHOSEN = (0, 11, 19, 59, 148, 220, 265, 850, 852, 854, 855, 879, 985, 987, 2212, 2213)


@dataclass(slots=True)
class FaqKB:
    runtime: Runtime
    pkl: Path
    pairs: dict[str, str]
    report: FaqIngestReport


def faq_subset(shared_data: Path, stride: int = 90, answer_chars: int = 160) -> dict[str, str]:
    with (shared_data / "smartstore_faq" / "final_result.pkl").open("rb") as f:
        full: dict[str, str] = pickle.load(f)  # the shared test data: a plain dict[str, str]
    items = list(full.items())
    keep = sorted(set(range(0, len(items), stride)) | set(CHOSEN))
    return {items[i][0]: items[i][1][:answer_chars] for i in keep}
