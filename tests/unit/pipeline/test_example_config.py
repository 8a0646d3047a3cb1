"""examples/pipeline/demo.yaml works on a fresh machine: warehouse script, full run, incremental run."""

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from jisik.core.settings import get_settings
from jisik.pipeline.config import load_pipeline_config
from jisik.pipeline.jobs import open_pipeline, run_job
from jisik.pipeline.scheduler import PipelineScheduler
from jisik.runtime import Runtime

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "pipeline"


def _warehouse_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_warehouse", EXAMPLE / "make_warehouse.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _top_title(collection: str, query: str) -> str:
    rt = Runtime(get_settings())
    try:
        return rt.retriever.retrieve(query, collection, top_k=1).hits[0].chunk.title or ""
    finally:
        rt.close()


def test_the_example_pipeline_runs_and_then_runs_incrementally(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # anywhere: the guides folder is relative to demo.yaml
    warehouse = _warehouse_module()
    path = warehouse.default_path()
    assert path == get_settings().home / "examples" / "warehouse.sqlite3"
    assert warehouse.make_warehouse(path) == 6
    config = load_pipeline_config(EXAMPLE / "demo.yaml")
    assert [s.name for s in config.sources] == ["benefit-events", "guides"]
    assert config.sources[1].paths == [str(EXAMPLE / "docs")]  # type: ignore[union-attr]
    assert len(PipelineScheduler(config, get_settings()).planned()) == 2

    report = run_job(config)
    assert report.status == "ok", report.to_dict()
    counts = {(s.stage, s.name): s.counts for s in report.stages}
    assert counts[("extract", "benefit-events")]["rows"] == 6
    assert counts[("extract", "guides")]["objects"] == 3
    assert counts[("index", "benefits")]["added"] == 6 and counts[("index", "guides")]["added"] == 3
    assert _top_title("benefits", "청년 우대금리") == "청년 우대금리 연 0.5%p"
    assert _top_title("guides", "민원 처리 기간은 며칠인가요?") == "금융 민원 처리 절차"
    with open_pipeline(config) as p:  # personal data never reaches the landing store
        [landed] = [i.key for i in p.landing.list("raw/benefit-events/") if i.key.endswith(".csv")]
        assert "010-1234-5678" not in p.landing.get_bytes(landed).decode("utf-8")

    assert warehouse.make_warehouse(path, more=True) == 7
    again = run_job(config, ["benefit-events"])
    counts = {(s.stage, s.name): s.counts for s in again.stages}
    assert again.status == "ok" and counts[("extract", "benefit-events")]["rows"] == 2  # only the changed rows
    assert counts[("index", "benefits")]["added"] == 1 and counts[("index", "benefits")]["updated"] == 1
    assert _top_title("benefits", "청년 우대금리 확대") == "청년 우대금리 연 0.7%p로 확대"
