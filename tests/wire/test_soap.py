"""SOAP 4.0 parsing and validation (crossroad.wire.soap), in NIIS's order of checks."""

from __future__ import annotations

import pytest

from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId, ServiceId
from crossroad.wire.faults import SoapFault, build_fault
from crossroad.wire.soap import (
    SecurityToken,
    SoapLimits,
    SoapMessage,
    SoapParser,
    parse_soap,
    validate_soap_action,
)

ENV = (
    '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
    'xmlns:xroad="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers" '
    'xmlns:repr="http://x-road.eu/xsd/representation.xsd"{attrs}>{header}{body}</SOAP-ENV:Envelope>'
)
CLIENT = (
    '<xroad:client id:objectType="SUBSYSTEM"><id:xRoadInstance>EE</id:xRoadInstance>'
    "<id:memberClass>GOV</id:memberClass><id:memberCode>1</id:memberCode>"
    "<id:subsystemCode>sub</id:subsystemCode></xroad:client>"
)
SERVICE = (
    '<xroad:service id:objectType="SERVICE"><id:xRoadInstance>EE</id:xRoadInstance>'
    "<id:memberClass>COM</id:memberClass><id:memberCode>2</id:memberCode>"
    "<id:serviceCode>getX</id:serviceCode><id:serviceVersion>v1</id:serviceVersion>"
    "</xroad:service>"
)
ID = "<xroad:id>q1</xroad:id>"
VERSION = "<xroad:protocolVersion>4.0</xroad:protocolVersion>"
FIELDS = CLIENT + SERVICE + ID + VERSION
BODY = "<SOAP-ENV:Body><ns:getX xmlns:ns='urn:x'><a>1</a></ns:getX></SOAP-ENV:Body>"


def doc(header: str | None = FIELDS, body: str | None = BODY, attrs: str = "") -> bytes:
    h = "" if header is None else f"<SOAP-ENV:Header>{header}</SOAP-ENV:Header>"
    return ENV.format(attrs=attrs, header=h, body=body or "").encode()


def code_of(data: bytes, content_type: str | None = "text/xml") -> str:
    with pytest.raises(XRoadError) as err:
        parse_soap(data, content_type)
    return err.value.code


def test_valid_message_fields() -> None:
    extra = (
        "<xroad:userId>EE1</xroad:userId><xroad:issue>i</xroad:issue>"
        '<xroad:securityServer id:objectType="SERVER"><id:xRoadInstance>EE</id:xRoadInstance>'
        "<id:memberClass>COM</id:memberClass><id:memberCode>2</id:memberCode>"
        "<id:serverCode>ss1</id:serverCode></xroad:securityServer>"
        "<repr:representedParty><repr:partyCode>X</repr:partyCode></repr:representedParty>"
        '<tok:securityToken xmlns:tok="http://x-road.eu/xsd/security-token.xsd" '
        'tokenType="urn:jwt">abc</tok:securityToken>'
        "<ext:anything xmlns:ext='urn:ext'/><ext:anything xmlns:ext='urn:ext'/>"
    )
    message = SoapMessage.parse(doc(FIELDS + extra), "application/xop+xml; type=x")
    assert message.client == ClientId("EE", "GOV", "1", "sub")
    assert message.service == ServiceId(ClientId("EE", "COM", "2"), "getX", "v1")
    assert message.security_server == SecurityServerId(ClientId("EE", "COM", "2"), "ss1")
    assert message.represented_party is not None
    assert message.represented_party.party_class is None
    assert message.header.security_token == SecurityToken("abc", "urn:jwt")
    assert (message.user_id, message.issue, message.query_id) == ("EE1", "i", "q1")
    assert (message.body_namespace, message.body_name) == ("urn:x", "getX")
    assert message.is_request
    assert not message.is_fault
    assert message.charset == "UTF-8"
    assert SoapMessage.parse(doc(), "text/xml; charset=latin1").charset == "latin1"
    assert message.digest() == __import__("hashlib").sha512(message.raw).digest()


def test_values_are_taken_verbatim() -> None:
    message = SoapMessage.parse(doc(FIELDS + "<xroad:userId> a<!--c-->b </xroad:userId>"))
    assert message.user_id == " ab "
    assert code_of(
        doc(CLIENT + SERVICE + ID + "<xroad:protocolVersion> 4.0</xroad:protocolVersion>")
    ) == (Code.INVALID_PROTOCOL_VERSION)


@pytest.mark.parametrize(
    ("header", "body", "code"),
    [
        (None, BODY, Code.MISSING_HEADER),
        (FIELDS, None, Code.MISSING_BODY),
        (None, None, Code.MISSING_HEADER),
        (CLIENT + SERVICE + ID, BODY, Code.MISSING_HEADER_FIELD),
        (SERVICE + ID + VERSION, BODY, Code.MISSING_HEADER_FIELD),
        (CLIENT + SERVICE + VERSION, BODY, Code.MISSING_HEADER_FIELD),
        (CLIENT + ID + VERSION, BODY, Code.MISSING_HEADER_FIELD),
        (FIELDS, "<SOAP-ENV:Body> </SOAP-ENV:Body>", Code.INVALID_BODY),
        (FIELDS, "<SOAP-ENV:Body><a/><b/></SOAP-ENV:Body>", Code.INVALID_BODY),
        (FIELDS, "<SOAP-ENV:Body><getY/></SOAP-ENV:Body>", Code.INCONSISTENT_HEADERS),
        (FIELDS + ID, BODY, Code.DUPLICATE_HEADER_FIELD),
        (FIELDS + CLIENT, BODY, Code.DUPLICATE_HEADER_FIELD),
        (FIELDS + "<xroad:issue/><xroad:issue/>", BODY, Code.DUPLICATE_HEADER_FIELD),
        (
            FIELDS.replace(
                "<id:memberCode>1</id:memberCode>", "<id:memberCode>1</id:memberCode>" * 2
            ),
            BODY,
            Code.DUPLICATE_HEADER_FIELD,
        ),
        (FIELDS.replace('objectType="SUBSYSTEM"', 'objectType="SERVICE"'), BODY, Code.INVALID_XML),
        (FIELDS.replace('objectType="SUBSYSTEM"', 'objectType="PERSON"'), BODY, Code.INVALID_XML),
        (FIELDS.replace(' id:objectType="SERVICE"', ""), BODY, Code.INVALID_XML),
        (FIELDS.replace("<id:memberCode>1</id:memberCode>", ""), BODY, Code.INVALID_XML),
        (FIELDS.replace(">getX<", "> <"), BODY, Code.INVALID_XML),
        (FIELDS.replace(">sub<", "><"), BODY, Code.INVALID_XML),
        (FIELDS.replace(">4.0<", ">3.0<"), BODY, Code.INVALID_PROTOCOL_VERSION),
    ],
)
def test_validation_codes(header: str | None, body: str | None, code: str) -> None:
    assert code_of(doc(header, body)) == code


def test_errors_come_in_document_order() -> None:
    # A second body element fails before the missing header fields are looked at.
    assert code_of(doc(CLIENT, "<SOAP-ENV:Body><a/><b/></SOAP-ENV:Body>")) == Code.INVALID_BODY
    # A bad version fails before the missing client is noticed at the end.
    assert code_of(doc(SERVICE + ID + "<xroad:protocolVersion>5</xroad:protocolVersion>")) == (
        Code.INVALID_PROTOCOL_VERSION
    )
    # Header errors fire even when the body turns out to be a fault.
    fault = (
        "<SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>c</faultcode></SOAP-ENV:Fault></SOAP-ENV:Body>"
    )
    assert code_of(doc(ID + ID, fault)) == Code.DUPLICATE_HEADER_FIELD
    # Unknown header elements are not checked for duplicates (NIIS's SAX parser does not).
    SoapMessage.parse(doc(FIELDS + "<a/><a/>"))


def test_body_prefix_match_and_response() -> None:
    response = SoapMessage.parse(doc(body="<SOAP-ENV:Body><getXResponse/></SOAP-ENV:Body>"))
    assert response.is_response
    assert response.body_namespace is None
    rpc = SoapMessage.parse(
        doc(attrs=' SOAP-ENV:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"')
    )
    assert rpc.is_rpc


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"<a/>",
        b"<SOAP-ENV:Envelope xmlns:SOAP-ENV='http://www.w3.org/2003/05/soap-envelope'/>",
        b"<Envelope/>",
        doc()[:-5],
        doc() + b"<extra/>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]>' + doc(),
        b'<!DOCTYPE x SYSTEM "http://example.com/x.dtd">' + doc(),
        doc(FIELDS.replace(">q1<", ">&undefined;<")),
        doc().replace(b"<a>1</a>", b"<a>\xff</a>"),
    ],
)
def test_malformed_xml_is_invalid_soap(data: bytes) -> None:
    assert code_of(data) == Code.INVALID_SOAP


def test_doctype_only_matters_in_the_prolog() -> None:
    html = doc(body="<SOAP-ENV:Body><getX><![CDATA[<!DOCTYPE html>]]></getX></SOAP-ENV:Body>")
    assert SoapMessage.parse(html).body_name == "getX"
    for prolog in (b"<?xml version='1.0'?>\n<!-- c --><?pi x?>  ", b"\xef\xbb\xbf"):
        assert code_of(prolog + b"<!DOCTYPE x>" + doc()) == Code.INVALID_SOAP
    utf16 = ("<!DOCTYPE x>" + doc().decode()).encode("utf-16")
    assert code_of(utf16) == Code.INVALID_SOAP
    assert SoapMessage.parse(b"<!--" + b"x" * 70_000 + b"-->" + doc()).query_id == "q1"
    parser = SoapParser()
    parser.feed(b"<!--" + b"x" * 60_000)
    with pytest.raises(XRoadError) as err:
        parser.feed(b"x" * 10_000)  # an unfinished prolog is not rescanned forever
    assert err.value.code == Code.INVALID_SOAP


def test_doctype_split_across_chunks_is_refused() -> None:
    parser = SoapParser()
    parser.feed(b"<!DOC")
    with pytest.raises(XRoadError) as err:
        parser.feed(b"TYPE x []>" + doc())
    assert err.value.code == Code.INVALID_SOAP


def test_content_types() -> None:
    assert code_of(doc(), "text/html; charset=UTF-8") == Code.INVALID_CONTENT_TYPE
    assert code_of(doc(), "multipart/related; boundary=x") == Code.INVALID_CONTENT_TYPE
    assert SoapMessage.parse(doc(), None).content_type == "text/xml; charset=UTF-8"
    assert SoapMessage.parse(doc(), "TEXT/XML").content_type == "TEXT/XML"


def test_encodings_and_bom() -> None:
    latin1 = b'<?xml version="1.0" encoding="ISO-8859-1"?>' + doc(
        FIELDS + "<xroad:userId>X</xroad:userId>"
    ).replace(b">X<", b">\xe4<")
    for data in (
        b"\xef\xbb\xbf" + doc(),
        '<?xml version="1.0" encoding="UTF-16"?>'.encode("utf-16")
        + doc().decode().encode("utf-16")[2:],
        latin1,
    ):
        message = SoapMessage.parse(data)
        assert message.raw == data
        assert message.client.member_code == "1"
    assert SoapMessage.parse(latin1).user_id == "\xe4"


def test_faults_parse() -> None:
    fault = parse_soap(build_fault("server.x", "msg <&>", "detail-1", actor="act"))
    assert isinstance(fault, SoapFault)
    assert fault.is_fault
    assert (fault.code, fault.string, fault.actor, fault.detail) == (
        "server.x",
        "msg <&>",
        "act",
        "detail-1",
    )
    plain = parse_soap(
        doc(
            None,
            "<SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>c</faultcode><detail>\n text "
            "<x:foo xmlns:x='urn:x'>no</x:foo></detail></SOAP-ENV:Fault></SOAP-ENV:Body>",
        )
    )
    assert isinstance(plain, SoapFault)
    assert (plain.code, plain.string, plain.detail) == ("c", None, "\n text ")
    with pytest.raises(XRoadError) as err:
        SoapMessage.parse(build_fault("a", "b"))
    assert err.value.code == Code.INVALID_MESSAGE


def test_feeding_at_every_split_point() -> None:
    data = doc(FIELDS + "<xroad:userId>\u00e4 &amp; <![CDATA[<x>]]></xroad:userId>").replace(
        b"<a>1</a>", b"<a>" + b"<b>x</b>" * 20 + b"</a>"
    )
    expected = SoapMessage.parse(data)
    assert expected.user_id == "\u00e4 & <x>"
    for i in range(len(data) + 1):
        parser = SoapParser()
        parser.feed(data[:i])
        parser.feed(data[i:])
        assert parser.close() == expected


def test_large_body_is_dropped_as_it_streams() -> None:
    parser = SoapParser()
    head, tail = doc().split(b"<a>1</a>")
    parser.feed(head)
    for _ in range(200):
        parser.feed(b"<item><v>" + b"x" * 1000 + b"</v></item>")
    parser.feed(tail)
    message = parser.close()
    assert isinstance(message, SoapMessage)
    assert parser.close() is message
    with pytest.raises(XRoadError):
        parser.feed(b"more")


def test_size_limit() -> None:
    with pytest.raises(XRoadError) as err:
        parse_soap(doc(), limits=SoapLimits(max_bytes=100))
    assert err.value.code == Code.INVALID_SOAP


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (None, True),
        ("", True),
        ('""', True),
        ('"urn:getX"', True),
        ('"http://example.com/a?b=c#frag"', True),
        ('"getX"', True),
        ('"a%20b"', True),
        ("urn:getX", False),
        ('"', False),
        ('"x', False),
        ('"a b"', False),
        ('"a%2"', False),
        ('"a#b#c"', False),
        ('":x"', False),
        ('"http:"', False),
    ],
)
def test_soap_action(value: str | None, ok: bool) -> None:
    if ok:
        assert validate_soap_action(value) == value
    else:
        with pytest.raises(XRoadError) as err:
            validate_soap_action(value)
        assert err.value.code == Code.INVALID_SOAP_ACTION
