"""A real knowledge base for the scene01 use-case tests (real Kiwi, real e5-small, real embedded
store): the bundled card / deposit event tables plus the finlife deposit samples, once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jisik.runtime import Runtime
from unit.apps.marketing.marketing_helpers import build_marketing_runtime


@pytest.fixture(scope="session")
def marketing_rt(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    rt = build_marketing_runtime(tmp_path_factory.mktemp("marketing-kb"), shared_data)
    yield rt
    rt.close()
