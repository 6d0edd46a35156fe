"""The server proxy against hand-made transport messages and hostile peers: the order of checks
of protocols.md §4.10 and the exact codes a peer sees; tampering in transit; authentication
certificates that are unregistered, revoked or expired; stale OCSP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import Iterator

import aiohttp
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from crossroad.crypto.algorithms import SHA256
from crossroad.crypto.certs import cert_der
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.proxy import tls
from crossroad.testing.clock import FrozenClock
from crossroad.trust.client import fetch_ocsp
from crossroad.wire.faults import SoapFault
from crossroad.wire.soap import parse_soap
from crossroad.wire.transport_encoder import TransportEncoder

from .world import (
    ADDRESS2,
    CLIENT,
    CONSUMER,
    OTHER,
    SS1,
    SS2,
    World,
    globalconf_of,
    key_pem,
    soap_request,
)

pytestmark = pytest.mark.integration

BOUNDARY = "xtopabcdefghijklmnopqrstuvwxyzabcd"


def consumer_auth(world: World) -> tuple[tuple[x509.Certificate, ...], bytes, tuple[bytes, ...]]:
    material = world.run(world.consumer.ctx.auth_material())
    return material.chain, material.key_pem, material.ocsp


def message(
    world: World,
    soap: bytes,
    *,
    signer: ClientId = CONSUMER,
    ocsp: tuple[bytes, ...] | None = None,
    sign: bool = True,
    tamper: bool = False,
) -> bytes:
    encoder = TransportEncoder(BOUNDARY)
    if ocsp is None:
        ocsp = consumer_auth(world)[2]
    out = b"".join(encoder.ocsp(der) for der in ocsp)
    out += encoder.soap(soap, "text/xml; charset=UTF-8")
    parts = encoder.signing_parts()
    if tamper:
        out = out.replace(b"hello", b"HELLO")
    if sign:
        signed = world.run(world.consumer.signer_client.sign(signer, parts))
        out += encoder.signature(signed.signature_xml, signed.hash_chain_result, signed.hash_chain)
    return out + encoder.close()


def post(
    world: World,
    body: bytes,
    *,
    chain: tuple[x509.Certificate, ...] | None = None,
    key: bytes | None = None,
    method: str = "POST",
    content_type: str = f"multipart/mixed; charset=UTF-8; boundary={BOUNDARY}",
    **headers: str,
) -> httpx.Response:
    if chain is None or key is None:
        chain, key, _ = consumer_auth(world)
    ctx = tls.client_context(chain, key, session_seconds=0)
    with httpx.Client(verify=ctx, timeout=60) as http:
        return http.request(
            method,
            f"https://{ADDRESS2}:{world.server_port}/",
            content=body,
            headers={"Content-Type": content_type, "x-hash-algorithm": "SHA-512", **headers},
        )


def fault_code(response: httpx.Response) -> str:
    assert response.status_code == 200
    parsed = parse_soap(response.content, response.headers["content-type"])
    assert isinstance(parsed, SoapFault), response.text
    return parsed.code or ""


def test_a_good_hand_made_message_is_answered(world: World) -> None:
    response = post(world, message(world, soap_request(CLIENT, "getState")))
    assert response.headers["content-type"].startswith("multipart/mixed")
    assert b"signature/bdoc-1.0/ts" in response.content


def test_only_post(world: World) -> None:
    response = post(world, b"", method="GET")
    assert fault_code(response) == "server.serverproxy.invalid_http_method"


def test_client_version_below_minimum(world: World) -> None:
    ctx = world.provider.ctx
    old = ctx.settings
    ctx.settings = dataclasses.replace(old, min_client_version="7.9.0")
    try:
        response = post(world, message(world, soap_request()), **{"x-proxy-version": "7.8.1"})
    finally:
        ctx.settings = old
    assert fault_code(response) == "server.serverproxy.client_proxy_version_not_supported"


def test_not_a_transport_message(world: World) -> None:
    response = post(world, soap_request(), content_type="text/plain")
    assert fault_code(response) == "server.serverproxy.service_failed.invalid_content_type"


def test_missing_signature(world: World) -> None:
    response = post(world, message(world, soap_request(), sign=False))
    assert fault_code(response) == "server.serverproxy.missing_signature"


def test_signature_by_another_member(world: World) -> None:
    response = post(world, message(world, soap_request(CLIENT, "getState"), signer=OTHER))
    assert fault_code(response) == "server.serverproxy.signature_verification.incorrect_certificate"


def test_message_changed_after_signing(world: World) -> None:
    before = len(world.soap_calls)
    response = post(world, message(world, soap_request(CLIENT, "echo"), tamper=True))
    code = fault_code(response)
    assert code == "server.serverproxy.signature_verification.invalid_signature_value"
    assert len(world.soap_calls) == before


def test_request_without_ocsp_parts(world: World) -> None:
    response = post(world, message(world, soap_request(), ocsp=()))
    assert fault_code(response) == "server.serverproxy.ssl_authentication_failed"


def test_security_server_header_must_name_this_server(world: World) -> None:
    target = (
        '<xrd:securityServer id:objectType="SERVER"><id:xRoadInstance>EE</id:xRoadInstance>'
        "<id:memberClass>BUSINESS</id:memberClass><id:memberCode>consumer</id:memberCode>"
        "<id:serverCode>ss1</id:serverCode></xrd:securityServer>"
    )
    response = post(world, message(world, soap_request(extra_headers=target)))
    assert fault_code(response) == "server.serverproxy.invalid_security_server"


# --------------------------------------------------------------------------- auth certificates


def _issue(
    world: World, server: SecurityServerId, *, now: dt.datetime, days: int = 30
) -> tuple[x509.Certificate, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server.server_code)]))
        .sign(key, hashes.SHA256())
    )

    async def issue() -> x509.Certificate:
        return world.services.ca.issue(csr, "auth", now=now, server=server, days=days)

    return world.run(issue()), key_pem(key)


def _registered(world: World, cert: x509.Certificate) -> object:
    shared = world.globalconf.own_shared
    servers = tuple(
        dataclasses.replace(
            s, auth_cert_hashes=(*s.auth_cert_hashes, SHA256.digest(cert_der(cert)))
        )
        if s.id == SS1
        else s
        for s in shared.security_servers
    )
    return globalconf_of(dataclasses.replace(shared, security_servers=servers))


def test_unregistered_auth_certificate_fails_the_handshake(world: World) -> None:
    cert, key = _issue(world, SecurityServerId(CONSUMER, "ss9"), now=dt.datetime.now(dt.UTC))
    with pytest.raises(httpx.TransportError):
        post(world, message(world, soap_request()), chain=(cert,), key=key)


def test_expired_auth_certificate_fails_the_handshake(world: World) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    cert, key = _issue(world, SS1, now=past, days=1)
    registered = _registered(world, cert)
    with (
        world.swapped(world.provider, globalconf=registered),  # type: ignore[arg-type]
        pytest.raises(httpx.TransportError),
    ):
        post(world, message(world, soap_request()), chain=(cert,), key=key)


def test_revoked_auth_certificate(world: World) -> None:
    now = dt.datetime.now(dt.UTC)
    cert, key = _issue(world, SS1, now=now - dt.timedelta(minutes=5))

    async def revoke_and_fetch() -> bytes:
        world.services.ca.revoke(
            cert.serial_number, "keyCompromise", at=now - dt.timedelta(minutes=1)
        )
        async with aiohttp.ClientSession() as session:
            return await fetch_ocsp(session, world.services.ocsp_url, cert, world.services.ca_cert)

    revoked = world.run(revoke_and_fetch())
    with world.swapped(world.provider, globalconf=_registered(world, cert)):  # type: ignore[arg-type]
        response = post(
            world, message(world, soap_request(), ocsp=(revoked,)), chain=(cert,), key=key
        )
    assert fault_code(response) == "server.serverproxy.ssl_authentication_failed"


@contextlib.contextmanager
def provider_clock(world: World, at: dt.datetime) -> Iterator[None]:
    ctx = world.provider.ctx
    old = ctx.clock
    ctx.clock = FrozenClock(at)
    try:
        yield
    finally:
        ctx.clock = old


def test_stale_ocsp_of_the_consumer(world: World) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    with provider_clock(world, later):
        response = httpx.post(
            world.consumer.url,
            content=soap_request(CLIENT, "getState"),
            headers={"Content-Type": "text/xml"},
            timeout=60,
        )
    assert fault_code(response) == "server.serverproxy.ssl_authentication_failed"


# --------------------------------------------------------------------------- in transit


class Relay:
    """A TCP relay that flips one byte after ``offset`` bytes in one direction."""

    def __init__(self, target: tuple[str, int], offset: int | None, upstream: bool) -> None:
        self.target = target
        self.offset = offset
        self.upstream = upstream
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, host, port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            self._pipe(reader, up_writer, self.upstream),
            self._pipe(up_reader, writer, not self.upstream),
            return_exceptions=True,
        )

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, flip: bool
    ) -> None:
        seen = 0
        try:
            while data := await reader.read(65536):
                if flip and self.offset is not None and seen <= self.offset < seen + len(data):
                    i = self.offset - seen
                    data = data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]
                seen += len(data)
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


RELAY = "127.0.0.3"


@contextlib.contextmanager
def relayed(world: World, offset: int, upstream: bool) -> Iterator[None]:
    relays = [
        Relay((ADDRESS2, world.server_port), offset, upstream),
        Relay((ADDRESS2, world.ocsp_port), None, upstream),
    ]
    world.run(relays[0].start(RELAY, world.server_port))
    world.run(relays[1].start(RELAY, world.ocsp_port))
    shared = world.globalconf.own_shared
    servers = tuple(
        dataclasses.replace(s, address=RELAY) if s.id == SS2 else s for s in shared.security_servers
    )
    moved = globalconf_of(dataclasses.replace(shared, security_servers=servers))
    try:
        with world.swapped(world.consumer, globalconf=moved):
            yield
    finally:
        for relay in relays:
            world.run(relay.stop())


def _with_attachment(world: World) -> tuple[bytes, str]:
    boundary = "relay-boundary"
    soap = soap_request(CLIENT, "echo")
    body = (
        f"--{boundary}\r\nContent-Type: text/xml; charset=UTF-8\r\n\r\n".encode()
        + soap
        + f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()
        + bytes(range(256)) * 400
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f'multipart/related; type="text/xml"; boundary={boundary}'


@pytest.mark.parametrize("upstream", [True, False], ids=["request", "response"])
def test_a_byte_flipped_in_transit(world: World, upstream: bool) -> None:
    body, content_type = _with_attachment(world)
    with relayed(world, 60_000, upstream):
        response = httpx.post(
            world.consumer.url, content=body, headers={"Content-Type": content_type}, timeout=60
        )
    code = fault_code(response)  # a complete fault, nothing of the message
    assert code.startswith("server.clientproxy."), code
    assert code.endswith(("network_error", "ssl_authentication_failed", "io_error")), code
    assert b"Envelope" in response.content
    assert response.headers["content-type"] == "text/xml; charset=UTF-8"
