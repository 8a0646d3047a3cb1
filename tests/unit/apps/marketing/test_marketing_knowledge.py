"""scene01's knowledge: the bundled event tables (CSV + metadata sidecar) as row documents in the
``marketing`` collection, the registered ``marketing`` app, and the demo builder's part."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from jisik.apps.base import get_app
from jisik.apps.marketing import MARKETING_COLLECTION, load_table, marketing_documents
from jisik.apps.marketing.knowledge import marketing_data_root, read_sidecar
from jisik.apps.marketing.rules import load_rules
from jisik.apps.marketing.templates import columns_of, facts_of
from jisik.core.errors import CorruptData, NotFound
from jisik.core.types import Chunk, Hit
from jisik.runtime import Runtime
from jisik.text.tables import rows_to_documents


def test_bundled_tables_have_sidecars_and_become_row_documents() -> None:
    docs = marketing_documents()
    tables = {d.metadata["table"] for d in docs}
    assert tables == {"card_benefit_events", "deposit_savings_events"} and len(docs) == 14
    for path in sorted(marketing_data_root().glob("*.csv")):
        meta = read_sidecar(path)
        assert meta.key_columns == ["이벤트ID"] and meta.title_column == "이벤트명" and "가상" in meta.source
        assert {c.name for c in meta.columns} >= {"생애단계", "심의번호", "유의사항"}
    senior = next(d for d in docs if d.doc_id == "deposit_savings_events/이벤트ID=D-2025-101")
    assert senior.title == "시니어 신규 가입 감사 특별금리" and senior.metadata["생애단계"] == "시니어세대"
    assert senior.locator == {"table": "deposit_savings_events", "rows": [0, 0], "keys": {"이벤트ID": "D-2025-101"}}
    assert "예금자보호: 이 예금은 예금자보호법에 따라" in senior.text
    assert senior.source_uri == "jisik://demo/marketing/deposit_savings_events.csv"


def test_the_same_documents_as_the_pipeline_makes_from_the_rows() -> None:
    path = marketing_data_root() / "card_benefit_events.csv"
    ours = load_table(path)
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    theirs = rows_to_documents("card_benefit_events", rows, ["이벤트ID"], None, "이벤트명")
    assert [(d.doc_id, d.text, d.title) for d in ours] == [(d.doc_id, d.text, d.title) for d in theirs]


def test_sidecar_types_and_errors(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("id,rate,count,note\nA,3.5,2,\nB,x,3,메모\n", encoding="utf-8")
    with pytest.raises(NotFound):
        load_table(tmp_path / "t.csv")
    (tmp_path / "t.meta.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(CorruptData):
        load_table(tmp_path / "t.csv")
    (tmp_path / "t.meta.json").write_text(json.dumps({
        "table": "t", "key_columns": ["id"], "columns": [{"name": "rate", "type": "float"},
                                                         {"name": "count", "type": "integer"}]}), encoding="utf-8")
    a, b = load_table(tmp_path / "t.csv", source_uri="file://t.csv")
    assert a.metadata["rate"] == 3.5 and a.metadata["count"] == 2 and "note" not in a.metadata
    assert b.metadata["rate"] == "x" and b.metadata["note"] == "메모"  # a bad number stays text


def test_facts_are_read_back_from_the_row_lines() -> None:
    doc = next(d for d in marketing_documents() if d.doc_id.endswith("C-2025-202"))
    hit = Hit(Chunk("c", doc.doc_id, doc.text, title=doc.title), 1.0, MARKETING_COLLECTION)
    facts = facts_of(hit, 1, load_rules().generation)
    v = facts.values
    assert (v["company"], v["product"], v["product_type"], v["event"]) == \
        ("가람카드", "가람 청춘 신용카드", "신용카드", "청년 교통·구독 할인")
    assert v["benefit"] == "대중교통과 OTT 구독료를 15% 청구할인해 드립니다 (월 최대 1만 원)"  # no final period
    assert v["period"] == "2025-09-01 ~ 2026-02-28" and "summary" not in v
    assert facts.kind_text(load_rules().generation).startswith("신용카드")
    assert columns_of("- 12개월: 기본 3%\n상품명: 예금\n*우대: 없음") == {"상품명": "예금"}


def test_the_marketing_app_is_registered(marketing_rt: Runtime) -> None:
    app = get_app("marketing")
    assert app.collection == MARKETING_COLLECTION and app.prompt == "marketing" and app.examples
    info = marketing_rt.store.get_collection(MARKETING_COLLECTION)
    assert info.documents > 14  # the bundled tables and the finlife samples
