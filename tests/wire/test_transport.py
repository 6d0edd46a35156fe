"""The message between security servers (crossroad.wire.transport, §4.3–4.6).

Round trips go encoder → decoder → signature verification with a real XAdES signature from
the in-memory PKI, so the part digests the decoder computes are the ones that were signed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import pytest

from crossroad.crypto import keys, xades
from crossroad.crypto.trust import ApprovedCA, OcspResponder, TrustPolicy
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId
from crossroad.testing.pki import EPOCH, Issued
from crossroad.wire.faults import build_fault
from crossroad.wire.mime import HeaderField
from crossroad.wire.rest import RestRequest, RestResponse, rest_request_hash_bytes
from crossroad.wire.soap import SoapMessage
from crossroad.wire.swa import AttachmentData, AttachmentEnd, AttachmentStart, SoapPart
from crossroad.wire.transport import (
    FaultPart,
    HashChainPart,
    HashChainResultPart,
    OcspPart,
    RestBodyData,
    RestBodyEnd,
    RestBodyStart,
    RestPart,
    SignaturePart,
    TransportDecoder,
    TransportEncoder,
    TransportEvent,
    TransportLimits,
    TransportMessage,
)

if TYPE_CHECKING:
    from crossroad.testing.pki import TestPKI

AT = EPOCH + dt.timedelta(days=30)
PROFILE = "ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider"
MEMBER = ClientId("EE", "GOV", "1234")
BOUNDARY = "xtopABCDEFGHIJKLMNOPQRSTUVWXYZabcd"


def soap_bytes(service: str = "getX", client: ClientId = MEMBER) -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<SOAP-ENV:Envelope '
        'xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xroad="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers">'
        '<SOAP-ENV:Header><xroad:client id:objectType="MEMBER">'
        f"<id:xRoadInstance>{client.instance}</id:xRoadInstance>"
        f"<id:memberClass>{client.member_class}</id:memberClass>"
        f"<id:memberCode>{client.member_code}</id:memberCode></xroad:client>"
        '<xroad:service id:objectType="SERVICE"><id:xRoadInstance>EE</id:xRoadInstance>'
        "<id:memberClass>COM</id:memberClass><id:memberCode>5</id:memberCode>"
        f"<id:subsystemCode>s</id:subsystemCode><id:serviceCode>{service}</id:serviceCode>"
        "</xroad:service><xroad:id>q-1</xroad:id><xroad:protocolVersion>4.0</xroad:protocolVersion>"
        f"</SOAP-ENV:Header><SOAP-ENV:Body><{service}>ä</{service}></SOAP-ENV:Body>"
        "</SOAP-ENV:Envelope>"
    ).encode()


class Setup:
    def __init__(self, pki: TestPKI) -> None:
        self.trust = TrustPolicy(
            "EE",
            cas=(
                ApprovedCA(
                    "Test",
                    pki.ca.cert,
                    PROFILE,
                    ocsp=(OcspResponder("http://ocsp.test", pki.ocsp.cert),),
                ),
            ),
        )
        self.leaf: Issued = pki.sign_cert("EE", "GOV", "1234")
        self.ocsp = pki.ocsp_for(self.leaf.cert, AT)
        self.auth_ocsp = pki.ocsp_for(pki.auth_cert("EE", "ss1").cert, AT)

    def sign(self, parts: Sequence[xades.MessagePart]) -> xades.SignedMessage:
        (signed,) = xades.sign_batch(
            [parts],
            signing_cert=self.leaf.cert,
            ocsp_responses=(self.ocsp,),
            sign=lambda data: keys.sign(self.leaf.key, xades.SHA512_WITH_RSA, data),  # type: ignore[arg-type]
            signing_time=AT,
        )
        return signed

    def verify(self, message: TransportMessage) -> xades.SignatureInfo:
        assert message.signature is not None
        return xades.verify_signature(
            message.signature,
            signer=MEMBER,
            trust=self.trust,
            at=AT,
            resolve=message.resolve,
            hash_chain=message.hash_chain,
            hash_chain_result=message.hash_chain_result,
            part_digests=message.part_digests(),
        )


@pytest.fixture(scope="module")
def setup(pki: TestPKI) -> Setup:
    return Setup(pki)


def decode(
    data: bytes, content_type: str, sizes: Sequence[int] = ()
) -> tuple[list[TransportEvent], TransportMessage]:
    decoder = TransportDecoder(content_type)
    events: list[TransportEvent] = []
    if not sizes:
        events += decoder.feed(data)
    else:
        i = k = 0
        while i < len(data):
            events += decoder.feed(data[i : i + sizes[k % len(sizes)]])
            i += sizes[k % len(sizes)]
            k += 1
    events += decoder.close()
    return events, decoder.message


def bodies(events: Sequence[TransportEvent]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for e in events:
        if isinstance(e, AttachmentData):
            out[e.index] = out.get(e.index, b"") + e.data
        elif isinstance(e, RestBodyData):
            out[1] = out.get(1, b"") + e.data
    return out


def test_plain_soap_with_ocsp_parts(setup: Setup) -> None:
    message = SoapMessage.parse(soap_bytes(), "text/xml; charset=utf-8")
    enc = TransportEncoder(BOUNDARY)
    data = enc.ocsp(setup.auth_ocsp) + enc.ocsp(setup.ocsp)
    data += enc.soap(message, headers=[("Content-ID", "<root>")])
    signed = setup.sign(enc.signing_parts())
    assert signed.hash_chain is None  # one part: the simple shape
    data += enc.signature(signed.signature_xml) + enc.close()
    assert enc.content_type == f"multipart/mixed; charset=UTF-8; boundary={BOUNDARY}"
    assert data.startswith(
        f"--{BOUNDARY}\r\ncontent-type: application/ocsp-response\r\n\r\n".encode()
    )
    assert data.endswith(f"\r\n--{BOUNDARY}--\r\n".encode())
    events, received = decode(data, enc.content_type)
    assert [type(e) for e in events] == [OcspPart, OcspPart, SoapPart, SignaturePart]
    received.check()
    assert received.ocsp_responses == (setup.auth_ocsp, setup.ocsp)
    assert received.soap is not None
    assert received.soap.content_type == "text/xml; charset=utf-8"
    assert [(h.name, h.value) for h in received.soap.headers] == [("Content-ID", "<root>")]
    assert received.message_bytes == message.raw
    assert setup.verify(received).signer == MEMBER


def swa_message(setup: Setup, fault: bool = False) -> tuple[bytes, str, list[bytes]]:
    attachments = [b"first\r\n--xatt", bytes(range(256)) * 20, b""]
    enc = TransportEncoder(BOUNDARY)
    data = enc.soap(soap_bytes(), "text/xml; charset=utf-8")
    for i, body in enumerate(attachments):
        data += enc.attachment("application/octet-stream", [HeaderField("Content-ID", f"<a{i}>")])
        data += enc.write(body[:7]) + enc.write(body[7:])
    if fault:
        data += enc.fault(build_fault("server.serverproxy.x", "failed", "id-1"))
    else:
        signed = setup.sign(enc.signing_parts())
        assert signed.hash_chain is not None
        assert signed.hash_chain_result is not None
        data += enc.signature(signed.signature_xml, signed.hash_chain_result, signed.hash_chain)
    assert enc.bytes_streamed == sum(len(a) for a in attachments)
    return data + enc.close(), enc.content_type, attachments


def test_soap_with_attachments_and_hash_chain(setup: Setup) -> None:
    data, content_type, attachments = swa_message(setup)
    assert b"boundary=xattABCDEFGHIJKLMNOPQRSTUVWXYZabcd\r\n" in data
    events, received = decode(data, content_type)
    kinds = [type(e) for e in events]
    assert kinds[-3:] == [HashChainResultPart, HashChainPart, SignaturePart]
    assert kinds.count(AttachmentStart) == kinds.count(AttachmentEnd) == 3
    assert list(bodies(events).values()) == attachments[:2]  # the empty one has no data events
    assert [e.size for e in received.attachments] == [len(a) for a in attachments]
    starts = [e for e in events if isinstance(e, AttachmentStart)]
    assert [s.headers[0].value for s in starts] == ["<a0>", "<a1>", "<a2>"]
    assert set(received.part_digests()) == {
        "/message.xml",
        "/attachment1",
        "/attachment2",
        "/attachment3",
    }
    received.check()
    setup.verify(received)


def test_tampered_attachment_fails_verification(setup: Setup) -> None:
    data, content_type, _ = swa_message(setup)
    tampered = data.replace(b"first\r\n", b"First\r\n")
    _, received = decode(tampered, content_type)
    with pytest.raises(XRoadError) as err:
        setup.verify(received)
    assert err.value.code.startswith("malformed_signature.invalid_hash_chain")


def test_every_split_point(setup: Setup) -> None:
    enc = TransportEncoder("xtop1")
    data = enc.ocsp(setup.ocsp[:0] + b"0\x03\n\x01\x01") + enc.soap(soap_bytes())
    data += enc.attachment("text/plain") + enc.write(b"one\r\n--xtop1 two")
    data += enc.signature(b"<hcr/>", b"<hcr/>", b"<hc/>") + enc.close()
    expected_events, expected = decode(data, enc.content_type)
    expected_bodies = bodies(expected_events)
    assert expected.ocsp_responses == (b"0\x03\n\x01\x01",)
    for i in range(len(data) + 1):
        decoder = TransportDecoder(enc.content_type)
        events = decoder.feed(data[:i]) + decoder.feed(data[i:]) + decoder.close()
        assert decoder.message == expected, i
        assert bodies(events) == expected_bodies, i


@pytest.mark.parametrize("sizes", [[1], [3, 1, 4, 1, 5], [1000]])
def test_random_chunking(setup: Setup, sizes: list[int]) -> None:
    data, content_type, attachments = swa_message(setup)
    events, received = decode(data, content_type, sizes)
    assert list(bodies(events).values()) == attachments[:2]
    setup.verify(received)


def test_fault_after_attachments(setup: Setup) -> None:
    data, content_type, _ = swa_message(setup, fault=True)
    events, received = decode(data, content_type)
    assert isinstance(events[-1], FaultPart)
    assert received.signature is None
    with pytest.raises(XRoadError) as err:
        received.check()
    assert err.value.code == "server.serverproxy.x"


def rest_request() -> RestRequest:
    return RestRequest.from_http(
        "POST",
        "/r1/EE/COM/5/s/pets/v1",
        None,
        [("X-Road-Client", "EE/GOV/1234"), ("Content-Type", "application/json")],
        request_id="r-1",
        instance="EE",
        query_uuid="u-1",
    )


@pytest.mark.parametrize("body", [b"", b'{"a": 1}', b"x" * 100_000])
def test_rest_request(setup: Setup, body: bytes) -> None:
    request = rest_request()
    enc = TransportEncoder(BOUNDARY)
    data = enc.ocsp(setup.auth_ocsp) + enc.rest_request(request)
    if body:
        data += enc.rest_body() + enc.write(body)
    signed = setup.sign(enc.signing_parts())
    assert (signed.hash_chain is None) == (not body)
    data += enc.signature(signed.signature_xml, signed.hash_chain_result, signed.hash_chain)
    data += enc.close()
    events, received = decode(data, enc.content_type, [4096])
    assert isinstance(events[1], RestPart)
    assert events[1].message == request
    assert (RestBodyStart() in events) == bool(body)
    received.check(rest=True)
    assert received.message_bytes == request.header_part()
    setup.verify(received)
    if body:
        assert received.rest_body is not None
        assert bodies(events)[1] == body
        digest = received.rest_body.digest
        assert rest_request_hash_bytes(received.message_bytes, digest) == rest_request_hash_bytes(
            request.header_part(), xades.SHA512.digest(body)
        )
    with pytest.raises(XRoadError) as err:
        received.check()
    assert err.value.code == Code.MISSING_SOAP


def test_rest_response(setup: Setup) -> None:
    request = rest_request()
    response = RestResponse.build(
        status=201,
        reason="Created",
        headers=[("Content-Type", "text/plain")],
        request=request,
        request_hash=rest_request_hash_bytes(request.header_part(), None),
    )
    enc = TransportEncoder(BOUNDARY)
    data = enc.rest_response(response) + enc.rest_body() + enc.write(b"done")
    data += enc.signature(b"<sig/>") + enc.close()
    assert b"content-type: application/x-road-rest-response\r\n" in data
    events, received = decode(data, enc.content_type)
    assert [type(e) for e in events] == [
        RestPart,
        RestBodyStart,
        RestBodyData,
        RestBodyEnd,
        SignaturePart,
    ]
    assert received.rest is not None
    assert received.rest.message == response
    received.check(rest=True)


def test_text_xml_fault_response() -> None:
    fault = build_fault("server.serverproxy.access_denied", "no", "d")
    events, received = decode(fault, "text/xml; charset=UTF-8")
    assert isinstance(events[0], FaultPart)
    assert received.fault is not None
    with pytest.raises(XRoadError) as err:
        received.check()
    assert err.value.code == "server.serverproxy.access_denied"
    with pytest.raises(XRoadError) as err:
        TransportDecoder("text/xml", fault_allowed=False)
    assert err.value.code == Code.INVALID_CONTENT_TYPE


def part(content_type: str | None, body: bytes) -> bytes:
    header = f"Content-Type: {content_type}\r\n" if content_type else ""
    return f"--b\r\n{header}\r\n".encode() + body + b"\r\n"


SOAP_PART = part("text/xml", soap_bytes())
SIGNATURE = part("signature/bdoc-1.0/ts", b"<sig/>")


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (SOAP_PART + SIGNATURE + part("text/plain", b"x") + b"--b--", Code.INVALID_MESSAGE),
        (SOAP_PART + part("application/json", b"{}") + b"--b--", Code.INVALID_CONTENT_TYPE),
        (SOAP_PART + part("text/xml", soap_bytes()) + b"--b--", Code.INVALID_CONTENT_TYPE),
        (SOAP_PART + part("text/xml", b"<broken") + b"--b--", Code.INVALID_SOAP),
        (part(None, soap_bytes()) + b"--b--", Code.INVALID_CONTENT_TYPE),
        (part("application/ocsp-response", b"junk") + b"--b--", Code.IO_ERROR),
        (part("application/ocsp-response", b"0" * 100) + b"--b--", Code.INVALID_MESSAGE),
        (part("application/x-road-rest-request", b"GET\r\n/r1/x") + b"--b--", Code.INVALID_MESSAGE),
        (
            part("application/x-road-rest-response", b"200\r\nOK\r\n") + b"--b--",
            Code.INVALID_MESSAGE,
        ),
        (
            part("application/x-road-rest-request", rest_request().header_part())
            + part("multipart/mixed; boundary=xatt", b"--xatt--")
            + b"--b--",
            Code.INVALID_CONTENT_TYPE,
        ),
        (SOAP_PART + part("multipart/mixed", b"") + b"--b--", Code.INVALID_CONTENT_TYPE),
        (
            SOAP_PART + part("multipart/mixed; boundary=a", b"--a\r\n\r\nx") + b"--b--",
            Code.MIME_PARSING_FAILED,
        ),
        (SOAP_PART + SIGNATURE[:-10], Code.MIME_PARSING_FAILED),
        (SOAP_PART + part("signature/bdoc-1.0/ts", b"s" * 200) + b"--b--", Code.INVALID_MESSAGE),
    ],
)
def test_decoder_errors(data: bytes, code: str) -> None:
    limits = TransportLimits(max_ocsp_bytes=50, max_signature_bytes=100)
    decoder = TransportDecoder("multipart/mixed; boundary=b", limits=limits)
    with pytest.raises(XRoadError) as err:
        [*decoder.feed(data), *decoder.close()]
    assert err.value.code == code


def test_state_machine_skips_optional_parts() -> None:
    # No OCSP, no attachments, a hash chain result directly after the message.
    data = SOAP_PART + part("application/hash-chain-result", b"<r/>")
    data += part("application/hash-chain", b"<c/>") + SIGNATURE + b"--b--"
    events, received = decode(data, "multipart/mixed; boundary=b")
    assert [type(e) for e in events] == [
        SoapPart,
        HashChainResultPart,
        HashChainPart,
        SignaturePart,
    ]
    assert (received.hash_chain_result, received.hash_chain) == (b"<r/>", b"<c/>")
    # A message without signature or message part is reported by check().
    _, only_soap = decode(SOAP_PART + b"--b--", "multipart/mixed; boundary=b")
    with pytest.raises(XRoadError) as err:
        only_soap.check()
    assert err.value.code == Code.MISSING_SIGNATURE
    _, nothing = decode(b"", "multipart/mixed; boundary=b")
    with pytest.raises(XRoadError) as err:
        nothing.check(rest=True)
    assert err.value.code == Code.MISSING_REST


@pytest.mark.parametrize(
    ("content_type", "algorithm", "code"),
    [
        ("application/json", "SHA-512", Code.INVALID_CONTENT_TYPE),
        (None, "SHA-512", Code.INVALID_CONTENT_TYPE),
        ("tsdfsdfsdf", "SHA-512", Code.INVALID_CONTENT_TYPE),
        ("multipart/mixed; boundary=b", None, Code.INTERNAL_ERROR),
        ("multipart/mixed; boundary=b", "MD5", Code.INVALID_REQUEST),
    ],
)
def test_decoder_setup_errors(content_type: str | None, algorithm: str | None, code: str) -> None:
    with pytest.raises(XRoadError) as err:
        TransportDecoder(content_type, hash_algorithm=algorithm)
    assert err.value.code == code


def test_encoder_order_is_enforced() -> None:
    enc = TransportEncoder("xtopX", hash_algorithm="SHA-256")
    with pytest.raises(XRoadError):
        enc.attachment("a/b")
    with pytest.raises(XRoadError):
        enc.write(b"x")
    enc.soap(soap_bytes())
    with pytest.raises(XRoadError):
        enc.ocsp(b"late")
    with pytest.raises(XRoadError):
        enc.rest_body()
    with pytest.raises(XRoadError):
        enc.signature(b"<s/>", b"<r/>")
    rest = TransportEncoder("xtopY")
    rest.rest_request(rest_request())
    with pytest.raises(XRoadError):
        rest.attachment("a/b")
    rest.close()
    with pytest.raises(XRoadError):
        rest.fault(b"<f/>")
