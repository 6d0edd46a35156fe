"""NIIS message vectors (MANIFEST.md "messages/soap" and "messages/proxy") through the wire core.

Every row gets its parse-level outcome.  Rows whose NIIS outcome needs a global or server
configuration (unknown member, access rights, an inconsistent provider) are checked for what
is parse-level about them: they parse, and where a pair is given, the response checks fail.
Content types are the ones the NIIS test suite sends the files with.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from cryptography.x509 import ocsp

from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, ServiceId
from crossroad.wire.faults import SoapFault
from crossroad.wire.soap import RepresentedParty, SoapMessage, parse_soap
from crossroad.wire.soap_response import (
    check_consistency,
    check_response,
    insert_request_hash,
    request_hash,
    response_body_name,
)
from crossroad.wire.swa import SoapPackageDecoder, decode_package
from crossroad.wire.transport import (
    FaultPart,
    SignaturePart,
    TransportDecoder,
    TransportEncoder,
)

JETTY = "jetty771207119h3h10dty"
RELATED = f"multipart/related; charset=UTF-8; boundary={JETTY}"
RELATED_BARE = f"multipart/related; boundary={JETTY}"
MTOM = (
    'Multipart/Related; start-info="application/soap+xml"; type="application/xop+xml"; '
    f'boundary="{JETTY}"'
)
XML = "text/xml; charset=UTF-8"

# file → (content type, expected): "valid", "fault" or the fault code of the parse.
SOAP_ROWS: dict[str, tuple[str, str]] = {
    "simple.query": (XML, "valid"),
    "simple.answer": (XML, "valid"),
    "simple-rpc.query": (XML, "valid"),
    "simple-representedparty.query": (XML, "valid"),
    "no-header.query": (XML, Code.MISSING_HEADER),
    "missing-body.query": (XML, Code.MISSING_BODY),
    "faulty-header.query": (XML, Code.MISSING_HEADER_FIELD),
    "missing-userId.query": (XML, "valid"),
    "missing-userId.answer": (XML, "valid"),
    "malformed-body1.query": (XML, Code.INVALID_BODY),
    "malformed-body3.query": (XML, Code.INCONSISTENT_HEADERS),
    "getstate.query": (XML, "valid"),
    "getstate.answer": (XML, "valid"),
    "request-suffix.query": (XML, "valid"),
    "getstate-subsystem.query": (XML, "valid"),
    "getstate-subsystem.answer": (XML, "valid"),
    "getstate-defaultnamespace.query": (XML, "valid"),
    "getstate-iso88591.answer": ("text/xml; charset=ISO-8859-1", "valid"),
    "missing-org.query": (XML, "valid"),  # unknown_member needs a global configuration
    "missingobjecttype.query": (XML, Code.INVALID_XML),
    "empty.query": (XML, Code.INVALID_SOAP),
    "wrong-protocolVersion.query": (XML, Code.INVALID_PROTOCOL_VERSION),
    "malformed-protocolVersion.query": (XML, Code.INVALID_PROTOCOL_VERSION),
    "missing-protocolVersion.query": (XML, Code.MISSING_HEADER_FIELD),
    "attachm.query": (RELATED, "valid"),
    "attachm.answer": (XML, "valid"),
    "attachm2.query": (RELATED_BARE, "valid"),
    "attachm2.answer": (RELATED, "valid"),
    "attachm2-utf8bom-inside.query": (RELATED_BARE, "valid"),
    "attachm2-utf8bom-inside.answer": (RELATED, "valid"),
    "attachm-error.query": (RELATED_BARE, Code.INVALID_CONTENT_TYPE),
    "attachm-faulty-soap.query": (RELATED_BARE, Code.MISSING_HEADER_FIELD),
    "attachm-no-soap.query": (RELATED_BARE, Code.INVALID_CONTENT_TYPE),
    "attachm-mtom.query": (MTOM, "valid"),
    "attachm-mtom.answer": (MTOM + ";charset=UTF-8", "valid"),
    "attachments.query": (RELATED, "valid"),
    "attachments.answer": (RELATED, "valid"),
    "mimesoap.query": (RELATED, "valid"),
    "mimesoap.answer": (RELATED, "valid"),
    "cdata.query": (XML, "valid"),
    "cdata.answer": (XML, "valid"),
    "xmlencoded.query": (XML, "valid"),
    "xmlencoded.answer": (XML, "valid"),
    "nowhitespace.query": (XML, "valid"),
    "nowhitespace.answer": (XML, "valid"),
    "split-header.query": (XML, "valid"),
    "split-header.answer": (XML, "valid"),
    "simple-comment.answer": (XML, "valid"),
    "faulty-fault.answer": (XML, "fault"),
    "soapfault-mtom.query": (MTOM, "valid"),
    "soapfault-mtom.answer": (MTOM + ";charset=UTF-8", "fault"),
    "requesthash.answer": (XML, "valid"),
    "fault.query": (XML, "fault"),
    "xml.query": (XML, "valid"),  # the inconsistent response is checked below
    "notAllowed.query": (XML, "valid"),  # access_denied needs a server configuration
}
# Rows that are not IS packages: transport messages, an OCSP response, a signature.
SOAP_OTHER = {
    "no-soap.query",
    "no-signature.query",
    "faulty-multipart.query",
    "test.ocsp",
    "signature.xml",
}

PROXY_ROWS: dict[str, tuple[str, str]] = {
    "normal.request": ("xtop1357783211hcn1yiro", "signed"),
    "normal-soapfault.request": ("xtop1357783211hcn1yiro", "fault+signature"),
    "attachment.request": ("xtop569125687hcu8vfma", "signed"),
    "invalid-ocsp.request": ("xtop1357783211hcn1yiro", Code.IO_ERROR),
    "invalid-soap-contenttype.request": ("xtop1357783211hcn1yiro", Code.INVALID_CONTENT_TYPE),
    "fault-signature.request": ("xtop1357783211hcn1yiro", "fault"),
    # Not used by any NIIS test: an X-Road 5 SOAP part (no id:objectType) in a 6.x frame.
    "normal.response": ("xtop1143483536hcn1yj5i", Code.INVALID_XML),
}


def soap_file(vectors: Path, name: str) -> bytes:
    return (vectors / "messages" / "soap" / name).read_bytes()


def proxy_file(vectors: Path, name: str) -> bytes:
    return (vectors / "messages" / "proxy" / name).read_bytes()


def feed_all(decoder: TransportDecoder, data: bytes) -> list[object]:
    return [*decoder.feed(data), *decoder.close()]


def manifest_files(vectors: Path, section: str) -> set[str]:
    text = (vectors / "MANIFEST.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(rf"^\| `{section}/([^`]+)`", body, re.MULTILINE))


def test_every_manifest_row_is_covered(vectors: Path) -> None:
    assert manifest_files(vectors, "messages/soap") == set(SOAP_ROWS) | SOAP_OTHER
    assert manifest_files(vectors, "messages/proxy") == set(PROXY_ROWS)


def decode(data: bytes, content_type: str) -> SoapMessage | SoapFault:
    """What the client proxy (or the server proxy, for answers) reads from the IS."""
    soap, _ = decode_package(data, content_type)
    return soap.message


@pytest.mark.parametrize("name", sorted(SOAP_ROWS))
def test_soap_row(vectors: Path, name: str) -> None:
    content_type, expected = SOAP_ROWS[name]
    data = soap_file(vectors, name)
    if expected in ("valid", "fault"):
        message = decode(data, content_type)
        assert isinstance(message, SoapMessage if expected == "valid" else SoapFault)
        if isinstance(message, SoapMessage):
            assert message.is_response == name.endswith(".answer")
    else:
        with pytest.raises(XRoadError) as err:
            decode(data, content_type)
        assert err.value.code == expected


def test_simple_query_fields_and_bytes(vectors: Path) -> None:
    data = soap_file(vectors, "simple.query")
    message = SoapMessage.parse(data)
    assert message.client == ClientId("EE", "BUSINESS", "consumer")
    assert message.service == ServiceId(ClientId("EE", "BUSINESS", "producer"), "testQuery")
    assert (message.user_id, message.query_id) == ("EE37702211234", "1234567890")
    assert message.protocol_version == "4.0"
    assert message.is_request
    assert message.raw == data  # never re-encoded
    with pytest.raises(XRoadError) as err:
        SoapMessage.parse(data, "text/html; charset=UTF-8")
    assert err.value.code == Code.INVALID_CONTENT_TYPE
    decoder = TransportDecoder("text/xml")
    decoder.feed(data)
    with pytest.raises(XRoadError) as err:
        decoder.close()
    assert err.value.code == Code.INVALID_MESSAGE


def test_simple_answer_and_rpc(vectors: Path) -> None:
    request = SoapMessage.parse(soap_file(vectors, "simple.query"))
    answer = SoapMessage.parse(soap_file(vectors, "simple.answer"))
    rpc = SoapMessage.parse(soap_file(vectors, "simple-rpc.query"))
    assert answer.is_response
    assert not request.is_rpc
    assert rpc.is_rpc
    for other in (answer, rpc):
        assert (other.client, other.service, other.user_id, other.query_id) == (
            request.client,
            request.service,
            request.user_id,
            request.query_id,
        )


def test_represented_party_and_issue(vectors: Path) -> None:
    message = SoapMessage.parse(soap_file(vectors, "simple-representedparty.query"))
    assert message.represented_party == RepresentedParty("COM", "MEMBER3")
    assert message.issue == "issue-1"


def test_optional_user_id(vectors: Path) -> None:
    request = SoapMessage.parse(soap_file(vectors, "missing-userId.query"))
    answer = SoapMessage.parse(soap_file(vectors, "missing-userId.answer"))
    assert request.user_id is None
    check_consistency(request, answer)


@pytest.mark.parametrize(
    ("query", "answer"),
    [
        ("getstate.query", "getstate.answer"),
        ("getstate-subsystem.query", "getstate-subsystem.answer"),
        ("split-header.query", "split-header.answer"),
        ("nowhitespace.query", "nowhitespace.answer"),
        ("cdata.query", "cdata.answer"),
        ("xmlencoded.query", "xmlencoded.answer"),
        ("simple.query", "simple-comment.answer"),
        ("getstate.query", "getstate-iso88591.answer"),
    ],
)
def test_consistent_pairs_round_trip_request_hash(vectors: Path, query: str, answer: str) -> None:
    request = SoapMessage.parse(soap_file(vectors, query))
    raw_answer = soap_file(vectors, answer)
    check_consistency(request, SoapMessage.parse(raw_answer))
    signed = SoapMessage.parse(insert_request_hash(raw_answer, request_hash(request.raw)))
    check_response(request, signed)


def test_inconsistent_messages(vectors: Path) -> None:
    simple = SoapMessage.parse(soap_file(vectors, "simple.query"))
    check_consistency(simple, simple)
    with pytest.raises(XRoadError) as err:
        check_consistency(simple, SoapMessage.parse(soap_file(vectors, "getstate.answer")))
    assert err.value.code == Code.INCONSISTENT_HEADERS


def test_server_client_inconsistency(vectors: Path) -> None:
    # ServerClientInconsistency: xml.query answered with getstate.query.
    request = SoapMessage.parse(soap_file(vectors, "xml.query"))
    response = SoapMessage.parse(soap_file(vectors, "getstate.query"))
    with pytest.raises(XRoadError) as err:
        check_response(request, response)
    assert err.value.code == "service_failed.inconsistent_response"


def test_request_suffix_response_name(vectors: Path) -> None:
    request = SoapMessage.parse(soap_file(vectors, "request-suffix.query"))
    assert request.body_name == "testQueryRequest"
    assert response_body_name(request) == "testQueryResponse"


def test_utf8_bom_is_kept_and_hashed(vectors: Path) -> None:
    # Utf8BomNormalSubsystem: a BOM before the request; the request hash covers it.
    data = b"\xef\xbb\xbf" + soap_file(vectors, "getstate-subsystem.query")
    request = SoapMessage.parse(data)
    assert request.raw == data
    assert request.client.is_subsystem
    answer = b"\xef\xbb\xbf" + soap_file(vectors, "getstate-subsystem.answer")
    signed = insert_request_hash(answer, request_hash(data))
    assert signed.startswith(b"\xef\xbb\xbf")
    check_response(request, SoapMessage.parse(signed))


def test_utf8_bom_inside_multipart(vectors: Path) -> None:
    data = soap_file(vectors, "attachm2-utf8bom-inside.query")
    soap, attachments = decode_package(data, RELATED_BARE)
    assert isinstance(soap.message, SoapMessage)
    assert soap.message.raw.startswith(b"\xef\xbb\xbf<?xml")
    assert data[64:].startswith(soap.message.raw)  # the bytes NIIS hashes (offset 64)
    assert len(attachments) == 1


def test_request_hash_replaces_the_services_own(vectors: Path) -> None:
    request = SoapMessage.parse(soap_file(vectors, "getstate.query"))
    raw = soap_file(vectors, "requesthash.answer")
    assert SoapMessage.parse(raw).request_hash is not None
    signed = insert_request_hash(raw, request_hash(request.raw))
    assert b">foo<" not in signed
    assert signed.count(b"requestHash") == 2
    found = SoapMessage.parse(signed).request_hash
    assert found is not None
    assert found.algorithm_id == "http://www.w3.org/2001/04/xmlenc#sha512"
    assert base64.b64decode(found.value) == hashlib.sha512(request.raw).digest()


def test_xml_encoded_values(vectors: Path) -> None:
    message = SoapMessage.parse(soap_file(vectors, "xmlencoded.query"))
    assert message.user_id == "<\"EE37702211234\" & 'xml encoded'>"
    cdata = soap_file(vectors, "cdata.query")
    assert SoapMessage.parse(cdata).raw == cdata


@pytest.mark.parametrize(
    ("name", "content_type", "count"),
    [
        ("attachm.query", RELATED, 1),
        ("attachm2.query", RELATED_BARE, 1),
        ("attachments.answer", RELATED, 3),
        ("attachm-mtom.query", MTOM, 1),
        ("mimesoap.query", RELATED, 0),
        ("soapfault-mtom.answer", MTOM, 0),
    ],
)
def test_packages_keep_parts_and_headers(
    vectors: Path, name: str, content_type: str, count: int
) -> None:
    soap, attachments = decode_package(soap_file(vectors, name), content_type)
    assert len(attachments) == count
    if name == "attachm-mtom.query":
        xop = 'application/xop+xml; type="application/soap+xml"; charset=utf-8'
        assert soap.content_type == xop
        assert [h.raw for h in soap.headers] == [b"Content-ID: <foo>"]
        start, body = attachments[0]
        assert start.content_type == "text/plain; charset=UTF-8; name=attachment.txt"
        assert start.headers[0].value == "<42a7ee0a-20ee-426b-a135-094d72bc138f@example.org>"
        assert body == b"foobar"
    if name == "soapfault-mtom.answer":
        assert isinstance(soap.message, SoapFault)
        assert b"<error>Unable to create payload, try increasing the size</error>" in (
            soap.message.raw
        )


def test_empty_multipart_request_is_missing_soap(vectors: Path) -> None:
    decoder = SoapPackageDecoder(RELATED)
    decoder.feed(soap_file(vectors, "empty.query"))
    with pytest.raises(XRoadError) as err:
        decoder.close()
    assert err.value.code == Code.MISSING_SOAP


def test_faulty_multipart_response_is_invalid_message(vectors: Path) -> None:
    # ServiceFaultyMultipart: no delimiter matches the boundary, so there is no SOAP part.
    decoder = SoapPackageDecoder(
        f"multipart/related; boundary={JETTY}; charset=utf-8",
        missing_soap_code=Code.INVALID_MESSAGE,
    )
    decoder.feed(soap_file(vectors, "faulty-multipart.query"))
    with pytest.raises(XRoadError) as err:
        decoder.close()
    assert err.value.code == Code.INVALID_MESSAGE


def test_faults(vectors: Path) -> None:
    faulty = parse_soap(soap_file(vectors, "faulty-fault.answer"))
    assert isinstance(faulty, SoapFault)
    assert faulty.code == "soap:Server"
    decoder = TransportDecoder("text/xml")
    decoder.feed(soap_file(vectors, "fault.query"))
    (event,) = decoder.close()
    assert isinstance(event, FaultPart)
    assert (event.fault.code, event.fault.string, event.fault.actor, event.fault.detail) == (
        "CODE",
        "STRING",
        "ACTOR",
        "DETAIL",
    )


def test_attachm_error_to_transport_decoder(vectors: Path) -> None:
    with pytest.raises(XRoadError) as err:
        TransportDecoder("multipart/mixed")
    assert err.value.code == Code.INVALID_CONTENT_TYPE


def test_no_soap_to_server_proxy(vectors: Path) -> None:
    decoder = TransportDecoder(f"multipart/mixed; charset=UTF-8; boundary={JETTY}")
    with pytest.raises(XRoadError) as err:
        feed_all(decoder, soap_file(vectors, "no-soap.query"))
    assert err.value.code == Code.INVALID_SOAP


def test_no_signature_to_server_proxy(vectors: Path) -> None:
    decoder = TransportDecoder("multipart/mixed; boundary=jetty42534330h7vzfqv2;charset=ISO-8859-1")
    decoder.feed(soap_file(vectors, "no-signature.query"))
    decoder.close()
    assert decoder.message.soap is not None
    with pytest.raises(XRoadError) as err:
        decoder.message.check()
    assert err.value.code == Code.MISSING_SIGNATURE


def test_ocsp_and_signature_parts_round_trip(vectors: Path) -> None:
    # ProxyMessageEncoderTest.normalMessageWithOcsp: test.ocsp and signature.xml as parts.
    der = soap_file(vectors, "test.ocsp")
    assert ocsp.load_der_ocsp_response(der).response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    signature = soap_file(vectors, "signature.xml")
    message = SoapMessage.parse(soap_file(vectors, "getstate.query"))
    encoder = TransportEncoder("xtopTESTBOUNDARY")
    data = encoder.ocsp(der) + encoder.soap(message) + encoder.signature(signature)
    data += encoder.close()
    decoder = TransportDecoder(encoder.content_type)
    decoder.feed(data)
    decoder.close()
    received = decoder.message
    received.check()
    assert received.ocsp_responses == (der,)
    assert received.signature == signature
    assert received.message_bytes == message.raw


@pytest.mark.parametrize("name", sorted(PROXY_ROWS))
def test_proxy_row(vectors: Path, name: str) -> None:
    boundary, expected = PROXY_ROWS[name]
    decoder = TransportDecoder(f"multipart/mixed; charset=UTF-8; boundary={boundary}")
    data = proxy_file(vectors, name)
    if expected.startswith(("signed", "fault")):
        events = decoder.feed(data) + decoder.close()
        message = decoder.message
        assert (message.fault is not None) == expected.startswith("fault")
        assert (message.signature is not None) == (expected in ("signed", "fault+signature"))
        assert any(isinstance(e, SignaturePart) for e in events) == (message.signature is not None)
        if expected == "signed":
            message.check()
            assert message.soap is not None
            assert (len(message.attachments) == 1) == (name == "attachment.request")
        else:
            assert message.fault is not None
            assert message.fault.code == "CODE"
            assert message.fault.detail == "DETAIL"
    else:
        with pytest.raises(XRoadError) as err:
            feed_all(decoder, data)
        assert err.value.code == expected
