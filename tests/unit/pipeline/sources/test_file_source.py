from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from jisik.core.errors import CorruptData, InvalidInput, NotFound
from jisik.pipeline.sources import FileSourceConfig, RunContext
from jisik.pipeline.sources.files import FileSource, text_type


def _files(*paths: str | Path, **kw: object) -> FileSource:
    return FileSource(FileSourceConfig.model_validate({"name": "docs", "paths": [str(p) for p in paths], **kw}))


def test_real_csv_with_bom_counts_rows_and_infers_types(shared_data: Path, run: RunContext) -> None:
    path = shared_data / "fss_finlife" / "rimit000_deposit_banks.csv"
    [e] = _files(path).extract(run)
    assert (e.fmt, e.source_kind, e.name, e.content_type) == ("csv", "file", "rimit000_deposit_banks", "text/csv")
    assert e.row_count == 158 and e.file == str(path.resolve())
    assert e.path.read_bytes() == path.read_bytes()  # staged as-is
    types = {c.name: c.type for c in e.schema}
    assert types["금융회사명"] == "string" and types["저축기간(개월)"] == "integer" and types["기본금리(%)"] == "float"
    assert e.params == {"_encoding": "utf-8-sig"}


def test_cp949_csv_is_detected(tmp_path: Path, run: RunContext) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes("지점,코드,금액\n강남,007,1000\n역삼,012,2500.5\n".encode("cp949"))
    [e] = _files(path).extract(run)
    assert e.params["_encoding"] == "cp949" and e.row_count == 2
    assert [c.type for c in e.schema] == ["string", "string", "float"]  # "007": a code, not a number


def test_text_type() -> None:
    assert [text_type(v) for v in ("12", "-3", "007", "0", "1.5", "1e3", "nan", "1,000", "", "3.5%")] == \
        ["integer", "integer", "string", "integer", "float", "float", "string", "string", None, "string"]


def test_directory_glob_and_recursive_matching(tmp_path: Path, run: RunContext) -> None:
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for rel in ("a.md", "b.txt", "sub/a.md", "sub/c.html", ".hidden.md", "notes.bak"):
        (root / rel).write_text("# 제목\n본문", "utf-8")
    names = [e.name for e in _files(root).extract(run)]
    assert names == ["a", "b"]  # directory scan: supported files only, hidden ones skipped
    names = sorted(e.name for e in _files(root, recursive=True).extract(run))
    assert names == ["a", "b", "sub__a", "sub__c"]
    assert [e.name for e in _files(root / "**" / "*.md", recursive=True).extract(run)] == ["a", "sub__a"]
    # the same file reached twice is staged once; equal names get a suffix
    found = _files(root / "a.md", root / "*.md", root / "sub" / "a.md").extract(run)
    assert [e.name for e in found] == ["a", "a-2"]
    assert all(e.fmt == "md" and e.content_type == "text/markdown" for e in found)


def test_unsupported_extension_lists_the_supported_ones(tmp_path: Path, run: RunContext) -> None:
    (tmp_path / "notes.bak").write_text("x", "utf-8")
    with pytest.raises(InvalidInput) as info:
        _files(tmp_path / "notes.bak").extract(run)
    assert "csv" in info.value.message_en and "docx" in info.value.message_en
    with pytest.raises(InvalidInput):
        _files(tmp_path / "*.bak").extract(run)


def test_missing_paths(tmp_path: Path, run: RunContext) -> None:
    with pytest.raises(NotFound):
        _files(tmp_path / "nope.csv").extract(run)
    with pytest.raises(NotFound):
        _files(tmp_path / "*.pdf").extract(run)
    assert _files(tmp_path / "*.pdf", allow_empty=True).extract(run) == []


def test_faq_pickle_is_checked_before_staging(shared_data: Path, tmp_path: Path, run: RunContext) -> None:
    [e] = _files(shared_data / "smartstore_faq" / "final_result.pkl").extract(run)
    assert (e.source_kind, e.fmt, e.row_count, e.params) == ("faq", "pkl", 2717, {"_parser": "faq"})

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            import os

            return (os.system, ("echo pwned > /tmp/jisik-files-pwned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"q": Evil()}))
    with pytest.raises(InvalidInput, match="system"):
        _files(evil).extract(run)
    assert not Path("/tmp/jisik-files-pwned").exists()


def test_pdf_pages_and_xlsx_rows(tmp_path: Path, run: RunContext, pdf_bytes: Callable[[list[str]], bytes]) -> None:
    from openpyxl import Workbook

    (tmp_path / "guide.pdf").write_bytes(pdf_bytes(["one", "two", ""]))
    wb = Workbook()
    ws = wb.active
    ws.append(["id", "상품", "금리"])
    ws.append([1, "정기예금", 3.5])
    ws.append([None, None, None])  # empty rows do not count
    ws.append([2, "적금", 4])
    wb.create_sheet("둘째").append(["x"])
    wb.save(tmp_path / "rates.xlsx")
    pdf, xlsx = _files(tmp_path / "guide.pdf", tmp_path / "rates.xlsx").extract(run)
    assert pdf.page_count == 3 and pdf.content_type == "application/pdf"
    assert xlsx.row_count == 2 and [(c.name, c.type) for c in xlsx.schema] == \
        [("id", "integer"), ("상품", "string"), ("금리", "float")]


def test_broken_files_are_named_in_the_error(tmp_path: Path, run: RunContext,
                                             pdf_bytes: Callable[[list[str]], bytes]) -> None:
    (tmp_path / "broken.xlsx").write_bytes(b"PK\x03\x04 this is not a workbook")
    with pytest.raises(CorruptData, match=r"broken\.xlsx"):
        _files(tmp_path / "broken.xlsx").extract(run)
    (tmp_path / "cut.pdf").write_bytes(pdf_bytes(["one", "two"])[:60])
    with pytest.raises(CorruptData, match=r"cut\.pdf"):
        _files(tmp_path / "cut.pdf").extract(run)
