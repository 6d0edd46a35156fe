"""The OCSP responder core: answers, signatures, CertID variants, refusals, fuzzing."""

from __future__ import annotations

import datetime as dt

import pytest
from asn1crypto import core
from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.x509 import ocsp
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroad.crypto.ocsp import build_request, verify_response
from crossroad.crypto.trust import ApprovedCA, OcspResponder, TrustPolicy
from crossroad.errors import Code, XRoadError
from crossroad.testing.pki import rsa_key
from crossroad.trust.ca import TestCA, parse_name
from crossroad.trust.ocsp_responder import TestOcspResponder

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
DER = serialization.Encoding.DER


def _leaf(ca: TestCA, kind: str = "sign") -> x509.Certificate:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(parse_name("/C=FI/O=Org/CN=1234/serialNumber=DEV\\/ss1\\/COM"))
        .sign(rsa_key(9), hashes.SHA256())
    )
    return ca.issue(csr, kind, now=NOW)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.create("/O=Test/CN=Test CA", now=NOW, key=rsa_key(60))


@pytest.fixture(scope="module")
def responder(ca: TestCA) -> TestOcspResponder:
    key = rsa_key(61)
    cert = ca.issue_ocsp_responder(key.public_key(), "/O=Test/CN=Test OCSP", now=NOW)
    return TestOcspResponder(ca.cert, key, cert)


def request_for(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    algorithm: hashes.HashAlgorithm | None = None,
    nonce: bytes | None = None,
) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, algorithm or hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(DER)


def check_signed(resp: ocsp.OCSPResponse, responder: TestOcspResponder) -> None:
    assert resp.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
    assert resp.responder_name == responder.cert.subject
    assert resp.responder_key_hash is None
    assert resp.certificates == [responder.cert]
    key = responder.cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(resp.signature, resp.tbs_response_bytes, ec.ECDSA(hashes.SHA256()))
    else:
        key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr, call-arg]


def test_good(ca: TestCA, responder: TestOcspResponder) -> None:
    leaf = _leaf(ca)
    der = responder.respond(request_for(leaf, ca.cert), now=NOW, lookup=ca.status)
    resp = ocsp.load_der_ocsp_response(der)
    check_signed(resp, responder)
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert resp.serial_number == leaf.serial_number
    assert resp.this_update_utc == NOW
    assert resp.produced_at_utc == NOW
    assert resp.next_update_utc is None  # like the NIIS dev CA
    assert resp.hash_algorithm.name == "sha1"
    assert len(resp.extensions) == 0


def _trust(ca: TestCA, responder: TestOcspResponder) -> TrustPolicy:
    approved = ApprovedCA(
        name="Test CA",
        top_ca=ca.cert,
        certificate_profile="ee.ria.xroad.common.certificateprofile.impl."
        "FiVRKCertificateProfileInfoProvider",
        ocsp=(OcspResponder("http://127.0.0.1:8888/", responder.cert),),
    )
    return TrustPolicy(instance="DEV", cas=(approved,))


def test_verified_by_the_x_road_verifier(ca: TestCA, responder: TestOcspResponder) -> None:
    """crypto.ocsp (what security servers run on responses) accepts good, refuses revoked."""
    leaf = _leaf(ca)
    trust = _trust(ca, responder)
    request = build_request(leaf, ca.cert)  # SHA-1 CertID, no nonce: as a security server asks
    der = responder.respond(request, now=NOW, lookup=ca.status)
    status = verify_response(der, leaf, ca.cert, trust, NOW + dt.timedelta(minutes=1))
    assert status.good
    assert status.this_update == NOW
    ca.revoke(leaf.serial_number, "keyCompromise", at=NOW)
    der = responder.respond(request, now=NOW, lookup=ca.status)
    with pytest.raises(XRoadError) as info:
        verify_response(der, leaf, ca.cert, trust, NOW)
    assert info.value.code == Code.CERT_VALIDATION
    # Stale: thisUpdate older than ocspFreshnessSeconds before the verification time.
    other = _leaf(ca)
    der = responder.respond(build_request(other, ca.cert), now=NOW, lookup=ca.status)
    with pytest.raises(XRoadError, match="too old"):
        verify_response(der, other, ca.cert, trust, NOW + dt.timedelta(hours=2))


def test_revoked_then_reported(ca: TestCA, responder: TestOcspResponder) -> None:
    leaf = _leaf(ca, "auth")
    revoked_at = NOW - dt.timedelta(minutes=5)
    ca.revoke(leaf.serial_number, "superseded", at=revoked_at)
    resp = ocsp.load_der_ocsp_response(
        responder.respond(request_for(leaf, ca.cert), now=NOW, lookup=ca.status)
    )
    check_signed(resp, responder)
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED
    assert resp.revocation_time_utc == revoked_at
    assert resp.revocation_reason == x509.ReasonFlags.superseded


def test_unknown_serial(ca: TestCA, responder: TestOcspResponder) -> None:
    # A certificate with our issuer name and key but a serial we never issued.
    other = TestCA(ca.key, ca.cert)  # separate registry: its serials are unknown to ``ca``
    stranger = _leaf(other)
    ca_fresh = TestCA.create("/CN=unused", now=NOW, key=rsa_key(62))
    resp = ocsp.load_der_ocsp_response(
        responder.respond(request_for(stranger, ca.cert), now=NOW, lookup=ca_fresh.status)
    )
    check_signed(resp, responder)
    assert resp.certificate_status == ocsp.OCSPCertStatus.UNKNOWN


def test_next_update_and_nonce(ca: TestCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.issue_ocsp_responder(key.public_key(), "/O=Test/CN=EC OCSP", now=NOW)
    ec_responder = TestOcspResponder(ca.cert, key, cert, next_update=dt.timedelta(hours=1))
    leaf = _leaf(ca)
    der = ec_responder.respond(
        request_for(leaf, ca.cert, nonce=b"0123456789abcdef"), now=NOW, lookup=ca.status
    )
    resp = ocsp.load_der_ocsp_response(der)
    check_signed(resp, ec_responder)
    assert resp.next_update_utc == NOW + dt.timedelta(hours=1)
    nonce = resp.extensions.get_extension_for_class(x509.OCSPNonce).value
    assert nonce.nonce == b"0123456789abcdef"


@pytest.mark.parametrize("algorithm", [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
def test_cert_id_digest_is_echoed(
    ca: TestCA, responder: TestOcspResponder, algorithm: hashes.HashAlgorithm
) -> None:
    leaf = _leaf(ca)
    request = request_for(leaf, ca.cert, algorithm)
    resp = ocsp.load_der_ocsp_response(responder.respond(request, now=NOW, lookup=ca.status))
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert resp.hash_algorithm.name == algorithm.name
    req = ocsp.load_der_ocsp_request(request)
    assert (resp.issuer_key_hash, resp.issuer_name_hash) == (
        req.issuer_key_hash,
        req.issuer_name_hash,
    )


def test_cert_id_without_digest_parameters_is_echoed_exactly(
    ca: TestCA, responder: TestOcspResponder
) -> None:
    leaf = _leaf(ca)
    sent = asn1_ocsp.OCSPRequest.load(request_for(leaf, ca.cert))["tbs_request"]
    cid = sent["request_list"][0]["req_cert"]
    sha1_no_params = bytes.fromhex("300706052b0e03021a")  # AlgorithmIdentifier without NULL
    body = sha1_no_params + b"".join(cid[f].dump() for f in list(cid)[1:])
    raw_cid = asn1_ocsp.CertId.load(core.Sequence(contents=body).dump())
    request = asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": [{"req_cert": raw_cid}]}})
    der = responder.respond(request.dump(), now=NOW, lookup=ca.status)
    basic = asn1_ocsp.OCSPResponse.load(der)["response_bytes"]["response"].parsed
    echoed = basic["tbs_response_data"]["responses"][0]["cert_id"]
    assert echoed.dump() == raw_cid.dump()
    assert basic["tbs_response_data"]["responses"][0]["cert_status"].name == "good"


def _multi_request(*single_ders: bytes) -> bytes:
    """One OCSPRequest asking about the CertIDs of several single requests."""
    items = [asn1_ocsp.OCSPRequest.load(d)["tbs_request"]["request_list"][0] for d in single_ders]
    return bytes(asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": items}}).dump())


def test_several_certificates_and_a_foreign_one(ca: TestCA, responder: TestOcspResponder) -> None:
    a, b = _leaf(ca), _leaf(ca)
    ca.revoke(b.serial_number, at=NOW)
    foreign_ca = TestCA.create("/CN=Other CA", now=NOW, key=rsa_key(63))
    foreign = _leaf(foreign_ca)
    request = _multi_request(
        request_for(a, ca.cert), request_for(b, ca.cert), request_for(foreign, foreign_ca.cert)
    )
    resp = ocsp.load_der_ocsp_response(responder.respond(request, now=NOW, lookup=ca.status))
    check_signed(resp, responder)
    states = [(r.serial_number, r.certificate_status) for r in resp.responses]
    assert states == [
        (a.serial_number, ocsp.OCSPCertStatus.GOOD),
        (b.serial_number, ocsp.OCSPCertStatus.REVOKED),
        (foreign.serial_number, ocsp.OCSPCertStatus.UNKNOWN),
    ]


def test_other_issuer_is_unauthorized(ca: TestCA, responder: TestOcspResponder) -> None:
    foreign_ca = TestCA.create("/CN=Other CA", now=NOW, key=rsa_key(63))
    foreign = _leaf(foreign_ca)
    der = responder.respond(request_for(foreign, foreign_ca.cert), now=NOW, lookup=ca.status)
    assert ocsp.load_der_ocsp_response(der).response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30\x00",
        b"not DER at all",
        b"\x30\x03\x30\x01\x00",
        bytes(asn1_ocsp.OCSPRequest({"tbs_request": {"request_list": []}}).dump()),
    ],
)
def test_malformed_request(ca: TestCA, responder: TestOcspResponder, data: bytes) -> None:
    der = responder.respond(data, now=NOW, lookup=ca.status)
    resp = ocsp.load_der_ocsp_response(der)
    assert resp.response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_truncated_request(ca: TestCA, responder: TestOcspResponder) -> None:
    good = request_for(_leaf(ca), ca.cert)
    for cut in range(1, len(good)):
        der = responder.respond(good[:cut], now=NOW, lookup=ca.status)
        status = ocsp.load_der_ocsp_response(der).response_status
        assert status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_lookup_failure_is_internal_error(ca: TestCA, responder: TestOcspResponder) -> None:
    def broken(serial: int) -> object:
        raise RuntimeError("database is gone")

    der = responder.respond(request_for(_leaf(ca), ca.cert), now=NOW, lookup=broken)  # type: ignore[arg-type]
    status = ocsp.load_der_ocsp_response(der).response_status
    assert status == ocsp.OCSPResponseStatus.INTERNAL_ERROR


def _status_of(der: bytes) -> ocsp.OCSPResponseStatus:
    return ocsp.load_der_ocsp_response(der).response_status


# The CA answering for itself (no delegated responder) is allowed too (RFC 6960 §4.2.2.2).
_FUZZ_CA = TestCA.create("/CN=Fuzz CA", now=NOW, key=rsa_key(64))
_FUZZ_RESPONDER = TestOcspResponder(_FUZZ_CA.cert, _FUZZ_CA.key, _FUZZ_CA.cert)
_FUZZ_REQUEST = request_for(_leaf(_FUZZ_CA), _FUZZ_CA.cert, nonce=b"nonce-value-1234")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data: bytes) -> None:
    assert _status_of(_FUZZ_RESPONDER.respond(data, now=NOW, lookup=_FUZZ_CA.status)) in (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
        ocsp.OCSPResponseStatus.UNAUTHORIZED,
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_requests_never_raise(edits: list[tuple[int, int]]) -> None:
    data = bytearray(_FUZZ_REQUEST)
    for position, value in edits:
        data[position % len(data)] = value
    der = _FUZZ_RESPONDER.respond(bytes(data), now=NOW, lookup=_FUZZ_CA.status)
    status = _status_of(der)
    assert status in (
        ocsp.OCSPResponseStatus.SUCCESSFUL,
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST,
        ocsp.OCSPResponseStatus.UNAUTHORIZED,
    )
