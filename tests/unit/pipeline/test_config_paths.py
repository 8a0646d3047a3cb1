"""Relative paths in a pipeline YAML are relative to the YAML file, whatever the working directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from jisik.pipeline.config import load_pipeline_config, parse_pipeline_config
from jisik.pipeline.jobs import run_job
from pipeline_env import product, warehouse


def test_a_config_runs_from_another_directory_with_its_paths_beside_it(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    (project / "docs" / "guide.md").write_text("# 민원 처리\n\n민원은 7일 안에 답변합니다.", encoding="utf-8")
    warehouse(project / "wh.db", [product(i) for i in range(3)])
    (project / "pipeline.yaml").write_text(yaml.safe_dump({
        "stores": {"landing": "data/landing", "inbox": "file:data/inbox",
                   "receipts": "sqlite:///data/receipts.sqlite3?timeout=5", "index": "./data/index"},
        "sources": [
            {"kind": "sql", "name": "products", "url": "sqlite:///wh.db", "query": "SELECT * FROM products",
             "fmt": "csv", "hints": {"key_columns": ["id"], "title_column": "name"}},
            {"kind": "file", "name": "guides", "paths": ["docs/*.md"]},
        ],
        "targets": [{"collection": "products", "sources": ["products"], "chunker": "rows"},
                    {"collection": "guides", "sources": ["guides"]}],
    }, allow_unicode=True), encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    config = load_pipeline_config(Path("../project/pipeline.yaml"))  # '..' is normalised away
    assert config.stores.model_dump() == {
        "landing": str(project / "data" / "landing"), "inbox": (project / "data" / "inbox").as_uri(),
        "receipts": f"sqlite:///{project / 'data' / 'receipts.sqlite3'}?timeout=5",
        "index": str(project / "data" / "index")}
    assert config.sources[0].url == f"sqlite:///{project / 'wh.db'}"  # type: ignore[union-attr]
    assert config.sources[1].paths == [str(project / "docs" / "*.md")]  # type: ignore[union-attr]

    report = run_job(config)
    assert report.status == "ok", report.to_dict()
    added = {s.name: s.counts["added"] for s in report.stages if s.stage == "index"}
    assert added == {"products": 3, "guides": 1}
    assert os.listdir(elsewhere) == []  # nothing was written relative to the working directory
    assert (project / "data" / "receipts.sqlite3").is_file() and (project / "data" / "index").is_dir()
    assert any((project / "data" / "landing" / "raw" / "guides").iterdir())
    assert any((project / "data" / "inbox" / "inbox" / "products").iterdir())


def test_absolute_home_relative_env_expanded_and_remote_values_stay_as_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_DIR", "var/data")
    data = {
        "stores": {"landing": "${DATA_DIR}/landing", "inbox": "/srv/jisik/inbox",
                   "receipts": "postgresql+psycopg://jisik@db/jisik", "index": "file:///srv/jisik/index"},
        "sources": [
            {"kind": "file", "name": "files", "paths": ["~/docs", "/srv/docs/a.md", "${DATA_DIR}/b.md", "c.md"]},
            {"kind": "sql", "name": "absolute", "url": "sqlite:////srv/wh.db", "query": "SELECT 1"},
            {"kind": "sql", "name": "memory", "url": "sqlite:///:memory:", "query": "SELECT 1"},
            {"kind": "sql", "name": "server", "url": "mysql+pymysql://u@h/db", "query": "SELECT 1"},
            {"kind": "sql", "name": "placeholder", "url": "sqlite:///${DATA_DIR}/wh.db", "query": "SELECT 1"},
        ],
    }
    config = parse_pipeline_config(data, base_dir=tmp_path)
    assert config.stores.model_dump() == {"landing": "var/data/landing", "inbox": "/srv/jisik/inbox",
                                          "receipts": "postgresql+psycopg://jisik@db/jisik",
                                          "index": "file:///srv/jisik/index"}
    assert config.sources[0].paths == [  # type: ignore[union-attr]
        "~/docs", "/srv/docs/a.md", "var/data/b.md", str(tmp_path / "c.md")]
    assert [s.url for s in config.sources[1:]] == [  # type: ignore[union-attr]
        "sqlite:////srv/wh.db", "sqlite:///:memory:", "mysql+pymysql://u@h/db", "sqlite:///var/data/wh.db"]
    # a mapping parsed without a file to be relative to keeps relative paths as they are
    assert parse_pipeline_config(data).sources[0].paths[-1] == "c.md"  # type: ignore[union-attr]
