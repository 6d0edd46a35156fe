"""SOAP faults and REST error responses (crossroad.wire.faults, §2.5, §3.3)."""

from __future__ import annotations

import json

import pytest

from crossroad.errors import XRoadError
from crossroad.wire.faults import (
    SOAP_FAULT_HEADERS,
    SoapFault,
    build_fault,
    escape_xml10,
    rest_error_content_type,
    rest_error_response,
    soap_fault,
)
from crossroad.wire.soap import parse_soap


def test_fault_envelope_bytes() -> None:
    assert build_fault("server.clientproxy.access_denied", "No", "6f0c") == (
        b'<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope '
        b'xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>'
        b"<SOAP-ENV:Fault><faultcode>server.clientproxy.access_denied</faultcode>"
        b"<faultstring>No</faultstring><faultactor></faultactor><detail>"
        b'<faultDetail xmlns="">6f0c</faultDetail></detail></SOAP-ENV:Fault>'
        b"</SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
    assert b"faultactor" not in build_fault("a", "b", actor=None)
    assert b"detail" not in build_fault("a", "b")
    assert SOAP_FAULT_HEADERS == (("Content-Type", "text/xml; charset=UTF-8"), ("SOAPAction", ""))


def test_escaping_matches_commons_text() -> None:
    assert escape_xml10("a<b>&\"'\x00\x1f\x7f\x85é") == "a&lt;b&gt;&amp;&quot;&apos;&#127;\x85é"


def test_fault_round_trip() -> None:
    err = XRoadError("Server.ClientProxy.AccessDenied", "Request <denied> & logged")
    data = soap_fault(err, "uuid-1")
    fault = parse_soap(data)
    assert isinstance(fault, SoapFault)
    assert fault.code == "server.clientproxy.access_denied"
    assert fault.string == "Request <denied> & logged"
    assert fault.detail == "uuid-1"
    assert fault.raw == data
    assert fault.to_bytes() == data
    assert fault.to_error().code == "server.clientproxy.access_denied"
    built = SoapFault("client.x", "s", None, "d")
    assert parse_soap(built.to_bytes()) == SoapFault("client.x", "s", None, "d", built.to_bytes())


# The Accept header table of NIIS RestProxyTest.shouldRespectAcceptHeaderInErrorResponse.
@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/json;charset=utf-8", "application/json"),
        ("foobarbaz", "application/json"),
        (None, "application/json"),
        ("application/xml", "application/xml;charset=utf-8"),
        ("text/xml", "text/xml;charset=utf-8"),
        ("application/xml, text/xml", "application/xml;charset=utf-8"),
        ("text/xml, application/xml", "text/xml;charset=utf-8"),
        ("text/xml-patch+xml", "application/json"),
        ("application/xml; q=0.2", "application/xml;charset=utf-8"),
        ("text/xml, application/xml, application/json", "text/xml;charset=utf-8"),
        ("text/*", "text/xml;charset=utf-8"),
        (["foo", "TEXT/XML"], "text/xml;charset=utf-8"),
    ],
)
def test_rest_error_content_type(accept: str | list[str] | None, content_type: str) -> None:
    status, headers, _ = rest_error_response(XRoadError("server.serverproxy.service_type"), accept)
    assert status == 500
    assert headers == [
        ("X-Road-Error", "server.serverproxy.service_type"),
        ("Content-Type", content_type),
    ]
    assert rest_error_content_type(accept) == content_type.split(";")[0]


def test_rest_error_bodies() -> None:
    err = XRoadError("client.bad_request", 'Bad "request" <x> ä')
    status, _, body = rest_error_response(err, "application/json", "uuid")
    assert status == 400
    expected = '{"type":"client.bad_request","message":"Bad \\"request\\" <x> ä","detail":"uuid"}'
    assert body == expected.encode()
    assert json.loads(body)["message"] == 'Bad "request" <x> ä'
    _, _, xml = rest_error_response(err, "text/xml", "uuid")
    assert (
        xml
        == (
            '<?xml version="1.0" encoding="UTF-8" standalone="no"?><error><type>client.bad_request'
            '</type><message>Bad "request" &lt;x&gt; ä</message><detail>uuid</detail></error>'
        ).encode()
    )
    _, _, no_detail = rest_error_response(err, "text/xml")
    assert no_detail.endswith(b"<detail/></error>")
    assert json.loads(rest_error_response(err, None)[2])["detail"] is None
