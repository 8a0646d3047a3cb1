"""Shared helpers for the benchmarks: datasets, machine description, result files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("JISIK_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / "bench" / ".cache"
# one home for every benchmark (embedding cache, scratch indexes), whatever the working directory
os.environ.setdefault("JISIK_HOME", str(CACHE / "home"))


@dataclass(frozen=True)
class Dataset:
    name: str
    qa: Path
    corpus: Path
    chunker: str
    description: str


def datasets() -> dict[str, Dataset]:
    allganize = SHARED / "korean_rag_eval" / "allganize_autorag_ko"
    if not (CACHE / "faq_seller_qa.jsonl").exists():
        subprocess.run([sys.executable, str(ROOT / "bench" / "prepare_faq.py")], check=True, capture_output=True)
    return {
        "allganize": Dataset("allganize", allganize / "qa_v4.parquet", allganize / "ocr_corpus_v3.parquet", "page",
                             "allganize RAG-Eval-KO (AutoRAG): 114 questions, 720 OCR pages"),
        "faq": Dataset("faq", CACHE / "faq_paraphrase_qa.jsonl", CACHE / "faq_corpus.jsonl", "whole",
                       "Smartstore FAQ (2,717 entries) with 120 hand-written colloquial paraphrases"),
        "faq_seller": Dataset("faq_seller", CACHE / "faq_seller_qa.jsonl", CACHE / "faq_corpus.jsonl", "whole",
                              "Smartstore FAQ (2,717 entries) with 120 held-out seller questions"),
    }


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"machine": machine(), **payload}
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1), "utf-8")
    return path
