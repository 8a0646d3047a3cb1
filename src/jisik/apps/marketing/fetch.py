"""``file_url``: fetch a document for extra context without opening a door into the network (SSRF).

Every hop (the given URL and each redirect) is checked before anything is sent:

1. scheme in ``fetch_allowed_schemes`` (only ``http`` / ``https`` can ever be allowed: no
   ``file:``, ``ftp:``, ``gopher:``...); no user name or password in the URL;
2. host in ``fetch_allowed_hosts`` (``*`` = any host, ``*.example.com`` = its subdomains);
3. the host is resolved and **every** address must be public: private, loopback, link-local
   (169.254.169.254, the cloud metadata service), multicast, reserved, unspecified, shared
   (100.64/10) and IPv4-mapped forms of them are refused. The connection then goes to the checked
   address itself (TLS still verifies the host name through SNI), so DNS cannot answer differently
   between the check and the connection (rebinding);
4. ``fetch_private_hosts`` (``host`` or ``host:port``) lifts check 3 for the URL the caller gave only —
   a redirect can never lead into the private network, whoever sends it;
5. at most ``fetch_max_redirects`` redirects, each re-checked from 1.

The answer must be 2xx with a content type in ``fetch_allowed_content_types`` and at most
``fetch_max_bytes`` (counted while reading, whatever Content-Length says). PDF text is extracted
with pypdf (at most ``fetch_max_pdf_pages`` pages), plain text is decoded (UTF-8, else CP949).

Errors: a URL or file the policy refuses is :class:`UrlNotAllowed` (422, the caller can fix it);
the remote side failing (DNS, connection, timeout, HTTP error) is :class:`FetchFailed` (502).
URLs are never logged or echoed with their query string (pre-signed URLs carry credentials).
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx

from jisik.core.errors import InvalidInput, JisikError
from jisik.core.logging import get_logger
from jisik.core.settings import Settings

log = get_logger(__name__)

SUPPORTED_SCHEMES = frozenset({"http", "https"})
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024

Resolver = Callable[[str, int], Awaitable[list[str]]]


class UrlNotAllowed(InvalidInput):
    """The URL (or where it redirects to, or what it serves) is refused by the fetch policy."""

    code = "url_not_allowed"


class FetchFailed(JisikError):
    """The remote side failed: unknown host, no connection, timeout, or an HTTP error status."""

    status = 502
    code = "fetch_failed"


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    schemes: tuple[str, ...] = ("https",)
    hosts: tuple[str, ...] = ("*",)
    private_hosts: tuple[str, ...] = ()
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 3
    timeout_s: float = 10.0
    content_types: tuple[str, ...] = ("application/pdf", "text/plain")
    max_pdf_pages: int = 50

    def __post_init__(self) -> None:
        bad = sorted(set(self.schemes) - SUPPORTED_SCHEMES)
        if bad:
            raise InvalidInput(f"허용할 수 없는 URL 스킴입니다: {bad} (http, https만 가능)",
                               f"URL schemes {bad} cannot be allowed; only http and https are supported.")

    @classmethod
    def from_settings(cls, s: Settings) -> FetchPolicy:
        return cls(schemes=tuple(x.lower() for x in s.fetch_allowed_schemes),
                   hosts=tuple(x.lower() for x in s.fetch_allowed_hosts),
                   private_hosts=tuple(x.lower() for x in s.fetch_private_hosts), max_bytes=s.fetch_max_bytes,
                   max_redirects=s.fetch_max_redirects, timeout_s=s.fetch_timeout_s,
                   content_types=tuple(x.lower() for x in s.fetch_allowed_content_types),
                   max_pdf_pages=s.fetch_max_pdf_pages)


@dataclass(slots=True)
class Fetched:
    url: str  # the final URL without its query string
    content_type: str
    data: bytes
    redirects: int


@dataclass(slots=True)
class FileText:
    url: str  # without the query string
    content_type: str
    size: int
    pages: list[str] = field(default_factory=list)  # text per page (one entry for plain text)
    truncated_pages: bool = False


def public_url(url: str) -> str:
    """``url`` without user info, query and fragment (safe to show and log)."""
    try:
        p = urlsplit(url)
        host = p.hostname or ""
        port = f":{p.port}" if p.port else ""
    except ValueError:
        return "(invalid url)"
    host = f"[{host}]" if ":" in host else host
    return f"{p.scheme}://{host}{port}{p.path}"


def address_is_public(address: str) -> bool:
    """True only for globally routable unicast addresses (IPv4-mapped/6to4/Teredo IPv6 unwrapped)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None and not address_is_public(str(inner)):
            return False
    return bool(ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                      or ip.is_reserved or ip.is_unspecified))


def host_allowed(host: str, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if pattern == "*" or pattern == host:
            return True
        if pattern.startswith("*.") and host.endswith(pattern[1:]):
            return True
    return False


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _refuse(reason: str, ko: str, en: str, url: str, hop: int) -> UrlNotAllowed:
    return UrlNotAllowed(ko, en, hint="file_url에는 허용된 공개 주소의 PDF나 텍스트 파일만 쓸 수 있습니다. "
                         "(Only PDF or text files on allowed public hosts can be fetched.)",
                         details={"field": "file_url", "reason": reason, "url": public_url(url), "hop": hop})


@dataclass(slots=True)
class _Target:
    scheme: str
    host: str  # lower-case, IDNA-encoded, without brackets
    port: int
    path: str  # path + query, what is requested


class SafeFetcher:
    """Fetches one URL under a :class:`FetchPolicy`; ``resolver`` maps (host, port) to addresses."""

    def __init__(self, policy: FetchPolicy, *, resolver: Resolver | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.policy = policy
        self.resolver = resolver or system_resolver
        self._transport = transport

    async def fetch(self, url: str) -> Fetched:
        p = self.policy
        try:
            async with asyncio.timeout(p.timeout_s * (p.max_redirects + 2)), httpx.AsyncClient(
                    transport=self._transport, trust_env=False, follow_redirects=False,
                    timeout=httpx.Timeout(p.timeout_s)) as client:
                return await self._follow(client, url)
        except TimeoutError:
            raise FetchFailed("파일을 가져오는 데 시간이 너무 오래 걸립니다.", "Fetching the file timed out.",
                              details={"field": "file_url", "url": public_url(url)}) from None

    async def fetch_text(self, url: str) -> FileText:
        fetched = await self.fetch(url)
        return await asyncio.to_thread(extract_text, fetched, self.policy.max_pdf_pages)

    async def _follow(self, client: httpx.AsyncClient, url: str) -> Fetched:
        current = url
        for hop in range(self.policy.max_redirects + 1):
            target = self._check_url(current, hop)
            addresses = await self._resolve(target, current, hop)
            response_or_location = await self._get(client, target, addresses, current)
            if isinstance(response_or_location, Fetched):
                response_or_location.redirects = hop
                return response_or_location
            current = urljoin(current, response_or_location)
        raise _refuse("redirect_limit", f"리다이렉트가 너무 많습니다 (최대 {self.policy.max_redirects}번).",
                      f"Too many redirects (at most {self.policy.max_redirects}).", current,
                      self.policy.max_redirects + 1)

    def _check_url(self, url: str, hop: int) -> _Target:
        try:
            parts = urlsplit(url.strip())
            port = parts.port
            host = parts.hostname or ""
        except ValueError:
            raise _refuse("malformed", "URL 형식이 올바르지 않습니다.", "Malformed URL.", url, hop) from None
        scheme = parts.scheme.lower()
        if scheme not in self.policy.schemes:
            raise _refuse("scheme", f"허용되지 않은 URL 스킴입니다: {scheme or '(없음)'} (허용: "
                          f"{', '.join(self.policy.schemes)})",
                          f"URL scheme {scheme or '(none)'!r} is not allowed (allowed: "
                          f"{', '.join(self.policy.schemes)}).", url, hop)
        if parts.username is not None or parts.password is not None:
            raise _refuse("credentials", "URL에 사용자 이름이나 비밀번호를 넣을 수 없습니다.",
                          "URLs with user names or passwords are not allowed.", url, hop)
        if not host:
            raise _refuse("malformed", "URL에 호스트가 없습니다.", "The URL has no host.", url, hop)
        try:
            host = host.encode("idna").decode("ascii").lower() if not host.isascii() else host.lower()
        except UnicodeError:
            raise _refuse("malformed", "호스트 이름이 올바르지 않습니다.", "Invalid host name.", url, hop) from None
        if not host_allowed(host, self.policy.hosts):
            raise _refuse("host_not_allowed", f"허용되지 않은 호스트입니다: {host}",
                          f"Host {host} is not in fetch_allowed_hosts.", url, hop)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return _Target(scheme, host, port or (443 if scheme == "https" else 80), path)

    async def _resolve(self, t: _Target, url: str, hop: int) -> list[str]:
        try:
            ipaddress.ip_address(t.host)
            addresses = [t.host]
        except ValueError:
            try:
                addresses = await self.resolver(t.host, t.port)
            except (OSError, UnicodeError) as exc:
                raise FetchFailed(f"호스트를 찾을 수 없습니다: {t.host}", f"Cannot resolve host {t.host}.",
                                  details={"field": "file_url", "url": public_url(url), "error": type(exc).__name__}
                                  ) from None
        if not addresses:
            raise FetchFailed(f"호스트를 찾을 수 없습니다: {t.host}", f"Cannot resolve host {t.host}.",
                              details={"field": "file_url", "url": public_url(url)})
        trusted = hop == 0 and (t.host in self.policy.private_hosts
                                or f"{t.host}:{t.port}" in self.policy.private_hosts)
        if not trusted and not all(address_is_public(a) for a in addresses):
            log.warning("file_url refused: non-public address", extra={"host": t.host, "hop": hop})
            raise _refuse("private_address", "내부망 주소(사설·루프백·링크로컬·멀티캐스트 등)로 연결되는 URL은 "
                          "가져올 수 없습니다.", "The URL leads to a non-public address (private, loopback, "
                          "link-local, multicast or reserved).", url, hop)
        return addresses

    async def _get(self, client: httpx.AsyncClient, t: _Target, addresses: list[str], url: str) -> Fetched | str:
        default = 443 if t.scheme == "https" else 80
        host_header = t.host if t.port == default else f"{t.host}:{t.port}"
        last: Exception | None = None
        for address in addresses:
            literal = f"[{address}]" if ":" in address else address
            request = client.build_request(
                "GET", f"{t.scheme}://{literal}:{t.port}{t.path}",
                headers={"Host": host_header, "Accept": ", ".join(self.policy.content_types),
                         "User-Agent": "jisik-scene01"},
                extensions={"sni_hostname": t.host} if t.scheme == "https" else {})
            try:
                response = await client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = exc
                continue
            except httpx.HTTPError as exc:
                raise FetchFailed("파일을 가져오지 못했습니다.", f"Fetching the file failed: {type(exc).__name__}",
                                  details={"field": "file_url", "url": public_url(url)}) from None
            try:
                return await self._read(response, url)
            finally:
                await response.aclose()
        raise FetchFailed(f"{t.host}에 연결할 수 없습니다.", f"Cannot connect to {t.host}.",
                          details={"field": "file_url", "url": public_url(url),
                                   "error": type(last).__name__ if last else ""})

    async def _read(self, response: httpx.Response, url: str) -> Fetched | str:
        if response.status_code in _REDIRECTS:
            location = response.headers.get("location")
            if not location:
                raise FetchFailed("리다이렉트 응답에 이동할 주소가 없습니다.", "A redirect without a Location header.",
                                  details={"field": "file_url", "url": public_url(url)})
            return location
        if not 200 <= response.status_code < 300:
            raise FetchFailed(f"파일 서버가 오류를 돌려주었습니다 (HTTP {response.status_code}).",
                              f"The file server answered HTTP {response.status_code}.",
                              details={"field": "file_url", "url": public_url(url), "status": response.status_code})
        kind = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind not in self.policy.content_types:
            raise _refuse("content_type", f"허용되지 않은 파일 형식입니다: {kind or '(없음)'} (허용: "
                          f"{', '.join(self.policy.content_types)})",
                          f"Content type {kind or '(none)'!r} is not allowed.", url, 0)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.policy.max_bytes:
            raise self._too_large(url)
        data = bytearray()
        async for chunk in response.aiter_bytes(_CHUNK):
            data += chunk
            if len(data) > self.policy.max_bytes:
                raise self._too_large(url)
        return Fetched(public_url(url), kind, bytes(data), 0)

    def _too_large(self, url: str) -> UrlNotAllowed:
        mb = self.policy.max_bytes / 1_048_576
        return _refuse("too_large", f"파일이 너무 큽니다 (최대 {mb:g}MB).",
                       f"The file is larger than {self.policy.max_bytes} bytes.", url, 0)


def extract_text(fetched: Fetched, max_pages: int) -> FileText:
    """The text of a fetched PDF (per page) or plain-text file."""
    out = FileText(fetched.url, fetched.content_type, len(fetched.data))
    if fetched.data.startswith(b"%PDF-"):
        from pypdf import PdfReader

        try:
            reader = PdfReader(io.BytesIO(fetched.data), strict=False)
            if reader.is_encrypted and not reader.decrypt(""):
                raise _refuse("encrypted", "암호가 걸린 PDF는 읽을 수 없습니다.", "The PDF is password protected.",
                              fetched.url, 0)
            pages = reader.pages
            out.truncated_pages = len(pages) > max_pages
            out.pages = [(pages[i].extract_text() or "").strip() for i in range(min(len(pages), max_pages))]
        except JisikError:
            raise
        except Exception as exc:
            raise _refuse("unreadable", "PDF 파일이 손상되었거나 읽을 수 없습니다.",
                          f"The PDF cannot be read ({type(exc).__name__}).", fetched.url, 0) from None
        return out
    if fetched.content_type == "application/pdf":
        raise _refuse("unreadable", "PDF 형식이 아닌 파일입니다.", "The file is not a PDF.", fetched.url, 0)
    for encoding in ("utf-8-sig", "cp949"):
        try:
            out.pages = [fetched.data.decode(encoding).strip()]
            return out
        except UnicodeDecodeError:
            continue
    raise _refuse("unreadable", "텍스트 파일의 인코딩을 알 수 없습니다 (UTF-8 또는 CP949).",
                  "The text file is neither UTF-8 nor CP949.", fetched.url, 0)
