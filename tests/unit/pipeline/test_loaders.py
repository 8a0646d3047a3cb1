import pickle
from pathlib import Path

import pytest

from jisik.core.errors import InvalidInput
from jisik.pipeline.loaders import load_faq_pickle, load_jsonl_documents, load_text_files


class Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        import os

        return (os.system, ("echo pwned > /tmp/jisik-pwned",))


def test_real_faq_pickle(shared_data: Path) -> None:
    docs = load_faq_pickle(shared_data / "smartstore_faq" / "final_result.pkl")
    assert len(docs) == 2717
    first = docs[0]
    assert first.title.startswith("[가입절차]") and first.metadata["category"] == "가입절차"
    assert first.text.startswith(first.title + "\n")
    assert len({d.doc_id for d in docs}) == 2717


def test_poisoned_pickle_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"q": Evil()}))
    with pytest.raises(InvalidInput) as info:
        load_faq_pickle(path)
    assert "posix.system" in info.value.message_en or "os.system" in info.value.message_en
    assert not Path("/tmp/jisik-pwned").exists()


def test_wrong_shape_pickle(tmp_path: Path) -> None:
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps(["a", "b"]))
    with pytest.raises(InvalidInput):
        load_faq_pickle(path)


def test_jsonl_and_markdown(tmp_path: Path) -> None:
    jl = tmp_path / "d.jsonl"
    jl.write_text('{"id": 1, "text": "본문", "metadata": {"k": "v", "nested": {"x": 1}}}\n\n', "utf-8")
    docs = load_jsonl_documents(jl)
    assert docs[0].doc_id == "1" and docs[0].metadata == {"k": "v"}
    jl.write_text("{broken\n", "utf-8")
    with pytest.raises(InvalidInput):
        load_jsonl_documents(jl)
    md = tmp_path / "m"
    md.mkdir()
    (md / "a.md").write_text("---\ncategory: 안내\n---\n# 제목입니다\n본문", "utf-8")
    [doc] = load_text_files(md)
    assert doc.title == "제목입니다" and doc.metadata == {"category": "안내"} and doc.text.startswith("# 제목")
