from __future__ import annotations

import pytest

from jisik.core.errors import InvalidInput
from jisik.core.hashing import content_hash
from jisik.text.tables import TableRowChunker, render_row, rows_to_documents

ROWS = [
    {"상품ID": 101, "상품명": "정기예금 12개월", "금리": 3.5, "비대면": True, "설명": "급여이체 시\n\n우대금리"},
    {"상품ID": 102, "상품명": "자유적금", "금리": float("nan"), "비대면": False, "설명": None},
    {"상품ID": 103, "상품명": "청년 적금", "금리": 4.0, "비대면": False, "설명": "만 19~34세"},
]


def test_render_row() -> None:
    text = render_row(ROWS[0], ["상품명", "금리", "비대면", "설명"])
    assert text == "상품명: 정기예금 12개월\n금리: 3.5\n비대면: 예\n설명: 급여이체 시 우대금리"
    assert render_row(ROWS[1], ["상품명", "금리", "설명"]) == "상품명: 자유적금"  # NaN / None left out


def test_one_document_per_row() -> None:
    docs = rows_to_documents(
        "deposits",
        ROWS,
        key_columns=["상품ID"],
        text_columns=["상품명", "금리", "설명"],
        title_column="상품명",
        source_uri="db://deposits",
    )
    assert [d.doc_id for d in docs] == ["deposits/상품ID=101", "deposits/상품ID=102", "deposits/상품ID=103"]
    d = docs[0]
    assert d.title == "정기예금 12개월" and d.source_uri == "db://deposits"
    assert d.text == "상품명: 정기예금 12개월\n금리: 3.5\n설명: 급여이체 시 우대금리"
    assert d.locator == {"table": "deposits", "rows": [0, 0], "keys": {"상품ID": 101}}
    assert d.metadata["금리"] == 3.5 and d.metadata["비대면"] is True and d.metadata["상품ID"] == 101
    assert "금리" not in docs[1].metadata  # NaN is not filterable


def test_groups_of_rows() -> None:
    docs = rows_to_documents("deposits", ROWS, ["상품ID"], rows_per_doc=2, start_index=10)
    assert [d.doc_id for d in docs] == ["deposits/상품ID=101..상품ID=102", "deposits/상품ID=103"]
    assert docs[0].locator["rows"] == [10, 11]
    assert docs[0].locator["row_keys"] == [{"상품ID": 101}, {"상품ID": 102}]
    assert docs[1].locator == {"table": "deposits", "rows": [12, 12], "keys": {"상품ID": 103}}
    # only values shared by every row of the group are filterable
    assert docs[0].metadata == {}
    assert rows_to_documents("t", [{"a": 1, "b": "x"}, {"a": 2, "b": "x"}], ["a"], rows_per_doc=2)[0].metadata == {
        "b": "x"
    }


def test_no_key_columns_uses_row_index() -> None:
    docs = rows_to_documents("t", ROWS, [], start_index=5)
    assert [d.doc_id for d in docs] == ["t/#5", "t/#6", "t/#7"]


def test_key_errors() -> None:
    with pytest.raises(InvalidInput):
        rows_to_documents("t", [{"id": 1}, {"id": 1}], ["id"])
    with pytest.raises(InvalidInput):
        rows_to_documents("t", [{"name": "x"}], ["id"])
    with pytest.raises(InvalidInput):
        rows_to_documents("t", ROWS, ["상품ID"], rows_per_doc=0)


def test_table_row_chunker() -> None:
    [doc] = rows_to_documents("deposits", ROWS, ["상품ID"], rows_per_doc=3)
    chunks = TableRowChunker(rows_per_chunk=2).chunk(doc)
    assert len(chunks) == 2
    assert chunks[0].locator["rows"] == [0, 1] and chunks[0].locator["row_keys"] == [{"상품ID": 101}, {"상품ID": 102}]
    assert chunks[1].locator["rows"] == [2, 2] and chunks[1].locator["keys"] == {"상품ID": 103}
    assert "row_keys" not in chunks[1].locator
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        assert c.chunk_id == content_hash(doc.doc_id, c.text)
    single = TableRowChunker().chunk(rows_to_documents("deposits", ROWS[:1], ["상품ID"])[0])
    assert len(single) == 1 and single[0].locator["rows"] == [0, 0]


def test_oversized_row_is_split_between_lines() -> None:
    row = {"id": 1, **{f"항목{i}": f"값 {i} " * 10 for i in range(30)}}
    [doc] = rows_to_documents("big", [row], ["id"])
    chunks = TableRowChunker(max_chars=300).chunk(doc)
    assert len(chunks) > 1
    for c in chunks:
        assert len(c.text) <= 300 and doc.text[c.start : c.end] == c.text
        assert c.start == 0 or doc.text[c.start - 1] == "\n"
        assert c.locator["rows"] == [0, 0]


def test_numpy_scalars() -> None:
    np = pytest.importorskip("numpy")
    row = {"id": np.int64(7), "금리": np.float32(2.5), "비대면": np.bool_(True), "없음": np.float64("nan")}
    [doc] = rows_to_documents("t", [row], ["id"])
    assert doc.doc_id == "t/id=7" and doc.text == "id: 7\n금리: 2.5\n비대면: 예"
    assert doc.metadata == {"id": 7, "금리": 2.5, "비대면": True}
    assert type(doc.metadata["id"]) is int and type(doc.locator["keys"]["id"]) is int
