"""TLS contexts of a security server (protocols.md §4.1, §10.6, §12.1).

Two channels, two profiles:

* **SS↔SS** (5500): TLS 1.2 only, mutual authentication, the NIIS cipher list
  (``proxy.xroad-tls-ciphers``) in server preference order, no hostname verification, sessions
  resumable for :data:`SESSION_SECONDS`.  X-Road identity is the authentication certificate
  registered in global configuration, not a CA's word, so the X-Road checks are ours
  (:mod:`crossroad.proxy.authtrust`); this module gives them a place in the handshake:

  - :func:`server_context` must ask OpenSSL for a client certificate, and Python's ``ssl``
    cannot accept one without verifying it.  The context therefore trusts the approved CA
    certificates of the global configuration (top CAs *and* intermediates, as partial-chain
    anchors: NIIS anchors a path at the configured CA certificate that issued it) and then
    runs ``verify_peer`` on the peer's chain inside the handshake, before any application
    byte is read.  A rejection ends the handshake (the peer sees the connection closed).
  - :func:`client_context` does not verify the provider's chain in OpenSSL at all
    (``CERT_NONE``): NIIS accepts any server certificate in the handshake and verifies it
    afterwards against the *service provider* (``AuthTrustVerifier``), which the context cannot
    know.  The caller must run :func:`crossroad.proxy.authtrust.verify_provider_cert` on
    :func:`peer_chain` before it sends anything; ``verify_peer`` may add an early check.

* **IS-facing** (8443, and calls to provider information systems): TLS 1.2, NIIS's
  ``client-tls-ciphers``, the internal TLS certificate; information systems' certificates are
  checked against the certificates registered for them (:func:`is_server_context`,
  :func:`is_client_context`).

Keys: the authentication key comes from the signer (docs/decisions/0002-tls-keys.md).  Python's
``ssl`` loads keys from files only, so the key is handed to OpenSSL through an anonymous
in-memory file, encrypted with a one-time password; it never reaches a disk.

Reload: :class:`ServerTls` keeps one listening context and switches every new connection to
the newest material (a rotated key, a new global configuration) in the ClientHello callback,
so listeners never restart.

Peer chains: Python 3.13 exposes the peer's chain (``get_unverified_chain``); 3.11 has it only
privately, used when present.  Without it a peer chain is its leaf alone, and the intermediates
come from global configuration (the approved CAs' ``intermediateCA`` certificates), as for any
path (:mod:`crossroad.crypto.chain`).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import ssl
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from crossroad.crypto.certs import cert_der, load_certificate
from crossroad.errors import Code, XRoadError

__all__ = [
    "IS_CIPHERS",
    "SESSION_SECONDS",
    "XROAD_CIPHERS",
    "PeerCheck",
    "PeerRejected",
    "ServerTls",
    "client_context",
    "forget_session",
    "is_client_context",
    "is_server_context",
    "peer_chain",
    "server_context",
]

#: ``proxy.xroad-tls-ciphers`` (NIIS default, preference order), OpenSSL names of
#: TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384, TLS_DHE_RSA_WITH_AES_256_CBC_SHA256,
#: TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384.
XROAD_CIPHERS: Final = (
    "ECDHE-RSA-AES256-SHA384",
    "DHE-RSA-AES256-SHA256",
    "ECDHE-ECDSA-AES256-SHA384",
)
#: ``client-tls-ciphers``: the IS-facing list (§10.6), OpenSSL names, NIIS order.
IS_CIPHERS: Final = (
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-SHA384",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES128-SHA256",
    "DHE-RSA-AES256-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
)
#: TLS session cache timeout (§12.1).
SESSION_SECONDS: Final = 600
_MAX_SESSIONS: Final = 1024

# OpenSSL's X509_V_FLAG_NO_CHECK_TIME: registered IS certificates are matched, not dated
# (Python names no constant for it).
_NO_CHECK_TIME: Final = 0x200000

# RFC 7919 ffdhe2048, the group Java offers for DHE by default.  Python's ssl does not turn on
# OpenSSL's automatic DH parameters, and without them the DHE suites are never negotiated.
_FFDHE2048: Final = b"""-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""

#: Called with the peer's chain (leaf first) inside the handshake; raises ``XRoadError``.
PeerCheck = Callable[[tuple[x509.Certificate, ...]], None]

KeyInput = PrivateKeyTypes | bytes


class PeerRejected(ssl.SSLCertVerificationError):
    """The handshake was refused by an X-Road check; ``error`` says which and why.

    An ``ssl.SSLError`` so that asyncio and ``ssl.SSLSocket`` treat it as a failed handshake
    (the connection is closed, nothing is read or written)."""

    def __init__(self, error: XRoadError) -> None:
        super().__init__(str(error))
        self.error = error


# ---------------------------------------------------------------------------------------------
# Contexts


class _XRoadContext(ssl.SSLContext):
    """An ``SSLContext`` that remembers its peer check and (client side) its TLS sessions."""

    peer_check: PeerCheck | None = None
    sessions: _SessionCache | None = None


def _base(server_side: bool, ciphers: Sequence[str]) -> _XRoadContext:
    protocol = ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT
    ctx = _XRoadContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(":".join(ciphers))
    ctx.check_hostname = False
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_NO_RENEGOTIATION
    if server_side:
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
        with _memory_file(_FFDHE2048) as path:
            ctx.load_dh_params(path)
    ctx.sslobject_class = _HookedObject
    ctx.sslsocket_class = _HookedSocket
    return ctx


def _with_peer_check(ctx: _XRoadContext, verify_peer: PeerCheck | None) -> _XRoadContext:
    ctx.peer_check = verify_peer
    return ctx


def server_context(
    auth_cert_chain: Sequence[x509.Certificate],
    key: KeyInput,
    verify_peer: PeerCheck | None,
    *,
    trusted: Iterable[x509.Certificate],
) -> ssl.SSLContext:
    """The provider side of the SS↔SS channel (5500).

    ``auth_cert_chain``: the authentication certificate first, then its intermediates;
    ``key``: its private key (object or PEM); ``trusted``: the approved CA certificates of
    global configuration (:func:`crossroad.proxy.authtrust.approved_ca_certs`), which only
    let OpenSSL accept the client's certificate; ``verify_peer``: the X-Road decision
    (:func:`crossroad.proxy.authtrust.check_registered`), run in the handshake.
    """
    ctx = _base(True, XROAD_CIPHERS)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    _load_trusted(ctx, trusted)
    _load_chain(ctx, auth_cert_chain, key)
    return _with_peer_check(ctx, verify_peer)


def client_context(
    auth_cert_chain: Sequence[x509.Certificate],
    key: KeyInput,
    verify_peer: PeerCheck | None = None,
    *,
    session_seconds: float = SESSION_SECONDS,
) -> ssl.SSLContext:
    """The consumer side of the SS↔SS channel: presents the authentication certificate,
    accepts any provider certificate in the handshake (see the module docstring: the caller
    verifies it against the service provider), resumes sessions per ``server_hostname`` for
    ``session_seconds`` (0: never)."""
    ctx = _base(False, XROAD_CIPHERS)
    ctx.verify_mode = ssl.CERT_NONE
    _load_chain(ctx, auth_cert_chain, key)
    if session_seconds > 0:
        ctx.sessions = _SessionCache(session_seconds)
    return _with_peer_check(ctx, verify_peer)


def is_server_context(
    internal_cert_chain: Sequence[x509.Certificate],
    key: KeyInput,
    client_auth_optional: bool = True,
    *,
    is_certs: Iterable[x509.Certificate] = (),
    verify_peer: PeerCheck | None = None,
) -> ssl.SSLContext:
    """The client proxy's HTTPS listener (8443) for information systems (§10.6).

    ``is_certs``: the IS certificates registered for the clients (SSLAUTH); each is a trust
    anchor by itself (self-signed or not), validity dates are not checked.  A client may
    connect without a certificate when ``client_auth_optional`` (SSLNOAUTH clients); the
    client proxy then decides per client (:func:`peer_chain`).  A certificate that is not
    registered fails the handshake (NIIS lets it through and ignores it for SSLNOAUTH
    clients; an IS has no reason to present one).
    """
    ctx = _base(True, IS_CIPHERS)
    anchors = list(is_certs)
    if anchors:
        ctx.verify_mode = ssl.CERT_OPTIONAL if client_auth_optional else ssl.CERT_REQUIRED
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | _NO_CHECK_TIME
        _load_trusted(ctx, anchors)
    elif not client_auth_optional:
        raise XRoadError(
            Code.SSL_AUTHENTICATION_FAILED, "Client authentication required, but no IS certs"
        )
    _load_chain(ctx, internal_cert_chain, key)
    return _with_peer_check(ctx, verify_peer)


def is_client_context(
    internal_cert_chain: Sequence[x509.Certificate],
    key: KeyInput,
    *,
    verify_certs: Iterable[x509.Certificate] | None = None,
) -> ssl.SSLContext:
    """The server proxy's HTTPS calls to provider information systems (§10.6): presents the
    internal TLS certificate, no hostname verification; with ``verify_certs`` (the service's
    "verify TLS certificate" option: the provider client's IS certificates) the server's
    certificate must be one of them, else it is not checked."""
    ctx = _base(False, IS_CIPHERS)
    anchors = list(verify_certs or ())
    if verify_certs is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN | _NO_CHECK_TIME
        if not anchors:
            raise XRoadError(
                Code.SSL_AUTHENTICATION_FAILED,
                "TLS verification is on, but the provider has no IS certificates",
            )
        _load_trusted(ctx, anchors)
    _load_chain(ctx, internal_cert_chain, key)
    return ctx


def forget_session(ctx: ssl.SSLContext, server_hostname: str) -> None:
    """Do not resume the TLS session with ``server_hostname`` (its peer failed verification
    after the handshake)."""
    cache = getattr(ctx, "sessions", None)
    if isinstance(cache, _SessionCache):
        cache.drop(server_hostname)


class ServerTls:
    """A listening context whose connections always use the newest material.

    ``context`` is what the listener is created with; :meth:`replace` installs a context
    built later (same builder, new key or configuration).  New connections switch to it when
    their ClientHello arrives; established ones are not touched.  The TLS session cache stays
    with ``context``, so sessions survive a reload (and a resumed session still passes the
    peer check, which reads the current configuration).
    """

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self._current = context
        context.sni_callback = self._select

    @property
    def current(self) -> ssl.SSLContext:
        return self._current

    def replace(self, context: ssl.SSLContext) -> None:
        self._current = context

    def _select(self, conn: Any, server_name: str | None, ctx: ssl.SSLContext) -> None:
        current = self._current
        if current is not ctx:
            conn.context = current


# ---------------------------------------------------------------------------------------------
# Material: certificates and keys, in memory


@contextlib.contextmanager
def _memory_file(data: bytes) -> Iterator[str]:
    """A path OpenSSL can open that holds ``data``: an anonymous memory file on Linux,
    otherwise a private temporary file removed at once."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        try:
            fd = memfd("crossroad-tls", getattr(os, "MFD_CLOEXEC", 0))
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                os.write(fd, data)
                path = f"/proc/self/fd/{fd}"
                if Path(path).exists():
                    yield path
                    return
            finally:
                os.close(fd)
    with tempfile.TemporaryDirectory(prefix="crossroad-tls-") as tmp:
        file = Path(tmp) / "material.pem"
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        yield str(file)


def _private_key(key: KeyInput) -> PrivateKeyTypes:
    if not isinstance(key, bytes | bytearray):
        return key
    try:
        return serialization.load_pem_private_key(bytes(key), password=None)
    except (ValueError, TypeError) as exc:
        raise XRoadError(Code.INTERNAL_ERROR, f"The TLS private key cannot be read: {exc}") from exc


def _load_chain(ctx: ssl.SSLContext, chain: Sequence[x509.Certificate], key: KeyInput) -> None:
    if not chain:
        raise XRoadError(Code.INTERNAL_ERROR, "No TLS certificate to present")
    # A one-time password: the PEM exists only in memory, and encrypted even there.
    password = secrets.token_bytes(32)
    key_pem = _private_key(key).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password),
    )
    certs = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain)
    with _memory_file(certs + key_pem) as path:
        try:
            ctx.load_cert_chain(path, password=password)
        except ssl.SSLError as exc:
            raise XRoadError(
                Code.INTERNAL_ERROR, f"The TLS key does not fit its certificate: {exc}"
            ) from exc


def _load_trusted(ctx: ssl.SSLContext, certs: Iterable[x509.Certificate]) -> None:
    seen: set[bytes] = set()
    for cert in certs:
        der = cert_der(cert)
        if der not in seen:
            seen.add(der)
            ctx.load_verify_locations(cadata=der)


# ---------------------------------------------------------------------------------------------
# The handshake hook


def peer_chain(conn: ssl.SSLObject | ssl.SSLSocket) -> tuple[x509.Certificate, ...]:
    """The certificates the peer presented, leaf first; empty without a certificate.

    Intermediates are included when this Python can read them (3.13, or the private 3.10+
    accessor); otherwise the leaf alone (see the module docstring).  An unreadable certificate
    is ``incorrect_certificate``."""
    leaf = conn.getpeercert(binary_form=True)
    if not leaf:
        return ()
    ders = [leaf]
    for der in _raw_chain(conn):
        if der not in ders:
            ders.append(der)
    return tuple(load_certificate(der) for der in ders)


def _raw_chain(conn: ssl.SSLObject | ssl.SSLSocket) -> list[bytes]:
    reader = getattr(conn, "get_unverified_chain", None)
    if reader is None:
        reader = getattr(getattr(conn, "_sslobj", None), "get_unverified_chain", None)
    if reader is None:
        return []
    try:
        items = reader() or []
    except (ssl.SSLError, ValueError, AttributeError):
        return []
    out = []
    for item in items:
        if isinstance(item, bytes | bytearray):
            out.append(bytes(item))
        elif hasattr(item, "public_bytes"):
            with contextlib.suppress(ssl.SSLError, ValueError, TypeError):
                out.append(bytes(item.public_bytes(2)))  # _ssl.ENCODING_DER
    return out


def _hostname(conn: ssl.SSLObject | ssl.SSLSocket) -> str | None:
    name = conn.server_hostname
    return name if isinstance(name, str) and name else None


def _before_handshake(conn: ssl.SSLObject | ssl.SSLSocket) -> None:
    """Client side, first step only: offer a cached session for this host."""
    state = conn.__dict__
    if state.get("_xr_started") or conn.server_side:
        return
    state["_xr_started"] = True
    ctx = conn.context
    cache = getattr(ctx, "sessions", None)
    host = _hostname(conn)
    if cache is None or host is None:
        return
    session = cache.get(host)
    if session is not None:
        with contextlib.suppress(ValueError, ssl.SSLError, AttributeError):
            conn.session = session


def _after_handshake(conn: ssl.SSLObject | ssl.SSLSocket) -> None:
    ctx = conn.context
    check = getattr(ctx, "peer_check", None)
    cache = getattr(ctx, "sessions", None)
    host = None if conn.server_side else _hostname(conn)
    if check is not None:
        try:
            check(peer_chain(conn))
        except XRoadError as err:
            if cache is not None and host is not None:
                cache.drop(host)
            raise PeerRejected(err) from err
        except Exception as exc:  # a bug in a check must not take the event loop down
            if cache is not None and host is not None:
                cache.drop(host)
            failure = XRoadError(Code.INTERNAL_ERROR, f"TLS peer check failed: {exc!r}")
            raise PeerRejected(failure) from exc
    if cache is not None and host is not None:
        with contextlib.suppress(ValueError, ssl.SSLError, AttributeError):
            session = conn.session
            if session is not None:
                cache.put(host, session, reused=conn.session_reused)


class _HookedObject(ssl.SSLObject):
    """The in-memory TLS object asyncio uses; runs the peer check in the handshake."""

    def do_handshake(self) -> None:
        _before_handshake(self)
        super().do_handshake()
        _after_handshake(self)


class _HookedSocket(ssl.SSLSocket):
    """The same for blocking sockets."""

    def do_handshake(self, block: bool = False) -> None:
        _before_handshake(self)
        super().do_handshake(block)
        _after_handshake(self)


class _SessionCache:
    """Client TLS sessions per server name, reused for ``seconds`` after the full handshake."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._items: OrderedDict[str, tuple[ssl.SSLSession, float]] = OrderedDict()

    def get(self, host: str) -> ssl.SSLSession | None:
        with self._lock:
            item = self._items.get(host)
            if item is None:
                return None
            session, since = item
            if self._clock() - since > self.seconds:
                del self._items[host]
                return None
            return session

    def put(self, host: str, session: ssl.SSLSession, reused: bool) -> None:
        with self._lock:
            item = self._items.get(host)
            # A resumed session keeps the age of the full handshake it came from.
            since = item[1] if reused and item is not None else self._clock()
            self._items[host] = (session, since)
            self._items.move_to_end(host)
            while len(self._items) > _MAX_SESSIONS:
                self._items.popitem(last=False)

    def drop(self, host: str) -> None:
        with self._lock:
            self._items.pop(host, None)
