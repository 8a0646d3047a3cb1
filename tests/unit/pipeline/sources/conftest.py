"""Fixtures for the source tests: a run context, a stand-in for landing (Extracted -> Manifest),
and small document builders (PDF written by hand, DOCX/XLSX with their libraries)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from jisik.core.hashing import sha256_file
from jisik.pipeline.manifest import Extracted, Manifest, object_key
from jisik.pipeline.sources.base import RunContext, SqliteStateStore

ManifestFor = Callable[[Extracted, RunContext], Manifest]


@pytest.fixture()
def state(tmp_path: Path) -> SqliteStateStore:
    return SqliteStateStore(tmp_path / "state" / "state.db")


@pytest.fixture()
def new_run(tmp_path: Path, state: SqliteStateStore) -> Callable[[], RunContext]:
    return lambda: RunContext.create(tmp_path / "staging", state)


@pytest.fixture()
def run(new_run: Callable[[], RunContext]) -> RunContext:
    return new_run()


def _manifest_for(e: Extracted, run: RunContext) -> Manifest:
    """What landing writes next to the object (the fields the parsers read)."""
    return Manifest(
        key=object_key(e.source, run.extracted_at, run.run_id, e.name, e.fmt), source=e.source,
        source_kind=e.source_kind, run_id=run.run_id, extracted_at=run.extracted_at, format=e.fmt,
        content_type=e.content_type, sha256=sha256_file(e.path), byte_size=e.path.stat().st_size, query=e.query,
        file=e.file, params=e.params, row_count=e.row_count, page_count=e.page_count, schema=e.schema,
        masked_columns=e.masked_columns, cursor=e.cursor,
    )


@pytest.fixture()
def manifest_for() -> ManifestFor:
    return _manifest_for


def make_pdf(pages: list[str]) -> bytes:
    """A valid PDF with one Helvetica text line per page ("" = a page without text)."""
    n = len(pages)
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(n))}] /Count {n} >>".encode(),
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, text in enumerate(pages):
        content = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode() if text else b""
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
                    f"/Contents {5 + 2 * i} 0 R >>".encode())
        objs.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    out = b"%PDF-1.4\n"
    offsets = []
    for i, obj in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


@pytest.fixture()
def pdf_bytes() -> Callable[[list[str]], bytes]:
    return make_pdf
