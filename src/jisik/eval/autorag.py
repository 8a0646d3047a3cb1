"""Load AutoRAG-format QA and corpus files (parquet or jsonl) and evaluate a retriever."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jisik.core.errors import InvalidInput, NotFound
from jisik.core.types import Document
from jisik.eval.metrics import percentile_ms, summarise


@dataclass(slots=True)
class QAItem:
    qid: str
    query: str
    gold: list[list[str]]
    answers: list[str]


def _read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise NotFound(f"파일이 없습니다: {path}", f"File not found: {path}")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_table(path).to_pylist())
    if path.suffix in (".jsonl", ".json"):
        with path.open(encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]
    raise InvalidInput(
        f"지원하지 않는 파일 형식입니다: {path.suffix} (parquet, jsonl 가능)",
        f"Unsupported file type {path.suffix}; use .parquet or .jsonl",
    )


def _require(row: dict[str, Any], cols: Sequence[str], path: Path) -> None:
    missing = [c for c in cols if c not in row]
    if missing:
        raise InvalidInput(
            f"{path.name}에 필요한 열이 없습니다: {missing}", f"{path.name} lacks required columns {missing}",
            hint="AutoRAG 형식: qa(qid, query, retrieval_gt, generation_gt), corpus(doc_id, contents, metadata)",
        )


def load_qa(path: Path) -> list[QAItem]:
    rows = _read_rows(path)
    items = []
    for row in rows:
        _require(row, ("qid", "query", "retrieval_gt"), path)
        gold = [[str(x) for x in group] for group in row["retrieval_gt"]]
        answers = [str(x) for x in (row.get("generation_gt") or [])]
        items.append(QAItem(str(row["qid"]), str(row["query"]), gold, answers))
    return items


_PAGE_SUFFIX = re.compile(r"^(?P<file>.+?)\s+-\s+(?P<page>\d+)$")


def load_corpus(path: Path) -> list[Document]:
    """One document per corpus row. AutoRAG page corpora name rows "<domain> - <file> - <page>";
    that page number becomes the locator (otherwise the row number does). A ``title`` in a row's
    metadata becomes the document title (with ``kind: faq`` the row is a FAQ entry)."""
    docs = []
    for i, row in enumerate(_read_rows(path)):
        _require(row, ("doc_id", "contents"), path)
        meta = {k: v for k, v in (row.get("metadata") or {}).items() if isinstance(v, str | int | float | bool)}
        doc_id = str(row["doc_id"])
        m = _PAGE_SUFFIX.match(doc_id)
        locator: dict[str, Any] = {"page": int(m["page"]), "file": m["file"]} if m else {"row": i}
        docs.append(Document(doc_id=doc_id, text=str(row["contents"] or ""), title=str(meta.get("title", "")),
                             metadata=meta, locator=locator, source_uri=f"{path.name}#{doc_id}"))
    return docs


Search = Callable[[str], Sequence[str]]  # query -> ranked unique doc ids


def evaluate(items: Sequence[QAItem], search: Search) -> dict[str, Any]:
    rankings: list[Sequence[str]] = []
    latencies: list[float] = []
    for item in items:
        t = time.perf_counter()
        rankings.append(list(search(item.query)))
        latencies.append(time.perf_counter() - t)
    metrics: dict[str, Any] = summarise(rankings, [i.gold for i in items])
    metrics["queries"] = len(items)
    metrics["latency_p50_ms"] = percentile_ms(latencies, 50)
    metrics["latency_p95_ms"] = percentile_ms(latencies, 95)
    return metrics
