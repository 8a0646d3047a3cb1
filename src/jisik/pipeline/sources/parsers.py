"""Landed objects to :class:`Document` s for the knowledge-store batch.

:func:`documents_from_object` dispatches on ``manifest.format`` and the parser hints a source
recorded in ``manifest.params`` (keys starting with ``_``, see :class:`.base.ParseHints`):
``_parser: finlife`` (also detected from a ``result.baseList`` JSON body) or ``faq``;
``_key_columns`` / ``_title_column`` / ``_text_columns`` / ``_rows_per_doc`` for tables;
``_encoding`` for CSV; ``_items_path`` for the records inside a JSON body.

* CSV / XLSX / Parquet / JSON records: one document per ``rows_per_doc`` rows
  (:func:`jisik.text.tables.rows_to_documents`), CSV values typed back from the manifest schema;
  XLSX: every sheet, first non-empty row = header.
* PDF: one document per page with text, ``locator={"page": n}`` (1-based). Markdown / text: one
  document (front matter -> metadata). HTML: title + headings (as ``#`` lines) + text, without
  script/style/nav. DOCX: paragraphs (headings as ``#`` lines) and tables (``컬럼: 값`` rows).
* FAQ pickle (no-globals unpickler): one document per entry. finlife JSON: one per product.

Doc ids are ``{source}/{object name}/...`` plus the row keys, page or entry, so the same content
extracted again gives the same ids (tables without key columns use a hash of the row text).
Every document carries ``metadata["lineage_key"]`` (the landed object key) and ``["source"]``;
``source_uri`` is the original file when there was one, else the object key. A file that cannot be
read is :class:`CorruptData` naming it, never a raw traceback.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from jisik.core.errors import CorruptData, InvalidInput, JisikError
from jisik.core.hashing import content_hash
from jisik.core.types import Document
from jisik.pipeline.manifest import Manifest
from jisik.pipeline.sources.base import ParseHints
from jisik.pipeline.sources.files import detect_encoding, open_pdf, xlsx_rows
from jisik.pipeline.sources.finlife import finlife_documents, is_finlife
from jisik.text.tables import render_row, rows_to_documents

ROWS_PER_READ = 1000
_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


def object_name(manifest: Manifest) -> str:
    last = manifest.key.rsplit("/", 1)[-1]
    suffix = f".{manifest.format}"
    return last[: -len(suffix)] if last.endswith(suffix) else last


def documents_from_object(path: Path, manifest: Manifest) -> Iterator[Document]:
    """The documents of one landed object (``path`` is a local copy of ``manifest.key``)."""
    source_uri = manifest.file or manifest.key
    try:
        for doc in _documents(path, manifest, ParseHints.from_params(manifest.params)):
            doc.source_uri = source_uri
            doc.metadata["lineage_key"] = manifest.key
            doc.metadata["source"] = manifest.source
            yield doc
    except JisikError:
        raise
    except Exception as exc:
        name = Path(manifest.file or manifest.key).name
        raise CorruptData(f"파일을 읽을 수 없습니다: {name} ({manifest.format})",
                          f"Cannot read {name} as {manifest.format}: {type(exc).__name__}: {exc}",
                          details={"key": manifest.key}) from None


def _documents(path: Path, manifest: Manifest, hints: ParseHints) -> Iterator[Document]:
    fmt = manifest.format
    prefix = f"{manifest.source}/{object_name(manifest)}"
    if hints.parser == "finlife":
        return finlife_documents(path, prefix, manifest.params.get("product"))
    if fmt == "pkl" or hints.parser == "faq":
        return _faq(path, prefix)
    if fmt == "csv":
        return _table(prefix, _csv_rows(path, manifest, hints), hints)
    if fmt == "parquet":
        return _table(prefix, _parquet_rows(path), hints)
    if fmt == "xlsx":
        return _xlsx(path, prefix, hints)
    if fmt == "json":
        return _json(path, prefix, hints, manifest)
    if fmt == "jsonl":
        return _jsonl(path, prefix)
    if fmt == "pdf":
        return _pdf(path, prefix)
    if fmt in ("md", "txt"):
        return _text(path, prefix)
    if fmt == "html":
        return _html(path, prefix)
    if fmt == "docx":
        return _docx(path, prefix)
    raise InvalidInput(f"문서로 바꿀 수 없는 형식입니다: {fmt}", f"No parser for format {fmt!r}.")


# -- tables -------------------------------------------------------------------------------------------

def _table(table: str, rows: Iterable[Mapping[str, Any]], hints: ParseHints) -> Iterator[Document]:
    per_read = max(hints.rows_per_doc, ROWS_PER_READ // hints.rows_per_doc * hints.rows_per_doc)
    it = iter(rows)
    start = 0
    while group := list(islice(it, per_read)):
        docs = rows_to_documents(table, group, hints.key_columns, hints.text_columns, hints.title_column,
                                 rows_per_doc=hints.rows_per_doc, start_index=start)
        for doc in docs:
            if not hints.key_columns:  # position-free id: re-extracting the same row gives the same id
                doc.doc_id = f"{table}/h{content_hash(doc.text, length=16)}"
            yield doc
        start += len(group)


def _typed(value: str, portable: str) -> Any:
    if value == "":
        return None
    try:
        if portable == "integer":
            return int(value)
        if portable == "float":
            return float(value)
    except ValueError:
        return value
    if portable == "boolean":
        return value.strip().lower() in ("true", "1", "yes", "y", "t")
    return value


def _csv_rows(path: Path, manifest: Manifest, hints: ParseHints) -> Iterator[dict[str, Any]]:
    types = {c.name: c.type for c in manifest.schema_}
    with path.open(encoding=detect_encoding(path, hints.encoding), newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        for row in reader:
            if any(cell.strip() for cell in row):
                yield {h: _typed(v, types.get(h, "string")) for h, v in zip(header, row, strict=False)}


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=ROWS_PER_READ):
        yield from batch.to_pylist()


def _xlsx(path: Path, prefix: str, hints: ParseHints) -> Iterator[Document]:
    for title, rows in xlsx_rows(path):
        header = next(rows, None)
        if header is None:
            continue
        columns = [str(c) if c not in (None, "") else f"column_{i + 1}" for i, c in enumerate(header)]
        records = ({c: v for c, v in zip(columns, row, strict=False)} for row in rows)
        yield from _table(f"{prefix}/{title}", records, hints)


def _json(path: Path, prefix: str, hints: ParseHints, manifest: Manifest) -> Iterator[Document]:
    obj = json.loads(path.read_text(encoding="utf-8"))
    if is_finlife(obj):
        yield from finlife_documents(path, prefix, manifest.params.get("product"))
        return
    records: Any = obj
    if hints.items_path:
        for part in hints.items_path.split("."):
            records = records.get(part) if isinstance(records, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise InvalidInput(
            f"JSON 파일의 레코드 목록을 찾을 수 없습니다: {path.name}",
            f"{path.name}: expected a list of objects" + (f" at '{hints.items_path}'" if hints.items_path else ""),
            hint="set items_path (a dotted path to the list of records)",
        )
    yield from _table(prefix, records, hints)


def _jsonl(path: Path, prefix: str) -> Iterator[Document]:
    from jisik.pipeline.loaders import load_jsonl_documents

    for i, doc in enumerate(load_jsonl_documents(path)):
        doc.doc_id = f"{prefix}/{doc.doc_id}"
        doc.locator = {**doc.locator, "entry": i}
        yield doc


def _faq(path: Path, prefix: str) -> Iterator[Document]:
    from jisik.pipeline.loaders import load_faq_pickle

    for doc in load_faq_pickle(path):
        doc.doc_id = f"{prefix}/{doc.doc_id}"
        yield doc


# -- documents ----------------------------------------------------------------------------------------

def _pdf(path: Path, prefix: str) -> Iterator[Document]:
    reader = open_pdf(path)
    meta_title = (reader.metadata.title if reader.metadata else None) or ""
    total = len(reader.pages)
    for n, page in enumerate(reader.pages, 1):
        text = (page.extract_text() or "").strip()
        if not text:  # a scanned page without a text layer
            continue
        yield Document(doc_id=f"{prefix}/p{n}", text=text, title=str(meta_title) or prefix.rsplit("/", 1)[-1],
                       locator={"page": n}, metadata={"kind": "pdf", "page": n, "pages": total})


def _text(path: Path, prefix: str) -> Iterator[Document]:
    from jisik.pipeline.loaders import load_text_files

    for doc in load_text_files(path):
        doc.doc_id = prefix
        yield doc


def _clean_lines(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def _html(path: Path, prefix: str) -> Iterator[Document]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_bytes(), "html.parser")
    for tag in soup(["script", "style", "nav", "noscript", "template", "iframe", "svg"]):
        tag.decompose()
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    root = soup.body or soup
    if soup.head is not None and root is soup:
        soup.head.decompose()
    for h in root.find_all(_HEADINGS):
        text = h.get_text(" ", strip=True)
        h.replace_with(f"\n\n{'#' * int(h.name[1])} {text}\n\n" if text else "")
        title = title or text
    body = _clean_lines(root.get_text("\n"))
    yield Document(doc_id=prefix, text=body, title=title or prefix.rsplit("/", 1)[-1], metadata={"kind": "html"})


def _docx(path: Path, prefix: str) -> Iterator[Document]:
    import docx
    from docx.table import Table

    document = docx.Document(str(path))
    blocks: list[str] = []
    title = document.core_properties.title or ""
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            rows = [[cell.text.strip() for cell in row.cells] for row in item.rows]
            if not rows:
                continue
            header = [h or f"열{i + 1}" for i, h in enumerate(rows[0])]
            rendered = [render_row(dict(zip(header, r, strict=False)), header) for r in rows[1:]]
            blocks.append("\n\n".join(r for r in rendered if r) or " | ".join(rows[0]))
            continue
        text = item.text.strip()
        if not text:
            continue
        style = (item.style.name if item.style is not None else "") or ""
        if style == "Title" or style.startswith("Heading"):
            level = int(style.rsplit(" ", 1)[-1]) if style[-1:].isdigit() else 1
            blocks.append(f"{'#' * min(level, 6)} {text}")
            title = title or text
        else:
            blocks.append(text)
    yield Document(doc_id=prefix, text="\n\n".join(blocks), title=title or prefix.rsplit("/", 1)[-1],
                   metadata={"kind": "docx"})
