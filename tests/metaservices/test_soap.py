"""SOAP metaservices (§7.2): listMethods, allowedMethods with every kind of access right,
getWsdl as a multipart answer, header echo, the request-body rules and fuzzing."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from crossroad.errors import Code, XRoadError
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import XROAD_NS, ClientId, ServiceId
from crossroad.metaservices.soap import (
    ALLOWED_METHODS,
    GET_WSDL,
    LIST_METHODS,
    handle_soap_meta,
    is_meta_service,
    method_list_soap,
    parse_wsdl_request,
    wsdl_service,
)
from crossroad.serverconf.descriptions import ANONYMOUS_ENDPOINT, SOAP11_NS
from crossroad.serverconf.model import ServerConf
from crossroad.wire.faults import SOAP_ENV_NS
from crossroad.wire.mime import ContentType, parse_multipart
from crossroad.wire.soap import SoapMessage
from crossroad.wire.soap_response import check_response, insert_request_hash, request_hash
from crossroad.wire.swa import decode_package

from .conftest import (
    CONSUMER,
    CONSUMER_MEMBER,
    IN_GLOBAL,
    IN_LOCAL,
    PROVIDER,
    STRANGER,
    WSDL,
    soap_bytes,
    soap_request,
)

X = f"{{{XROAD_NS}}}"
BODY = f"{{{SOAP_ENV_NS}}}Body"


def _services(response_soap: bytes) -> list[str]:
    root = etree.fromstring(response_soap)
    body = root.find(BODY)
    assert body is not None
    assert len(body) == 1
    return [str(ServiceId.from_xml(e)) for e in body[0]]


def _meta(code: str) -> ServiceId:
    return ServiceId(PROVIDER, code)


def test_is_meta_service() -> None:
    assert all(is_meta_service(c) for c in (LIST_METHODS, ALLOWED_METHODS, GET_WSDL))
    assert not is_meta_service("getOpenAPI")
    assert not is_meta_service("listClients")
    assert not is_meta_service("getRandom")


def test_list_methods_lists_every_wsdl_service(
    serverconf: ServerConf,
    globalconf: GlobalConfSnapshot,
    validate: Callable[[etree._Element], None],
) -> None:
    request = soap_request(STRANGER, _meta(LIST_METHODS))
    response = handle_soap_meta(request, serverconf, globalconf)
    assert response.content_type == "text/xml; charset=UTF-8"
    assert response.body == response.soap
    assert response.attachments == ()
    assert _services(response.soap) == [
        "SERVICE:EE/GOV/1/prov/getRandom/v1",
        "SERVICE:EE/GOV/1/prov/helloService/v1",
        "SERVICE:EE/GOV/1/prov/helloService/v2",
        "SERVICE:EE/GOV/1/prov/bye",
    ]
    parsed = SoapMessage.parse(response.soap)
    assert parsed.body_name == "listMethodsResponse"
    assert parsed.body_namespace == XROAD_NS
    body = etree.fromstring(response.soap).find(BODY)
    assert body is not None
    validate(body[0])
    for service in body[0]:
        assert service.tag == f"{X}service"


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (CONSUMER_MEMBER, ["getRandom/v1"]),  # exact member right
        (
            CONSUMER,
            ["helloService/v1", "helloService/v2"],
        ),  # subsystem right; member's not inherited
        (IN_LOCAL, ["bye"]),  # local group of the provider
        (IN_GLOBAL, ["getRandom/v1"]),  # global group of the global configuration
        (STRANGER, []),
    ],
)
def test_allowed_methods_follow_access_rights(
    serverconf: ServerConf,
    globalconf: GlobalConfSnapshot,
    validate: Callable[[etree._Element], None],
    client: ClientId,
    expected: list[str],
) -> None:
    response = handle_soap_meta(
        soap_request(client, _meta(ALLOWED_METHODS)), serverconf, globalconf
    )
    assert _services(response.soap) == [f"SERVICE:EE/GOV/1/prov/{s}" for s in expected]
    parsed = SoapMessage.parse(response.soap)
    assert parsed.body_name == "allowedMethodsResponse"
    body = etree.fromstring(response.soap).find(BODY)
    assert body is not None
    validate(body[0])


def test_allowed_methods_for_an_explicit_client(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    request = soap_request(STRANGER, _meta(ALLOWED_METHODS))
    response = handle_soap_meta(request, serverconf, globalconf, IN_LOCAL)
    assert _services(response.soap) == ["SERVICE:EE/GOV/1/prov/bye"]


def test_unknown_provider_lists_nothing(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    request = soap_request(CONSUMER, ServiceId(ClientId("EE", "X", "9"), LIST_METHODS))
    assert _services(handle_soap_meta(request, serverconf, globalconf).soap) == []


def test_response_echoes_the_request_headers_and_passes_the_client_checks(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    extra = (
        '<repr:representedParty xmlns:repr="http://x-road.eu/xsd/representation.xsd">'
        "<repr:partyCode>P1</repr:partyCode></repr:representedParty>"
        '<ext:custom xmlns:ext="urn:ext">kept</ext:custom>'
    )
    raw = soap_bytes(CONSUMER, _meta(ALLOWED_METHODS), extra_headers=extra, prefix="xrd")
    request = SoapMessage.parse(raw)
    response = handle_soap_meta(request, serverconf, globalconf)
    parsed = SoapMessage.parse(response.soap)
    assert parsed.represented_party == request.represented_party
    assert (parsed.user_id, parsed.issue, parsed.query_id) == ("EE123", "ISS", "q-1")
    assert b"<xrd:allowedMethodsResponse>" in response.soap
    assert b"<ext:custom" in response.soap
    assert b"kept</ext:custom>" in response.soap
    # As the provider's server proxy would send it, the consumer accepts it.
    signed = insert_request_hash(response.soap, request_hash(raw))
    check_response(request, SoapMessage.parse(signed))


def test_body_without_xroad_prefix_in_scope(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    # The xroad namespace is declared on the header only; the body element is foreign.
    raw = soap_bytes(
        CONSUMER_MEMBER, _meta(LIST_METHODS), body='<m:listMethods xmlns:m="urn:other"/>'
    )
    decl = b' xmlns:xroad="http://x-road.eu/xsd/xroad.xsd"'
    raw = raw.replace(decl, b"", 1).replace(b"<SOAP-ENV:Header>", b"<SOAP-ENV:Header" + decl + b">")
    response = handle_soap_meta(SoapMessage.parse(raw), serverconf, globalconf)
    body = etree.fromstring(response.soap).find(BODY)
    assert body is not None
    assert body[0].tag == f"{X}listMethodsResponse"
    assert _services(response.soap)[0] == "SERVICE:EE/GOV/1/prov/getRandom/v1"
    assert SoapMessage.parse(response.soap).body_name == "listMethodsResponse"


def test_method_list_soap_refuses_other_services(serverconf: ServerConf) -> None:
    with pytest.raises(XRoadError) as err:
        method_list_soap(soap_request(CONSUMER, _meta(GET_WSDL), _wsdl_body("x")), ())
    assert err.value.code == Code.INTERNAL_ERROR


# ---------------------------------------------------------------------------------------------
# getWsdl


def _wsdl_body(code: str | None, version: str | None = None, prefix: str = "xroad") -> str:
    inner = "" if code is None else f"<{prefix}:serviceCode>{code}</{prefix}:serviceCode>"
    if version is not None:
        inner += f"<{prefix}:serviceVersion>{version}</{prefix}:serviceVersion>"
    return f"<{prefix}:getWsdl>{inner}</{prefix}:getWsdl>"


def test_get_wsdl_answers_multipart_with_the_rewritten_wsdl(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    request = soap_request(CONSUMER, _meta(GET_WSDL), _wsdl_body("getRandom", "v1"))
    response = handle_soap_meta(
        request, serverconf, globalconf, boundary="xroadBOUNDARY", content_id="<wsdl=1@x-road.eu>"
    )
    ct = ContentType.parse(response.content_type)
    assert ct.mime_type == "multipart/related"
    assert ct.param("type") == "text/xml"
    assert ct.boundary == "xroadBOUNDARY"
    parts = parse_multipart(response.body, "xroadBOUNDARY")
    assert len(parts) == 2
    (soap_headers, soap), (att_headers, wsdl) = parts
    assert soap_headers.content_type == "text/xml; charset=UTF-8"
    assert soap == response.soap
    parsed = SoapMessage.parse(soap)
    assert parsed.body_name == "getWsdlResponse"
    root = etree.fromstring(soap)
    body = root.find(BODY)
    assert body is not None
    assert [(etree.QName(e).localname, e.text) for e in body[0]] == [
        ("serviceCode", "getRandom"),
        ("serviceVersion", "v1"),
    ]
    assert att_headers.content_type == "text/xml"
    assert att_headers.get("Content-Transfer-Encoding") == "binary"
    assert att_headers.get("Content-ID") == "<wsdl=1@x-road.eu>"
    assert wsdl == response.attachments[0].data
    addresses = [a.get("location") for a in etree.fromstring(wsdl).iter(f"{{{SOAP11_NS}}}address")]
    assert addresses == [ANONYMOUS_ENDPOINT]
    assert b"internal.example" not in response.body
    assert response.body.endswith(b"\r\n--xroadBOUNDARY--\r\n")


def test_get_wsdl_package_decodes_as_an_swa_response(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    request = soap_request(CONSUMER, _meta(GET_WSDL), _wsdl_body("getRandom", "v1"))
    response = handle_soap_meta(request, serverconf, globalconf)
    soap, attachments = decode_package(response.body, response.content_type)
    assert soap.message.raw == response.soap
    assert soap.message.body_name == "getWsdlResponse"
    assert [(a.content_type, body) for a, body in attachments] == [
        ("text/xml", response.attachments[0].data)
    ]


def test_get_wsdl_defaults_draw_a_boundary_and_content_id(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    request = soap_request(CONSUMER, _meta(GET_WSDL), _wsdl_body("getRandom", "v1"))
    response = handle_soap_meta(request, serverconf, globalconf)
    boundary = ContentType.parse(response.content_type).boundary
    assert boundary is not None
    assert re.fullmatch(r"xroad[A-Za-z]{30}", boundary)
    content_id = dict((h.name, h.value) for h in response.attachments[0].headers)["Content-ID"]
    assert re.fullmatch(r"<wsdl=[0-9a-f-]{36}@x-road\.eu>", content_id)


def test_get_wsdl_uses_fetched_bytes_when_given(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    # helloService has no stored WSDL: without fetched bytes it cannot be served.
    request = soap_request(CONSUMER, _meta(GET_WSDL), _wsdl_body("helloService", "v2"))
    with pytest.raises(XRoadError) as err:
        handle_soap_meta(request, serverconf, globalconf)
    assert err.value.code == Code.INTERNAL_ERROR
    entry = wsdl_service(request, serverconf)
    assert entry.description.url == "http://is/wsdl2"
    response = handle_soap_meta(request, serverconf, globalconf, wsdl=WSDL)
    assert ANONYMOUS_ENDPOINT.encode() in response.attachments[0].data


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (_wsdl_body(None), Code.INVALID_REQUEST),
        (_wsdl_body(""), Code.INVALID_REQUEST),
        (_wsdl_body("  "), Code.INVALID_REQUEST),
        (
            '<xroad:getWsdl><serviceCode xmlns="">getRandom</serviceCode></xroad:getWsdl>',
            Code.INVALID_REQUEST,
        ),
        (_wsdl_body("getRandom"), Code.UNKNOWN_SERVICE),  # the version must match exactly
        (_wsdl_body("getRandom", "v9"), Code.UNKNOWN_SERVICE),
        (_wsdl_body(" getRandom", "v1"), Code.UNKNOWN_SERVICE),  # not trimmed
        (_wsdl_body("nothing"), Code.UNKNOWN_SERVICE),
        (_wsdl_body("pets"), Code.SERVICE_TYPE),
        (_wsdl_body("api"), Code.SERVICE_TYPE),
    ],
)
def test_get_wsdl_request_errors(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot, body: str, code: str
) -> None:
    request = soap_request(CONSUMER, _meta(GET_WSDL), body)
    with pytest.raises(XRoadError) as err:
        handle_soap_meta(request, serverconf, globalconf, wsdl=WSDL)
    assert err.value.code == code


def test_get_wsdl_body_reading_rules() -> None:
    raw = soap_bytes(
        CONSUMER,
        _meta(GET_WSDL),
        "<xroad:getWsdl><xroad:serviceCode>a</xroad:serviceCode><other/>"
        "<xroad:serviceCode>b<!-- c --></xroad:serviceCode></xroad:getWsdl>",
    )
    assert parse_wsdl_request(raw).service_code == "b"  # last one wins
    assert parse_wsdl_request(raw).service_version is None


def test_broken_wsdl_is_internal_error(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    request = soap_request(CONSUMER, _meta(GET_WSDL), _wsdl_body("getRandom", "v1"))
    for bad in (b"<not-wsdl/>", b"garbage", b'<!DOCTYPE x [<!ENTITY e "x">]><x>&e;</x>'):
        with pytest.raises(XRoadError) as err:
            handle_soap_meta(request, serverconf, globalconf, wsdl=bad)
        assert err.value.code == Code.INTERNAL_ERROR


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not xml", Code.INVALID_SOAP),
        (b'<!DOCTYPE e [<!ENTITY x "y">]><e>&x;</e>', Code.INVALID_SOAP),
        (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"/>', Code.MISSING_BODY),
        (
            b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body>x</e:Body>'
            b"</e:Envelope>",
            Code.INVALID_BODY,
        ),
    ],
)
def test_malformed_request_bytes(raw: bytes, code: str) -> None:
    with pytest.raises(XRoadError) as err:
        parse_wsdl_request(raw)
    assert err.value.code == code


_xml_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(inner=st.one_of(_xml_text, st.binary(max_size=40).map(lambda b: b.decode("latin-1"))))
def test_get_wsdl_body_fuzz(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot, inner: str
) -> None:
    raw = soap_bytes(CONSUMER, _meta(GET_WSDL), f"<xroad:getWsdl>{inner}</xroad:getWsdl>")
    try:
        request = SoapMessage.parse(raw)
    except XRoadError:
        request = None
    try:
        parse_wsdl_request(raw)
        if request is not None:
            handle_soap_meta(request, serverconf, globalconf, wsdl=WSDL)
    except XRoadError as exc:
        assert exc.code in (  # noqa: PT017
            Code.INVALID_SOAP,
            Code.INVALID_REQUEST,
            Code.UNKNOWN_SERVICE,
            Code.SERVICE_TYPE,
            Code.INVALID_BODY,
        )


@settings(max_examples=150, deadline=None)
@given(code=_xml_text, version=st.one_of(st.none(), _xml_text))
def test_get_wsdl_values_fuzz(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot, code: str, version: str | None
) -> None:
    from xml.sax.saxutils import escape

    body = _wsdl_body(escape(code), None if version is None else escape(version))
    request = soap_request(CONSUMER, _meta(GET_WSDL), body)
    try:
        response = handle_soap_meta(request, serverconf, globalconf, wsdl=WSDL)
    except XRoadError as exc:
        assert exc.code in (Code.INVALID_REQUEST, Code.UNKNOWN_SERVICE, Code.SERVICE_TYPE)  # noqa: PT017
    else:
        assert (code, version) == ("getRandom", "v1")
        assert response.attachments
