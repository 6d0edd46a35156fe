"""proxy.tls over real sockets on 127.0.0.1: the SS↔SS profile (TLS 1.2 only, NIIS ciphers,
mutual authentication decided by global configuration), session resumption, reloads, the
consumer's verification after the handshake, and the IS-facing profile (protocols.md §4.1,
§10.6, §12.1)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import socket
import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crossroad.crypto.algorithms import SHA1, SHA256
from crossroad.crypto.certs import cert_der
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import (
    ApprovedCAInfo,
    CaInfo,
    GlobalSettings,
    ManagementService,
    Member,
    MemberClass,
    OcspInfo,
    PrivateParameters,
    SecurityServer,
    SharedParameters,
)
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.proxy import authtrust, tls
from crossroad.proxy.ocsp_cache import PeerOcspCache
from crossroad.proxy.ocsp_service import start_ocsp_service
from crossroad.testing import pki as testing_pki
from crossroad.testing.pki import EPOCH, Issued, ec_key, make_cert, make_ocsp_response, name

EJBCA = "ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider"
GOV = MemberClass("GOV", "Government")
PROVIDER = ClientId("EE", "GOV", "provider")
CONSUMER = ClientId("EE", "GOV", "consumer")
SS_PROV = SecurityServerId(PROVIDER, "ss-prov")
SS_CONS = SecurityServerId(CONSUMER, "ss-cons")


def sync(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """Run an async test on a fresh event loop."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))  # type: ignore[arg-type]

    return run


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class World:
    pki: testing_pki.TestPKI
    prov: Issued
    cons: Issued
    rogue: Issued
    expired: Issued
    sign: Issued
    foreign: Issued
    ec: Issued
    inter: Issued
    deep: Issued
    snapshot: GlobalConfSnapshot = field(init=False)

    def build(self, *, consumer_registered: bool = True) -> GlobalConfSnapshot:
        prov = [self.prov, self.expired, self.sign, self.foreign, self.ec, self.deep]
        cons = [self.cons] if consumer_registered else []
        shared = SharedParameters(
            instance_identifier="EE",
            global_settings=GlobalSettings(3600, (GOV,)),
            approved_cas=(
                ApprovedCAInfo(
                    "Test CA",
                    CaInfo(
                        cert_der(self.pki.ca.cert),
                        (OcspInfo("http://ocsp", cert_der(self.pki.ocsp.cert)),),
                    ),
                    EJBCA,
                ),
            ),
            members=(Member(GOV, "provider", "P"), Member(GOV, "consumer", "C")),
            security_servers=(
                SecurityServer(PROVIDER, "ss-prov", "127.0.0.1", tuple(_sha256(i) for i in prov)),
                SecurityServer(CONSUMER, "ss-cons", "localhost", tuple(_sha256(i) for i in cons)),
            ),
        )
        private = PrivateParameters("EE", ManagementService("http://cs/", PROVIDER), 60)
        return GlobalConfSnapshot.build(shared, private, version=6)


def _sha256(issued: Issued) -> bytes:
    return SHA256.digest(cert_der(issued.cert))


@pytest.fixture(scope="module")
def world(pki: testing_pki.TestPKI) -> World:
    inter = make_cert(name(O="Test", CN="Test Sub CA"), issuer=pki.ca, kind="ca")
    w = World(
        pki=pki,
        prov=pki.auth_cert("EE", "ss-prov"),
        cons=pki.auth_cert("EE", "ss-cons"),
        rogue=pki.auth_cert("EE", "rogue"),
        expired=make_cert(
            name(C="EE", CN="old"), issuer=pki.ca, kind="auth", not_before=EPOCH, days=30
        ),
        sign=pki.sign_cert("EE", "GOV", "provider"),
        foreign=testing_pki.TestPKI.create("Foreign").auth_cert("EE", "ss-prov"),
        ec=make_cert(name(C="EE", CN="ss-prov-ec"), issuer=pki.ca, kind="auth", key=ec_key()),
        inter=inter,
        deep=make_cert(name(C="EE", CN="ss-prov-deep"), issuer=inter, kind="auth"),
    )
    w.snapshot = w.build()
    return w


# --- harness ------------------------------------------------------------------------------------


@dataclass
class Provider:
    """A TLS listener whose handler answers with what it saw of the peer."""

    port: int
    checked: list[tuple[x509.Certificate, ...]]
    rejected: list[XRoadError]
    holder: tls.ServerTls


def _provider_context(
    w: World,
    presented: Issued,
    *,
    chain: tuple[x509.Certificate, ...] = (),
    snapshot: Callable[[], GlobalConfSnapshot] | None = None,
    seen: Provider | None = None,
) -> tuple[ssl.SSLContext, list[tuple[x509.Certificate, ...]], list[XRoadError]]:
    checked: list[tuple[x509.Certificate, ...]] = []
    rejected: list[XRoadError] = []

    def verify(peer: tuple[x509.Certificate, ...]) -> None:
        checked.append(peer)
        try:
            authtrust.check_registered(snapshot() if snapshot else w.snapshot, peer)
        except XRoadError as err:
            rejected.append(err)
            raise

    ctx = tls.server_context(
        (presented.cert, *chain),
        presented.key,
        verify,
        trusted=authtrust.approved_ca_certs(w.snapshot),
    )
    return ctx, checked, rejected


@asynccontextmanager
async def serve(ctx: ssl.SSLContext) -> AsyncIterator[tuple[int, tls.ServerTls]]:
    holder = tls.ServerTls(ctx)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        obj = writer.get_extra_info("ssl_object")
        chain = tls.peer_chain(obj)
        cn = chain[0].subject.rfc4514_string() if chain else "-"
        writer.write(f"ok {obj.version()} {obj.cipher()[0]} {len(chain)} {cn}".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=holder.context)
    try:
        yield server.sockets[0].getsockname()[1], holder
    finally:
        server.close()
        await server.wait_closed()


async def call(
    port: int, ctx: ssl.SSLContext, hostname: str | None = None
) -> tuple[str, ssl.SSLObject]:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=hostname), 10
    )
    try:
        data = await asyncio.wait_for(reader.read(), 10)
        if not data:
            raise ConnectionResetError("closed without an answer")
        return data.decode(), writer.get_extra_info("ssl_object")
    finally:
        writer.close()


async def refused(port: int, ctx: ssl.SSLContext) -> BaseException:
    with pytest.raises((OSError, asyncio.IncompleteReadError, EOFError)) as info:
        await call(port, ctx)
    return info.value


def _client(w: World, issued: Issued, *chain: x509.Certificate, **kw: object) -> ssl.SSLContext:
    return tls.client_context((issued.cert, *chain), issued.key, **kw)  # type: ignore[arg-type]


# --- the SS↔SS handshake ------------------------------------------------------------------------


@sync
async def test_registered_client_is_accepted(world: World) -> None:
    ctx, checked, rejected = _provider_context(world, world.prov)
    async with serve(ctx) as (port, _):
        answer, obj = await call(port, _client(world, world.cons))
    assert answer.startswith("ok TLSv1.2 ECDHE-RSA-AES256-SHA384 1 CN=ss-cons")
    assert obj.version() == "TLSv1.2"
    assert obj.cipher()[0] in tls.XROAD_CIPHERS
    # OpenSSL sends the issuing CA along (it is in the trust store); root certs are optional.
    assert tls.peer_chain(obj)[0] == world.prov.cert
    assert [c[0] for c in checked] == [world.cons.cert]
    assert rejected == []


@sync
async def test_unregistered_client_is_refused_in_the_handshake(world: World) -> None:
    ctx, checked, rejected = _provider_context(world, world.prov)
    async with serve(ctx) as (port, _):
        await refused(port, _client(world, world.rogue))
    assert [c[0] for c in checked] == [world.rogue.cert]
    assert [e.code for e in rejected] == [Code.SSL_AUTHENTICATION_FAILED]


@pytest.mark.parametrize("who", ["expired", "sign", "foreign"])
@sync
async def test_registered_but_unacceptable_client_certs(world: World, who: str) -> None:
    # Registered in global configuration, but OpenSSL refuses them under the approved CAs:
    # expired, not usable for client authentication, or not issued by an approved CA.
    ctx, checked, _ = _provider_context(world, world.prov)
    async with serve(ctx) as (port, _):
        await refused(port, _client(world, getattr(world, who)))
    assert checked == []


@sync
async def test_client_without_certificate_is_refused(world: World) -> None:
    ctx, checked, _ = _provider_context(world, world.prov)
    bare = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    bare.check_hostname = False
    bare.verify_mode = ssl.CERT_NONE
    async with serve(ctx) as (port, _):
        await refused(port, bare)
    assert checked == []


@sync
async def test_other_tls_versions_are_refused(world: World) -> None:
    ctx, _, _ = _provider_context(world, world.prov)
    tls13 = _client(world, world.cons)
    tls13.maximum_version = ssl.TLSVersion.TLSv1_3
    tls13.minimum_version = ssl.TLSVersion.TLSv1_3
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.check_hostname = False
    old.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("ALL:@SECLEVEL=0")
    key_pem = world.cons.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    async with serve(ctx) as (port, _):
        await refused(port, tls13)
        # TLS 1.1 with our own material: only the version keeps it out.
        old_ctx = tls.client_context((world.cons.cert,), key_pem)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old_ctx.minimum_version = ssl.TLSVersion.TLSv1
            old_ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        old_ctx.set_ciphers("ALL:@SECLEVEL=0")
        await refused(port, old_ctx)
        await refused(port, old)


@pytest.mark.parametrize("cipher", ["ECDHE-RSA-AES256-SHA384", "DHE-RSA-AES256-SHA256"])
@sync
async def test_each_rsa_cipher_of_the_list(world: World, cipher: str) -> None:
    ctx, _, _ = _provider_context(world, world.prov)
    client = _client(world, world.cons)
    client.set_ciphers(cipher)
    async with serve(ctx) as (port, _):
        _, obj = await call(port, client)
    assert obj.cipher()[0] == cipher


@sync
async def test_ecdsa_cipher_with_an_ec_auth_cert(world: World) -> None:
    ctx, _, _ = _provider_context(world, world.ec)
    async with serve(ctx) as (port, _):
        _, obj = await call(port, _client(world, world.cons))
    assert obj.cipher()[0] == "ECDHE-ECDSA-AES256-SHA384"


@sync
async def test_server_prefers_its_own_order_and_refuses_other_ciphers(world: World) -> None:
    ctx, _, _ = _provider_context(world, world.prov)
    reverse = _client(world, world.cons)
    reverse.set_ciphers("DHE-RSA-AES256-SHA256:ECDHE-RSA-AES256-SHA384")
    other = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    other.check_hostname = False
    other.verify_mode = ssl.CERT_NONE
    other.maximum_version = ssl.TLSVersion.TLSv1_2
    other.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256")
    async with serve(ctx) as (port, _):
        _, obj = await call(port, reverse)
        assert obj.cipher()[0] == "ECDHE-RSA-AES256-SHA384"
        await refused(port, other)


@sync
async def test_intermediates_sent_in_the_handshake(world: World) -> None:
    # The client's intermediate is not in global configuration: OpenSSL uses the one sent,
    # and both sides see the whole chain.
    ctx, checked, _ = _provider_context(world, world.deep, chain=(world.inter.cert,))
    async with serve(ctx) as (port, _):
        answer, obj = await call(port, _client(world, world.deep, world.inter.cert))
    assert tls.peer_chain(obj)[:2] == (world.deep.cert, world.inter.cert)
    assert checked[0][0] == world.deep.cert
    assert answer.split()[3] in {"1", "2"}  # 2 where this Python exposes the chain


@sync
async def test_sessions_resume_and_are_checked_again(world: World) -> None:
    snapshots = [world.snapshot]
    ctx, checked, rejected = _provider_context(world, world.prov, snapshot=lambda: snapshots[0])
    client = _client(world, world.cons)
    async with serve(ctx) as (port, _):
        _, first = await call(port, client, "ss-prov.example")
        _, second = await call(port, client, "ss-prov.example")
        _, other_host = await call(port, client, "other.example")
        assert not first.session_reused
        assert second.session_reused
        assert not other_host.session_reused
        assert tls.peer_chain(second)[0] == world.prov.cert
        tls.forget_session(client, "ss-prov.example")
        _, third = await call(port, client, "ss-prov.example")
        assert not third.session_reused
        # The consumer's server is deregistered: a resumed session is refused as well.
        snapshots[0] = world.build(consumer_registered=False)
        await refused(port, client)
    assert len(checked) == 5
    assert [e.code for e in rejected] == [Code.SSL_AUTHENTICATION_FAILED]


@sync
async def test_session_cache_expires(world: World) -> None:
    ctx, _, _ = _provider_context(world, world.prov)
    client = _client(world, world.cons, session_seconds=0.2)
    async with serve(ctx) as (port, _):
        await call(port, client, "h")
        await asyncio.sleep(0.3)
        _, obj = await call(port, client, "h")
    assert not obj.session_reused


@sync
async def test_reload_switches_new_connections(world: World) -> None:
    ctx, _, _ = _provider_context(world, world.prov)
    newer, _, _ = _provider_context(world, world.ec)
    async with serve(ctx) as (port, holder):
        _, before = await call(port, _client(world, world.cons))
        holder.replace(newer)
        assert holder.current is newer
        _, after = await call(port, _client(world, world.cons))
    assert tls.peer_chain(before)[0] == world.prov.cert
    assert tls.peer_chain(after)[0] == world.ec.cert
    assert after.cipher()[0] == "ECDHE-ECDSA-AES256-SHA384"


@sync
async def test_client_side_check_in_the_handshake(world: World) -> None:
    ctx, _, _ = _provider_context(world, world.prov)

    def only_consumers(chain: tuple[x509.Certificate, ...]) -> None:
        if authtrust.check_registered(world.snapshot, chain) != SS_CONS:
            raise XRoadError(Code.SSL_AUTHENTICATION_FAILED, "not the server I want")

    def broken(chain: tuple[x509.Certificate, ...]) -> None:
        raise RuntimeError("bug")

    async with serve(ctx) as (port, _):
        with pytest.raises(tls.PeerRejected) as info:
            await call(port, _client(world, world.cons, verify_peer=only_consumers))
        assert info.value.error.code == Code.SSL_AUTHENTICATION_FAILED
        with pytest.raises(tls.PeerRejected) as info:
            await call(port, _client(world, world.cons, verify_peer=broken))
        assert info.value.error.code == Code.INTERNAL_ERROR


@sync
async def test_blocking_sockets_run_the_check_too(world: World) -> None:
    ctx, checked, _ = _provider_context(world, world.prov)
    seen: list[tuple[x509.Certificate, ...]] = []
    client = _client(world, world.cons, verify_peer=seen.append)

    def blocking(port: int) -> bytes:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client.wrap_socket(raw) as conn,
        ):
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
            return data

    async with serve(ctx) as (port, _):
        data = await asyncio.to_thread(blocking, port)
    assert data.startswith(b"ok TLSv1.2")
    assert [c[0] for c in seen] == [world.prov.cert]
    assert len(checked) == 1


def test_material_errors(world: World) -> None:
    with pytest.raises(XRoadError) as info:
        tls.client_context((world.cons.cert,), world.prov.key)
    assert info.value.code == Code.INTERNAL_ERROR
    with pytest.raises(XRoadError):
        tls.client_context((world.cons.cert,), b"not a key")
    with pytest.raises(XRoadError):
        tls.client_context((), world.cons.key)


# --- the consumer's verification after the handshake --------------------------------------------


@asynccontextmanager
async def ocsp_service(responses: dict[str, bytes]) -> AsyncIterator[int]:
    runner, port = await start_ocsp_service(
        lambda hashes: [responses.get(h) for h in hashes], "127.0.0.1", 0
    )
    try:
        yield port
    finally:
        await runner.cleanup()


def _by_hashes(cert: x509.Certificate, der: bytes) -> dict[str, bytes]:
    return {SHA256.digest(cert_der(cert)).hex(): der, SHA1.digest(cert_der(cert)).hex(): der}


async def _consumer_verifies(
    w: World, presented: Issued, chain: tuple[x509.Certificate, ...], ocsp: dict[str, bytes]
) -> authtrust.AuthenticatedPeer:
    ctx, _, _ = _provider_context(w, presented, chain=chain)
    async with ocsp_service(ocsp) as ocsp_port, serve(ctx) as (port, _):
        _, obj = await call(port, _client(w, w.cons))
        peer = tls.peer_chain(obj)
        cache = PeerOcspCache(port=ocsp_port)
        try:
            return await cache.verify_provider(w.snapshot, peer, PROVIDER, "127.0.0.1", _now())
        finally:
            await cache.close()


@sync
async def test_consumer_verifies_provider_with_downloaded_ocsp(world: World) -> None:
    at = _now() - dt.timedelta(minutes=1)
    good = _by_hashes(world.prov.cert, world.pki.ocsp_for(world.prov.cert, at))
    peer = await _consumer_verifies(world, world.prov, (), good)
    assert peer.server == SS_PROV


@sync
async def test_consumer_verifies_a_chain_with_an_intermediate(world: World) -> None:
    at = _now() - dt.timedelta(minutes=1)
    responses = _by_hashes(
        world.deep.cert,
        make_ocsp_response(world.deep.cert, world.inter.cert, world.pki.ocsp, this_update=at),
    ) | _by_hashes(world.inter.cert, world.pki.ocsp_for(world.inter.cert, at))
    chain = (world.inter.cert,)
    ctx, _, _ = _provider_context(world, world.deep, chain=chain)
    async with serve(ctx) as (port, _):
        _, obj = await call(port, _client(world, world.cons))
    peer = tls.peer_chain(obj)
    if len(peer) == 1:  # this Python cannot read the chain: the intermediate is not in conf
        pytest.skip("peer chain not exposed by this Python")
    assert (await _consumer_verifies(world, world.deep, chain, responses)).server == SS_PROV


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("revoked", f"{Code.INVALID_CERT_PATH}.{Code.CERT_VALIDATION}"),
        ("stale", f"{Code.INVALID_CERT_PATH}.{Code.INCORRECT_VALIDATION_INFO}"),
        ("missing", f"{Code.HTTP_ERROR}"),
    ],
)
@sync
async def test_consumer_refuses_provider(world: World, case: str, code: str) -> None:
    now = _now()
    if case == "revoked":
        der = world.pki.ocsp_for(world.prov.cert, now, revoked_at=now - dt.timedelta(days=1))
    else:
        der = world.pki.ocsp_for(world.prov.cert, now - dt.timedelta(hours=2))
    responses = {} if case == "missing" else _by_hashes(world.prov.cert, der)
    with pytest.raises(XRoadError) as info:
        await _consumer_verifies(world, world.prov, (), responses)
    assert info.value.code == f"{Code.SSL_AUTHENTICATION_FAILED}.{code}"


@sync
async def test_consumer_refuses_unregistered_and_non_auth_providers(world: World) -> None:
    at = _now() - dt.timedelta(minutes=1)
    for presented in (world.rogue, world.sign):
        ocsp = _by_hashes(presented.cert, world.pki.ocsp_for(presented.cert, at))
        with pytest.raises(XRoadError) as info:
            await _consumer_verifies(world, presented, (), ocsp)
        assert info.value.code == Code.SSL_AUTHENTICATION_FAILED


# --- information systems (8443 and calls to provider IS) ----------------------------------------


def _self_signed(cn: str) -> Issued:
    return make_cert(name(CN=cn), kind="auth", not_before=EPOCH, days=10)  # expired: not dated


@sync
async def test_is_server_context(world: World) -> None:
    registered, other = _self_signed("is-registered"), _self_signed("is-other")
    internal = _self_signed("internal")

    def is_client(issued: Issued | None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if issued is not None:
            ctx = tls.client_context((issued.cert,), issued.key)
            ctx.set_ciphers(":".join(tls.IS_CIPHERS))
        return ctx

    optional = tls.is_server_context((internal.cert,), internal.key, is_certs=[registered.cert])
    async with serve(optional) as (port, _):
        answer, obj = await call(port, is_client(registered))
        assert answer.split()[3:5] == ["1", "CN=is-registered"]
        assert obj.cipher()[0] in tls.IS_CIPHERS
        answer, _ = await call(port, is_client(None))
        assert answer.split()[3] == "0"
        await refused(port, is_client(other))
    required = tls.is_server_context(
        (internal.cert,), internal.key, False, is_certs=[registered.cert]
    )
    async with serve(required) as (port, _):
        await call(port, is_client(registered))
        await refused(port, is_client(None))
    no_certs = tls.is_server_context((internal.cert,), internal.key)
    async with serve(no_certs) as (port, _):
        answer, _ = await call(port, is_client(registered))
        assert answer.split()[3] == "0"
    with pytest.raises(XRoadError):
        tls.is_server_context((internal.cert,), internal.key, False)


@sync
async def test_is_client_context(world: World) -> None:
    provider_is, other = _self_signed("provider-is"), _self_signed("other-is")
    internal = _self_signed("internal")
    listener = tls.is_server_context((provider_is.cert,), provider_is.key)
    async with serve(listener) as (port, _):
        await call(port, tls.is_client_context((internal.cert,), internal.key))
        checked = tls.is_client_context(
            (internal.cert,), internal.key, verify_certs=[provider_is.cert]
        )
        await call(port, checked)
        wrong = tls.is_client_context((internal.cert,), internal.key, verify_certs=[other.cert])
        with pytest.raises(ssl.SSLCertVerificationError):
            await call(port, wrong)
    with pytest.raises(XRoadError):
        tls.is_client_context((internal.cert,), internal.key, verify_certs=[])
