"""File loaders that turn files into Documents (the pipeline's sources build on these).

The FAQ pickle is read with a restricted unpickler that refuses every global, so a pickle
that tries to import or call anything is rejected instead of executed.
"""

from __future__ import annotations

import io
import json
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jisik.core.errors import InvalidInput, NotFound
from jisik.core.hashing import content_hash
from jisik.core.types import Document


class _NoGlobalsUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise InvalidInput(
            f"안전하지 않은 pickle입니다: '{module}.{name}'을(를) 불러오려고 합니다. 거부했습니다.",
            f"Unsafe pickle rejected: it tries to load the global '{module}.{name}'.",
            hint="dict[str, str] 형태의 데이터만 허용합니다.",
        )


def safe_unpickle(data: bytes) -> Any:
    try:
        return _NoGlobalsUnpickler(io.BytesIO(data)).load()
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"pickle 파일을 읽을 수 없습니다: {exc}", f"Cannot read pickle: {exc}") from exc


_CATEGORY_TAGS = re.compile(r"^\s*(?:\[[^\]]*\]\s*)+")


def clean_title(title: str) -> str:
    """A FAQ title without its ``[카테고리]`` prefix(es) and surrounding whitespace."""
    return " ".join(_CATEGORY_TAGS.sub("", title).split())


def _category(question: str) -> str:
    if question.startswith("[") and "]" in question:
        return question[1 : question.index("]")].strip()
    return ""


def faq_documents(pairs: dict[str, str], source_uri: str) -> Iterator[Document]:
    """One document per FAQ entry (question + answer); doc id = hash of the question."""
    for i, (question, answer) in enumerate(pairs.items()):
        q = str(question).strip()
        meta: dict[str, Any] = {"kind": "faq", "entry": i}
        if cat := _category(q):
            meta["category"] = cat
        yield Document(
            doc_id=f"faq-{content_hash(q, length=16)}", text=f"{q}\n{answer}", title=q,
            source_uri=source_uri, locator={"entry": i}, metadata=meta,
        )


def load_faq_pickle(path: Path) -> list[Document]:
    if not path.exists():
        raise NotFound(f"파일이 없습니다: {path}", f"File not found: {path}")
    obj = safe_unpickle(path.read_bytes())
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in obj.items()):
        raise InvalidInput(
            "FAQ pickle은 {질문: 답변} 형태의 dict[str, str]이어야 합니다.",
            "The FAQ pickle must hold a dict[str, str] of question -> answer.",
        )
    return list(faq_documents(obj, path.resolve().as_uri()))


def load_jsonl_documents(path: Path) -> list[Document]:
    """JSONL with ``doc_id``/``id``, ``text``/``contents``, optional ``title``, ``metadata``."""
    docs: list[Document] = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path.name} {line_no}행이 올바른 JSON이 아닙니다.",
                                   f"{path.name} line {line_no} is not valid JSON: {exc}") from exc
            if "question" in row and "answer" in row:
                docs.extend(faq_documents({row["question"]: row["answer"]}, f"{path.resolve().as_uri()}#{line_no}"))
                continue
            doc_id = row.get("doc_id", row.get("id"))
            text = row.get("text", row.get("contents"))
            if doc_id is None or text is None:
                raise InvalidInput(f"{path.name} {line_no}행에 doc_id와 text가 필요합니다.",
                                   f"{path.name} line {line_no} needs doc_id (or id) and text (or contents).")
            meta = {k: v for k, v in (row.get("metadata") or {}).items() if isinstance(v, str | int | float | bool)}
            docs.append(Document(str(doc_id), str(text), str(row.get("title", "")),
                                 row.get("source_uri", f"{path.resolve().as_uri()}#{line_no}"),
                                 dict(row.get("locator") or {}), meta))
    return docs


def _front_matter(text: str) -> tuple[dict[str, Any], str]:
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---", 4)
    if end < 0:
        return {}, text
    import yaml

    try:
        meta = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError:
        return {}, text
    body = text[end + 4 :].lstrip("\n")
    return (meta if isinstance(meta, dict) else {}), body


def load_text_files(root: Path, patterns: tuple[str, ...] = ("*.md", "*.txt")) -> list[Document]:
    """Markdown/text files (YAML front matter becomes metadata; the first '# ' heading the title)."""
    files = [root] if root.is_file() else sorted(p for pat in patterns for p in root.rglob(pat))
    docs = []
    for p in files:
        meta, body = _front_matter(p.read_text(encoding="utf-8"))
        title = next((ln[2:].strip() for ln in body.splitlines() if ln.startswith("# ")), p.stem)
        scalars = {str(k): (v if isinstance(v, str | int | float | bool) else str(v)) for k, v in meta.items()}
        rel = p.name if root.is_file() else str(p.relative_to(root))
        docs.append(Document(doc_id=rel, text=body, title=title, source_uri=p.resolve().as_uri(),
                             metadata=scalars))
    return docs


def load_documents(path: Path, fmt: str) -> tuple[list[Document], str]:
    """Documents from a file or folder, and the chunker kind that suits them."""
    from jisik.eval.autorag import load_corpus

    if not path.exists():
        raise InvalidInput(f"경로가 없습니다: {path}", f"Path does not exist: {path}")
    if fmt == "auto":
        if path.suffix == ".pkl":
            fmt = "faq-pickle"
        elif path.suffix == ".parquet":
            fmt = "autorag"
        elif path.suffix == ".jsonl":
            fmt = "jsonl"
        else:
            fmt = "text"
    if fmt == "faq-pickle":
        return load_faq_pickle(path), "whole"
    if fmt == "autorag":
        return load_corpus(path), "page"
    if fmt == "jsonl":
        docs = load_jsonl_documents(path)
        return docs, ("whole" if docs and docs[0].metadata.get("kind") == "faq" else "sentence")
    if fmt == "text":
        return load_text_files(path), "sentence"
    raise InvalidInput(f"알 수 없는 형식: {fmt}", f"Unknown format {fmt}; use auto, faq-pickle, autorag, jsonl, text")
