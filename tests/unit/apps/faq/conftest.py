"""A small real FAQ knowledge base for the faq app tests: ~45 entries of the shared Smartstore FAQ
pickle (answers shortened so embedding stays fast), ingested with ``ingest_faq`` once per session
(real Kiwi, real e5-small, real embedded store, real prototype file)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from faq_fixtures import FaqKB, faq_subset
from jisik.apps.faq.ingest import ingest_faq
from jisik.core.settings import Settings
from jisik.runtime import Runtime


@pytest.fixture(scope="session")
def faq_kb(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaqKB]:
    home = tmp_path_factory.mktemp("faq-home")
    pairs = faq_subset(shared_data)
    pkl = home / "faq-subset.pkl"
    pkl.write_bytes(pickle.dumps(pairs))
    rt = Runtime(Settings(home=home))
    report = ingest_faq(rt, pkl)
    yield FaqKB(rt, pkl, pairs, report)
    rt.close()
