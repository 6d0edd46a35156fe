"""The XAdES profile: building, schema conformance, verification and tampering (§4.6–4.9, §9.2)."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from crossroad.crypto import hashchain, keys, xades
from crossroad.crypto.algorithms import SHA256, SHA512, SignatureAlgorithm, signature_algorithm
from crossroad.crypto.certs import java_rfc2253
from crossroad.crypto.trust import ApprovedCA, IntermediateCA, OcspResponder, TrustPolicy
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId
from crossroad.testing.pki import (
    EPOCH,
    Issued,
    ec_key,
    make_cert,
    make_ocsp_response,
    name,
)

if TYPE_CHECKING:
    from crossroad.testing.pki import TestPKI

AT = EPOCH + dt.timedelta(days=30)
SIGNING_TIME = AT - dt.timedelta(seconds=5, microseconds=123456)
PROFILE = "ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider"
SCHEMAS = "schemas/src/common/common-message/src/main/resources"
RSA = signature_algorithm("SHA512withRSA")
PSS = signature_algorithm("SHA512withRSAandMGF1")
ECDSA = signature_algorithm("SHA256withECDSA")
SIGNATURE_FAMILY = (Code.INVALID_SIGNATURE_VALUE, Code.MALFORMED_SIGNATURE, Code.INVALID_XML)


@dataclass(frozen=True)
class Signer:
    issued: Issued
    member: ClientId
    ocsp: tuple[bytes, ...]
    extra: tuple[x509.Certificate, ...] = ()

    def sign(self, alg: SignatureAlgorithm) -> Callable[[bytes], bytes]:
        return lambda data: keys.sign(self.issued.key, alg, data)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def setup(pki: TestPKI) -> dict[str, object]:
    inter = make_cert(name(O="Test", CN="Test Intermediate"), issuer=pki.ca, kind="ca")
    trust = TrustPolicy(
        "EE",
        cas=(
            ApprovedCA(
                "Test",
                pki.ca.cert,
                PROFILE,
                intermediates=(IntermediateCA(inter.cert),),
                ocsp=(OcspResponder("http://ocsp.test", pki.ocsp.cert),),
            ),
        ),
    )
    rsa_leaf = pki.sign_cert("EE", "GOV", "1234")
    ec_leaf = make_cert(name(C="EE", O="GOV", CN="5678"), key=ec_key(), issuer=pki.ca)
    deep_leaf = make_cert(name(C="EE", O="COM", CN="9012"), issuer=inter)
    return {
        "trust": trust,
        "rsa": Signer(rsa_leaf, ClientId("EE", "GOV", "1234"), (pki.ocsp_for(rsa_leaf.cert, AT),)),
        "ec": Signer(ec_leaf, ClientId("EE", "GOV", "5678"), (pki.ocsp_for(ec_leaf.cert, AT),)),
        "deep": Signer(
            deep_leaf,
            ClientId("EE", "COM", "9012"),
            (
                make_ocsp_response(deep_leaf.cert, inter.cert, inter, this_update=AT),
                pki.ocsp_for(inter.cert, AT),
            ),
            (inter.cert,),
        ),
        "auth": pki.auth_cert("EE", "ss1"),
    }


@pytest.fixture(scope="module")
def xades_schema(vectors: Path) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, load_dtd=True)
    return etree.XMLSchema(etree.parse(str(vectors / SCHEMAS / "xades-schema.xsd"), parser))


@pytest.fixture(scope="module")
def hashchain_schema(vectors: Path) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, load_dtd=True)
    return etree.XMLSchema(etree.parse(str(vectors / SCHEMAS / "hashchain.xsd"), parser))


def assert_schema_valid(schema: etree.XMLSchema, signature_xml: bytes) -> None:
    root = etree.fromstring(signature_xml)
    signature = root.find("{http://www.w3.org/2000/09/xmldsig#}Signature")
    assert signature is not None
    assert schema.validate(copy.deepcopy(signature)), schema.error_log


def message(n: int = 0) -> bytes:
    return f"<SOAP-ENV:Envelope><id>{n}</id></SOAP-ENV:Envelope>".encode()


def parts(n: int, attachments: int, alg: SignatureAlgorithm = RSA) -> list[xades.MessagePart]:
    out = [xades.MessagePart("/message.xml", alg.digest, message(n))]
    for i in range(1, attachments + 1):
        data = f"attachment {n}.{i}".encode() * 10
        out.append(
            xades.MessagePart(
                hashchain.attachment_name(i), alg.digest, digest_value=alg.digest.digest(data)
            )
        )
    return out


def attachment(n: int, i: int) -> bytes:
    return f"attachment {n}.{i}".encode() * 10


def build(signer: Signer, ps: Sequence[xades.MessagePart], alg: SignatureAlgorithm = RSA) -> bytes:
    return xades.build_signature(
        ps,
        signing_cert=signer.issued.cert,
        extra_certs=signer.extra,
        ocsp_responses=signer.ocsp,
        sign=signer.sign(alg),
        algorithm=alg,
        signing_time=SIGNING_TIME,
    )


def verify(
    setup: dict[str, object],
    signer: Signer,
    xml: bytes,
    files: dict[str, bytes],
    **kw: object,
) -> xades.SignatureInfo:
    return xades.verify_signature(
        xml,
        signer=signer.member,
        trust=setup["trust"],  # type: ignore[arg-type]
        at=AT,
        resolve=files.get,
        **kw,  # type: ignore[arg-type]
    )


def code_of(action: Callable[[], object]) -> str:
    with pytest.raises(XRoadError) as err:
        action()
    return err.value.code


# --------------------------------------------------------------------------- simple shape


@pytest.mark.parametrize(("kind", "alg"), [("rsa", RSA), ("rsa", PSS), ("ec", ECDSA)])
def test_simple_round_trip(
    setup: dict[str, object], xades_schema: etree.XMLSchema, kind: str, alg: SignatureAlgorithm
) -> None:
    signer: Signer = setup[kind]  # type: ignore[assignment]
    xml = build(signer, parts(0, 0, alg), alg)
    assert_schema_valid(xades_schema, xml)
    info = verify(setup, signer, xml, {"/message.xml": message(0)})
    assert info.signer == signer.member
    assert info.signing_cert == signer.issued.cert
    assert info.signing_time == SIGNING_TIME.replace(microsecond=876000)
    assert info.references == ("/message.xml", "#signed-properties")
    assert info.c14n_method == "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
    assert info.signature_value == xades.signature_value(xml)
    assert [s.good for s in info.ocsp_statuses] == [True]
    if alg is ECDSA:
        assert len(info.signature_value) == 64  # raw r||s for P-256


def test_signer_may_be_a_subsystem_of_the_member(setup: dict[str, object]) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    xml = build(signer, parts(0, 0))
    info = xades.verify_signature(
        xml,
        signer=ClientId("EE", "GOV", "1234", "sub"),
        trust=setup["trust"],  # type: ignore[arg-type]
        at=AT,
        resolve={"/message.xml": message(0)}.get,
    )
    assert info.signer == ClientId("EE", "GOV", "1234")


def test_template(setup: dict[str, object], pki: TestPKI) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    text = build(signer, parts(0, 0)).decode()
    assert text.startswith(
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?><asic:XAdESSignatures '
    )
    for fixed in (
        '<ds:Signature Id="signature">',
        '<ds:Reference Id="signature-reference-0" URI="/message.xml">',
        '<ds:Reference Id="signature-reference-1" Type="http://uri.etsi.org/01903#SignedProperties"'
        ' URI="#signed-properties">',
        '<ds:SignatureValue Id="signature-value">',
        '<xades:QualifyingProperties Target="#signature">',
        '<xades:SignedProperties Id="signed-properties">',
        "<xades:SigningTime>2025-01-30T23:59:54.876Z</xades:SigningTime>",
        f"<ds:X509IssuerName>{java_rfc2253(pki.ca.cert.subject)}</ds:X509IssuerName>",
        f"<ds:X509SerialNumber>{signer.issued.cert.serial_number}</ds:X509SerialNumber>",
        '<xades:Identifier Qualifier="OIDAsURN">urn:oid:1.3.6.1.4.1.3516.16.2</xades:Identifier>',
        xades.SIGNATURE_POLICY_HASH,
        '<xades:DataObjectFormat ObjectReference="#signature-reference-0">'
        "<xades:MimeType>text/xml</xades:MimeType>",
        '<xades:EncapsulatedOCSPValue Id="ocsp-response-1">',
    ):
        assert fixed in text, fixed
    assert "CompleteCertificateRefs" not in text


def test_intermediate_certificates_are_carried(
    setup: dict[str, object], xades_schema: etree.XMLSchema
) -> None:
    signer: Signer = setup["deep"]  # type: ignore[assignment]
    xml = build(signer, parts(0, 0))
    assert_schema_valid(xades_schema, xml)
    text = xml.decode()
    assert '<xades:CompleteCertificateRefs Id="complete-certificate-refs">' in text
    assert '<xades:Cert URI="#encapsulated-cert-1">' in text
    assert '<xades:EncapsulatedX509Certificate Id="encapsulated-cert-1">' in text
    assert '<xades:EncapsulatedOCSPValue Id="ocsp-response-2">' in text
    parsed = xades.parse_signature(xml)
    assert parsed.extra_certs == signer.extra
    info = verify(setup, signer, xml, {"/message.xml": message(0)})
    assert info.cert_path.certs[:2] == (signer.issued.cert, signer.extra[0])


def test_extra_certificate_digest_is_checked(setup: dict[str, object], pki: TestPKI) -> None:
    signer: Signer = setup["deep"]  # type: ignore[assignment]
    xml = build(signer, parts(0, 0))
    other = base64.b64encode(pki.ca.cert.public_bytes(Encoding.DER))
    forged = re.sub(
        rb'(<xades:EncapsulatedX509Certificate Id="encapsulated-cert-1">)[^<]+',
        lambda m: m.group(1) + other,
        xml,
    )
    assert code_of(lambda: xades.parse_signature(forged)) == Code.MALFORMED_SIGNATURE


# --------------------------------------------------------------------------- batches


@pytest.mark.parametrize(
    "shape", [[0], [1], [0, 0], [2, 0], [1, 0, 3], [0, 1, 0, 2, 0, 0, 1]], ids=str
)
def test_batch_round_trip(
    setup: dict[str, object],
    xades_schema: etree.XMLSchema,
    hashchain_schema: etree.XMLSchema,
    shape: list[int],
) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    requests = [parts(n, count) for n, count in enumerate(shape)]
    signed = xades.sign_batch(
        requests,
        signing_cert=signer.issued.cert,
        ocsp_responses=signer.ocsp,
        sign=signer.sign(RSA),
        signing_time=SIGNING_TIME,
    )
    assert len(signed) == len(shape)
    simple = shape == [0]
    assert len({s.signature_xml for s in signed}) == 1  # one signature for the batch
    for n, (request, result) in enumerate(zip(requests, signed, strict=True)):
        assert_schema_valid(xades_schema, result.signature_xml)
        files = {"/message.xml": message(n)}
        files.update({f"/attachment{i}": attachment(n, i) for i in range(1, shape[n] + 1)})
        digests = {p.name: p.digest_with(SHA512) for p in request}
        if simple:
            assert result.hash_chain is None
            assert result.hash_chain_result is None
        else:
            assert result.hash_chain is not None
            assert result.hash_chain_result is not None
            assert hashchain_schema.validate(etree.fromstring(result.hash_chain))
            assert hashchain_schema.validate(etree.fromstring(result.hash_chain_result))
            assert b"<xades:MimeType>application/hash-chain-result</xades:MimeType>" in (
                result.signature_xml
            )
        info = verify(
            setup,
            signer,
            result.signature_xml,
            files,
            hash_chain=result.hash_chain,
            hash_chain_result=result.hash_chain_result,
            part_digests=digests,
        )
        expected = "/message.xml" if simple else "/sig-hashchainresult.xml"
        assert info.references[0] == expected


def test_batch_chain_of_another_request_fails(setup: dict[str, object]) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    requests = [parts(0, 1), parts(1, 1)]
    signed = xades.sign_batch(
        requests,
        signing_cert=signer.issued.cert,
        ocsp_responses=signer.ocsp,
        sign=signer.sign(RSA),
        signing_time=SIGNING_TIME,
    )
    code = code_of(
        lambda: verify(
            setup,
            signer,
            signed[0].signature_xml,
            {},
            hash_chain=signed[1].hash_chain,
            hash_chain_result=signed[0].hash_chain_result,
            part_digests={p.name: p.digest_with(SHA512) for p in requests[0]},
        )
    )
    assert code == "malformed_signature.invalid_hash_chain"


def test_batch_without_chain_document(setup: dict[str, object]) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    (signed,) = xades.sign_batch(
        [parts(0, 1)],
        signing_cert=signer.issued.cert,
        ocsp_responses=signer.ocsp,
        sign=signer.sign(RSA),
        signing_time=SIGNING_TIME,
    )
    code = code_of(
        lambda: verify(
            setup, signer, signed.signature_xml, {}, hash_chain_result=signed.hash_chain_result
        )
    )
    assert code == "malformed_signature.invalid_reference"
    code = code_of(lambda: verify(setup, signer, signed.signature_xml, {}))
    assert code == Code.MALFORMED_SIGNATURE  # the signed hash chain result is missing


# --------------------------------------------------------------------------- time-stamps


def test_add_timestamp(setup: dict[str, object], xades_schema: etree.XMLSchema) -> None:
    signer: Signer = setup["deep"]  # type: ignore[assignment]
    xml = build(signer, parts(0, 0))
    assert xades.timestamp_token(xades.parse_signature(xml)) is None
    token = bytes(range(256)) * 3
    stamped = xades.add_timestamp(xml, token)
    assert_schema_valid(xades_schema, stamped)
    root = etree.fromstring(stamped)
    usp = next(root.iter("{http://uri.etsi.org/01903/v1.3.2#}UnsignedSignatureProperties"))
    assert etree.QName(usp[0]).localname == "SignatureTimeStamp"
    assert etree.QName(usp[0][0]).localname == "EncapsulatedTimeStamp"
    assert b"<xades:SignatureTimeStamp><xades:EncapsulatedTimeStamp>" in stamped
    assert xades.timestamp_token(xades.parse_signature(stamped)) == token
    assert xades.signature_value(stamped) == xades.signature_value(xml)
    verify(setup, signer, stamped, {"/message.xml": message(0)})


def test_add_timestamp_needs_unsigned_properties() -> None:
    bare = b'<ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/>'
    assert code_of(lambda: xades.add_timestamp(bare, b"x")) == Code.MALFORMED_SIGNATURE
    assert code_of(lambda: xades.add_timestamp(b"", b"x")) == Code.INVALID_XML


# --------------------------------------------------------------------------- verification failures


def test_wrong_signer(setup: dict[str, object]) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    xml = build(signer, parts(0, 0))
    other = Signer(signer.issued, ClientId("EE", "GOV", "9999"), signer.ocsp)
    assert code_of(lambda: verify(setup, other, xml, {"/message.xml": message(0)})) == (
        Code.INCORRECT_CERTIFICATE
    )


def test_unapproved_ca(setup: dict[str, object]) -> None:
    rogue_ca = make_cert(name(O="Rogue", CN="Rogue CA"), kind="ca")
    leaf = make_cert(name(C="EE", O="GOV", CN="1234"), issuer=rogue_ca)
    signer = Signer(leaf, ClientId("EE", "GOV", "1234"), (b"",))
    xml = xades.build_signature(
        parts(0, 0),
        signing_cert=leaf.cert,
        ocsp_responses=[make_ocsp_response(leaf.cert, rogue_ca.cert, rogue_ca, this_update=AT)],
        sign=signer.sign(RSA),
        signing_time=SIGNING_TIME,
    )
    assert code_of(lambda: verify(setup, signer, xml, {"/message.xml": message(0)})) == (
        Code.INCORRECT_CERTIFICATE
    )


def test_not_a_signing_certificate(setup: dict[str, object]) -> None:
    auth: Issued = setup["auth"]  # type: ignore[assignment]
    signer = Signer(auth, ClientId("EE", "GOV", "1234"), (b"",))
    rsa: Signer = setup["rsa"]  # type: ignore[assignment]
    xml = xades.build_signature(
        parts(0, 0),
        signing_cert=auth.cert,
        ocsp_responses=rsa.ocsp,
        sign=signer.sign(RSA),
        signing_time=SIGNING_TIME,
    )
    assert code_of(lambda: verify(setup, signer, xml, {"/message.xml": message(0)})) == (
        Code.MALFORMED_SIGNATURE
    )


def test_missing_signing_certificate(setup: dict[str, object]) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    xml = build(signer, parts(0, 0))
    stripped = re.sub(rb"<ds:KeyInfo>.*</ds:KeyInfo>\n", b"", xml, flags=re.DOTALL)
    assert code_of(lambda: verify(setup, signer, stripped, {"/message.xml": message(0)})) == (
        Code.MALFORMED_SIGNATURE
    )


def test_certificate_path_is_checked_at_the_given_time(setup: dict[str, object]) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    xml = build(signer, parts(0, 0))
    late = AT + dt.timedelta(days=20 * 365)
    code = code_of(
        lambda: xades.verify_signature(
            xml,
            signer=signer.member,
            trust=setup["trust"],  # type: ignore[arg-type]
            at=late,
            resolve={"/message.xml": message(0)}.get,
        )
    )
    assert code.startswith(Code.CANNOT_CREATE_CERT_PATH)


def test_ocsp_of_another_certificate(setup: dict[str, object]) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    other: Signer = setup["ec"]  # type: ignore[assignment]
    xml = build(Signer(signer.issued, signer.member, other.ocsp), parts(0, 0))
    code = code_of(lambda: verify(setup, signer, xml, {"/message.xml": message(0)}))
    assert code == "invalid_cert_path.cert_validation"


def test_unresolvable_message(setup: dict[str, object]) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    xml = build(signer, parts(0, 0))
    assert code_of(lambda: verify(setup, signer, xml, {})) == Code.MALFORMED_SIGNATURE


def test_message_digest_may_be_given(setup: dict[str, object]) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    xml = build(signer, parts(0, 0))
    verify(setup, signer, xml, {}, part_digests={"/message.xml": SHA512.digest(message(0))})
    code = code_of(
        lambda: verify(setup, signer, xml, {}, part_digests={"/message.xml": SHA512.digest(b"x")})
    )
    assert code == Code.INVALID_SIGNATURE_VALUE


def test_parts_the_signature_does_not_cover(setup: dict[str, object]) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    xml = build(signer, parts(0, 0))
    digests = {"/message.xml": SHA512.digest(message(0)), "/attachment1": SHA512.digest(b"a")}
    code = code_of(lambda: verify(setup, signer, xml, {}, part_digests=digests))
    assert code == Code.INVALID_SIGNATURE_VALUE


def test_signature_must_cover_the_message(setup: dict[str, object]) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    xml = build(signer, parts(0, 0)).replace(b'URI="/message.xml"', b'URI="/other.xml"')
    code = code_of(lambda: verify(setup, signer, xml, {"/other.xml": message(0)}))
    assert code == Code.MALFORMED_SIGNATURE


# --------------------------------------------------------------------------- building failures


def test_build_failures(setup: dict[str, object]) -> None:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    ec: Signer = setup["ec"]  # type: ignore[assignment]
    cases: list[Callable[[], object]] = [
        lambda: build(signer, parts(0, 1)),  # two parts need a hash chain
        lambda: build(Signer(signer.issued, signer.member, ()), parts(0, 0)),  # no OCSP
        lambda: build(signer, parts(0, 0), ECDSA),  # EC algorithm, RSA certificate
        lambda: xades.MessagePart("/message.xml", SHA512),  # no data at all
        lambda: xades.MessagePart("/a", SHA256, digest_value=b"x").digest_with(SHA512),
        lambda: xades.build_signature(
            parts(0, 0),
            signing_cert=signer.issued.cert,
            ocsp_responses=signer.ocsp,
            sign=signer.sign(RSA),
            signing_time=dt.datetime(2025, 1, 1),  # noqa: DTZ001  (naive on purpose)
        ),
        lambda: xades.sign_batch(
            [],
            signing_cert=signer.issued.cert,
            ocsp_responses=signer.ocsp,
            sign=signer.sign(RSA),
            signing_time=SIGNING_TIME,
        ),
    ]
    for case in cases:
        assert code_of(case) == Code.CANNOT_CREATE_SIGNATURE
    build(ec, parts(0, 0, ECDSA), ECDSA)  # the EC signer itself is fine


# --------------------------------------------------------------------------- hostile input


@pytest.mark.parametrize(
    "xml",
    [
        b"",
        b"<?xml version='1.0'?>",
        b"not xml",
        b"<a>",
        b'<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>',
    ],
)
def test_garbage_is_invalid_xml(xml: bytes) -> None:
    assert code_of(lambda: xades.parse_signature(xml)) == Code.INVALID_XML


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_give_coded_errors(data: bytes) -> None:
    assert code_of(lambda: xades.parse_signature(data)) in SIGNATURE_FAMILY


_WS = b" \t\r\n"


def _benign(data: bytes, index: int, new: int) -> bool:
    declaration_end = data.index(b"?>") + 2
    return index < declaration_end or (data[index] in _WS and new in _WS)


def _signed_spans(xml: bytes) -> list[tuple[int, int]]:
    """Byte ranges the signature protects: SignedInfo, the SignatureValue text, SignedProperties
    (the Ids of ds:Signature and ds:SignatureValue, for one, are not protected)."""
    spans = []
    for pattern in (
        rb"(<ds:SignedInfo>.*?</ds:SignedInfo>)",
        rb"<ds:SignatureValue[^>]*>(.*?)</ds:SignatureValue>",
        rb"(<xades:SignedProperties .*?</xades:SignedProperties>)",
    ):
        m = re.search(pattern, xml, re.DOTALL)
        assert m is not None
        spans.append(m.span(1))
    return spans


@dataclass(frozen=True)
class Batch:
    setup: dict[str, object]
    signer: Signer
    simple: bytes
    chained: xades.SignedMessage


@pytest.fixture(scope="module")
def batch(setup: dict[str, object]) -> Batch:
    signer: Signer = setup["rsa"]  # type: ignore[assignment]
    signed = xades.sign_batch(
        [parts(0, 1), parts(1, 2)],
        signing_cert=signer.issued.cert,
        ocsp_responses=signer.ocsp,
        sign=signer.sign(RSA),
        signing_time=SIGNING_TIME,
    )
    return Batch(setup, signer, build(signer, parts(0, 0)), signed[0])


def _flip(data: bytes, pos: int, delta: int) -> tuple[bytes, int]:
    index = pos % len(data)
    out = bytearray(data)
    out[index] = (out[index] + delta) % 256
    return bytes(out), index


def _outcome(action: Callable[[], object]) -> XRoadError | None:
    try:
        action()
    except XRoadError as exc:
        return exc
    return None


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["message", "attachment", "chain", "result", "signature"]),
    st.integers(min_value=0),
    st.integers(min_value=1, max_value=255),
)
def test_flipping_a_byte_is_detected(batch: Batch, target: str, pos: int, delta: int) -> None:
    chained = batch.chained
    files = {"/message.xml": message(0), "/attachment1": attachment(0, 1)}
    chain, result = chained.hash_chain, chained.hash_chain_result
    assert chain is not None
    assert result is not None
    xml = chained.signature_xml
    benign = False
    if target in ("message", "attachment"):
        key = "/message.xml" if target == "message" else "/attachment1"
        files[key], _ = _flip(files[key], pos, delta)
    elif target == "chain":
        chain, index = _flip(chain, pos, delta)
        benign = _benign(chained.hash_chain or b"", index, chain[index])
    elif target == "result":
        result, _ = _flip(result, pos, delta)
    else:
        xml, index = _flip(xml, pos, delta)
        inside = any(a <= index < b for a, b in _signed_spans(chained.signature_xml))
        benign = not inside or _benign(chained.signature_xml, index, xml[index])

    def run() -> object:
        return verify(
            batch.setup,
            batch.signer,
            xml,
            files,
            hash_chain=chain,
            hash_chain_result=result,
            part_digests={"/message.xml": None, "/attachment1": None},
        )

    error = _outcome(run)
    if error is None:
        assert benign, f"{target} flip went unnoticed"
    elif not benign:
        assert error.code.split(".")[0] in SIGNATURE_FAMILY, error


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.booleans(), st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_flipping_a_byte_of_a_simple_signature(
    batch: Batch, in_message: bool, pos: int, delta: int
) -> None:
    files = {"/message.xml": message(0)}
    xml = batch.simple
    benign = False
    if in_message:
        files["/message.xml"], _ = _flip(files["/message.xml"], pos, delta)
    else:
        xml, index = _flip(xml, pos, delta)
        inside = any(a <= index < b for a, b in _signed_spans(batch.simple))
        benign = not inside or _benign(batch.simple, index, xml[index])
    error = _outcome(lambda: verify(batch.setup, batch.signer, xml, files))
    if error is None:
        assert benign, "flip went unnoticed"
    elif in_message:
        assert error.code == Code.INVALID_SIGNATURE_VALUE
    elif not benign:
        assert error.code in SIGNATURE_FAMILY, error


def test_relative_namespace_uri_is_refused(batch: Batch) -> None:
    # C14N 1.0 cannot canonicalize relative namespace URIs (libxml2 refuses them).
    xml = batch.simple.replace(b'xmlns:xsi="http://', b'xmlns:xsi="', 1)
    error = _outcome(lambda: verify(batch.setup, batch.signer, xml, {"/message.xml": message(0)}))
    assert error is not None
    assert error.code == Code.MALFORMED_SIGNATURE


def test_undecodable_signing_certificate_is_malformed(batch: Batch) -> None:
    # A certificate whose extensions cannot be decoded (here: keyUsage twice) is refused when
    # the signature is read, with a coded error rather than a cryptography exception.
    cert = batch.signer.issued.cert
    der = cert.public_bytes(Encoding.DER)
    ski = x509.SubjectKeyIdentifier.oid.dotted_string
    assert ski == "2.5.29.14"
    forged_der = der.replace(bytes.fromhex("0603551d0e"), bytes.fromhex("0603551d0f"), 1)
    forged = batch.simple.replace(base64.b64encode(der), base64.b64encode(forged_der))
    assert forged != batch.simple
    assert code_of(lambda: xades.parse_signature(forged)) == Code.MALFORMED_SIGNATURE


def test_duplicate_ids_are_refused(batch: Batch) -> None:
    # A copy of SignedProperties elsewhere must not be able to stand in for the signed one.
    xml = batch.simple.replace(b"<ds:X509Data>", b'<ds:X509Data><x Id="signed-properties"/>', 1)
    assert code_of(lambda: xades.parse_signature(xml)) == Code.MALFORMED_SIGNATURE


def test_ec_batch_round_trip(setup: dict[str, object], xades_schema: etree.XMLSchema) -> None:
    signer: Signer = setup["ec"]  # type: ignore[assignment]
    requests = [parts(0, 2, ECDSA), parts(1, 0, ECDSA)]
    signed = xades.sign_batch(
        requests,
        signing_cert=signer.issued.cert,
        ocsp_responses=signer.ocsp,
        sign=signer.sign(ECDSA),
        algorithm=ECDSA,
        signing_time=SIGNING_TIME,
    )
    for n, (request, result) in enumerate(zip(requests, signed, strict=True)):
        assert_schema_valid(xades_schema, result.signature_xml)
        assert result.hash_chain is not None
        assert b"xmlenc#sha256" in result.hash_chain  # the chain uses the signature's digest
        info = verify(
            setup,
            signer,
            result.signature_xml,
            {"/message.xml": message(n)},
            hash_chain=result.hash_chain,
            hash_chain_result=result.hash_chain_result,
            part_digests={p.name: p.digest_with(SHA256) for p in request},
        )
        assert len(info.signature_value) == 64
