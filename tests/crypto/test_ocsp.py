"""crypto.ocsp: requests, parsing and NIIS-style verification of responses."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509 import ocsp as x_ocsp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossroad.crypto import ocsp
from crossroad.crypto.trust import ApprovedCA, OcspResponder, TrustPolicy
from crossroad.errors import XRoadError
from crossroad.testing import pki as tp
from crossroad.testing.pki import (
    EPOCH,
    Issued,
    ec_key,
    make_cert,
    make_ocsp_response,
    name,
    rsa_key,
)

AT = EPOCH + dt.timedelta(days=30)
HOUR = dt.timedelta(hours=1)


@pytest.fixture(scope="module")
def pki() -> tp.TestPKI:
    return tp.TestPKI.create("Ocsp")


@pytest.fixture(scope="module")
def trust(pki: tp.TestPKI) -> TrustPolicy:
    ca = ApprovedCA(
        "Ocsp CA",
        pki.ca.cert,
        "ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider",
        ocsp=(OcspResponder("http://ocsp.test", pki.ocsp.cert),),
    )
    return TrustPolicy("TEST", cas=(ca,), ocsp_freshness_seconds=600)


@pytest.fixture(scope="module")
def member(pki: tp.TestPKI) -> Issued:
    return pki.sign_cert("XX", "COM", "1234")


def _respond(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    responder: Issued,
    *,
    this_update: dt.datetime = AT,
    next_update: dt.datetime | None = None,
    by_key: bool = False,
    status: x_ocsp.OCSPCertStatus = x_ocsp.OCSPCertStatus.GOOD,
    certs: list[x509.Certificate] | None = None,
) -> bytes:
    builder = x_ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=issuer,
        algorithm=hashes.SHA1(),
        cert_status=status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=this_update - HOUR if status == x_ocsp.OCSPCertStatus.REVOKED else None,
        revocation_reason=None,
    )
    encoding = x_ocsp.OCSPResponderEncoding.HASH if by_key else x_ocsp.OCSPResponderEncoding.NAME
    builder = builder.responder_id(encoding, responder.cert)
    if certs:
        builder = builder.certificates(certs)
    return builder.sign(responder.key, hashes.SHA256()).public_bytes(Encoding.DER)


# ---------------------------------------------------------------------------------------------
# Requests


def test_build_request_is_sha1_without_nonce(pki: tp.TestPKI, member: Issued) -> None:
    der = ocsp.build_request(member.cert, pki.ca.cert)
    req = x_ocsp.load_der_ocsp_request(der)
    assert isinstance(req.hash_algorithm, hashes.SHA1)
    assert req.serial_number == member.cert.serial_number
    assert list(req.extensions) == []  # no nonce
    cid = ocsp.cert_id(member.cert, pki.ca.cert)
    assert (req.issuer_name_hash, req.issuer_key_hash) == (
        cid.issuer_name_hash,
        cid.issuer_key_hash,
    )


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_reads_our_request(pki: tp.TestPKI, member: Issued, tmp_path: Path) -> None:
    req = tmp_path / "req.der"
    req.write_bytes(ocsp.build_request(member.cert, pki.ca.cert))
    out = subprocess.run(
        ["openssl", "ocsp", "-reqin", str(req), "-req_text"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "Hash Algorithm: sha1" in out.stdout
    serial = re.search(r"Serial Number: ([0-9A-F]+)", out.stdout)
    assert serial is not None
    assert int(serial.group(1), 16) == member.cert.serial_number
    assert "Nonce" not in out.stdout
    assert "Signature Algorithm" not in out.stdout  # unsigned


# ---------------------------------------------------------------------------------------------
# Statuses and freshness


def test_good(pki: tp.TestPKI, member: Issued, trust: TrustPolicy) -> None:
    der = pki.ocsp_for(member.cert, AT)
    status = ocsp.verify_response(der, member.cert, pki.ca.cert, trust, AT)
    assert status.good
    assert status.this_update == AT
    assert status.responder == pki.ocsp.cert
    assert ocsp.find_response(member.cert, pki.ca.cert, [der]) == der
    assert ocsp.response_status(der) == "successful"


def test_revoked_and_unknown(pki: tp.TestPKI, member: Issued, trust: TrustPolicy) -> None:
    revoked = pki.ocsp_for(member.cert, AT, revoked_at=AT - HOUR)
    with pytest.raises(XRoadError) as err:
        ocsp.verify_response(revoked, member.cert, pki.ca.cert, trust, AT)
    assert err.value.code == "cert_validation"
    assert "REVOKED" in err.value.detail
    assert (AT - HOUR).strftime("%Y-%m-%dT%H:%M:%SZ") in err.value.detail
    status = ocsp.verify_status(revoked, member.cert, pki.ca.cert, trust, AT)
    assert status.status == ocsp.REVOKED
    assert status.revocation_time == AT - HOUR

    unknown = pki.ocsp_for(member.cert, AT, unknown=True)
    with pytest.raises(XRoadError) as err:
        ocsp.verify_response(unknown, member.cert, pki.ca.cert, trust, AT)
    assert err.value.code == "cert_validation"
    assert "UNKNOWN" in err.value.detail
    assert ocsp.verify_status(unknown, member.cert, pki.ca.cert, trust, AT).status == "unknown"


def test_freshness_is_measured_from_this_update(
    pki: tp.TestPKI, member: Issued, trust: TrustPolicy
) -> None:
    der = pki.ocsp_for(member.cert, AT)
    edge = AT + dt.timedelta(seconds=600)
    ocsp.verify_response(der, member.cert, pki.ca.cert, trust, edge)
    with pytest.raises(XRoadError) as err:
        ocsp.verify_response(der, member.cert, pki.ca.cert, trust, edge + dt.timedelta(seconds=1))
    assert err.value.code == "incorrect_validation_info"
    assert "too old" in err.value.detail
    # producedAt does not matter (NIIS measures from thisUpdate): here it is "now", not AT.
    assert ocsp.verify_response(der, member.cert, pki.ca.cert, trust, AT).produced_at != AT


def test_future_this_update_is_accepted(
    pki: tp.TestPKI, member: Issued, trust: TrustPolicy
) -> None:
    der = pki.ocsp_for(member.cert, AT + dt.timedelta(days=365))
    assert ocsp.verify_response(der, member.cert, pki.ca.cert, trust, AT).good


def test_next_update(pki: tp.TestPKI, member: Issued, trust: TrustPolicy) -> None:
    der = pki.ocsp_for(member.cert, AT - HOUR / 12, next_update=AT - dt.timedelta(minutes=1))
    with pytest.raises(XRoadError) as err:
        ocsp.verify_response(der, member.cert, pki.ca.cert, trust, AT)
    assert err.value.code == "incorrect_validation_info"
    assert "nextUpdate" in err.value.detail
    lenient = TrustPolicy(
        "TEST", cas=trust.cas, ocsp_freshness_seconds=600, verify_ocsp_next_update=False
    )
    assert ocsp.verify_response(der, member.cert, pki.ca.cert, lenient, AT).good
    later = pki.ocsp_for(member.cert, AT, next_update=AT)
    assert ocsp.verify_response(later, member.cert, pki.ca.cert, trust, AT).next_update == AT


def test_naive_time_is_refused(pki: tp.TestPKI, member: Issued, trust: TrustPolicy) -> None:
    der = pki.ocsp_for(member.cert, AT)
    with pytest.raises(ValueError, match="timezone"):
        ocsp.verify_response(der, member.cert, pki.ca.cert, trust, AT.replace(tzinfo=None))


# ---------------------------------------------------------------------------------------------
# Which response, which responder


def test_response_for_another_certificate(
    pki: tp.TestPKI, member: Issued, trust: TrustPolicy
) -> None:
    other = pki.sign_cert("XX", "COM", "5678")
    der = pki.ocsp_for(other.cert, AT)
    with pytest.raises(XRoadError) as err:
        ocsp.verify_response(der, member.cert, pki.ca.cert, trust, AT)
    assert err.value.code == "incorrect_validation_info"
    assert "does not apply" in err.value.detail
    assert ocsp.find_response(member.cert, pki.ca.cert, [der]) is None
    with pytest.raises(XRoadError) as err:
        ocsp.find_and_verify(member.cert, pki.ca.cert, [der], trust, AT)
    assert err.value.code == "cert_validation"


def test_unknown_responder(pki: tp.TestPKI, member: Issued, trust: TrustPolicy) -> None:
    stranger = make_cert(name(CN="Stranger OCSP"), kind="ocsp", key=rsa_key(20))
    der = make_ocsp_response(
        member.cert, pki.ca.cert, stranger, this_update=AT, include_responder_cert=False
    )
    with pytest.raises(XRoadError) as err:
        ocsp.verify_response(der, member.cert, pki.ca.cert, trust, AT)
    assert err.value.code == "incorrect_validation_info"
    assert "Could not find" in err.value.detail


def test_unauthorised_responder(pki: tp.TestPKI, member: Issued, trust: TrustPolicy) -> None:
    # Carried in the response, but neither listed, nor the CA, nor issued by it.
    stranger = make_cert(name(CN="Stranger OCSP"), kind="ocsp", key=rsa_key(20))
    der = make_ocsp_response(member.cert, pki.ca.cert, stranger, this_update=AT)
    with pytest.raises(XRoadError) as err:
        ocsp.verify_response(der, member.cert, pki.ca.cert, trust, AT)
    assert err.value.code == "incorrect_validation_info"
    assert "not authorized" in err.value.detail
    # Issued by the CA but without id-kp-OCSPSigning: not authorised either.
    no_eku = make_cert(name(CN="Signer"), issuer=pki.ca, kind="sign", key=rsa_key(21))
    der = make_ocsp_response(member.cert, pki.ca.cert, no_eku, this_update=AT)
    with pytest.raises(XRoadError):
        ocsp.verify_response(der, member.cert, pki.ca.cert, trust, AT)


def test_delegated_responder_with_eku_and_ca_itself(
    pki: tp.TestPKI, member: Issued, trust: TrustPolicy
) -> None:
    delegated = make_cert(name(CN="Delegated OCSP"), issuer=pki.ca, kind="ocsp", key=rsa_key(22))
    der = make_ocsp_response(member.cert, pki.ca.cert, delegated, this_update=AT)
    assert (
        ocsp.verify_response(der, member.cert, pki.ca.cert, trust, AT).responder == delegated.cert
    )
    by_ca = make_ocsp_response(
        member.cert, pki.ca.cert, pki.ca, this_update=AT, include_responder_cert=False
    )
    assert ocsp.verify_response(by_ca, member.cert, pki.ca.cert, trust, AT).good


def test_responder_by_key_hash_and_ecdsa(pki: tp.TestPKI, member: Issued) -> None:
    ec_responder = make_cert(name(CN="EC OCSP"), issuer=pki.ca, kind="ocsp", key=ec_key())
    listed = TrustPolicy(
        "TEST",
        cas=(ApprovedCA("x", pki.ca.cert, "p", ocsp=(OcspResponder("u", ec_responder.cert),)),),
    )
    der = _respond(member.cert, pki.ca.cert, ec_responder, by_key=True)
    assert ocsp.parse_response(der).responder_key_hash is not None
    assert ocsp.verify_response(der, member.cert, pki.ca.cert, listed, AT).responder == (
        ec_responder.cert
    )


def test_responder_name_in_reverse_order(
    pki: tp.TestPKI, member: Issued, trust: TrustPolicy
) -> None:
    # NIIS writes the responder name from an RFC 2253 string: RDNs reversed.
    reversed_name = x509.Name(list(reversed(pki.ocsp.cert.subject.rdns)))
    builder = (
        x_ocsp.OCSPResponseBuilder()
        .add_response(
            cert=member.cert,
            issuer=pki.ca.cert,
            algorithm=hashes.SHA1(),
            cert_status=x_ocsp.OCSPCertStatus.GOOD,
            this_update=AT,
            next_update=None,
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(x_ocsp.OCSPResponderEncoding.NAME, _with_subject(pki.ocsp, reversed_name))
    )
    der = builder.sign(pki.ocsp.key, hashes.SHA256()).public_bytes(Encoding.DER)
    assert ocsp.parse_response(der).responder_name == reversed_name
    assert ocsp.verify_response(der, member.cert, pki.ca.cert, trust, AT).good


def _with_subject(issued: Issued, subject: x509.Name) -> x509.Certificate:
    """A throw-away certificate with ``subject`` (only its name is used by the builder)."""
    return make_cert(subject, key=issued.key, kind="ocsp").cert


def test_non_successful_and_garbage() -> None:
    der = x_ocsp.OCSPResponseBuilder.build_unsuccessful(
        x_ocsp.OCSPResponseStatus.TRY_LATER
    ).public_bytes(Encoding.DER)
    assert ocsp.response_status(der) == "tryLater"
    with pytest.raises(XRoadError) as err:
        ocsp.parse_response(der)
    assert err.value.code == "incorrect_validation_info"
    assert "tryLater" in err.value.detail
    for junk in (b"", b"\x30\x03\x0a\x01\x00", b"not der", b"\x30\x80"):
        with pytest.raises(XRoadError) as err:
            ocsp.parse_response(junk)
        assert err.value.code == "incorrect_validation_info"
        with pytest.raises(XRoadError):
            ocsp.response_status(junk)


# ---------------------------------------------------------------------------------------------
# Tampering


def _spans(der: bytes) -> list[range]:
    resp = ocsp.parse_response(der)
    tbs_at, sig_at = der.find(resp.tbs), der.find(resp.signature)
    assert tbs_at > 0
    assert sig_at > 0
    return [range(tbs_at, tbs_at + len(resp.tbs)), range(sig_at, sig_at + len(resp.signature))]


def test_tampered_bytes(pki: tp.TestPKI, member: Issued, trust: TrustPolicy) -> None:
    der = pki.ocsp_for(member.cert, AT)
    tbs, sig = _spans(der)
    for index in (tbs.start + len(tbs) // 2, tbs.stop - 3, sig.start + 5, sig.stop - 1):
        bad = bytearray(der)
        bad[index] ^= 0x01
        with pytest.raises(XRoadError) as err:
            ocsp.verify_response(bytes(bad), member.cert, pki.ca.cert, trust, AT)
        assert err.value.code in ("incorrect_validation_info", "cert_validation")


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_byte_flips_give_coded_errors(
    data: st.DataObject, pki: tp.TestPKI, member: Issued, trust: TrustPolicy
) -> None:
    der = pki.ocsp_for(member.cert, AT)
    spans = _spans(der)
    index = data.draw(st.integers(0, len(der) - 1))
    flip = data.draw(st.integers(1, 255))
    bad = bytearray(der)
    bad[index] ^= flip
    try:
        ocsp.verify_response(bytes(bad), member.cert, pki.ca.cert, trust, AT)
    except XRoadError:
        return
    # Only bytes outside the signed data and the signature may change without notice
    # (e.g. inside the embedded responder certificate, which the trust policy also lists).
    assert not any(index in span for span in spans)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_parse_random_bytes(blob: bytes) -> None:
    code = None
    try:
        ocsp.parse_response(blob)
    except XRoadError as exc:
        code = exc.code
    assert code in (None, "incorrect_validation_info")


# ---------------------------------------------------------------------------------------------
# Cross-check with an independent responder: openssl ocsp


def _pem(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
@pytest.mark.parametrize(
    ("revoked", "extra"),
    [
        (False, []),
        (True, []),
        (False, ["-resp_key_id"]),
        (False, ["-rsigopt", "rsa_padding_mode:pss", "-rsigopt", "rsa_pss_saltlen:32"]),
    ],
)
def test_openssl_responses_verify(
    pki: tp.TestPKI, trust: TrustPolicy, tmp_path: Path, revoked: bool, extra: list[str]
) -> None:
    leaf = pki.sign_cert("XX", "COM", "openssl")
    expiry = leaf.cert.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
    revocation = "250201000000Z" if revoked else ""
    subject = "/" + leaf.cert.subject.rfc4514_string().replace(",", "/")
    fields = ["R" if revoked else "V", expiry, revocation, f"{leaf.cert.serial_number:X}"]
    line = "\t".join([*fields, "unknown", subject]) + "\n"
    (tmp_path / "index.txt").write_text(line)
    key_pem = pki.ocsp.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    args = [
        "openssl", "ocsp",
        "-index", str(tmp_path / "index.txt"),
        "-rsigner", _pem(tmp_path / "ocsp.pem", pki.ocsp.cert.public_bytes(Encoding.PEM)),
        "-rkey", _pem(tmp_path / "ocsp.key", key_pem),
        "-CA", _pem(tmp_path / "ca.pem", pki.ca.cert.public_bytes(Encoding.PEM)),
        "-reqin", _pem(tmp_path / "req.der", ocsp.build_request(leaf.cert, pki.ca.cert)),
        "-respout", str(tmp_path / "resp.der"),
        *extra,
    ]  # fmt: skip
    subprocess.run(args, capture_output=True, check=True)
    der = (tmp_path / "resp.der").read_bytes()
    parsed = ocsp.parse_response(der)
    at = parsed.this_update + dt.timedelta(seconds=5)
    status = ocsp.verify_status(der, leaf.cert, pki.ca.cert, trust, at)
    assert status.responder == pki.ocsp.cert
    if revoked:
        assert status.status == ocsp.REVOKED
        assert status.revocation_time == dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
        with pytest.raises(XRoadError) as err:
            ocsp.verify_response(der, leaf.cert, pki.ca.cert, trust, at)
        assert err.value.code == "cert_validation"
    else:
        assert ocsp.verify_response(der, leaf.cert, pki.ca.cert, trust, at).good
