from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from jisik.core.errors import CorruptData, InvalidInput
from jisik.core.types import Document
from jisik.pipeline.manifest import Extracted, Manifest
from jisik.pipeline.sources import FileSourceConfig, RunContext, SqlSourceConfig
from jisik.pipeline.sources.files import FileSource
from jisik.pipeline.sources.parsers import documents_from_object
from jisik.pipeline.sources.sql import SqlSource

ManifestFor = Callable[[Extracted, RunContext], Manifest]


def _docs(extracted: Extracted, run: RunContext, manifest_for: ManifestFor) -> list[Document]:
    manifest = manifest_for(extracted, run)
    docs = list(documents_from_object(extracted.path, manifest))
    assert all(d.metadata["lineage_key"] == manifest.key and d.metadata["source"] == extracted.source
               for d in docs)
    return docs


def _file_docs(path: Path, run: RunContext, manifest_for: ManifestFor, **kw: object) -> list[Document]:
    source = FileSource(FileSourceConfig.model_validate({"name": "docs", "paths": [str(path)], **kw}))
    return [d for e in source.extract(run) for d in _docs(e, run, manifest_for)]


def test_csv_rows_become_documents_with_stable_ids(shared_data: Path, new_run: Callable[[], RunContext],
                                                   manifest_for: ManifestFor) -> None:
    path = shared_data / "fss_finlife" / "rimit000_deposit_banks.csv"
    first = _file_docs(path, new_run(), manifest_for)
    again = _file_docs(path, new_run(), manifest_for)
    assert len(first) == 158
    assert [d.doc_id for d in first] == [d.doc_id for d in again]  # re-extraction: same ids
    assert first[0].metadata["lineage_key"] != again[0].metadata["lineage_key"]  # ... from the newer object
    doc = first[0]
    assert doc.doc_id.startswith("docs/rimit000_deposit_banks/h")
    assert "금융회사명: 경남은행" in doc.text and "기본금리(%): 2.15" in doc.text
    assert doc.locator["rows"] == [0, 0] and doc.source_uri == str(path.resolve())
    assert doc.metadata["기본금리(%)"] == 2.15 and doc.metadata["저축기간(개월)"] == 3  # typed from the schema


def test_csv_key_title_and_grouping_hints(tmp_path: Path, run: RunContext, manifest_for: ManifestFor) -> None:
    path = tmp_path / "products.csv"
    path.write_text("code,name,rate\nA1,정기예금,3.5\nA2,적금,4.0\nA3,청약,2.0\n", "utf-8")
    docs = _file_docs(path, run, manifest_for, hints={"key_columns": ["code"], "title_column": "name"})
    assert [d.doc_id for d in docs] == ["docs/products/code=A1", "docs/products/code=A2", "docs/products/code=A3"]
    assert docs[1].title == "적금" and docs[1].locator["keys"] == {"code": "A2"}
    grouped = _file_docs(path, run, manifest_for, hints={"key_columns": ["code"], "rows_per_doc": 2})
    assert [d.locator["rows"] for d in grouped] == [[0, 1], [2, 2]]


def test_sql_parquet_rows_use_the_id_cursor_as_key(tmp_path: Path, run: RunContext,
                                                   manifest_for: ManifestFor) -> None:
    db = tmp_path / "db.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE faq (id INTEGER PRIMARY KEY, q TEXT, a TEXT)")
        conn.executemany("INSERT INTO faq VALUES (?, ?, ?)", [(1, "환불은?", "7일 이내"), (2, "배송은?", "2일")])
    source = SqlSource(SqlSourceConfig(name="shop", url=f"sqlite:///{db}", query="SELECT * FROM faq", table="faq",
                                       cursor_column="id"))
    [e] = source.extract(run)
    docs = _docs(e, run, manifest_for)
    assert [d.doc_id for d in docs] == ["shop/faq/id=1", "shop/faq/id=2"]
    assert docs[0].text == "id: 1\nq: 환불은?\na: 7일 이내" and docs[0].metadata["id"] == 1


def test_xlsx_every_sheet(tmp_path: Path, run: RunContext, manifest_for: ManifestFor) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "예금"
    wb.active.append(["상품", "금리"])
    wb.active.append(["정기예금", 3.5])
    second = wb.create_sheet("적금")
    second.append(["상품", None])
    second.append(["자유적금", 4.1])
    wb.save(tmp_path / "rates.xlsx")
    docs = _file_docs(tmp_path / "rates.xlsx", run, manifest_for)
    assert [d.locator["table"] for d in docs] == ["docs/rates/예금", "docs/rates/적금"]
    assert docs[1].text == "상품: 자유적금\ncolumn_2: 4.1"


def test_pdf_one_document_per_page_with_text(tmp_path: Path, run: RunContext, manifest_for: ManifestFor,
                                             pdf_bytes: Callable[[list[str]], bytes]) -> None:
    (tmp_path / "guide.pdf").write_bytes(pdf_bytes(["Deposit insurance covers 50 million won", "", "Page three"]))
    docs = _file_docs(tmp_path / "guide.pdf", run, manifest_for)
    assert [d.doc_id for d in docs] == ["docs/guide/p1", "docs/guide/p3"]  # the blank page gives nothing
    assert [d.locator for d in docs] == [{"page": 1}, {"page": 3}]
    assert "50 million won" in docs[0].text and docs[0].metadata["pages"] == 3


def test_markdown_html_docx_text(tmp_path: Path, run: RunContext, manifest_for: ManifestFor) -> None:
    import docx

    (tmp_path / "note.md").write_text("---\ncategory: 안내\n---\n# 예금자 보호\n1인당 5천만원까지", "utf-8")
    [md] = _file_docs(tmp_path / "note.md", run, manifest_for)
    assert (md.doc_id, md.title, md.metadata["category"]) == ("docs/note", "예금자 보호", "안내")

    (tmp_path / "page.html").write_text(
        "<html><head><title>금리 안내</title><style>p{color:red}</style><script>var secret=1;</script></head>"
        "<body><nav>메뉴 홈 로그인</nav><h1>정기예금</h1><p>연 3.5%   금리</p><h2>우대 조건</h2>"
        "<ul><li>급여 이체</li></ul></body></html>", "utf-8")
    [html] = _file_docs(tmp_path / "page.html", run, manifest_for)
    assert html.title == "금리 안내"
    assert html.text == "# 정기예금\n\n연 3.5% 금리\n\n## 우대 조건\n\n급여 이체"

    document = docx.Document()
    document.add_heading("상품 설명서", level=1)
    document.add_paragraph("이 상품은 예금자보호법에 따라 보호됩니다.")
    table = document.add_table(rows=2, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "기간", "금리"
    table.rows[1].cells[0].text, table.rows[1].cells[1].text = "12개월", "3.5%"
    document.add_paragraph("끝.")
    document.save(str(tmp_path / "manual.docx"))
    [dx] = _file_docs(tmp_path / "manual.docx", run, manifest_for)
    assert dx.title == "상품 설명서"
    assert dx.text == "# 상품 설명서\n\n이 상품은 예금자보호법에 따라 보호됩니다.\n\n기간: 12개월\n금리: 3.5%\n\n끝."

    (tmp_path / "plain.txt").write_text("그냥 텍스트", "utf-8")
    [txt] = _file_docs(tmp_path / "plain.txt", run, manifest_for)
    assert txt.text == "그냥 텍스트" and txt.doc_id == "docs/plain"


def test_faq_pickle(shared_data: Path, run: RunContext, manifest_for: ManifestFor) -> None:
    docs = _file_docs(shared_data / "smartstore_faq" / "final_result.pkl", run, manifest_for)
    assert len(docs) == 2717 and len({d.doc_id for d in docs}) == 2717
    assert docs[0].doc_id.startswith("docs/final_result/faq-") and docs[0].locator == {"entry": 0}
    assert docs[0].metadata["category"] == "가입절차"


def test_finlife_json_joins_options_by_product(shared_data: Path, run: RunContext,
                                               manifest_for: ManifestFor) -> None:
    deposit = _file_docs(shared_data / "fss_finlife" / "cashfit_deposit_fss_format.json", run, manifest_for)
    assert len(deposit) == 39
    won = next(d for d in deposit if d.metadata["product_code"] == "WR0001B")
    assert won.doc_id == "docs/cashfit_deposit_fss_format/0010001-WR0001B" and won.title == "우리은행 WON플러스예금"
    assert won.metadata["bank"] == "우리은행" and won.metadata["product_type"] == "deposit"
    assert "상품 종류: 정기예금" in won.text and "- 1개월 (단리): 기본 3%, 최고 우대 3%" in won.text
    assert won.metadata["max_rate"] == max(won.metadata["max_rate"], 3.37) and won.metadata["terms"] >= 2
    saving = _file_docs(shared_data / "fss_finlife" / "cashfit_saving_fss_format.json", run, manifest_for,
                        parser="finlife")
    assert len(saving) == 58 and {d.metadata["product_type"] for d in saving} == {"saving"}
    assert all("저축 기간별 금리:" in d.text for d in saving if d.metadata["terms"])


def test_json_records_and_jsonl(tmp_path: Path, run: RunContext, manifest_for: ManifestFor) -> None:
    (tmp_path / "api.json").write_text(json.dumps({"data": {"items": [{"id": 1, "t": "가"}, {"id": 2, "t": "나"}]}}),
                                       "utf-8")
    source = FileSource(FileSourceConfig(name="api", paths=[str(tmp_path / "api.json")]))
    [e] = source.extract(run)
    with pytest.raises(InvalidInput, match="items_path"):
        _docs(e, run, manifest_for)
    e.params.update({"_items_path": "data.items", "_key_columns": ["id"]})
    assert [d.doc_id for d in _docs(e, run, manifest_for)] == ["api/api/id=1", "api/api/id=2"]
    (tmp_path / "docs.jsonl").write_text('{"id": "a", "text": "첫째"}\n{"id": "b", "text": "둘째"}\n', "utf-8")
    docs = _file_docs(tmp_path / "docs.jsonl", run, manifest_for)
    assert [(d.doc_id, d.locator["entry"]) for d in docs] == [("docs/docs/a", 0), ("docs/docs/b", 1)]


def test_corrupt_objects_raise_errors_naming_the_file(tmp_path: Path, run: RunContext, manifest_for: ManifestFor,
                                                      pdf_bytes: Callable[[list[str]], bytes]) -> None:
    cases = {"cut.pdf": pdf_bytes(["one", "two"])[:80], "broken.xlsx": b"PK\x03\x04garbage",
             "bad.json": b'{"result": ', "bad.docx": b"not a zip", "bad.parquet": b"PAR1 nope"}
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(b"placeholder")
        fmt = name.rsplit(".", 1)[1]
        e = Extracted(path=path, name=name.split(".")[0], fmt=fmt, source="docs", source_kind="file", file=str(path))
        manifest = manifest_for(e, run)
        path.write_bytes(data)  # the object got damaged after landing
        with pytest.raises(CorruptData, match=name.replace(".", r"\.")):
            list(documents_from_object(path, manifest))
    e = Extracted(path=path, name="x", fmt="exe", source="docs", source_kind="file")
    with pytest.raises(InvalidInput):
        list(documents_from_object(path, manifest_for(e, run)))
