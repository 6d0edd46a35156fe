"""The test CA core: issuing X-Road certificates from CSRs, profiles, revocation."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from crossroad.crypto.certs import is_auth_cert, is_sign_cert, load_certificate
from crossroad.crypto.profiles import member_id_from_sign_cert, server_code_from_auth_cert
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.testing.pki import rsa_key
from crossroad.trust.ca import (
    GOOD,
    UNKNOWN,
    Profile,
    TestCA,
    display_name,
    load_csr,
    parse_name,
    parse_profile,
    parse_reason,
)

# Ejbca subjects put the instance code (DEV) into countryName; cryptography warns when reading them.
pytestmark = pytest.mark.filterwarnings("ignore:Attribute's length:UserWarning")

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.UTC)
OCSP_URL = "http://127.0.0.1:8888/"
MEMBER = ClientId("DEV", "COM", "4321")
SERVER = SecurityServerId(ClientId("DEV", "COM", "4321"), "ss2")
FIVRK_SIGN = "/C=FI/O=Test client/CN=4321/serialNumber=DEV\\/ss2\\/COM"


def make_csr(subject: str = FIVRK_SIGN, key=None, der: bool = False) -> bytes:  # type: ignore[no-untyped-def]
    key = key or rsa_key(7)
    csr = x509.CertificateSigningRequestBuilder().subject_name(parse_name(subject))
    built = csr.sign(key, hashes.SHA256())
    enc = serialization.Encoding.DER if der else serialization.Encoding.PEM
    return built.public_bytes(enc)


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA.create("/O=Test/CN=Test CA", now=NOW, key=rsa_key(50), ocsp_url=OCSP_URL)


def ext(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> x509.Extension[x509.ExtensionType]:
    return cert.extensions.get_extension_for_oid(oid)


def test_ca_certificate(ca: TestCA) -> None:
    cert = ca.cert
    assert cert.subject == cert.issuer
    assert [a.oid for a in cert.subject] == [NameOID.ORGANIZATION_NAME, NameOID.COMMON_NAME]
    bc = ext(cert, ExtensionOID.BASIC_CONSTRAINTS)
    assert bc.critical
    assert bc.value.ca
    ku = ext(cert, ExtensionOID.KEY_USAGE)
    assert ku.critical
    assert ku.value.key_cert_sign
    assert ku.value.crl_sign
    cert.verify_directly_issued_by(cert)
    assert cert.not_valid_before_utc == NOW


def test_sign_certificate_from_pem_csr(ca: TestCA) -> None:
    cert = ca.issue(make_csr(), "sign", now=NOW, instance="DEV", days=365)
    cert.verify_directly_issued_by(ca.cert)
    assert display_name(cert.subject) == "serialNumber=DEV/ss2/COM,CN=4321,O=Test client,C=FI"
    ku = ext(cert, ExtensionOID.KEY_USAGE)
    assert ku.critical
    assert ku.value.content_commitment  # type: ignore[attr-defined]
    assert not ku.value.digital_signature  # type: ignore[attr-defined]
    assert not ku.value.key_encipherment  # type: ignore[attr-defined]
    assert not ext(cert, ExtensionOID.BASIC_CONSTRAINTS).value.ca  # type: ignore[attr-defined]
    with pytest.raises(x509.ExtensionNotFound):
        ext(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    ski = ext(cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    aki = ext(cert, ExtensionOID.AUTHORITY_KEY_IDENTIFIER).value
    ca_ski = ext(ca.cert, ExtensionOID.SUBJECT_KEY_IDENTIFIER).value
    assert aki.key_identifier == ca_ski.digest  # type: ignore[attr-defined]
    aia = ext(cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    assert [(d.access_method, d.access_location.value) for d in aia] == [  # type: ignore[attr-defined]
        (AuthorityInformationAccessOID.OCSP, OCSP_URL)
    ]
    assert cert.not_valid_before_utc == NOW
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=365)
    assert is_sign_cert(cert)
    assert not is_auth_cert(cert)


def test_auth_certificate_from_der_csr(ca: TestCA) -> None:
    csr = make_csr("/C=FI/O=Test client/CN=ss2.example/serialNumber=DEV\\/ss2\\/COM", der=True)
    cert = ca.issue(csr, "auth", now=NOW)
    ku = ext(cert, ExtensionOID.KEY_USAGE)
    assert ku.critical
    assert ku.value.digital_signature
    assert ku.value.key_encipherment
    assert not ku.value.content_commitment  # type: ignore[attr-defined]
    eku = ext(cert, ExtensionOID.EXTENDED_KEY_USAGE).value
    assert set(eku) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}  # type: ignore[call-overload]
    assert is_auth_cert(cert)
    assert not is_sign_cert(cert)


def test_auth_certificate_for_ec_key_has_no_key_encipherment(ca: TestCA) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = make_csr("/C=DEV/CN=ss1", key=key)
    cert = ca.issue(csr, "auth", now=NOW, profile="ejbca", instance="DEV")
    ku = ext(cert, ExtensionOID.KEY_USAGE).value
    assert ku.digital_signature
    assert not ku.key_encipherment


def test_ec_ca_issues_rsa_certificates() -> None:
    ca = TestCA.create("EC Test CA", now=NOW, key_type="ec-p256")
    assert isinstance(ca.cert.public_key(), ec.EllipticCurvePublicKey)
    cert = ca.issue(make_csr(), "sign", now=NOW)
    cert.verify_directly_issued_by(ca.cert)
    with pytest.raises(x509.ExtensionNotFound):  # no responder URL known
        ext(cert, ExtensionOID.AUTHORITY_INFORMATION_ACCESS)


def test_rsa3072_ca() -> None:
    ca = TestCA.create("/CN=Big CA", now=NOW, key_type="rsa3072")
    assert ca.cert.public_key().key_size == 3072  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kind", "profile", "kw", "expected"),
    [
        (
            "sign",
            "fivrk",
            {"member": MEMBER, "server": SERVER, "org_name": "Test client"},
            "serialNumber=DEV/ss2/COM,CN=4321,O=Test client,C=FI",
        ),
        ("sign", "ejbca", {"member": MEMBER.subsystem("sub")}, "CN=4321,O=COM,C=DEV"),
        ("auth", "ejbca", {"server": SERVER}, "CN=ss2,C=DEV"),
        (
            "auth",
            "fivrk",
            {"server": SERVER, "org_name": "Org", "dns_name": "ss2.example.org"},
            "serialNumber=DEV/ss2/COM,CN=ss2.example.org,O=Org,C=FI",
        ),
    ],
)
def test_subject_from_identifiers(
    ca: TestCA, kind: str, profile: str, kw: dict[str, object], expected: str
) -> None:
    # The CSR's own subject is ignored when the identifiers are given.
    cert = ca.issue(make_csr("/CN=ignored"), kind, now=NOW, profile=profile, instance="DEV", **kw)  # type: ignore[arg-type]
    assert display_name(cert.subject) == expected
    if kw.get("dns_name"):
        san = ext(cert, ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        assert san.get_values_for_type(x509.DNSName) == ["ss2.example.org"]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("profile", "java_class"),
    [
        ("fivrk", "FiVRKCertificateProfileInfoProvider"),
        ("ejbca", "EjbcaCertificateProfileInfoProvider"),
    ],
)
def test_relying_side_reads_the_identity_back(ca: TestCA, profile: str, java_class: str) -> None:
    """What the CA writes, crypto.profiles (the verifier's side) maps back to the same ids."""
    java = "ee.ria.xroad.common.certificateprofile.impl." + java_class
    sign = ca.issue(
        make_csr("/CN=x"), "sign", now=NOW, profile=profile, member=MEMBER, server=SERVER
    )
    assert member_id_from_sign_cert(sign, java, "DEV") == MEMBER
    auth = ca.issue(make_csr("/CN=x"), "auth", now=NOW, profile=profile, server=SERVER)
    assert server_code_from_auth_cert(auth, java) == "ss2"


def _asic_signer(vectors: Path) -> x509.Certificate:
    with zipfile.ZipFile(vectors / "asic/verifier/valid-signed-message.asice") as z:
        xml = z.read("META-INF/signatures.xml")
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(xml, parser)
    ns = {"ds": "http://www.w3.org/2000/09/xmldsig#"}
    return load_certificate(root.findtext(".//ds:X509Certificate", namespaces=ns) or "")


def test_fivrk_certificates_look_like_niis_dev_ca(ca: TestCA, vectors: Path) -> None:
    """Same subject attribute order and key usage as the NIIS dev CA's signing certificate."""
    niis = _asic_signer(vectors)
    ours = ca.issue(
        make_csr("/CN=x"), "sign", now=NOW, member=MEMBER, server=SERVER, org_name="Test client"
    )
    assert ours.subject == niis.subject
    assert ext(ours, ExtensionOID.KEY_USAGE).value == ext(niis, ExtensionOID.KEY_USAGE).value
    assert ext(ours, ExtensionOID.KEY_USAGE).critical == ext(niis, ExtensionOID.KEY_USAGE).critical
    assert ours.issuer == ca.cert.subject
    dev_ca = load_certificate((vectors / "derived/certs/dev-test-ca.pem").read_bytes())
    assert ca.cert.subject == dev_ca.subject


def test_responder_and_tsa_certificates(ca: TestCA, vectors: Path) -> None:
    key = rsa_key(8)
    ocsp = ca.issue_ocsp_responder(key.public_key(), "/O=Test/CN=Test OCSP", now=NOW)
    tsa = ca.issue_tsa(key.public_key(), "/O=Test/CN=Test TSA", now=NOW)
    niis_ocsp = load_certificate((vectors / "derived/certs/dev-test-ocsp.pem").read_bytes())
    niis_tsa = load_certificate((vectors / "derived/certs/dev-test-tsa.pem").read_bytes())
    for ours, theirs in ((ocsp, niis_ocsp), (tsa, niis_tsa)):
        assert ours.subject == theirs.subject
        mine = ext(ours, ExtensionOID.EXTENDED_KEY_USAGE)
        niis = ext(theirs, ExtensionOID.EXTENDED_KEY_USAGE)
        assert (list(mine.value), mine.critical) == (list(niis.value), niis.critical)  # type: ignore[call-overload]
    ext(ocsp, ExtensionOID.OCSP_NO_CHECK)
    with pytest.raises(x509.ExtensionNotFound):
        ext(ocsp, ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
    assert ext(tsa, ExtensionOID.KEY_USAGE).value.content_commitment  # type: ignore[attr-defined]


def test_validity_is_clamped_to_the_ca() -> None:
    ca = TestCA.create("/CN=Short CA", now=NOW, key=rsa_key(51), days=10)
    cert = ca.issue(make_csr(), "sign", now=NOW, days=7300)
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc
    with pytest.raises(XRoadError, match="expired"):
        ca.issue(make_csr(), "sign", now=NOW + dt.timedelta(days=11))


def test_serials_are_unique_and_recorded(ca: TestCA) -> None:
    a = ca.issue(make_csr(), "sign", now=NOW)
    b = ca.issue(make_csr(), "sign", now=NOW)
    assert b.serial_number > a.serial_number
    record = ca.registry.get(a.serial_number)
    assert record is not None
    assert record.kind == "sign"
    assert record.cert == a
    assert record.status == "good"


def test_revoke(ca: TestCA) -> None:
    cert = ca.issue(make_csr(), "auth", now=NOW)
    assert ca.status(cert.serial_number) == GOOD
    at = NOW + dt.timedelta(hours=1, microseconds=5)
    record = ca.revoke(cert.serial_number, "keyCompromise", at=at)
    assert record.status == "revoked"
    assert record.reason == "key_compromise"
    status = ca.status(cert.serial_number)
    assert (status.state, status.revoked_at, status.reason) == (
        "revoked",
        at.replace(microsecond=0),
        "key_compromise",
    )
    with pytest.raises(XRoadError, match="already revoked"):
        ca.revoke(cert.serial_number, at=at)
    with pytest.raises(XRoadError, match="has not issued"):
        ca.revoke(999_999, at=at)
    assert ca.status(999_999) == UNKNOWN


# -- refusals ----------------------------------------------------------------------------


def _csr_with_bad_signature() -> bytes:
    der = bytearray(make_csr(der=True))
    der[-5] ^= 0xFF  # inside the signature BIT STRING
    return bytes(der)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "Malformed certificate signing request"),
        (b"not a csr at all", "Malformed certificate signing request"),
        (
            b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            "Malformed",
        ),
        (_csr_with_bad_signature(), "does not verify"),
    ],
)
def test_bad_csr(ca: TestCA, data: bytes, message: str) -> None:
    with pytest.raises(XRoadError, match=message) as info:
        ca.issue(data, "sign", now=NOW)
    assert info.value.code == Code.INVALID_REQUEST


def test_certificate_is_not_a_csr(ca: TestCA) -> None:
    pem = ca.cert.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(XRoadError, match="Malformed certificate signing request"):
        load_csr(pem)


def test_short_rsa_key_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(XRoadError, match="too short"):
        load_csr(make_csr(key=weak))


@pytest.mark.parametrize(
    ("subject", "kind", "profile", "message"),
    [
        ("/C=FI/O=Test client/CN=4321", "sign", "fivrk", "serialNumber=INSTANCE"),
        ("/C=FI/O=X/CN=4321/serialNumber=OTHER\\/ss\\/COM", "sign", "fivrk", "instance 'OTHER'"),
        ("/O=COM/CN=1234", "sign", "ejbca", "C=instance"),
        ("/C=EE/O=COM/CN=1234", "sign", "ejbca", "instance 'EE'"),
        ("/C=DEV/CN=1234", "sign", "ejbca", "O=memberClass"),
        ("/C=DEV/O=COM", "sign", "ejbca", "no CN"),
    ],
)
def test_subject_must_fit_profile(
    ca: TestCA, subject: str, kind: str, profile: str, message: str
) -> None:
    with pytest.raises(XRoadError, match=message):
        ca.issue(make_csr(subject), kind, now=NOW, profile=profile, instance="DEV")  # type: ignore[arg-type]


def test_csr_profile_takes_any_subject(ca: TestCA) -> None:
    cert = ca.issue(make_csr("/CN=anything"), "sign", now=NOW, profile="csr", instance="DEV")
    assert display_name(cert.subject) == "CN=anything"


def test_refusals_of_parameters(ca: TestCA) -> None:
    csr = make_csr()
    with pytest.raises(XRoadError, match="Unknown certificate type"):
        ca.issue(csr, "ca", now=NOW)  # type: ignore[arg-type]
    with pytest.raises(XRoadError, match="Unknown certificate profile"):
        ca.issue(csr, "sign", now=NOW, profile="nope")
    with pytest.raises(XRoadError, match="give the security server id"):
        ca.issue(csr, "sign", now=NOW, member=MEMBER)
    with pytest.raises(XRoadError, match="this CA: 'EE'"):
        ca.issue(csr, "sign", now=NOW, profile="ejbca", member=MEMBER, instance="EE")
    with pytest.raises(XRoadError, match="not positive"):
        ca.issue(csr, "sign", now=NOW, days=0)
    with pytest.raises(XRoadError, match="Unknown key type"):
        TestCA.create("x", now=NOW, key_type="dsa")


def test_parsers() -> None:
    assert (
        parse_profile(
            "ee.ria.xroad.common.certificateprofile.impl.FiVRKCertificateProfileInfoProvider"
        )
        is Profile.FIVRK
    )
    assert parse_profile("EJBCA") is Profile.EJBCA
    assert parse_reason("keyCompromise") == "key_compromise"
    assert parse_reason("cessation-of-operation") == "cessation_of_operation"
    assert parse_reason(None) == "unspecified"
    with pytest.raises(XRoadError, match="Unknown revocation reason"):
        parse_reason("bored")
    assert parse_name("CN=Test CA,O=Test") == parse_name("/O=Test/CN=Test CA")
    assert parse_name("Just a CN") == x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, "Just a CN")]
    )
    with pytest.raises(XRoadError, match="Malformed distinguished name"):
        parse_name("/X=1")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400))
def test_load_csr_never_raises_anything_but_xroad_error(data: bytes) -> None:
    with pytest.raises(XRoadError):
        load_csr(data)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0), st.integers(min_value=0, max_value=255))
def test_mutated_csr_gives_coded_error_or_valid_csr(position: int, value: int) -> None:
    der = bytearray(make_csr(der=True))
    der[position % len(der)] = value
    outcome: str | x509.CertificateSigningRequest
    try:
        outcome = load_csr(bytes(der))
    except XRoadError as err:
        outcome = err.code
    if isinstance(outcome, str):
        assert outcome == Code.INVALID_REQUEST
    else:
        assert outcome.is_signature_valid
