"""Files (CSV, XLSX, PDF, Markdown, HTML, DOCX, text, JSON, JSONL, the FAQ pickle) staged as-is.

``paths`` entries are files, directories (every supported file inside; ``recursive`` descends;
hidden files are ignored) or glob patterns (``**`` with ``recursive``). A named file or a glob match
with an unsupported extension is an error listing the supported ones; a path that matches nothing is
:class:`NotFound` unless ``allow_empty``. Object names are the path relative to the entry's
directory without extension, ``/`` replaced by ``__``.

Cheap facts go to the manifest: CSV/XLSX row count and columns (types inferred while counting),
PDF page count, FAQ pickle entry count, JSONL line count. A pickle is checked with the no-globals
unpickler before it is staged, so a poisoned file never lands.
"""

from __future__ import annotations

import csv
import glob
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jisik.core.errors import CorruptData, InvalidInput, JisikError, NotFound
from jisik.core.logging import get_logger
from jisik.pipeline.manifest import ColumnSchema, Extracted
from jisik.pipeline.sources.base import CONTENT_TYPES, ParseHints, RunContext
from jisik.pipeline.sources.config import FileSourceConfig
from jisik.pipeline.sources.tabular import merge_types, portable_type

log = get_logger(__name__)

SUPPORTED = ("csv", "xlsx", "pdf", "md", "html", "docx", "txt", "json", "jsonl", "pkl")
_ALIASES = {"htm": "html", "markdown": "md", "pickle": "pkl", "ndjson": "jsonl"}
_MAGIC = re.compile(r"[*?\[]")
_UNSAFE = re.compile(r"[^\w.-]+")


def file_format(path: Path) -> str:
    ext = path.suffix.lower().lstrip(".")
    fmt = _ALIASES.get(ext, ext)
    if fmt not in SUPPORTED:
        raise InvalidInput(
            f"지원하지 않는 파일 형식입니다: {path.name} (지원: {', '.join(SUPPORTED)})",
            f"Unsupported file type: {path.name}. Supported extensions: {', '.join(SUPPORTED)}.",
            details={"file": str(path), "supported": list(SUPPORTED)},
        )
    return fmt


def text_type(value: str) -> str | None:
    """Portable type of a CSV cell: integer / float when it parses (codes with leading zeros stay text)."""
    s = value.strip()
    if not s:
        return None
    digits = s.lstrip("+-")
    if digits.isdigit():
        return "string" if len(digits) > 1 and digits[0] == "0" else "integer"
    if any(c.isdigit() for c in s) and "_" not in s:
        try:
            float(s)
        except ValueError:
            return "string"
        return "float"
    return "string"


def detect_encoding(path: Path, preferred: str | None = None) -> str:
    """``preferred`` if given; else UTF-8 (BOM optional) when the whole file decodes, else CP949."""
    if preferred:
        return preferred
    try:
        with path.open(encoding="utf-8-sig") as f:
            while f.read(1 << 20):
                pass
        return "utf-8-sig"
    except UnicodeDecodeError:
        return "cp949"


@dataclass(slots=True)
class FileFacts:
    row_count: int | None = None
    page_count: int | None = None
    schema: list[ColumnSchema] = field(default_factory=list)
    encoding: str | None = None


def csv_facts(path: Path, encoding: str | None) -> FileFacts:
    enc = detect_encoding(path, encoding)
    try:
        with path.open(encoding=enc, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            types: list[str | None] = [None] * len(header)
            rows = 0
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):  # a ragged row would shift or drop values silently
                    raise CorruptData(
                        f"CSV 파일 {path.name}의 {reader.line_num}행에 값이 {len(row)}개 있습니다 "
                        f"(머리글은 {len(header)}개). 행이 어긋난 파일은 적재하지 않습니다.",
                        f"Malformed CSV {path.name}: line {reader.line_num} has {len(row)} fields, "
                        f"the header has {len(header)}.",
                        hint="fix the file (quote values that contain commas)",
                        details={"file": path.name, "line": reader.line_num})
                rows += 1
                for i, cell in enumerate(row[: len(header)]):
                    types[i] = merge_types(types[i], text_type(cell))
    except (csv.Error, UnicodeDecodeError, LookupError) as exc:
        raise CorruptData(f"CSV 파일을 읽을 수 없습니다: {path.name}", f"Cannot read the CSV file {path.name}: {exc}",
                          details={"file": path.name}) from None
    schema = [ColumnSchema(name=c, type=t or "string") for c, t in zip(header, types, strict=True)]
    return FileFacts(row_count=rows, schema=schema, encoding=enc)


def xlsx_rows(path: Path) -> Iterator[tuple[str, Iterator[tuple[Any, ...]]]]:
    """(sheet title, non-empty rows) per sheet; a broken workbook is :class:`CorruptData`."""
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # zipfile.BadZipFile, KeyError, InvalidFileException, XML errors ...
        raise CorruptData(f"XLSX 파일이 손상되었거나 읽을 수 없습니다: {path.name}",
                          f"The XLSX file {path.name} is broken or unreadable ({type(exc).__name__}).",
                          details={"file": path.name}) from None
    try:
        for ws in wb.worksheets:
            rows = (r for r in ws.iter_rows(values_only=True) if any(v is not None and v != "" for v in r))
            yield ws.title, rows
    finally:
        wb.close()


def xlsx_facts(path: Path) -> FileFacts:
    facts = FileFacts(row_count=0)
    try:
        for n, (_, rows) in enumerate(xlsx_rows(path)):
            header = next(rows, None)
            if header is None:
                continue
            types: list[str | None] = [None] * len(header)
            for row in rows:
                facts.row_count = (facts.row_count or 0) + 1
                if n == 0:
                    for i, v in enumerate(row[: len(header)]):
                        types[i] = merge_types(types[i], portable_type(v))
            if n == 0:
                facts.schema = [ColumnSchema(name=str(c) if c is not None else f"column_{i + 1}", type=t or "string")
                                for i, (c, t) in enumerate(zip(header, types, strict=True))]
    except JisikError:
        raise
    except Exception as exc:
        raise CorruptData(f"XLSX 파일을 읽을 수 없습니다: {path.name}",
                          f"Cannot read the XLSX file {path.name} ({type(exc).__name__}).") from None
    return facts


def open_pdf(path: Path) -> Any:
    """A pypdf reader; a truncated / broken / encrypted PDF is a clear error naming the file."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(path, strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            raise InvalidInput(f"암호가 걸린 PDF입니다: {path.name}", f"The PDF {path.name} is password protected.")
        _ = len(reader.pages)
    except JisikError:
        raise
    except Exception as exc:
        raise CorruptData(f"PDF 파일이 손상되었거나 읽을 수 없습니다: {path.name}",
                          f"The PDF file {path.name} is broken or unreadable ({type(exc).__name__}: {exc}).",
                          details={"file": path.name}) from None
    return reader


def pickle_facts(path: Path) -> FileFacts:
    from jisik.pipeline.loaders import load_faq_pickle

    return FileFacts(row_count=len(load_faq_pickle(path)))


def jsonl_facts(path: Path) -> FileFacts:
    with path.open("rb") as f:
        return FileFacts(row_count=sum(1 for line in f if line.strip()))


def file_facts(path: Path, fmt: str, encoding: str | None = None) -> FileFacts:
    if fmt == "csv":
        return csv_facts(path, encoding)
    if fmt == "xlsx":
        return xlsx_facts(path)
    if fmt == "pdf":
        return FileFacts(page_count=len(open_pdf(path).pages))
    if fmt == "pkl":
        return pickle_facts(path)
    if fmt == "jsonl":
        return jsonl_facts(path)
    return FileFacts()


def _object_name(path: Path, base: Path) -> str:
    try:
        rel = path.relative_to(base)
    except ValueError:
        rel = Path(path.name)
    stem = rel.with_suffix("").as_posix().replace("/", "__")
    return _UNSAFE.sub("_", stem).strip("_") or "file"


class FileSource:
    kind = "file"

    def __init__(self, config: FileSourceConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def matches(self) -> list[tuple[Path, Path]]:
        """(file, directory its object name is relative to), in a stable order, each file once."""
        found: list[tuple[Path, Path]] = []
        seen: set[Path] = set()
        for entry in self.config.paths:
            expanded = os.path.expanduser(entry)
            if _MAGIC.search(expanded):
                prefix = _MAGIC.split(expanded, maxsplit=1)[0]
                base = Path(prefix) if prefix.endswith("/") else Path(prefix or ".").parent
                hits = [Path(p) for p in sorted(glob.glob(expanded, recursive=self.config.recursive))]
                files = [(p, base) for p in hits if p.is_file()]
                for p, _ in files:
                    file_format(p)
            elif Path(expanded).is_dir():
                root = Path(expanded)
                walk = root.rglob("*") if self.config.recursive else root.iterdir()
                files = sorted((p, root) for p in walk if p.is_file() and not p.name.startswith(".")
                               and _ALIASES.get(p.suffix.lower().lstrip("."), p.suffix.lower().lstrip("."))
                               in SUPPORTED)
            elif Path(expanded).is_file():
                file_format(Path(expanded))
                files = [(Path(expanded), Path(expanded).parent)]
            else:
                files = []
            if not files and not self.config.allow_empty:
                raise NotFound(f"소스 '{self.name}': 경로에 해당하는 파일이 없습니다: {entry}",
                               f"Source '{self.name}': no file matches {entry!r}.",
                               hint="check the path, or set allow_empty: true")
            for p, base in files:
                key = p.resolve()
                if key not in seen:
                    seen.add(key)
                    found.append((p, base))
        return found

    def extract(self, run: RunContext) -> list[Extracted]:
        cfg = self.config
        out: list[Extracted] = []
        names: set[str] = set()
        staging = run.staging_for(cfg.name)
        for path, base in self.matches():
            fmt = file_format(path)
            name = _object_name(path, base)
            stem, n = name, 1
            while name in names:
                n += 1
                name = f"{stem}-{n}"
            names.add(name)
            dest = staging / f"{name}.{fmt}"
            shutil.copyfile(path, dest)
            facts = file_facts(dest, fmt, cfg.encoding)
            parser = cfg.parser or ("faq" if fmt == "pkl" else None)
            hints = ParseHints.from_table(cfg.hints, parser=parser, encoding=facts.encoding)
            out.append(Extracted(
                path=dest, name=name, fmt=fmt, source=cfg.name, source_kind="faq" if fmt == "pkl" else "file",
                file=str(path.resolve()), params=hints.to_params(), row_count=facts.row_count,
                page_count=facts.page_count, schema=facts.schema, content_type=CONTENT_TYPES[fmt],
            ))
        log.info("file source extracted", extra={"source": cfg.name, "files": len(out)})
        return out
