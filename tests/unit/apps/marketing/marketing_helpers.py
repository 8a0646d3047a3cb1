"""Shared by the scene01 (marketing app) tests: a knowledge base with the bundled event tables and
the finlife samples, a PDF with Korean text, a local file server, and an LLM that follows a script.

Imported as ``unit.apps.marketing.marketing_helpers`` (``tests`` is on the path) by the unit and
the API tests alike.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from chat_fixtures import ScriptedLLM
from jisik.apps.marketing import ingest_marketing, marketing_documents
from jisik.core.settings import Settings
from jisik.core.types import Hit
from jisik.models.llm.base import ChatMessage, TokenStream
from jisik.pipeline.sources.finlife import finlife_documents
from jisik.runtime import Runtime

FINLIFE_DEPOSITS = Path("fss_finlife") / "cashfit_deposit_fss_format.json"


def build_marketing_runtime(home: Path, shared_data: Path | None = None, **settings: Any) -> Runtime:
    """A runtime over ``home`` whose ``marketing`` collection holds the bundled event tables (and the
    finlife deposit samples from the shared data, read in place, when ``shared_data`` is given)."""
    rt = Runtime(Settings(home=home, **settings))
    docs = marketing_documents()
    if shared_data is not None:
        docs += list(finlife_documents(shared_data / FINLIFE_DEPOSITS, "finlife/deposit", "deposit"))
    ingest_marketing(rt, docs)
    return rt


def korean_pdf(pages: Sequence[str]) -> bytes:
    """A valid PDF with one line of (Korean) text per page: a Type0 font whose glyph ids are the
    characters' code points, with a ToUnicode map so that text extraction gets them back."""
    chars = sorted({c for page in pages for c in page})
    pairs = "".join(f"<{ord(c):04X}> <{ord(c):04X}>\n" for c in chars)
    cmap = ("/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n"
            "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
            "/CMapName /Adobe-Identity-UCS def /CMapType 2 def\n"
            "1 begincodespacerange <0000> <FFFF> endcodespacerange\n"
            f"{len(chars)} beginbfchar\n{pairs}endbfchar\nendcmap CMapName currentdict /CMap defineresource pop "
            "end end").encode()

    def stream(data: bytes) -> bytes:
        return b"<< /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"

    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>", b"",
        b"<< /Type /Font /Subtype /Type0 /BaseFont /KoreanTest /Encoding /Identity-H /DescendantFonts [4 0 R] "
        b"/ToUnicode 5 0 R >>",
        b"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /KoreanTest /CIDSystemInfo << /Registry (Adobe) "
        b"/Ordering (Identity) /Supplement 0 >> >>",
        stream(cmap)]
    kids = []
    for text in pages:
        glyphs = "".join(f"{ord(c):04X}" for c in text).encode()
        objects.append(stream(b"BT /F1 12 Tf 72 720 Td <" + glyphs + b"> Tj ET"))
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> "
                       f">> /Contents {len(objects)} 0 R >>".encode())
        kids.append(len(objects))
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>".encode()
    return _serialise(objects)


def _serialise(objects: list[bytes]) -> bytes:
    """Objects 1..n, then the cross-reference table pointing at each (object 1 is the catalog)."""
    head = b"%PDF-1.4\n"
    bodies = [b"%d 0 obj\n%s\nendobj\n" % (n, obj) for n, obj in enumerate(objects, 1)]
    starts = list(itertools.accumulate((len(b) for b in bodies[:-1]), initial=len(head)))
    table = "".join(f"{start:010d} 00000 n \n" for start in starts)
    tail = (f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n{table}trailer\n<< /Size {len(objects) + 1} "
            f"/Root 1 0 R >>\nstartxref\n{len(head) + sum(map(len, bodies))}\n%%EOF\n")
    return head + b"".join(bodies) + tail.encode()


Route = tuple[int, dict[str, str], bytes]


class FileServer:
    """A real HTTP server on 127.0.0.1 (own thread) answering ``routes[path]`` = (status, headers,
    body); ``seen`` lists the paths requested, so a test can tell that nothing reached it."""

    def __init__(self, routes: dict[str, Route] | None = None) -> None:
        self.routes: dict[str, Route] = dict(routes or {})
        self.seen: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.seen.append(self.path)
                status, headers, body = server.routes.get(self.path.split("?", 1)[0], (404, {}, b"not found"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def internal_server() -> FileServer:
    """A server standing for the internal network: a test passes when nothing ever reaches it."""
    return FileServer({"/secret": (200, {"Content-Type": "text/plain"}, "내부 비밀".encode())})


def pdf_route(pages: Sequence[str]) -> Route:
    return 200, {"Content-Type": "application/pdf"}, korean_pdf(pages)


def redirect_route(location: str) -> Route:
    return 302, {"Location": location}, b""


class ScriptLLM(ScriptedLLM):
    """An LLM provider whose answer to each call is ``script(messages)`` (calls are recorded)."""

    name = "script"
    model_id = "test/script"

    def __init__(self, script: Callable[[list[ChatMessage]], str]) -> None:
        super().__init__("")
        self.script = script

    def stream(self, messages: Sequence[ChatMessage], *, max_tokens: int | None = None,
               temperature: float | None = None, stop: Sequence[str] | None = None, hits: Sequence[Hit] = (),
               question: str | None = None) -> TokenStream:
        self.answer = self.script(list(messages))
        return super().stream(messages)


def replies(*answers: str) -> Callable[[list[ChatMessage]], str]:
    """A script answering ``answers`` in turn (the last one again when they run out)."""
    queue = list(answers)

    def script(messages: list[ChatMessage]) -> str:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return script
