"""The OCSP download service (port 5577) and its client (protocols.md §4.2, §10.3).

A security server serves the OCSP responses of its own certificates (authentication chain) to
the consumers that verify its TLS certificate:

``GET http://<address>:5577/?cert=<hex SHA-1>&…&cert_hash=<hex SHA-256>&…`` answers
``multipart/related; type="application/ocsp-response"; charset=UTF-8; boundary=…`` with one
``application/ocsp-response`` part per requested certificate, in request order.  7.x peers
send ``cert`` (SHA-1) only, 7.8 peers both lists, newer ones ``cert_hash`` only: SHA-256 is
preferred, and when both lists are present (same length, paired by position) a certificate
the SHA-256 hash finds no response for is looked up again by its SHA-1 hash.  ``HEAD`` is a
health check (200).  A certificate without a response is HTTP 500 with a text body, as in
NIIS; a malformed query is 400, another method 405, always text, never a traceback.

The responses come from an :data:`OcspProvider` (the signer client's ``ocsp_responses``).

:func:`fetch_peer_ocsp` is the consumer's side: connect timeout 20 s, read timeout 30 s,
exactly as many responses as certificates asked for, coded errors.
"""

from __future__ import annotations

import inspect
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp import web
from cryptography import x509
from multidict import MultiMapping
from yarl import URL

from crossroad.crypto.algorithms import SHA1, SHA256
from crossroad.crypto.certs import cert_der
from crossroad.errors import Code, XRoadError
from crossroad.wire.mime import MULTIPART_RELATED, ContentType, MultipartWriter, parse_multipart

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_PORT",
    "MAX_CERTS",
    "OCSP_RESPONSE",
    "READ_TIMEOUT",
    "CertQuery",
    "OcspProvider",
    "fetch_peer_ocsp",
    "lookup",
    "ocsp_app",
    "parse_query",
    "parse_response",
    "render_response",
    "start_ocsp_service",
]

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 5577
OCSP_RESPONSE: Final = "application/ocsp-response"
SHA1_PARAM: Final = "cert"
SHA256_PARAM: Final = "cert_hash"
CONNECT_TIMEOUT: Final = 20.0
READ_TIMEOUT: Final = 30.0
#: More than any authentication chain has; bounds the work one request can ask for.
MAX_CERTS: Final = 32
#: Bounds what a consumer reads from a peer (OCSP responses are a few KB each).
MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024

_HEX = re.compile(r"[0-9a-fA-F]+")

#: ``provider(hex hashes) -> responses``: one entry per hash (SHA-1 hex: 40 digits, SHA-256:
#: 64), ``None`` where there is no usable response.  May be a coroutine function.
OcspProvider = Callable[[Sequence[str]], Awaitable[Sequence[bytes | None]] | Sequence[bytes | None]]


# ---------------------------------------------------------------------------------------------
# Server


@dataclass(frozen=True)
class CertQuery:
    """One requested certificate: its SHA-256 and/or SHA-1 hash (lower-case hex)."""

    sha256: str | None
    sha1: str | None

    @property
    def preferred(self) -> str:
        found = self.sha256 or self.sha1
        if found is None:  # parse_query never builds one
            raise XRoadError(Code.INVALID_REQUEST, "A certificate query without a hash")
        return found


def _hex_values(query: MultiMapping[str], name: str, length: int) -> list[str]:
    values = []
    for value in query.getall(name, []):
        text = value.strip()
        if len(text) != length or not _HEX.fullmatch(text):
            raise XRoadError(
                Code.INVALID_REQUEST,
                f"Parameter {name} must be {length} hexadecimal digits: {value[:80]!r}",
            )
        values.append(text.lower())
    return values


def parse_query(query: MultiMapping[str]) -> list[CertQuery]:
    """The certificates a request asks for, in order; ``invalid_request`` when it asks for
    none, too many, or gives something that is not a hash."""
    sha256 = _hex_values(query, SHA256_PARAM, 64)
    sha1 = _hex_values(query, SHA1_PARAM, 40)
    if not sha256 and not sha1:
        raise XRoadError(Code.INVALID_REQUEST, "Could not get cert hashes")
    count = len(sha256) or len(sha1)
    if count > MAX_CERTS:
        raise XRoadError(
            Code.INVALID_REQUEST, f"Too many certificates in one request ({count} > {MAX_CERTS})"
        )
    if not sha256:
        return [CertQuery(None, h) for h in sha1]
    paired = len(sha1) == len(sha256)
    return [CertQuery(h, sha1[i] if paired else None) for i, h in enumerate(sha256)]


async def _ask(provider: OcspProvider, hashes: Sequence[str]) -> list[bytes | None]:
    answer = provider(list(hashes))
    if inspect.isawaitable(answer):
        answer = await answer
    found = list(answer)
    if len(found) != len(hashes):
        raise XRoadError(
            Code.INTERNAL_ERROR,
            f"OCSP provider answered {len(found)} responses for {len(hashes)} certificates",
        )
    return found


async def lookup(provider: OcspProvider, queries: Sequence[CertQuery]) -> list[bytes]:
    """The responses for ``queries`` from ``provider`` (SHA-256 first, then SHA-1); a
    certificate without one is ``cert_not_found``."""
    found = await _ask(provider, [q.preferred for q in queries])
    retry = [i for i, der in enumerate(found) if der is None and queries[i].sha256 is not None]
    retry = [i for i in retry if queries[i].sha1 is not None]
    if retry:
        again = await _ask(provider, [queries[i].sha1 or "" for i in retry])
        for i, der in zip(retry, again, strict=True):
            found[i] = der
    out = []
    for query, der in zip(queries, found, strict=True):
        if not der:
            raise XRoadError(
                Code.CERT_NOT_FOUND,
                f"Could not find OCSP response for certificate {query.preferred}",
            )
        out.append(bytes(der))
    return out


def render_response(responses: Sequence[bytes], boundary: str | None = None) -> tuple[str, bytes]:
    """``(Content-Type, body)`` of a multipart/related answer with one part per response."""
    writer = MultipartWriter(boundary or "ocsp" + secrets.token_hex(12))
    body = bytearray()
    for der in responses:
        body += writer.start_part(OCSP_RESPONSE)
        body += der
    body += writer.close()
    content_type = (
        f'{MULTIPART_RELATED}; type="{OCSP_RESPONSE}"; charset=UTF-8; boundary={writer.boundary}'
    )
    return content_type, bytes(body)


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text + "\n", content_type="text/plain")


def ocsp_app(provider: OcspProvider) -> web.Application:
    """The aiohttp application of the OCSP download service (any path, as NIIS)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.method == "HEAD":
            return web.Response(status=200)
        if request.method != "GET":
            response = _text(405, f"Invalid request method: {request.method}")
            response.headers["Allow"] = "GET, HEAD"
            return response
        try:
            queries = parse_query(request.query)
        except XRoadError as err:
            return _text(400, f"{err.code}: {err.detail}")
        try:
            responses = await lookup(provider, queries)
        except XRoadError as err:
            log.warning("OCSP download service: %s: %s", err.code, err.detail)
            return _text(500, f"{err.code}: {err.detail}")
        except Exception:
            log.exception("OCSP download service failed")
            return _text(500, f"{Code.INTERNAL_ERROR}: Error getting OCSP responses")
        content_type, body = render_response(responses)
        return web.Response(status=200, body=body, headers={"Content-Type": content_type})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def start_ocsp_service(
    provider: OcspProvider,
    host: str = "0.0.0.0",  # noqa: S104 - the service is for other security servers
    port: int = DEFAULT_PORT,
) -> tuple[web.AppRunner, int]:
    """Serve :func:`ocsp_app` on ``host:port`` (0: any free port); returns the runner (for
    ``cleanup()``) and the bound port."""
    runner = web.AppRunner(ocsp_app(provider), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    for address in runner.addresses:
        bound = int(address[1])
        break
    return runner, bound


# ---------------------------------------------------------------------------------------------
# Client


def _url(address: str, port: int, certs: Sequence[x509.Certificate]) -> URL:
    ders = [cert_der(c) for c in certs]
    # As NIIS 7.8 sends them: every SHA-1 (read by 7.x servers), then every SHA-256.
    query = [(SHA1_PARAM, SHA1.digest(d).hex()) for d in ders]
    query += [(SHA256_PARAM, SHA256.digest(d).hex()) for d in ders]
    host = address.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return URL.build(scheme="http", host=host, port=port, path="/", query=query)
    except (ValueError, TypeError) as exc:
        raise XRoadError(
            Code.NETWORK_ERROR, f"Not a usable security server address: {address!r}"
        ) from exc


def parse_response(content_type: str | None, body: bytes) -> list[bytes]:
    """The ``application/ocsp-response`` parts of a download-service answer, in order (as
    NIIS's client, other parts are skipped)."""
    ctype = ContentType.parse(content_type)
    if not ctype.mime_type.startswith("multipart/"):
        raise XRoadError(
            Code.INVALID_CONTENT_TYPE,
            f"OCSP download service answered {content_type!r}, not a multipart",
        )
    parts = parse_multipart(body, ctype.require_boundary())
    return [data for headers, data in parts if headers.mime_type == OCSP_RESPONSE]


async def _read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    body = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise XRoadError(
                Code.INTERNAL_ERROR, f"OCSP download service answered more than {limit} bytes"
            )
    return bytes(body)


async def fetch_peer_ocsp(
    session: aiohttp.ClientSession,
    address: str,
    certs: Sequence[x509.Certificate],
    *,
    port: int = DEFAULT_PORT,
    connect_timeout: float = CONNECT_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
) -> list[bytes]:
    """The OCSP responses for ``certs`` from the download service of the server at
    ``address``, one per certificate, in order.

    Errors: ``network_error`` (unreachable, timeout), ``http_error`` (a non-2xx answer, its
    text in the detail), ``invalid_content_type`` / ``mime_parsing_failed`` (not a
    multipart), ``internal_error`` (a different number of responses: NIIS's wording)."""
    if not certs:
        return []
    url = _url(address, port, certs)
    timeout = aiohttp.ClientTimeout(
        total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=read_timeout
    )
    where = f"{url.host}:{url.port}"
    try:
        async with session.get(
            url, timeout=timeout, headers={"Accept": MULTIPART_RELATED}, allow_redirects=False
        ) as resp:
            if not 200 <= resp.status < 300:
                text = (await _read_limited(resp, 4096)).decode("utf-8", "replace").strip()
                raise XRoadError(
                    Code.HTTP_ERROR,
                    f"OCSP download service at {where} answered HTTP {resp.status}: {text[:300]}",
                )
            body = await _read_limited(resp, MAX_RESPONSE_BYTES)
            content_type = resp.headers.get("Content-Type")
    except TimeoutError as exc:
        raise XRoadError(
            Code.NETWORK_ERROR, f"OCSP download service at {where} did not answer in time"
        ) from exc
    except aiohttp.ClientError as exc:
        raise XRoadError(
            Code.NETWORK_ERROR, f"Cannot get OCSP responses from {where}: {exc}"
        ) from exc
    responses = parse_response(content_type, body)
    if len(responses) != len(certs):
        raise XRoadError(
            Code.INTERNAL_ERROR,
            "Could not get all OCSP responses from server"
            f" (expected {len(certs)}, but got {len(responses)})",
        )
    return responses
