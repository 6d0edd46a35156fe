"""The provider security server calls its information system over HTTPS (§4.10 step 5, §10.6).

It presents its internal TLS certificate as the client certificate, never verifies host
names, and only when the service has "verify TLS certificate" (``ssl_authentication``) on, the
information system's certificate must be one of the provider client's registered IS
certificates; otherwise the exchange fails with
``server.serverproxy.service_failed.ssl_authentication_failed`` and nothing reaches the
information system.  The information systems here are the sample REST and SOAP providers
served over HTTPS with a self-signed certificate (CN ``provider-is``, no subject alternative
name, reached as 127.0.0.1), demanding a client certificate signed by ss2's internal key.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.crypto.certs import cert_der
from crossroad.identifiers import ServiceId
from crossroad.wire.faults import SoapFault
from crossroad.wire.soap import parse_soap

from . import providers
from .world import (
    CLIENT,
    PRODUCER,
    REST_PROVIDER,
    World,
    key_pem,
    rest_client,
    rest_path,
    self_signed,
    soap_request,
)

pytestmark = pytest.mark.integration

FAILED = "server.serverproxy.service_failed.ssl_authentication_failed"
PETSTORE = ServiceId(REST_PROVIDER, "petstore")
ECHO = ServiceId(PRODUCER, "echo")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class HttpsProviders:
    rest_base: str
    soap_url: str
    cert: x509.Certificate  # what both present
    other: x509.Certificate  # an IS certificate they do not present
    seen: list[tuple[str, bytes | None]] = field(default_factory=list)  # path, client cert


@pytest.fixture(scope="module")
def https(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsProviders]:
    assert world.provider_internal_cert is not None
    base = tmp_path_factory.mktemp("provider-is")
    cert, key = self_signed("provider-is")
    other, _ = self_signed("another-is")
    (base / "cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    (base / "key.pem").write_bytes(key_pem(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(base / "cert.pem", base / "key.pem")
    context.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no handshake
    context.load_verify_locations(
        cadata=world.provider_internal_cert.public_bytes(Encoding.PEM).decode()
    )
    made = HttpsProviders("", "", cert, other)

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        peer = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        made.seen.append((request.path, peer))
        return await handler(request)

    async def start(app: web.Application) -> tuple[web.AppRunner, int]:
        app.middlewares.append(record)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        return runner, runner.addresses[0][1]

    rest_runner, rest_port = world.run(start(providers.rest_app()))
    soap_runner, soap_port = world.run(start(providers.soap_app()))
    made.rest_base = f"https://127.0.0.1:{rest_port}/v1"
    made.soap_url = f"https://127.0.0.1:{soap_port}/soap"
    try:
        yield made
    finally:
        world.run(rest_runner.cleanup())
        world.run(soap_runner.cleanup())


@contextlib.contextmanager
def staged(
    world: World, https: HttpsProviders, *, verify: bool, is_certs: tuple[x509.Certificate, ...]
) -> Iterator[None]:
    """ss2 works on a configuration where petstore and echo are at the HTTPS providers with
    ``verify``, and the providers (REST_PROVIDER, PRODUCER) have ``is_certs`` registered; the
    stored configuration is put back at once."""
    store = world.provider.store
    current = store.snapshot()
    originals = {s: current.service(s) for s in (PETSTORE, ECHO)}
    hashes = []
    try:
        for service, url in ((PETSTORE, https.rest_base), (ECHO, https.soap_url)):
            store.update_service(service, url=url, ssl_authentication=verify)
            hashes += [
                (service.client, store.add_is_cert(service.client, cert_der(c))) for c in is_certs
            ]
        conf = store.snapshot()
    finally:
        for client, digest in hashes:
            store.remove_is_cert(client, digest)
        for service, entry in originals.items():
            assert entry is not None
            store.update_service(
                service, url=entry.service.url, ssl_authentication=entry.service.ssl_authentication
            )
    with world.swapped(world.provider, serverconf=conf):
        yield


def rest_get(world: World) -> httpx.Response:
    return httpx.get(
        world.consumer.url + rest_path(path="/pets"),
        headers={"X-Road-Client": rest_client(CLIENT)},
        timeout=60,
    )


def soap_echo(world: World) -> httpx.Response:
    return httpx.post(
        world.consumer.url,
        content=soap_request(CLIENT, "echo"),
        headers={"Content-Type": "text/xml; charset=UTF-8"},
        timeout=60,
    )


def assert_served(world: World, https: HttpsProviders) -> None:
    before = len(https.seen)
    rest = rest_get(world)
    assert rest.status_code == 200, rest.text
    assert rest.json() == httpx.get(world.rest_base + "/pets").json()
    soap = soap_echo(world)
    assert soap.status_code == 200
    assert not isinstance(parse_soap(soap.content, soap.headers["content-type"]), SoapFault)
    assert b"<tns:text>hello</tns:text>" in soap.content
    # Both calls arrived, each over TLS with ss2's internal certificate as client certificate.
    internal = world.provider_internal_cert
    assert internal is not None
    assert https.seen[before:] == [("/v1/pets", cert_der(internal)), ("/soap", cert_der(internal))]


def assert_refused(world: World, https: HttpsProviders) -> None:
    before = len(https.seen)
    rest = rest_get(world)
    assert rest.status_code == 500
    assert rest.headers["x-road-error"] == FAILED, rest.text
    soap = soap_echo(world)
    fault = parse_soap(soap.content, soap.headers["content-type"])
    assert isinstance(fault, SoapFault), soap.text
    assert fault.code == FAILED
    assert https.seen[before:] == []  # nothing reached the information system


def test_verify_on_and_the_certificate_registered(world: World, https: HttpsProviders) -> None:
    with staged(world, https, verify=True, is_certs=(https.other, https.cert)):
        assert_served(world, https)


def test_verify_on_and_the_certificate_not_registered(world: World, https: HttpsProviders) -> None:
    with staged(world, https, verify=True, is_certs=(https.other,)):
        assert_refused(world, https)


def test_verify_on_and_no_certificate_registered(world: World, https: HttpsProviders) -> None:
    with staged(world, https, verify=True, is_certs=()):
        assert_refused(world, https)


def test_verify_off_accepts_any_certificate(world: World, https: HttpsProviders) -> None:
    with staged(world, https, verify=False, is_certs=()):
        assert_served(world, https)


def test_a_pooled_connection_is_checked_again(world: World, https: HttpsProviders) -> None:
    """A connection kept open from a call that passed is not trusted for a call that must
    not: the check runs whenever a connection is taken for a request."""
    with staged(world, https, verify=False, is_certs=()):
        assert_served(world, https)
    with staged(world, https, verify=True, is_certs=(https.other,)):
        assert_refused(world, https)
    with staged(world, https, verify=True, is_certs=(https.cert,)):
        assert_served(world, https)


def test_an_information_system_refusing_the_client_certificate(
    world: World, https: HttpsProviders, tmp_path: Path
) -> None:
    """The handshake itself fails: the information system does not trust ss2's internal
    certificate.  In TLS 1.2 it answers the client's last flight with an alert and closes;
    whether the alert or the reset of the unread records arrives first decides between
    ``ssl_authentication_failed`` and ``network_error``.  Nothing is delivered either way."""
    cert, key = self_signed("strict-is")
    stranger, _ = self_signed("someone-else")
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key_pem(key))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=stranger.public_bytes(Encoding.PEM).decode())
    calls: list[str] = []

    async def pets(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.json_response([])

    async def start() -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_get("/v1/pets", pets)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
        return runner, runner.addresses[0][1]

    runner, port = world.run(start())
    try:
        strict = HttpsProviders(f"https://127.0.0.1:{port}/v1", https.soap_url, cert, https.other)
        with staged(world, strict, verify=False, is_certs=()):
            rest = rest_get(world)
        assert rest.headers["x-road-error"] in (
            FAILED,
            "server.serverproxy.service_failed.network_error",
        ), rest.text
        assert calls == []
    finally:
        world.run(runner.cleanup())
