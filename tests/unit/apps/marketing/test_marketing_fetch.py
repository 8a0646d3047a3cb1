"""file_url fetching under the SSRF guard, against real local HTTP servers.

The local server is explicitly trusted as the *first* hop only (``private_hosts``); everything
else that leads to a non-public address is refused before a connection is made: loopback,
169.254.169.254 (cloud metadata), private ranges, IPv6 and numeric spellings of them, and
redirects to any of them. Schemes other than http(s), credentials in URLs, hosts outside the
allow-list, wrong content types and oversized files are refused too."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from jisik.apps.marketing.fetch import (
    FetchFailed,
    FetchPolicy,
    SafeFetcher,
    UrlNotAllowed,
    address_is_public,
    host_allowed,
    public_url,
)
from jisik.core.errors import InvalidInput
from unit.apps.marketing.marketing_helpers import FileServer, internal_server, pdf_route, redirect_route

pytestmark = pytest.mark.anyio
PAGES = ["시니어 고객 전용 상담 창구를 모든 영업점에서 운영합니다.", "상담 예약은 고객센터 1588-0000에서 받습니다."]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def other() -> Iterator[FileServer]:
    """A second local server that must never be reached."""
    with internal_server() as srv:
        yield srv


@pytest.fixture
def files(other: FileServer) -> Iterator[FileServer]:
    routes = {
        "/doc.pdf": pdf_route(PAGES),
        "/note.txt": (200, {"Content-Type": "text/plain; charset=utf-8"}, "알림: 상담 창구 운영".encode()),
        "/note-cp949.txt": (200, {"Content-Type": "text/plain"}, "상담 창구 운영 안내".encode("cp949")),
        "/page.html": (200, {"Content-Type": "text/html"}, b"<html></html>"),
        "/fake.pdf": (200, {"Content-Type": "application/pdf"}, b"not a pdf"),
        "/big.pdf": pdf_route(["가" * 3000]),
        "/lying.pdf": (200, {"Content-Type": "application/pdf", "Content-Length": "100"}, b"%PDF-" + b"x" * 95),
        "/missing.pdf": (404, {"Content-Type": "text/plain"}, b"no"),
        "/to-loopback": redirect_route(f"{other.url}/secret"),
        "/to-metadata": redirect_route("http://169.254.169.254/latest/meta-data/iam/security-credentials/"),
        "/to-self": redirect_route("/doc.pdf"),
        "/to-file": redirect_route("file:///etc/passwd"),
        "/to-public": redirect_route("http://files.example.com/doc.pdf"),
        "/loop": redirect_route("/loop"),
    }
    with FileServer(routes) as srv:
        yield srv


def policy(files: FileServer, **overrides: object) -> FetchPolicy:
    base: dict[str, object] = {"schemes": ("http", "https"), "hosts": ("*",),
                               "private_hosts": (f"127.0.0.1:{files.port}",), "max_bytes": 4096}
    return FetchPolicy(**(base | overrides))  # type: ignore[arg-type]


def refused(err: pytest.ExceptionInfo[UrlNotAllowed], reason: str, hop: int = 0) -> None:
    e = err.value
    assert e.status == 422 and e.code == "url_not_allowed" and e.message_ko and e.message_en
    assert e.details["reason"] == reason and e.details["hop"] == hop and e.details["field"] == "file_url"


async def test_the_trusted_local_server_serves_a_pdf(files: FileServer) -> None:
    text = await SafeFetcher(policy(files)).fetch_text(f"{files.url}/doc.pdf?X-Amz-Signature=secret")
    assert text.pages == PAGES and text.content_type == "application/pdf" and not text.truncated_pages
    assert text.url == f"{files.url}/doc.pdf"  # the query (a pre-signed URL's credentials) is never kept


async def test_plain_text_in_utf8_or_cp949(files: FileServer) -> None:
    fetcher = SafeFetcher(policy(files))
    assert (await fetcher.fetch_text(f"{files.url}/note.txt")).pages == ["알림: 상담 창구 운영"]
    assert (await fetcher.fetch_text(f"{files.url}/note-cp949.txt")).pages == ["상담 창구 운영 안내"]


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/", "http://127.0.0.1:{other}/secret", "http://localhost:{other}/secret",
    "http://169.254.169.254/latest/meta-data/", "http://[::1]:{other}/secret", "http://[::ffff:127.0.0.1]:{other}/",
    "http://2130706433:{other}/secret", "http://0x7f000001:{other}/secret", "http://0.0.0.0:{other}/",
    "http://10.0.0.1/", "http://192.168.0.1/", "http://172.16.0.1/", "http://100.64.0.1/", "http://224.0.0.1/",
    "http://[fe80::1]/",
])
async def test_non_public_addresses_are_refused_before_connecting(files: FileServer, other: FileServer,
                                                                  url: str) -> None:
    with pytest.raises(UrlNotAllowed) as err:
        await SafeFetcher(policy(files)).fetch(url.format(other=other.port))
    refused(err, "private_address")
    assert other.seen == []


async def test_every_resolved_address_must_be_public(files: FileServer) -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "127.0.0.1"]  # one public answer does not make a private one safe

    async def private(host: str, port: int) -> list[str]:
        return ["10.1.2.3"]

    for resolver in (mixed, private):
        with pytest.raises(UrlNotAllowed) as err:
            await SafeFetcher(policy(files), resolver=resolver).fetch("https://intranet.example.com/doc.pdf")
        refused(err, "private_address")


@pytest.mark.parametrize(("path", "hop"), [("/to-loopback", 1), ("/to-metadata", 1), ("/to-self", 1)])
async def test_redirects_into_the_private_network_are_refused(files: FileServer, other: FileServer, path: str,
                                                              hop: int) -> None:
    """The local server is trusted as the first hop only: no redirect may lead to a private address,
    not even back to the same server."""
    with pytest.raises(UrlNotAllowed) as err:
        await SafeFetcher(policy(files)).fetch(f"{files.url}{path}")
    refused(err, "private_address", hop)
    assert other.seen == [] and files.seen == [path]


async def test_each_redirect_hop_is_checked_again(files: FileServer) -> None:
    with pytest.raises(UrlNotAllowed) as err:
        await SafeFetcher(policy(files)).fetch(f"{files.url}/to-file")
    refused(err, "scheme", 1)
    with pytest.raises(UrlNotAllowed) as err:
        await SafeFetcher(policy(files, hosts=("127.0.0.1",))).fetch(f"{files.url}/to-public")
    refused(err, "host_not_allowed", 1)
    with pytest.raises(UrlNotAllowed) as err:
        await SafeFetcher(policy(files, max_redirects=0)).fetch(f"{files.url}/loop")
    refused(err, "redirect_limit", 1)


async def test_connections_go_to_the_checked_address_and_redirects_are_limited() -> None:
    """DNS is asked once per hop and the request goes to that very address (no second lookup that
    could answer differently); the host name travels in Host and in TLS SNI."""
    lookups: list[str] = []
    requests: list[httpx.Request] = []

    async def public(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["93.184.216.34"]

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(302, headers={"Location": "/next"})

    fetcher = SafeFetcher(FetchPolicy(max_redirects=2), resolver=public, transport=httpx.MockTransport(handler))
    with pytest.raises(UrlNotAllowed) as err:
        await fetcher.fetch("https://files.example.com/start.pdf")
    refused(err, "redirect_limit", 3)
    assert lookups == ["files.example.com"] * 3 and len(requests) == 3
    first = requests[0]
    assert str(first.url) == "https://93.184.216.34/start.pdf" and first.headers["host"] == "files.example.com"
    assert first.extensions["sni_hostname"] == "files.example.com" and requests[1].url.path == "/next"


@pytest.mark.parametrize(("url", "reason"), [
    ("file:///etc/passwd", "scheme"), ("ftp://example.com/a.pdf", "scheme"), ("gopher://127.0.0.1:70/_x", "scheme"),
    ("dict://127.0.0.1:11211/stat", "scheme"), ("//example.com/a.pdf", "scheme"), ("example.com/a.pdf", "scheme"),
    ("https://user:pw@example.com/a.pdf", "credentials"), ("https:///a.pdf", "malformed"),
    ("http://[::1/", "malformed"),
])
async def test_urls_refused_by_their_form(files: FileServer, url: str, reason: str) -> None:
    with pytest.raises(UrlNotAllowed) as err:
        await SafeFetcher(policy(files)).fetch(url)
    refused(err, reason)


async def test_only_allowed_hosts_and_schemes(files: FileServer) -> None:
    strict = SafeFetcher(FetchPolicy(hosts=("files.example.com", "*.cdn.example.com")))
    with pytest.raises(UrlNotAllowed) as err:
        await strict.fetch("https://evil.example.net/a.pdf")
    refused(err, "host_not_allowed")
    with pytest.raises(UrlNotAllowed) as err:
        await strict.fetch("http://files.example.com/a.pdf")  # https only by default
    refused(err, "scheme")
    assert host_allowed("a.cdn.example.com", ["*.cdn.example.com"]) and not host_allowed("cdn.example.com.evil.io",
                                                                                           ["*.cdn.example.com"])
    with pytest.raises(InvalidInput):
        FetchPolicy(schemes=("https", "file"))


@pytest.mark.parametrize(("path", "reason"), [
    ("/page.html", "content_type"), ("/big.pdf", "too_large"), ("/lying.pdf", "too_large"), ("/fake.pdf", "unreadable"),
])
async def test_content_type_size_and_format_limits(files: FileServer, path: str, reason: str) -> None:
    fetcher = SafeFetcher(policy(files, max_bytes=2048 if path != "/lying.pdf" else 50))
    with pytest.raises(UrlNotAllowed) as err:
        await fetcher.fetch_text(f"{files.url}{path}")
    assert err.value.details["reason"] == reason


async def test_remote_failures_are_fetch_failed(files: FileServer) -> None:
    async def offline(host: str, port: int) -> list[str]:
        raise OSError("no DNS here")

    with pytest.raises(FetchFailed) as err:
        await SafeFetcher(policy(files), resolver=offline).fetch("https://your-s3-url.com/sample.pdf")
    assert err.value.status == 502 and "your-s3-url.com" in err.value.message_ko
    with pytest.raises(FetchFailed) as err:
        await SafeFetcher(policy(files)).fetch(f"{files.url}/missing.pdf")
    assert err.value.details["status"] == 404
    files.httpd.server_close()  # nothing listens any more on the trusted port
    with pytest.raises(FetchFailed):
        await SafeFetcher(policy(files)).fetch(f"{files.url}/doc.pdf")


@pytest.mark.parametrize(("address", "public"), [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True), ("127.0.0.1", False),
    ("169.254.169.254", False), ("10.0.0.1", False), ("100.64.0.1", False), ("224.0.0.251", False),
    ("0.0.0.0", False), ("::1", False), ("::ffff:10.0.0.1", False), ("fe80::1%eth0", False), ("fc00::1", False),
    ("2002:7f00:1::", False), ("not-an-ip", False),
])
def test_address_is_public(address: str, public: bool) -> None:
    assert address_is_public(address) is public


def test_public_url_drops_credentials_and_query() -> None:
    assert public_url("https://u:p@host.example.com:8443/a/b.pdf?sig=1#x") == "https://host.example.com:8443/a/b.pdf"
