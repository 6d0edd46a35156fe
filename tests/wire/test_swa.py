"""SOAP packages of information systems: text/xml, SwA, MTOM (crossroad.wire.swa, §2.1, §2.3)."""

from __future__ import annotations

import hashlib

import pytest

from crossroad.errors import Code, XRoadError
from crossroad.wire.mime import HeaderField
from crossroad.wire.soap import SoapMessage
from crossroad.wire.swa import (
    AttachmentData,
    AttachmentEnd,
    AttachmentStart,
    SoapPackageDecoder,
    SoapPackageEncoder,
    SoapPart,
    decode_package,
)

SOAP = (
    b'<?xml version="1.0" encoding="UTF-8"?><e:Envelope '
    b'xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" '
    b'xmlns:x="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers">'
    b'<e:Header><x:client id:objectType="MEMBER"><id:xRoadInstance>EE</id:xRoadInstance>'
    b"<id:memberClass>C</id:memberClass><id:memberCode>1</id:memberCode></x:client>"
    b'<x:service id:objectType="SERVICE"><id:xRoadInstance>EE</id:xRoadInstance>'
    b"<id:memberClass>C</id:memberClass><id:memberCode>2</id:memberCode>"
    b"<id:serviceCode>put</id:serviceCode></x:service><x:id>1</x:id>"
    b"<x:protocolVersion>4.0</x:protocolVersion></e:Header>"
    b'<e:Body><put><xop:Include xmlns:xop="http://www.w3.org/2004/08/xop/include" '
    b'href="cid:a1"/></put></e:Body></e:Envelope>'
)
MTOM_TYPE = (
    'multipart/related; type="application/xop+xml"; start="<root>"; '
    'start-info="text/xml"; boundary="MIME_b"'
)
ATTACHMENT = bytes(range(256)) * 40 + b"\r\n--MIME_b-not-a-delimiter\r\n"
PACKAGE = (
    b"--MIME_b\r\n"
    b'Content-Type: application/xop+xml; charset=UTF-8; type="text/xml"\r\n'
    b"Content-Transfer-Encoding: 8bit\r\nContent-ID: <root>\r\n\r\n"
    + SOAP
    + b"\r\n--MIME_b\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: binary\r\nContent-ID: <a1>\r\n\r\n"
    + ATTACHMENT
    + b"\r\n--MIME_b\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"aGVsbG8=\r\n--MIME_b--\r\n"
)


def test_plain_soap() -> None:
    for content_type in ("text/xml; charset=UTF-8", "application/xop+xml"):
        soap, attachments = decode_package(SOAP, content_type)
        assert isinstance(soap.message, SoapMessage)
        assert soap.content_type == content_type
        assert soap.headers == ()
        assert attachments == []


def test_mtom_package_keeps_raw_bytes_headers_and_digests() -> None:
    decoder = SoapPackageDecoder(MTOM_TYPE)
    events = decoder.feed(PACKAGE) + decoder.close()
    assert decoder.is_multipart
    soap = events[0]
    assert isinstance(soap, SoapPart)
    assert isinstance(soap.message, SoapMessage)
    assert soap.message.raw == SOAP
    assert soap.content_type == 'application/xop+xml; charset=UTF-8; type="text/xml"'
    assert [f.raw for f in soap.headers] == [
        b"Content-Transfer-Encoding: 8bit",
        b"Content-ID: <root>",
    ]
    starts = [e for e in events if isinstance(e, AttachmentStart)]
    assert [(s.index, s.content_type) for s in starts] == [
        (1, "application/octet-stream"),
        (2, "text/plain"),
    ]
    assert starts[0].headers[1] == HeaderField("Content-ID", "<a1>", b"Content-ID: <a1>")
    body = b"".join(e.data for e in events if isinstance(e, AttachmentData) and e.index == 1)
    assert body == ATTACHMENT
    ends = [e for e in events if isinstance(e, AttachmentEnd)]
    assert ends == decoder.attachments
    assert ends[0].digest == hashlib.sha512(ATTACHMENT).digest()
    assert ends[1].digest == hashlib.sha512(b"aGVsbG8=").digest()  # never content-decoded
    assert (ends[0].size, ends[1].size) == (len(ATTACHMENT), 8)


def test_chunked_feeding_gives_the_same_package() -> None:
    expected = decode_package(PACKAGE, MTOM_TYPE)
    for size in (1, 7, 100, 4096):
        decoder = SoapPackageDecoder(MTOM_TYPE)
        events = []
        for i in range(0, len(PACKAGE), size):
            events += decoder.feed(PACKAGE[i : i + size])
        events += decoder.close()
        soap = next(e for e in events if isinstance(e, SoapPart))
        assert soap == expected[0]
        bodies: dict[int, bytes] = {}
        for e in events:
            if isinstance(e, AttachmentData):
                bodies[e.index] = bodies.get(e.index, b"") + e.data
        assert list(bodies.values()) == [b for _, b in expected[1]]


def test_rebuilding_with_the_original_boundary() -> None:
    soap, attachments = decode_package(PACKAGE, MTOM_TYPE)
    encoder = SoapPackageEncoder(MTOM_TYPE)
    assert encoder.is_multipart
    assert encoder.content_type == MTOM_TYPE
    assert isinstance(soap.message, SoapMessage)
    data = encoder.soap(soap.message.raw, soap.content_type, soap.headers)
    for start, body in attachments:
        assert start.content_type is not None
        data += encoder.attachment(start.content_type, start.headers) + body
    data += encoder.close()
    assert data.startswith(b"--MIME_b\r\ncontent-type: application/xop+xml")
    assert decode_package(data, MTOM_TYPE) == (soap, attachments)
    plain = SoapPackageEncoder("text/xml; charset=ISO-8859-1")
    assert plain.content_type == "text/xml; charset=ISO-8859-1"
    assert plain.soap(SOAP, "text/xml") == SOAP
    assert plain.close() == b""
    with pytest.raises(XRoadError):
        plain.attachment("a/b")
    assert SoapPackageEncoder(None).content_type == "text/xml; charset=UTF-8"
    assert SoapPackageEncoder("multipart/related").content_type == "text/xml; charset=UTF-8"


@pytest.mark.parametrize(
    ("content_type", "data", "code"),
    [
        (None, SOAP, Code.INVALID_REQUEST),
        ("", SOAP, Code.INVALID_REQUEST),
        ("text/html", SOAP, Code.INVALID_CONTENT_TYPE),
        ("multipart/mixed; boundary=MIME_b", PACKAGE, Code.INVALID_CONTENT_TYPE),
        ("multipart/related", PACKAGE, Code.INVALID_CONTENT_TYPE),
        (MTOM_TYPE, b"", Code.MISSING_SOAP),
        (MTOM_TYPE, b"--MIME_b\r\n\r\n" + SOAP + b"\r\n--MIME_b--", Code.INVALID_CONTENT_TYPE),
        (
            MTOM_TYPE,
            PACKAGE.replace(b"Content-Type: text/plain", b"X: y"),
            Code.INVALID_CONTENT_TYPE,
        ),
        (
            MTOM_TYPE,
            PACKAGE.replace(b"application/xop+xml", b"text/plain"),
            Code.INVALID_CONTENT_TYPE,
        ),
        (MTOM_TYPE, PACKAGE[:-20], Code.MIME_PARSING_FAILED),
        (MTOM_TYPE, PACKAGE.replace(b"<x:id>1</x:id>", b""), Code.MISSING_HEADER_FIELD),
    ],
)
def test_errors(content_type: str | None, data: bytes, code: str) -> None:
    with pytest.raises(XRoadError) as err:
        decode_package(data, content_type)
    assert err.value.code == code


def test_missing_soap_code_is_configurable() -> None:
    decoder = SoapPackageDecoder(MTOM_TYPE, missing_soap_code=Code.INVALID_MESSAGE)
    with pytest.raises(XRoadError) as err:
        decoder.close()
    assert err.value.code == Code.INVALID_MESSAGE
