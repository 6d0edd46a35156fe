"""Calls out of the proxies: to peer security servers and to provider information systems.

Owns the aiohttp client pools and what moves through them (protocols.md §4.1, §4.3, §10.6,
§12.1):

* :class:`Spool` — bodies and attachments on their way through a proxy: kept in memory up to
  a limit, then in an unlinked temporary file, so memory does not grow with message size; a
  spooled body can be sent again (another candidate server after a failed connect);
* :meth:`Upstream.post_to_peer` — ``POST https://<address>:<port>/`` to the first provider
  candidate that accepts a connection, in random order (§4.1; the connect timeout is
  ``proxy.client-timeout``), streaming the request chunked; returns the response with the
  peer's certificate chain for the caller's authentication check;
* :meth:`Upstream.call_service` — a provider information system's service URL, with the
  service's timeout, no redirects followed, bodies neither compressed nor decompressed; over
  HTTPS as :class:`ServiceTls` says (§4.10 step 5, §10.6): the internal TLS certificate is the
  client certificate, host names are never verified, and only with the service's "verify TLS
  certificate" option the server's certificate must be one of the provider client's
  registered IS certificates (NIIS compares the leaf, checked before a request byte is sent).

Socket failures become coded errors here: ``unknown_host``, ``network_error`` (refused,
reset, timed out) and ``ssl_authentication_failed`` (a TLS handshake that failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import ssl
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import aiohttp
from cryptography import x509
from multidict import CIMultiDict
from yarl import URL

from crossroad.crypto.certs import cert_der
from crossroad.errors import Code, XRoadError
from crossroad.proxy import tls

if TYPE_CHECKING:
    from crossroad.proxy.context import ProxyContext
    from crossroad.serverconf.model import ServiceEntry

__all__ = [
    "PeerResponse",
    "ServiceTls",
    "Spool",
    "SpoolSegment",
    "Upstream",
    "network_failure",
    "service_tls",
]


class Spool:
    """Body segments (attachments, a REST body) of one message, in memory or on disk.

    ``begin`` / ``write`` / ``end`` record a segment; :meth:`read` streams it back any number
    of times.  One unlinked temporary file per message, so nothing is left behind on a crash.
    """

    def __init__(self, memory: int = 1024 * 1024, directory: str | None = None) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed in close)
            max_size=memory, dir=directory
        )
        self._segments: list[tuple[int, int]] = []
        self._start = -1
        self._pos = 0

    def begin(self) -> int:
        self._start = self._pos
        return len(self._segments)

    def write(self, data: bytes) -> None:
        self._file.seek(self._pos)
        self._file.write(data)
        self._pos += len(data)

    def end(self) -> None:
        self._segments.append((self._start, self._pos - self._start))
        self._start = -1

    def __len__(self) -> int:
        return len(self._segments)

    def size(self, index: int) -> int:
        return self._segments[index][1]

    @property
    def total(self) -> int:
        return self._pos

    async def read(self, index: int, chunk: int = 64 * 1024) -> AsyncIterator[bytes]:
        offset, length = self._segments[index]
        while length > 0:
            self._file.seek(offset)
            data = self._file.read(min(chunk, length))
            if not data:
                raise XRoadError(Code.IO_ERROR, "Spooled body ended early")
            offset += len(data)
            length -= len(data)
            yield data

    def segments(self, chunk: int = 64 * 1024) -> tuple[SpoolSegment, ...]:
        """Every segment (the message log streams them before the message is released)."""
        return tuple(SpoolSegment(self, i, chunk) for i in range(len(self._segments)))

    def read_all(self, index: int) -> bytes:
        """A small segment at once (metaservice bodies, tests)."""
        offset, length = self._segments[index]
        self._file.seek(offset)
        return self._file.read(length)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()


@dataclass(frozen=True)
class SpoolSegment:
    """One segment of a :class:`Spool`, streamed afresh by every ``async for``."""

    spool: Spool
    index: int
    chunk: int = 64 * 1024

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.spool.read(self.index, self.chunk)


def network_failure(exc: BaseException, where: str) -> XRoadError:
    """The coded error of a failed connection or exchange with ``where``."""
    if isinstance(exc, XRoadError):
        return exc
    dns_error = getattr(aiohttp, "ClientConnectorDNSError", None)
    if dns_error is not None and isinstance(exc, dns_error):
        return XRoadError(Code.UNKNOWN_HOST, f"Unknown host {where}: {exc}")
    cause = exc
    while cause is not None:
        if isinstance(cause, tls.PeerRejected):
            return cause.error.with_prefix(Code.SSL_AUTHENTICATION_FAILED)
        if isinstance(cause, ssl.SSLError | aiohttp.ClientSSLError):
            return XRoadError(
                Code.SSL_AUTHENTICATION_FAILED, f"TLS handshake with {where} failed: {exc}"
            )
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
        if cause is exc:
            break
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return XRoadError(Code.NETWORK_ERROR, f"Connection to {where} timed out")
    return XRoadError(Code.NETWORK_ERROR, f"Connection to {where} failed: {exc}")


@dataclass
class PeerResponse:
    """An open response of a peer security server (read its content, then ``release``)."""

    response: aiohttp.ClientResponse
    address: str
    chain: tuple[x509.Certificate, ...]

    @property
    def headers(self) -> CIMultiDict[str]:
        return CIMultiDict(self.response.headers)

    def release(self) -> None:
        self.response.release()

    def close(self) -> None:
        self.response.close()


BodyFactory = Callable[[], AsyncIterable[bytes]]
#: ``check(chain, address)``: may this peer receive the request?  Raises ``XRoadError``.
PeerCheck = Callable[[tuple[x509.Certificate, ...], str], Awaitable[None]]

# What the connector learns about the connection a request is about to use, and the check
# it must pass first.  Context variables: the connector runs in the requesting task.
_PEER_CHECK: ContextVar[PeerCheck | None] = ContextVar("crossroad_peer_check", default=None)
_PEER_CHAIN: ContextVar[tuple[x509.Certificate, ...]] = ContextVar(
    "crossroad_peer_chain", default=()
)


class _PeerConnector(aiohttp.TCPConnector):
    """A connector that checks the peer of every connection (new or pooled) before a request
    byte is written on it: the provider's authentication certificate is verified before the
    signed request leaves (NIIS ``AuthTrustVerifier`` runs at connect time too)."""

    async def connect(self, req: Any, traces: Any, timeout: Any) -> Any:
        connection = await super().connect(req, traces, timeout)
        transport = connection.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        chain = tls.peer_chain(ssl_object) if ssl_object is not None else ()
        _PEER_CHAIN.set(chain)
        check = _PEER_CHECK.get()
        if check is not None:
            try:
                await check(chain, req.url.host or "")
            except BaseException:
                connection.close()
                raise
        return connection


@dataclass(frozen=True)
class ServiceTls:
    """How a call to a provider information system authenticates over HTTPS (§10.6)."""

    #: The internal TLS certificate chain and key (PEM) presented as the client certificate.
    internal: tuple[tuple[x509.Certificate, ...], bytes] | None
    #: DER of the certificates the service may present (the provider client's IS
    #: certificates) when the service has "verify TLS certificate" on; None: not checked.
    verify: frozenset[bytes] | None = None
    provider: str = ""

    def check(self) -> PeerCheck | None:
        """The connection check of :class:`_PeerConnector`, or None when nothing is checked."""
        pinned = self.verify
        if pinned is None:
            return None
        provider = self.provider

        async def check(chain: tuple[x509.Certificate, ...], host: str) -> None:
            # As NIIS's service socket factory: the leaf must be a registered IS certificate.
            if not chain:
                raise XRoadError(
                    Code.SSL_AUTHENTICATION_FAILED, f"The service at {host} sent no certificate"
                )
            if not pinned:
                raise XRoadError(
                    Code.SSL_AUTHENTICATION_FAILED, f"Client '{provider}' has no IS certificates"
                )
            if cert_der(chain[0]) not in pinned:
                raise XRoadError(
                    Code.SSL_AUTHENTICATION_FAILED,
                    f"The TLS certificate of the service at {host} is not an IS certificate"
                    f" of client '{provider}'",
                )

        return check


def service_tls(ctx: ProxyContext, entry: ServiceEntry) -> ServiceTls:
    """The :class:`ServiceTls` of a call to ``entry``'s service from the proxy of ``ctx``: its
    internal TLS key, and the provider client's IS certificates when the service's
    ``ssl_authentication`` is on."""
    provider = entry.provider
    verify = ctx.serverconf.is_certs(provider) if entry.service.ssl_authentication else None
    return ServiceTls(ctx.internal_tls, verify, str(provider))


class Upstream:
    """The client pools of one proxy process."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self._plain: aiohttp.ClientSession | None = None
        self._peer: tuple[ssl.SSLContext | None, aiohttp.ClientSession] | None = None
        self._services: dict[int, aiohttp.ClientSession] = {}
        self._retired: list[aiohttp.ClientSession] = []
        # Contexts presenting an internal TLS key, by the identity of the (chain, key) pair;
        # kept for the process's life, so a context's id keys its pool in ``_services``.
        self._is_contexts: dict[int, tuple[object, ssl.SSLContext]] = {}

    def _session(self, ssl_ctx: ssl.SSLContext | bool) -> aiohttp.ClientSession:
        connector = _PeerConnector(
            ssl=ssl_ctx, limit=0, limit_per_host=0, enable_cleanup_closed=False
        )
        return aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            timeout=aiohttp.ClientTimeout(total=None),
        )

    def plain_session(self) -> aiohttp.ClientSession:
        """Plain HTTP (OCSP downloads, ``ssl_enabled=False`` peers, http services)."""
        if self._plain is None or self._plain.closed:
            self._plain = self._session(False)
        return self._plain

    def peer_session(self, ssl_ctx: ssl.SSLContext | None) -> aiohttp.ClientSession:
        if ssl_ctx is None:
            return self.plain_session()
        if self._peer is None or self._peer[0] is not ssl_ctx or self._peer[1].closed:
            if self._peer is not None:
                self._retired.append(self._peer[1])  # in-flight exchanges finish on it
            self._peer = (ssl_ctx, self._session(ssl_ctx))
        return self._peer[1]

    def service_session(self, ssl_ctx: ssl.SSLContext | None) -> aiohttp.ClientSession:
        if ssl_ctx is None:
            return self.plain_session()
        session = self._services.get(id(ssl_ctx))
        if session is None or session.closed:
            session = self._services[id(ssl_ctx)] = self._session(ssl_ctx)
        return session

    async def post_to_peer(
        self,
        addresses: Sequence[str],
        *,
        ssl_ctx: ssl.SSLContext | None,
        headers: Sequence[tuple[str, str]],
        body: BodyFactory,
        check: PeerCheck | None = None,
    ) -> PeerResponse:
        """POST the transport message to the first candidate that connects (random order);
        ``check`` runs on each connection before the request is written on it."""
        if not addresses:
            raise XRoadError(Code.NETWORK_ERROR, "No address to send the request to")
        candidates = list(addresses)
        random.shuffle(candidates)
        scheme = "https" if ssl_ctx is not None else "http"
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=self.settings.connect_timeout,
            sock_connect=self.settings.connect_timeout,
            sock_read=self.settings.peer_read_timeout,
        )
        session = self.peer_session(ssl_ctx)
        failure: XRoadError | None = None
        for address in candidates:
            host = address.strip()
            if ":" in host and not host.startswith("["):
                host = f"[{host}]"
            url = f"{scheme}://{host}:{self.settings.server_port}/"
            check_token = _PEER_CHECK.set(check)
            try:
                response = await session.post(
                    url,
                    data=body(),
                    headers=CIMultiDict(headers),
                    timeout=timeout,
                    allow_redirects=False,
                    server_hostname=address if ssl_ctx is not None else None,
                )
            except aiohttp.ClientConnectorError as exc:
                failure = network_failure(exc, address)
                continue  # never sent a byte: the next candidate may take it
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise network_failure(exc, address) from exc
            finally:
                _PEER_CHECK.reset(check_token)
            return PeerResponse(response, address, _PEER_CHAIN.get())
        assert failure is not None
        raise failure

    def is_context(self, internal: tuple[tuple[x509.Certificate, ...], bytes]) -> ssl.SSLContext:
        """The client context presenting ``internal`` (chain, key PEM) to information systems:
        TLS 1.2, NIIS's IS ciphers, no hostname or chain verification (see ServiceTls)."""
        known = self._is_contexts.get(id(internal))
        if known is None or known[0] is not internal:
            known = (internal, tls.is_client_context(internal[0], internal[1]))
            self._is_contexts[id(internal)] = known
        return known[1]

    async def call_service(
        self,
        method: str,
        url: str | None,
        *,
        headers: Sequence[tuple[str, str]],
        body: AsyncIterable[bytes] | bytes | None,
        timeout: float,
        ssl_ctx: ssl.SSLContext | None = None,
        service: ServiceTls | None = None,
    ) -> aiohttp.ClientResponse:
        """Send a request to a provider information system; the open response.

        An https URL is called as ``service`` says (else with ``ssl_ctx``, else presenting no
        certificate and checking none); a rejected certificate is ``ssl_authentication_failed``
        and the request is not sent."""
        if not url:
            raise XRoadError(Code.SERVICE_MISSING_URL, "Service address not specified")
        try:
            target = URL(url, encoded=True)
        except (ValueError, TypeError) as exc:
            raise XRoadError(
                Code.SERVICE_MALFORMED_URL, f"Malformed service address '{url}': {exc}"
            ) from exc
        if target.scheme not in ("http", "https") or not target.host:
            raise XRoadError(Code.SERVICE_MALFORMED_URL, f"Malformed service address '{url}'")
        https = target.scheme == "https"
        check = None
        if https and service is not None:
            if service.internal is not None:
                ssl_ctx = self.is_context(service.internal)
            check = service.check()
        session = self.service_session(ssl_ctx if https else None)
        limit = aiohttp.ClientTimeout(total=None, sock_connect=timeout, sock_read=timeout)
        check_token = _PEER_CHECK.set(check)
        try:
            return await session.request(
                method,
                target,
                headers=CIMultiDict(headers),
                data=body,
                timeout=limit,
                allow_redirects=False,
                ssl=ssl_ctx if https and ssl_ctx is not None else False,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise network_failure(exc, f"{target.host}:{target.port}") from exc
        finally:
            _PEER_CHECK.reset(check_token)

    async def close(self) -> None:
        sessions = [self._plain, *self._retired, *self._services.values()]
        if self._peer is not None:
            sessions.append(self._peer[1])
        for session in sessions:
            if session is not None and not session.closed:
                await session.close()
