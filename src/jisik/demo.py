"""The demo knowledge base: bundled public-domain Supreme Court judgments and jisik's own guide,
indexed into the ``demo`` collection (incrementally: a second run costs almost nothing), and the
made-up card / deposit event tables of the marketing app (scene01) in the ``marketing`` collection."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from jisik.pipeline.indexing import IndexReport, ProgressFactory, progress_or_none
from jisik.pipeline.loaders import load_text_files
from jisik.text.chunking import make_chunker

DEMO_COLLECTION = "demo"


def demo_root() -> Path:
    return Path(str(resources.files("jisik") / "data" / "demo"))


def demo_documents() -> list[Any]:
    root = demo_root()
    docs = load_text_files(root / "precedents", ("*.md",)) + load_text_files(root / "guide", ("*.md",))
    for doc in docs:
        # judgments carry their law.go.kr address in the front matter: cite the original
        if src := doc.metadata.get("출처"):
            doc.source_uri = str(src)
    return docs


def build_demo(rt: Any, progress: ProgressFactory | None = None) -> list[IndexReport]:
    docs = demo_documents()
    indexer = rt.indexer(make_chunker("sentence"))
    with progress_or_none(progress, "데모 지식베이스 색인", len(docs)) as update:
        reports = [indexer.index(DEMO_COLLECTION, docs, sync=True, note="demo", progress=update)]
    # scene01 (the marketing app): the bundled card / deposit event tables -> the marketing collection
    from jisik.apps.marketing.knowledge import ingest_marketing

    reports.append(ingest_marketing(rt, collection=rt.settings.scene01_collection, progress=progress))
    return reports
