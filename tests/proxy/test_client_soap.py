"""The client proxy's SOAP faults, end to end: each with its exact code, nothing half-delivered
(a complete fault with HTTP 200 and ``text/xml; charset=UTF-8``, and the provider information
system not called when the exchange must stop before it)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ssl

import httpx
import pytest

from crossroad.globalconf.model import MaintenanceMode
from crossroad.identifiers import ClientId
from crossroad.wire.faults import SoapFault
from crossroad.wire.soap import parse_soap

from .world import (
    CLIENT,
    CONSUMER,
    GLOBAL,
    LOCAL,
    PLAIN,
    REST_PROVIDER,
    SS1,
    SS2,
    SSLAUTH,
    SSLNOAUTH,
    STRANGER,
    UNREGISTERED,
    World,
    globalconf_of,
    soap_request,
)

pytestmark = pytest.mark.integration

XML = "text/xml; charset=UTF-8"


def post(world: World, body: bytes, content_type: str = XML, **headers: str) -> httpx.Response:
    return httpx.post(
        world.consumer.url,
        content=body,
        headers={"Content-Type": content_type, **headers},
        timeout=60,
    )


def fault_of(response: httpx.Response) -> SoapFault:
    assert response.status_code == 200
    assert response.headers["content-type"] == XML
    parsed = parse_soap(response.content, XML)
    assert isinstance(parsed, SoapFault), response.text
    return parsed


def expect_fault(world: World, body: bytes, code: str, **kwargs: str) -> SoapFault:
    before = len(world.soap_calls)
    fault = fault_of(post(world, body, **kwargs))
    assert fault.code == code, fault.string
    assert len(world.soap_calls) == before, "the provider IS must not have been called"
    return fault


def ok(world: World, body: bytes, **kwargs: str) -> bytes:
    response = post(world, body, **kwargs)
    assert response.status_code == 200
    parsed = parse_soap(response.content, response.headers["content-type"])
    assert not isinstance(parsed, SoapFault), response.text
    return response.content


# --------------------------------------------------------------------------- bad input


def test_missing_header(world: World) -> None:
    body = (
        b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
        b"<SOAP-ENV:Body><x/></SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
    expect_fault(world, body, "client.missing_header")


def test_duplicate_header_field(world: World) -> None:
    body = soap_request(extra_headers="<xrd:id>second</xrd:id>")
    expect_fault(world, body, "client.duplicate_header_field")


def test_missing_header_field(world: World) -> None:
    body = soap_request().replace(b"<xrd:id>q-1</xrd:id>", b"")
    expect_fault(world, body, "client.missing_header_field")


def test_malformed_xml(world: World) -> None:
    expect_fault(world, soap_request()[:-30], "client.invalid_soap")


def test_doctype_refused(world: World) -> None:
    body = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>' + soap_request()[39:]
    expect_fault(world, body, "client.invalid_soap")


def test_wrong_content_type(world: World) -> None:
    expect_fault(world, soap_request(), "client.invalid_content_type", content_type="text/html")


def test_wrong_protocol_version(world: World) -> None:
    expect_fault(world, soap_request(protocol_version="3.1"), "client.invalid_protocol_version")


def test_invalid_soap_action(world: World) -> None:
    expect_fault(world, soap_request(), "client.invalid_soap_action", SOAPAction="not quoted")


def test_get_is_not_soap(world: World) -> None:
    response = httpx.get(world.consumer.url + "/", timeout=30)
    assert fault_of(response).code == "client.invalid_http_method"


def test_empty_multipart_has_no_soap(world: World) -> None:
    content_type = "multipart/related; boundary=b1"
    expect_fault(world, b"", "client.missing_soap", content_type=content_type)


# --------------------------------------------------------------------------- who and where


def test_unknown_client(world: World) -> None:
    expect_fault(world, soap_request(STRANGER), "server.clientproxy.unknown_member")


def test_client_not_registered_here(world: World) -> None:
    expect_fault(world, soap_request(UNREGISTERED), "server.clientproxy.unknown_member")


def test_unknown_provider(world: World) -> None:
    body = soap_request(provider=STRANGER, service_code="getState")
    expect_fault(world, body, "server.clientproxy.unknown_member")


def test_unknown_service(world: World) -> None:
    expect_fault(world, soap_request(service_code="nosuch"), "server.serverproxy.unknown_service")


def test_rest_service_called_with_soap(world: World) -> None:
    body = soap_request(provider=REST_PROVIDER, service_code="petstore")
    expect_fault(world, body, "server.serverproxy.service_type")


def test_targeting_a_server_that_does_not_serve_the_provider(world: World) -> None:
    target = (
        '<xrd:securityServer id:objectType="SERVER"><id:xRoadInstance>EE</id:xRoadInstance>'
        "<id:memberClass>BUSINESS</id:memberClass><id:memberCode>consumer</id:memberCode>"
        "<id:serverCode>ss1</id:serverCode></xrd:securityServer>"
    )
    body = soap_request(service_code="getState", extra_headers=target)
    expect_fault(world, body, "server.clientproxy.invalid_security_server")
    ok(
        world,
        soap_request(
            service_code="getState",
            extra_headers=target.replace("consumer", "producer").replace("ss1", "ss2"),
        ),
    )


def _maintenance(world: World) -> object:
    shared = world.globalconf.own_shared
    servers = tuple(
        dataclasses.replace(s, maintenance=MaintenanceMode("back at noon")) if s.id == SS2 else s
        for s in shared.security_servers
    )
    return globalconf_of(dataclasses.replace(shared, security_servers=servers))


def test_provider_in_maintenance_mode(world: World) -> None:
    with world.swapped(world.consumer, globalconf=_maintenance(world)):  # type: ignore[arg-type]
        fault = expect_fault(world, soap_request(), "server.clientproxy.maintenance_mode")
    assert "back at noon" in (fault.string or "")


def test_expired_global_configuration_on_the_consumer(world: World) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    expired = globalconf_of(world.globalconf.own_shared, expires=past)
    with world.swapped(world.consumer, globalconf=expired):
        expect_fault(world, soap_request(), "server.clientproxy.global_conf_outdated")


def test_expired_global_configuration_on_the_provider(world: World) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    expired = globalconf_of(world.globalconf.own_shared, expires=past)
    with world.swapped(world.provider, globalconf=expired):
        expect_fault(world, soap_request(), "server.serverproxy.global_conf_outdated")


# --------------------------------------------------------------------------- access rights


def test_member_right_does_not_cover_its_subsystems(world: World) -> None:
    ok(world, soap_request(CONSUMER, "echo"))
    expect_fault(world, soap_request(PLAIN, "echo"), "server.serverproxy.access_denied")


def test_subsystem_right_is_for_that_subsystem_only(world: World) -> None:
    ok(world, soap_request(CLIENT, "echo"))
    expect_fault(world, soap_request(PLAIN, "getState"), "server.serverproxy.access_denied")


def test_global_group_right(world: World) -> None:
    ok(world, soap_request(GLOBAL, "getState"))
    expect_fault(world, soap_request(GLOBAL, "echo"), "server.serverproxy.access_denied")


def test_local_group_right(world: World) -> None:
    ok(world, soap_request(LOCAL, "getState"))
    expect_fault(world, soap_request(LOCAL, "echo"), "server.serverproxy.access_denied")


def test_disabled_service(world: World) -> None:
    store = world.provider.store
    description = next(
        d for c in store.snapshot().clients for d in c.descriptions if d.type.value == "WSDL"
    )
    store.disable_description(description.id, "Closed for maintenance")
    disabled = store.snapshot()
    store.enable_description(description.id)
    with world.swapped(world.provider, serverconf=disabled):
        fault = expect_fault(world, soap_request(), "server.serverproxy.service_disabled")
    assert "Closed for maintenance" in (fault.string or "")


# --------------------------------------------------------------------------- the response


def test_inconsistent_response(world: World) -> None:
    fault = fault_of(post(world, soap_request(service_code="changeId")))
    assert fault.code == "server.clientproxy.service_failed.inconsistent_response"


def test_fault_of_the_provider_is_passed_as_is(world: World) -> None:
    fault = fault_of(post(world, soap_request(service_code="fail")))
    assert fault.code == "SOAP-ENV:Server"
    assert fault.string == "The service failed on purpose"


# --------------------------------------------------------------------------- IS connection types


def _is_client(world: World, cert: bool) -> httpx.Client:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cert:
        from cryptography.hazmat.primitives.serialization import Encoding

        from .world import key_pem

        path = world.root / "is.pem"
        path.write_bytes(world.is_cert.public_bytes(Encoding.PEM) + key_pem(world.is_key))
        ctx.load_cert_chain(path)
    return httpx.Client(verify=ctx, timeout=60)


def _over_tls(world: World, client: ClientId, cert: bool) -> httpx.Response:
    with _is_client(world, cert) as http:
        return http.post(
            world.consumer.tls_url,
            content=soap_request(client, "getState"),
            headers={"Content-Type": XML},
        )


def test_sslauth_client_needs_its_registered_certificate(world: World) -> None:
    expect_fault(
        world, soap_request(SSLAUTH, "getState"), "server.clientproxy.ssl_authentication_failed"
    )
    assert fault_of(_over_tls(world, SSLAUTH, cert=False)).code == (
        "server.clientproxy.ssl_authentication_failed"
    )
    response = _over_tls(world, SSLAUTH, cert=True)
    assert b"getStateResponse" in response.content, response.text


def test_sslnoauth_client_needs_https(world: World) -> None:
    body = soap_request(SSLNOAUTH, "getState")
    expect_fault(world, body, "server.clientproxy.ssl_authentication_failed")
    assert b"getStateResponse" in _over_tls(world, SSLNOAUTH, cert=False).content


def test_nossl_client_may_use_https_too(world: World) -> None:
    assert b"getStateResponse" in _over_tls(world, CLIENT, cert=True).content
    assert SS1.server_code == "ss1"
