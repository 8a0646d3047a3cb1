"""A tiny pipeline for orchestration tests: a SQLite warehouse table + a CSV file source, two collections."""

from __future__ import annotations

import sqlite3
from pathlib import Path

EVENTS = [
    (1, "청년 적금 우대금리", "만 19세에서 34세 청년이 적금에 가입하면 연 1.0%p 우대금리를 받습니다.", "2025-01-02 09:00:00"),
    (2, "카드 연회비 면제", "전월 실적 30만 원 이상이면 다음 해 카드 연회비가 면제됩니다.", "2025-01-03 09:00:00"),
    (3, "소상공인 특별 금리", "사업자등록 1년 이상 소상공인은 예금 금리를 연 3.6% 적용받습니다.", "2025-01-04 09:00:00"),
]
FAQ_CSV = (
    "id,question,answer\n"
    "1,예금자보호 한도는 얼마인가요?,금융회사 한 곳당 1인 기준 1억 원까지 보호됩니다.\n"
    "2,민원 처리 기간은 얼마나 걸리나요?,일반 민원은 영업일 기준 7일 안에 답변합니다.\n"
)


def make_warehouse(path: Path, rows: list[tuple[int, str, str, str]] = EVENTS) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, title TEXT, body TEXT, updated_at TEXT)")
        db.executemany("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?)", rows)
    return path


def write_pipeline(root: Path, *, schedules: str = "", extra_source: str = "") -> Path:
    """Warehouse, CSV and ``pipeline.yaml`` under ``root``; returns the config path."""
    root.mkdir(parents=True, exist_ok=True)
    warehouse = make_warehouse(root / "warehouse.sqlite3")
    (root / "faq.csv").write_text(FAQ_CSV, encoding="utf-8")
    config = root / "pipeline.yaml"
    config.write_text(f"""
sources:
  - kind: sql
    name: events
    url: sqlite:///{warehouse}
    query: SELECT id, title, body, updated_at FROM events
    fmt: csv
    hints: {{key_columns: [id], title_column: title}}
  - kind: file
    name: faq
    paths: ["{root / 'faq.csv'}"]
    hints: {{key_columns: [id], title_column: question}}
{extra_source}
targets:
  - collection: events
    sources: [events]
    chunker: rows
  - collection: faq
    sources: [faq]
    chunker: rows
{schedules}
""", encoding="utf-8")
    return config
