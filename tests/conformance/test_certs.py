"""NIIS vectors: the "certs" and "derived" (certificates, OCSP) rows of MANIFEST.md.

Each test names the row it covers.  Verification times are the ones the rows state; OCSP
responses for the test_chain rows are made at test time with ``ocspsigner.p12`` as in NIIS
``CertChainTest``.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs12
from lxml import etree

from crossroad.crypto import chain, ocsp
from crossroad.crypto.algorithms import SHA512
from crossroad.crypto.certs import (
    cert_hash,
    extended_key_usage,
    is_auth_cert,
    is_ca_cert,
    is_sign_cert,
    java_rfc2253,
    load_certificate,
    load_certificates,
    subject_alt_names,
)
from crossroad.crypto.profiles import PACKAGE, member_id_from_sign_cert
from crossroad.crypto.trust import ApprovedCA, OcspResponder, TrustPolicy
from crossroad.errors import XRoadError
from crossroad.identifiers import ClientId
from crossroad.testing.pki import Issued, make_ocsp_response

UTC = dt.UTC
DAY = dt.timedelta(days=1)
DS = "{http://www.w3.org/2000/09/xmldsig#}"
XADES = "{http://uri.etsi.org/01903/v1.3.2#}"


def _cert(vectors: Path, rel: str) -> x509.Certificate:
    return load_certificate((vectors / rel).read_bytes())


def _p12(vectors: Path, rel: str) -> Issued:
    key, cert, _ = pkcs12.load_key_and_certificates((vectors / rel).read_bytes(), b"test")
    assert key is not None
    assert cert is not None
    return Issued(cert, key)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# certs/common-test: the "Cyber" test PKI


@pytest.fixture(scope="module")
def cyber(vectors: Path) -> TrustPolicy:
    root = _cert(vectors, "certs/common-test/root-ca.pem")
    signer = _p12(vectors, "certs/common-test/ocspsigner.p12").cert
    ca = ApprovedCA(
        "Cyber",
        root,
        PACKAGE + "TestCertificateProfileInfoProvider",
        ocsp=(OcspResponder("http://localhost", signer),),
    )
    return TrustPolicy("EE", cas=(ca,), ocsp_freshness_seconds=42)


def test_root_ca_pem_and_p12(vectors: Path) -> None:
    # Row root-ca.pem, root-ca.p12: the "Cyber" CA, an OpenSSL TRUSTED CERTIFICATE; expired.
    pem = _cert(vectors, "certs/common-test/root-ca.pem")
    p12 = _p12(vectors, "certs/common-test/root-ca.p12").cert
    assert pem == p12
    assert is_ca_cert(pem)
    assert pem.subject == pem.issuer
    assert java_rfc2253(pem.subject) == (
        "1.2.840.113549.1.9.1=#160b616161406262622e636363,CN=Cyber,OU=ITO,O=Cybernetica,C=EE"
    )
    assert pem.not_valid_after_utc == dt.datetime(2024, 9, 26, 9, 41, 37, tzinfo=UTC)


@pytest.mark.parametrize("name", ["consumer", "producer"])
def test_member_certs(vectors: Path, cyber: TrustPolicy, name: str) -> None:
    # Row consumer/producer: members of Cyber; getSubjectName(producer) = EE/BUSINESS/producer.
    cert = _cert(vectors, f"certs/common-test/{name}.pem")
    assert _p12(vectors, f"certs/common-test/{name}.p12").cert == cert
    assert is_sign_cert(cert)
    profile = cyber.cas[0].certificate_profile
    assert member_id_from_sign_cert(cert, profile, "EE") == ClientId("EE", "BUSINESS", name)
    path = chain.build_path(cert, [], cyber)
    assert path.certs == (cert, cyber.cas[0].top_ca)
    assert path.anchor == 1
    chain.validate_path(path, dt.datetime(2015, 1, 1, tzinfo=UTC), None, cyber)
    # EXPIRED: 2014-10-02 -> 2024-09-29.
    with pytest.raises(XRoadError) as err:
        chain.validate_path(path, dt.datetime(2025, 1, 1, tzinfo=UTC), None, cyber)
    assert err.value.code == "cannot_create_cert_path.internal_error"


def test_consumer_is_the_directory_verification_cert(vectors: Path) -> None:
    # Row consumer.pem: its SHA-512 is the configuration-directory Verification-certificate-hash.
    digest = base64.b64encode(cert_hash(_cert(vectors, "certs/common-test/consumer.pem"), SHA512))
    text = (vectors / "configuration-directory/client/test-conf-simple.txt").read_bytes()
    assert b"Verification-certificate-hash: " + digest + b";" in text


def _sign0_ocsp(vectors: Path) -> bytes:
    doc = etree.parse(str(vectors / "signatures/sign-0.xml"))
    value = doc.find(f".//{XADES}EncapsulatedOCSPValue")
    assert value is not None
    assert value.text
    return base64.b64decode(value.text)


def test_ocspsigner_is_consumer_and_signs_sign0_ocsp(vectors: Path, cyber: TrustPolicy) -> None:
    # Row ocspsigner.p12: its certificate is CN=consumer; it is an OCSP responder for the
    # Cyber root and signed the OCSP response in signatures/sign-0.xml.
    signer = _p12(vectors, "certs/common-test/ocspsigner.p12").cert
    assert "CN=consumer" in java_rfc2253(signer.subject)
    consumer = _cert(vectors, "certs/common-test/consumer.pem")
    root = cyber.cas[0].top_ca
    der = _sign0_ocsp(vectors)
    # atDate = 2014-10-30 (Java createDate(30, 9, 2014)); thisUpdate 2017 is in the future.
    at = dt.datetime(2014, 10, 30, tzinfo=UTC)
    status = ocsp.verify_response(der, consumer, root, cyber, at)
    assert status.good
    assert java_rfc2253(status.responder.subject) == java_rfc2253(signer.subject)
    # Not listed for the CA (and neither the CA nor OCSPSigning): not authorised.
    bare = TrustPolicy("EE", cas=(ApprovedCA("Cyber", root, "x"),), ocsp_freshness_seconds=42)
    with pytest.raises(XRoadError) as err:
        ocsp.verify_response(der, consumer, root, bare, at)
    assert err.value.code == "incorrect_validation_info"


@pytest.mark.filterwarnings("ignore:PKCS#12 bundle could not be parsed as DER")
def test_misc_common_test_certs(vectors: Path, cyber: TrustPolicy) -> None:
    # Row consumer-2, client, int-ca, internal, expiredClient, ca2testorg.p12.
    at = dt.datetime(2021, 6, 1, tzinfo=UTC)
    for name in ("consumer-2", "client"):
        cert = _cert(vectors, f"certs/common-test/{name}.pem")
        chain.verify_path(cert, [], cyber, at, None)
    int_ca = _cert(vectors, "certs/common-test/int-ca.pem")
    internal = _cert(vectors, "certs/common-test/internal.pem")
    assert _p12(vectors, "certs/common-test/internal.p12").cert == internal
    assert is_ca_cert(int_ca)
    path = chain.verify_path(internal, [int_ca], cyber, at, None)
    assert path.certs == (internal, int_ca, cyber.cas[0].top_ca)
    assert path.checked == (internal, int_ca)
    assert "CN=consumer2" in java_rfc2253(internal.subject)
    # expiredClient: issued by Cyber (its subject is "Cyber" too), 1999 -> 2009: TLS client
    # authentication with it must fail.
    expired = _cert(vectors, "certs/common-test/expiredClient.pem")
    assert expired.not_valid_after_utc.year == 2009
    with pytest.raises(XRoadError) as err:
        chain.verify_path(expired, [], cyber, at, None)
    assert err.value.code == "cannot_create_cert_path.internal_error"
    # ca2testorg.p12 (BER-encoded) opens with the test password; its alias is "ca2 test".
    bundle = pkcs12.load_pkcs12(
        (vectors / "certs/common-test/ca2testorg.p12").read_bytes(), b"test"
    )
    assert bundle.key is not None
    assert bundle.cert is not None
    assert (bundle.cert.friendly_name or b"").lower() == b"ca2 test"  # Java lower-cases aliases


def test_bare_base64_pem_files(vectors: Path) -> None:
    # Row tsp.pem, NTREE.pem: ".pem" files without armour; NTREE is an SkKlass3 e-seal.
    tsp = _cert(vectors, "certs/common-test/tsp.pem")
    assert java_rfc2253(tsp.subject) == "CN=timestamp1"
    assert extended_key_usage(tsp) == ("1.3.6.1.5.5.7.3.8",)
    eku = tsp.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical
    ntree = _cert(vectors, "certs/common-test/NTREE.pem")
    profile = PACKAGE + "SkKlass3CertificateProfileInfoProvider"
    assert member_id_from_sign_cert(ntree, profile, "XX") == ClientId("XX", "COM", "10747013")


# ---------------------------------------------------------------------------------------------
# certs/common-test/test_chain (NIIS CertChainTest)


@pytest.fixture(scope="module")
def test_chain(vectors: Path) -> dict[str, x509.Certificate]:
    base = "certs/common-test/test_chain/"
    names = ["root_ca", "ca_1", "ca_2", "ca_3", "user_0", "user_1", "user_2", "user_3", "user_5"]
    certs = {n: _cert(vectors, f"{base}{n}.pem") for n in names}
    for n in ("root_ca", "ca_1", "user_0"):
        assert _p12(vectors, f"{base}{n}.p12").cert == certs[n]
    return certs


@pytest.fixture(scope="module")
def chain_signer(vectors: Path) -> Issued:
    return _p12(vectors, "certs/common-test/ocspsigner.p12")


@pytest.fixture(scope="module")
def chain_trust(test_chain: dict[str, x509.Certificate], chain_signer: Issued) -> TrustPolicy:
    ca = ApprovedCA(
        "Root CA",
        test_chain["root_ca"],
        PACKAGE + "EjbcaCertificateProfileInfoProvider",
        ocsp=(OcspResponder("http://localhost", chain_signer.cert),),
    )
    return TrustPolicy("EE", cas=(ca,))


def _responses(
    certs: dict[str, x509.Certificate],
    names: list[str],
    signer: Issued,
    at: dt.datetime,
    revoked: bool = False,
) -> list[bytes]:
    out = []
    for n in names:
        cert = certs[n]
        issuer = next(c for c in certs.values() if c.subject == cert.issuer)
        out.append(
            make_ocsp_response(
                cert, issuer, signer, this_update=at, revoked_at=at - DAY if revoked else None
            )
        )
    return out


ALL = ["user_0", "user_1", "user_2", "user_3", "ca_1", "ca_2", "ca_3"]


def test_chain_with_no_intermediates(
    test_chain: dict[str, x509.Certificate], chain_signer: Issued, chain_trust: TrustPolicy
) -> None:
    user = test_chain["user_0"]
    at = user.not_valid_before_utc + DAY
    responses = _responses(test_chain, ALL, chain_signer, at)
    path = chain.verify_path(user, [], chain_trust, at, responses)
    assert path.certs == (user, test_chain["root_ca"])


def test_chain_with_three_intermediates(
    test_chain: dict[str, x509.Certificate], chain_signer: Issued, chain_trust: TrustPolicy
) -> None:
    c = test_chain
    at = c["root_ca"].not_valid_before_utc + DAY
    responses = _responses(c, ALL, chain_signer, at)
    path = chain.verify_path(
        c["user_3"], [c["ca_1"], c["ca_2"], c["ca_3"]], chain_trust, at, responses
    )
    # GlobalConfTest.getCertChain(user_3) = [user_3, ca_3, ca_2, ca_1, root_ca]
    assert path.certs == (c["user_3"], c["ca_3"], c["ca_2"], c["ca_1"], c["root_ca"])
    assert path.intermediates == (c["ca_3"], c["ca_2"], c["ca_1"])
    # NIIS makes these responses "now": a thisUpdate long after atDate is accepted.
    later = _responses(c, ALL, chain_signer, dt.datetime(2026, 1, 1, tzinfo=UTC))
    chain.validate_path(path, at, later, chain_trust)


def test_chain_with_missing_intermediate(
    test_chain: dict[str, x509.Certificate], chain_trust: TrustPolicy
) -> None:
    c = test_chain
    with pytest.raises(XRoadError) as err:
        chain.build_path(c["user_3"], [c["ca_1"], c["ca_3"]], chain_trust)
    assert err.value.code.startswith("cannot_create_cert_path")


def test_chain_missing_ocsp_response(
    test_chain: dict[str, x509.Certificate], chain_signer: Issued, chain_trust: TrustPolicy
) -> None:
    c = test_chain
    at = c["root_ca"].not_valid_before_utc + DAY
    responses = _responses(c, ["ca_1", "ca_3", "user_3"], chain_signer, at)
    with pytest.raises(XRoadError) as err:
        chain.verify_path(
            c["user_3"], [c["ca_1"], c["ca_2"], c["ca_3"]], chain_trust, at, responses
        )
    assert err.value.code == "invalid_cert_path.cert_validation"
    assert "OU=CA 2" in err.value.detail


def test_chain_revoked_ocsp_response(
    test_chain: dict[str, x509.Certificate], chain_signer: Issued, chain_trust: TrustPolicy
) -> None:
    c = test_chain
    at = c["root_ca"].not_valid_before_utc + DAY
    responses = _responses(c, ["ca_1", "ca_2", "ca_3", "user_3"], chain_signer, at, revoked=True)
    with pytest.raises(XRoadError) as err:
        chain.verify_path(
            c["user_3"], [c["ca_1"], c["ca_2"], c["ca_3"]], chain_trust, at, responses
        )
    assert err.value.code == "invalid_cert_path.cert_validation"
    assert "REVOKED" in err.value.detail


def test_chain_users_outside_their_validity(
    test_chain: dict[str, x509.Certificate], chain_signer: Issued, chain_trust: TrustPolicy
) -> None:
    # Users are valid one year (2012 -> 2013); user_5 only from 2013-06-21.
    c = test_chain
    at = c["root_ca"].not_valid_before_utc + DAY
    path = chain.build_path(c["user_5"], [c["ca_1"], c["ca_2"]], chain_trust)
    with pytest.raises(XRoadError) as err:
        chain.validate_path(path, at, None, chain_trust)
    assert err.value.code == "cannot_create_cert_path.internal_error"
    chain.validate_path(path, dt.datetime(2013, 7, 1, tzinfo=UTC), None, chain_trust)


# ---------------------------------------------------------------------------------------------
# certs/common-core


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("cert_empty.pem", None),
        ("cert_simple.pem", "DNS:*.example.org"),
        (
            "cert_multi.pem",
            "email:my@example.org, URI:http://example.org/, "
            "DirName:CN=My Name,OU=My Unit,O=My Organization,C=UK, DNS:*.example.org, "
            "othername:<unsupported>, Registered ID:1.2.3.4, IP Address:192.168.7.1",
        ),
    ],
)
def test_subject_alt_names(vectors: Path, name: str, expected: str | None) -> None:
    assert subject_alt_names(_cert(vectors, f"certs/common-core/{name}")) == expected


def test_internal_crt(vectors: Path) -> None:
    certs = load_certificates((vectors / "certs/common-core/internal.crt").read_bytes())
    assert [java_rfc2253(c.subject) for c in certs] == ["CN=ubuntu-xroad-securityserver-dev"]
    assert is_auth_cert(certs[0])


# ---------------------------------------------------------------------------------------------
# certs/globalconf-generator (informational: openssl accepts the internal chain only)


def test_globalconf_generator_chains(vectors: Path) -> None:
    base = vectors / "certs/globalconf-generator"
    at = dt.datetime(2025, 1, 1, tzinfo=UTC)
    internal = load_certificates((base / "signed-internal-conf.crt").read_bytes())
    assert [java_rfc2253(c.subject) for c in internal] == ["CN=cs", "CN=internalSigningKey"]
    anchor = load_certificate((base / "internal-signing.crt").read_bytes())
    trust = TrustPolicy("CS", cas=(ApprovedCA("internal", anchor, "x"),))
    chain.verify_path(internal[0], internal[1:], trust, at, None)

    external = load_certificates((base / "signed-external-conf.crt").read_bytes())
    anchor = load_certificate((base / "external-signing.crt").read_bytes())
    trust = TrustPolicy("CS", cas=(ApprovedCA("external", anchor, "x"),))
    path = chain.build_path(external[0], external[1:], trust)
    with pytest.raises(XRoadError) as err:  # CN=N/A has keyUsage without keyCertSign
        chain.validate_path(path, at, None, trust)
    assert err.value.code == "cannot_create_cert_path.internal_error"


# ---------------------------------------------------------------------------------------------
# derived/certs, derived/ocsp


@pytest.fixture(scope="module")
def dev(vectors: Path) -> TrustPolicy:
    ca = _cert(vectors, "derived/certs/dev-test-ca.pem")
    responder = _cert(vectors, "derived/certs/dev-test-ocsp.pem")
    approved = ApprovedCA(
        "Test CA",
        ca,
        PACKAGE + "FiVRKCertificateProfileInfoProvider",
        ocsp=(OcspResponder("http://testca:8888", responder),),
    )
    return TrustPolicy("DEV", cas=(approved,), ocsp_freshness_seconds=3600)


def _dev_signer(vectors: Path) -> x509.Certificate:
    with zipfile.ZipFile(vectors / "asic/verifier/valid-signed-message.asice") as z:
        doc = etree.fromstring(z.read("META-INF/signatures.xml"))
    element = doc.find(f".//{DS}X509Certificate")
    assert element is not None
    assert element.text
    return load_certificate(element.text)


def test_derived_dev_certs(vectors: Path, dev: TrustPolicy) -> None:
    # Row derived/certs: DEV Test CA/OCSP/TSA, valid 2024-05-06 -> 2044-05-01.
    at = dt.datetime(2025, 1, 1, tzinfo=UTC)
    for name in ("dev-test-ocsp", "dev-test-tsa"):
        cert = _cert(vectors, f"derived/certs/{name}.pem")
        assert cert.not_valid_after_utc.year == 2044
        chain.verify_path(cert, [], dev, at, None)
    assert "1.3.6.1.5.5.7.3.9" in extended_key_usage(
        _cert(vectors, "derived/certs/dev-test-ocsp.pem")
    )


DEV_OCSP = "derived/ocsp/dev-testocsp-good-20241205T131326Z.der"


def test_dev_ocsp_response_verifies(vectors: Path, dev: TrustPolicy) -> None:
    # Row derived/ocsp/dev-testocsp-good: responder by NAME, serial 0x12 good, no nextUpdate.
    signer = _dev_signer(vectors)
    assert signer.serial_number == 0x12
    assert member_id_from_sign_cert(signer, dev.cas[0].certificate_profile, "DEV") == ClientId(
        "DEV", "COM", "4321"
    )
    der = (vectors / DEV_OCSP).read_bytes()
    ca = dev.cas[0].top_ca
    this_update = dt.datetime(2024, 12, 5, 13, 13, 26, tzinfo=UTC)
    for at in (this_update, dt.datetime(2024, 12, 5, 13, 16, 35, tzinfo=UTC)):
        status = ocsp.verify_response(der, signer, ca, dev, at)
        assert status.good
        assert status.this_update == this_update
        assert status.next_update is None
    assert ocsp.find_response(signer, ca, [b"junk", der]) == der
    # The same response carries the whole path of the ASiC signer at the time-stamp time.
    chain.verify_path(signer, [], dev, dt.datetime(2024, 12, 5, 13, 16, 35, tzinfo=UTC), [der])


def test_dev_ocsp_response_stale(vectors: Path, dev: TrustPolicy) -> None:
    der = (vectors / DEV_OCSP).read_bytes()
    signer, ca = _dev_signer(vectors), dev.cas[0].top_ca
    edge = dt.datetime(2024, 12, 5, 14, 13, 26, tzinfo=UTC)  # thisUpdate + 3600 s: still fresh
    ocsp.verify_response(der, signer, ca, dev, edge)
    with pytest.raises(XRoadError) as err:
        ocsp.verify_response(der, signer, ca, dev, edge + dt.timedelta(seconds=1))
    assert err.value.code == "incorrect_validation_info"
    with pytest.raises(XRoadError) as err:
        chain.verify_path(signer, [], dev, edge + dt.timedelta(seconds=1), [der])
    assert err.value.code == "invalid_cert_path.incorrect_validation_info"


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_dev_ocsp_response_openssl(vectors: Path) -> None:
    # The row's independent check: openssl verifies the response with the derived certs.
    out = subprocess.run(
        [
            "openssl", "ocsp", "-respin", str(vectors / DEV_OCSP),
            "-VAfile", str(vectors / "derived/certs/dev-test-ocsp.pem"),
            "-CAfile", str(vectors / "derived/certs/dev-test-ca.pem"),
        ],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert "Response verify OK" in out.stderr + out.stdout


def test_ejbca_ocsp_response_parses(vectors: Path) -> None:
    # Row derived/ocsp/ejbca-ocspsigner: parses; thisUpdate is one day after producedAt.
    resp = ocsp.parse_response(
        (vectors / "derived/ocsp/ejbca-ocspsigner-good-20140701T120755Z.der").read_bytes()
    )
    assert resp.status == ocsp.GOOD
    assert resp.produced_at == dt.datetime(2014, 7, 1, 12, 7, 55, tzinfo=UTC)
    assert resp.this_update == resp.produced_at + DAY
    assert resp.responder_name is not None
    assert java_rfc2253(resp.responder_name) == "CN=Ocsp Signer"
    assert resp.signature_oid == "1.2.840.113549.1.1.5"  # sha1WithRSA
    assert re.fullmatch(r"sha1", resp.cert_id.hash_algorithm)
