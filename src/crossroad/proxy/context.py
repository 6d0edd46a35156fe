"""The per-process runtime of the proxies: settings, snapshots, signer, TLS material (arch. §3–4).

Owns :class:`ProxyContext`, what every request of the client proxy (8080/8443) and the server
proxy (5500) works with:

* the current global configuration and server configuration, immutable values swapped
  atomically (:meth:`ProxyContext.update_globalconf`, :meth:`ProxyContext.update_serverconf`);
  a request takes one :class:`Snapshot` when it starts and works on it to the end;
* the signer (another process: :class:`~crossroad.signer.client.SignerClient`, or anything
  with its ``sign`` and ``auth_key``), the authentication key material it hands out for TLS
  and the OCSP responses of our own authentication chain (carried in every request, §4.4);
* the SS↔SS TLS contexts (:mod:`crossroad.proxy.tls`): the listening one is switched in place
  when the key or the configuration changes, the dialling one rebuilt;
* the thread pool signature verification of large messages runs in (a big hash chain or a
  slow path must not stall every other exchange; messages up to
  ``proxy.server.INLINE_VERIFY_BYTES`` are verified on the loop, where the thread hand-off
  would cost more than the work), the upstream pools;
* the message log's plug-in points (protocols.md §9.1, §9.4; a no-op until
  :func:`crossroad.messagelog.integration.attach` plugs it in): :meth:`ProxyContext.on_logged`,
  awaited with every signed message (bodies included, streamed from the spool) before it is
  released, so a failure aborts the exchange; :meth:`ProxyContext.check_logging`, asked before
  an exchange starts (``timestamping_failed``); ``signed_documents``, the client proxy's
  ``GET /asic`` and ``GET /verificationconf``.

Settings follow protocols.md §12.1 where NIIS has a default;
:attr:`ProxySettings.pooled_connections` deviates on purpose (see its comment).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import logging
import ssl
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from cryptography import x509

from crossroad.clock import SYSTEM, Clock
from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.crypto.certs import cert_der, load_certificate
from crossroad.crypto.xades import MessagePart, SignedMessage
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.proxy import authtrust, tls
from crossroad.proxy.ocsp_cache import PeerOcspCache
from crossroad.serverconf.model import ServerConf

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The X-Road version this proxy speaks as (``x-proxy-version``, §4.3, §12.2).
PROXY_VERSION = "7.8.1"


@dataclass(frozen=True)
class ProxySettings:
    """Tunables of both proxies (protocols.md §12.1 defaults)."""

    #: Port dialled on peer security servers (``server-port``) and their OCSP download port.
    server_port: int = 5500
    ocsp_port: int = 5577
    #: consumer → provider connect timeout (``proxy.client-timeout``), read timeout (None: ∞).
    connect_timeout: float = 30.0
    peer_read_timeout: float | None = None
    #: The lowest ``x-proxy-version`` the server proxy accepts (None: any).
    min_client_version: str | None = None
    proxy_version: str = PROXY_VERSION
    hash_algorithm: DigestAlgorithm = SHA512
    #: ``proxy.ssl-enabled``: False means plain HTTP on 5500 and no OCSP parts (test setups).
    ssl_enabled: bool = True
    #: NIIS answers ``Connection: close`` by default and relies on TLS session resumption;
    #: we keep SS↔SS connections open (saving the handshake entirely), and resume sessions
    #: when a connection is new.  Set False for NIIS's behaviour.
    pooled_connections: bool = True
    #: Bodies and attachments above this size go to a temporary file (``temp_dir``).
    spool_memory: int = 1024 * 1024
    temp_dir: str | None = None
    #: The client proxy waits this long for the SOAP part from an information system.
    soap_read_timeout: float = 30.0
    #: How often the authentication key and its OCSP responses are asked of the signer.
    auth_refresh_seconds: float = 60.0
    chunk_size: int = 64 * 1024
    verify_workers: int = 4


@dataclass(frozen=True)
class Snapshot:
    """What one request works on from start to end."""

    globalconf: GlobalConfSnapshot
    serverconf: ServerConf
    at: dt.datetime

    @property
    def server_id(self) -> SecurityServerId:
        server = self.serverconf.server_id
        if server is None:
            raise XRoadError(Code.INTERNAL_ERROR, "This security server is not initialized")
        return server


class SignerApi(Protocol):
    """What the proxies ask of the signer (:class:`crossroad.signer.client.SignerClient`)."""

    async def sign(
        self, member: ClientId, parts: Sequence[MessagePart], digest: DigestAlgorithm = ...
    ) -> SignedMessage: ...

    async def auth_key(
        self,
    ) -> tuple[bytes, x509.Certificate, list[x509.Certificate], list[bytes]]: ...


@dataclass(frozen=True)
class AuthMaterial:
    """The authentication key as the signer handed it out, with its chain and OCSP."""

    key_pem: bytes = field(repr=False)
    chain: tuple[x509.Certificate, ...]  # the authentication certificate, then intermediates
    ocsp: tuple[bytes, ...] = field(repr=False)  # responses for the chain, leaf first
    fetched: float = 0.0  # time.monotonic() when fetched


@dataclass(frozen=True)
class LoggedMessage:
    """What the message log keeps of one signed message: the signed bytes, and its
    attachments or REST body (``attachments``, in order, each readable more than once and
    streamed: :class:`~crossroad.proxy.upstream.SpoolSegment`)."""

    side: Literal["client", "server"]
    direction: Literal["request", "response"]
    request_id: str
    rest: bool
    message: bytes = field(repr=False)  # /message.xml: SOAP bytes or the REST header part
    signature: bytes = field(repr=False)
    hash_chain_result: bytes | None = field(default=None, repr=False)
    hash_chain: bytes | None = field(default=None, repr=False)
    attachment_digests: tuple[bytes, ...] = ()
    attachments: tuple[AsyncIterable[bytes], ...] = field(default=(), repr=False, compare=False)


class ProxyContext:
    """The runtime both proxies share; one per process."""

    def __init__(
        self,
        *,
        globalconf: GlobalConfSnapshot,
        serverconf: ServerConf,
        signer: SignerApi,
        settings: ProxySettings | None = None,
        clock: Clock = SYSTEM,
        peer_ocsp: PeerOcspCache | None = None,
        internal_tls: tuple[Sequence[x509.Certificate], bytes] | None = None,
    ) -> None:
        from crossroad.proxy.upstream import Upstream  # the pools need the settings only

        self.settings = settings or ProxySettings()
        self.clock = clock
        self.signer = signer
        self._globalconf = globalconf
        self._serverconf = serverconf
        self.executor = ThreadPoolExecutor(
            max_workers=self.settings.verify_workers, thread_name_prefix="crossroad-verify"
        )
        self.upstream = Upstream(self.settings)
        self.peer_ocsp = peer_ocsp or PeerOcspCache(port=self.settings.ocsp_port)
        self.auth: AuthMaterial | None = None
        #: The internal TLS certificate chain and key (PEM) the IS-facing side presents.
        self.internal_tls = (
            (tuple(internal_tls[0]), internal_tls[1]) if internal_tls is not None else None
        )
        self.is_tls: tls.ServerTls | None = None
        self.server_tls: tls.ServerTls | None = None
        self.client_ssl: ssl.SSLContext | None = None
        self._auth_lock = asyncio.Lock()
        #: Message-log hooks: called (and awaited when they return an awaitable) with every
        #: signed message, after its verification and before it is released.
        self.loggers: list[Callable[[LoggedMessage], object]] = []
        #: Asked before an exchange starts; raise to refuse it (``timestamping_failed``).
        self.log_checks: list[Callable[[], None]] = []
        #: ``GET /asic`` and ``GET /verificationconf`` of the client proxy (None: not served).
        self.signed_documents: Callable[[Any], Awaitable[Any]] | None = None

    # -- snapshots -------------------------------------------------------------------------

    @property
    def globalconf(self) -> GlobalConfSnapshot:
        return self._globalconf

    @property
    def serverconf(self) -> ServerConf:
        return self._serverconf

    def snapshot(self) -> Snapshot:
        return Snapshot(self._globalconf, self._serverconf, self.clock.now())

    def update_globalconf(self, snapshot: GlobalConfSnapshot) -> None:
        """Swap in a new global configuration; the TLS listener trusts its CAs from now on."""
        self._globalconf = snapshot
        if self.server_tls is not None and self.auth is not None:
            self.server_tls.replace(self._server_context(self.auth))

    def update_serverconf(self, conf: ServerConf) -> None:
        """Swap in a new server configuration; the 8443 listener trusts its IS certificates."""
        changed = conf.clients != self._serverconf.clients
        self._serverconf = conf
        if changed and self.is_tls is not None:
            self.is_tls.replace(self.is_server_context())

    def internal_certs(self) -> frozenset[bytes]:
        """DER of our own internal TLS certificate (always accepted from an IS)."""
        if self.internal_tls is None:
            return frozenset()
        return frozenset({cert_der(self.internal_tls[0][0])})

    def is_server_context(self) -> ssl.SSLContext:
        """The 8443 listener's context: the internal certificate, and every registered IS
        certificate (plus our own internal one) accepted as a client certificate."""
        if self.internal_tls is None:
            raise XRoadError(Code.INTERNAL_ERROR, "No internal TLS certificate configured")
        chain, key = self.internal_tls
        certs = {der for client in self._serverconf.clients for der in client.is_certs}
        certs |= self.internal_certs()
        return tls.is_server_context(
            chain, key, True, is_certs=[load_certificate(der) for der in sorted(certs)]
        )

    # -- the signer and TLS ----------------------------------------------------------------

    async def sign(self, member: ClientId, parts: Sequence[MessagePart]) -> SignedMessage:
        """Sign a message's parts as ``member``'s member (``signer.`` faults as they come)."""
        return await self.signer.sign(member.member_id(), parts, self.settings.hash_algorithm)

    async def auth_material(self) -> AuthMaterial:
        """The authentication key, chain and OCSP responses (refreshed from the signer)."""
        current = self.auth
        if current is not None and (
            time.monotonic() - current.fetched < self.settings.auth_refresh_seconds
        ):
            return current
        async with self._auth_lock:
            current = self.auth
            if current is not None and (
                time.monotonic() - current.fetched < self.settings.auth_refresh_seconds
            ):
                return current
            try:
                key_pem, cert, chain, ocsp = await self.signer.auth_key()
            except XRoadError as err:
                if current is not None:  # keep the last good material on a hiccup
                    log.warning("authentication key refresh failed: %s", err)
                    return current
                raise XRoadError(
                    Code.SSL_AUTHENTICATION_FAILED, f"No usable authentication key: {err.detail}"
                ) from err
            fresh = AuthMaterial(key_pem, (cert, *chain), tuple(ocsp), time.monotonic())
            self._install(fresh, changed=current is None or current.chain != fresh.chain)
            return fresh

    def _install(self, material: AuthMaterial, *, changed: bool) -> None:
        self.auth = material
        if not changed or not self.settings.ssl_enabled:
            return
        server = self._server_context(material)
        if self.server_tls is None:
            self.server_tls = tls.ServerTls(server)
        else:
            self.server_tls.replace(server)
        self.client_ssl = tls.client_context(
            material.chain, material.key_pem, self._check_registered
        )

    def _server_context(self, material: AuthMaterial) -> ssl.SSLContext:
        return tls.server_context(
            material.chain,
            material.key_pem,
            self._check_registered,
            trusted=authtrust.approved_ca_certs(self._globalconf),
        )

    def _check_registered(self, chain: tuple[x509.Certificate, ...]) -> None:
        # In the handshake, both sides: the peer's certificate must be the authentication
        # certificate of some security server.  On the consumer side this keeps the request
        # from ever reaching a server that is not one; whether it may serve the provider is
        # checked with OCSP once the connection is up (verify_provider).
        authtrust.check_registered(self._globalconf, chain)

    async def own_ocsp(self) -> tuple[bytes, ...]:
        """OCSP responses of our authentication chain (the request's OCSP parts, §4.4)."""
        if not self.settings.ssl_enabled:
            return ()
        return (await self.auth_material()).ocsp

    async def verify_provider(
        self, snap: Snapshot, chain: Sequence[x509.Certificate], provider: ClientId, address: str
    ) -> None:
        """The provider server's TLS certificate, with OCSP from the peer cache or its
        download service, must serve ``provider`` (``ssl_authentication_failed[.cause]``)."""
        if not self.settings.ssl_enabled:
            return
        await self.peer_ocsp.verify_provider(snap.globalconf, chain, provider, address, snap.at)

    # -- work off the event loop -----------------------------------------------------------

    async def in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking work (signature verification) in the verification pool."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    # -- message log -----------------------------------------------------------------------

    async def on_logged(self, record: LoggedMessage) -> None:
        """Every verified request and signed response passes here before it is released;
        what a logger raises (``logging_failed``) aborts the exchange.  Without a logger
        plugged in it does nothing."""
        for logger in self.loggers:
            result = logger(record)
            if inspect.isawaitable(result):
                await result

    def check_logging(self) -> None:
        """Whether the message log accepts a new exchange (raises when it does not)."""
        for check in self.log_checks:
            check()

    async def close(self) -> None:
        await self.upstream.close()
        await self.peer_ocsp.close()
        with contextlib.suppress(RuntimeError):
            self.executor.shutdown(wait=False, cancel_futures=True)
