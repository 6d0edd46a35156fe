"""crypto.certs: loading in every spelling, key usage, hashes and Java-compatible names."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroad.crypto import certs
from crossroad.crypto.algorithms import SHA1, SHA512
from crossroad.errors import XRoadError
from crossroad.testing.pki import EPOCH, Issued, make_cert, name, rsa_key


@pytest.fixture(scope="module")
def ca() -> Issued:
    return make_cert(name(O="Certs", CN="Certs CA"), kind="ca", key=rsa_key(60))


@pytest.fixture(scope="module")
def leaf(ca: Issued) -> Issued:
    return make_cert(name(C="XX", O="COM", CN="leaf"), issuer=ca, kind="sign", key=rsa_key(61))


def _self_signed(
    subject: x509.Name, *extensions: tuple[x509.ExtensionType, bool]
) -> x509.Certificate:
    key = rsa_key(62)
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(EPOCH)
        .not_valid_after(EPOCH + dt.timedelta(days=1))
    )
    for ext, critical in extensions:
        b = b.add_extension(ext, critical=critical)
    return b.sign(key, hashes.SHA256())


# ---------------------------------------------------------------------------------------------
# Loading


def test_every_spelling(leaf: Issued, ca: Issued) -> None:
    der = leaf.cert.public_bytes(Encoding.DER)
    pem = leaf.cert.public_bytes(Encoding.PEM)
    bare = base64.encodebytes(der)
    spellings: list[bytes | str] = [
        der,
        pem,
        pem.decode(),
        b"\n  " + pem + b"\n",
        bare,
        base64.b64encode(pem),
        pem.replace(b"CERTIFICATE", b"TRUSTED CERTIFICATE", 2).replace(
            base64.encodebytes(der)[:10], base64.encodebytes(der)[:10]
        ),
    ]
    for data in spellings:
        assert certs.load_certificate(data) == leaf.cert
    bundle = pem + ca.cert.public_bytes(Encoding.PEM)
    assert certs.load_certificates(bundle) == [leaf.cert, ca.cert]
    assert certs.load_certificate(bundle) == leaf.cert
    assert certs.load_certificates(base64.b64encode(bundle)) == [leaf.cert, ca.cert]


def test_der_ending_in_whitespace_bytes() -> None:
    # Binary DER whose last byte is 0x20/0x0a must not be "stripped".
    for serial in range(1, 400):
        cert = _self_signed(name(CN=f"ws{serial}"))
        der = cert.public_bytes(Encoding.DER)
        if der[-1:] in (b" ", b"\n", b"\r", b"\t", b"\x0b", b"\x0c"):
            assert certs.load_certificate(der) == cert
            return
    pytest.skip("no signature ended in a whitespace byte")


def test_openssl_trusted_certificate(leaf: Issued) -> None:
    # TRUSTED CERTIFICATE = certificate DER followed by OpenSSL's X509_CERT_AUX.
    body = leaf.cert.public_bytes(Encoding.DER) + bytes.fromhex("300a0c0874727573746564")
    pem = b"-----BEGIN TRUSTED CERTIFICATE-----\n" + base64.encodebytes(body)
    pem += b"-----END TRUSTED CERTIFICATE-----\n"
    assert certs.load_certificates(pem) == [leaf.cert]


def test_pkcs7_bundles(leaf: Issued, ca: Issued) -> None:
    for encoding in (Encoding.DER, Encoding.PEM):
        data = pkcs7.serialize_certificates([leaf.cert, ca.cert], encoding)
        assert set(certs.load_certificates(data)) == {leaf.cert, ca.cert}


@pytest.mark.parametrize(
    "junk",
    [
        b"",
        b"hello",
        b"\x30\x03\x02\x01\x01",
        b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        b"-----BEGIN SOMETHING-----\nAAAA\n-----END SOMETHING-----",
        base64.b64encode(b"not a certificate"),
    ],
)
def test_garbage_is_incorrect_certificate(junk: bytes) -> None:
    with pytest.raises(XRoadError) as err:
        certs.load_certificates(junk)
    assert err.value.code == "incorrect_certificate"


@settings(max_examples=150, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_loading_random_input(data: bytes | str) -> None:
    try:
        assert certs.load_certificates(data)
    except XRoadError as exc:
        assert exc.code == "incorrect_certificate"  # noqa: PT017


@functools.cache
def _flip_target() -> bytes:
    san = x509.SubjectAlternativeName([x509.DNSName("flip.example"), x509.RFC822Name("a@b.c")])
    return _self_signed(name(C="EE", O="Flip", CN="flip"), (san, False)).public_bytes(Encoding.DER)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 255))
def test_byte_flips_in_a_certificate(index: int, flip: int) -> None:
    der = bytearray(_flip_target())
    der[index % len(der)] ^= flip
    try:
        cert = certs.load_certificate(bytes(der))
    except XRoadError as exc:
        assert exc.code == "incorrect_certificate"  # noqa: PT017
        return
    # Whatever loads can be inspected without foreign exceptions.
    probes = (
        certs.is_auth_cert,
        certs.is_sign_cert,
        certs.is_ca_cert,
        certs.can_sign_certs,
        certs.subject_alt_names,
        certs.public_key_sha1,
        lambda c: certs.subject_field(c, NameOID.COMMON_NAME),
        lambda c: certs.java_rfc2253(c.subject),
    )
    for probe in probes:
        with contextlib.suppress(XRoadError):
            probe(cert)


# ---------------------------------------------------------------------------------------------
# Key usage and hashes


def test_key_usage_classification(ca: Issued) -> None:
    kinds = {
        k: make_cert(name(CN=k), issuer=ca, kind=k).cert for k in ("sign", "auth", "ocsp", "tsa")
    }
    assert certs.is_sign_cert(kinds["sign"])
    assert not certs.is_auth_cert(kinds["sign"])
    assert certs.is_auth_cert(kinds["auth"])
    assert not certs.is_sign_cert(kinds["auth"])
    assert certs.is_auth_cert(kinds["ocsp"])  # digitalSignature suffices (NIIS isAuthCert)
    assert certs.is_sign_cert(kinds["tsa"])
    assert certs.is_ca_cert(ca.cert)
    assert certs.can_sign_certs(ca.cert)
    assert not certs.is_ca_cert(kinds["sign"])
    assert not certs.can_sign_certs(kinds["sign"])
    assert certs.extended_key_usage(kinds["ocsp"]) == ("1.3.6.1.5.5.7.3.9",)
    bare = _self_signed(name(CN="v1-like"))
    assert not certs.is_auth_cert(bare)
    assert not certs.is_sign_cert(bare)
    assert not certs.is_ca_cert(bare)
    assert certs.can_sign_certs(bare)
    eku_only = _self_signed(
        name(CN="eku"), (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), False)
    )
    assert certs.is_auth_cert(eku_only)


def test_hashes(leaf: Issued) -> None:
    der = leaf.cert.public_bytes(Encoding.DER)
    assert certs.cert_hash(leaf.cert) == SHA1.digest(der)
    assert certs.cert_hash(leaf.cert, SHA512) == SHA512.digest(der)
    assert certs.cert_hash_hex(leaf.cert) == SHA1.digest(der).hex()
    assert len(certs.public_key_sha1(leaf.cert)) == 20


def test_verify_issued_by(leaf: Issued, ca: Issued) -> None:
    assert certs.verify_issued_by(leaf.cert, ca.cert)
    assert not certs.verify_issued_by(ca.cert, leaf.cert)


# ---------------------------------------------------------------------------------------------
# Java names


def _n(*rdns: list[x509.NameAttribute[str]]) -> x509.Name:
    return x509.Name([x509.RelativeDistinguishedName(r) for r in rdns])


def _a(
    oid: x509.ObjectIdentifier, value: str, t: _ASN1Type | None = None
) -> x509.NameAttribute[str]:
    return x509.NameAttribute(oid, value, _type=t) if t else x509.NameAttribute(oid, value)


CN, ORG, OU, C = (
    NameOID.COMMON_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.ORGANIZATIONAL_UNIT_NAME,
    NameOID.COUNTRY_NAME,
)
SN = NameOID.SERIAL_NUMBER

# Expected strings as printed by X500Principal.getName() (OpenJDK 17).
JAVA_NAMES: list[tuple[x509.Name, str]] = [
    (_n([_a(CN, ' a,b=c+d<e>f#g;h"i\\j ')]), 'CN=\\ a\\,b\\=c\\+d\\<e\\>f\\#g\\;h\\"i\\\\j\\ '),
    (
        _n([_a(CN, "#start")], [_a(ORG, "Ünïcødé ☃ 𝄞")]),
        "O=Ünïcødé ☃ 𝄞,CN=\\#start",
    ),
    (_n([_a(CN, "bmp Ü", _ASN1Type.BMPString)]), "CN=\\00b\\00m\\00p\\00 \\00\ufffd"),
    (_n([_a(CN, "tel\x00ex", _ASN1Type.T61String)]), "CN=tel\\00ex"),
    (
        _n(
            [_a(CN, "x"), _a(SN, "y")],
            [_a(NameOID.DOMAIN_COMPONENT, "dc"), _a(NameOID.USER_ID, "uid")],
        ),
        "DC=dc+UID=uid,CN=x+2.5.4.5=#130179",
    ),
    (
        _n(
            [_a(CN, "uni", _ASN1Type.UniversalString)],
            [_a(NameOID.STREET_ADDRESS, "\r st \r")],
            [_a(NameOID.TITLE, "t")],
        ),
        "2.5.4.12=#0c0174,STREET=\\\r\\ st\\ \\\r,CN=#1c0c000000750000006e00000069",
    ),
    (
        _n(
            [_a(CN, "ia5", _ASN1Type.IA5String)],
            [_a(NameOID.LOCALITY_NAME, "tab\there")],
            [_a(NameOID.STATE_OR_PROVINCE_NAME, "VisibleX", _ASN1Type.VisibleString)],
        ),
        "ST=#1a0856697369626c6558,L=tab\there,CN=ia5",
    ),
    (
        name(C="FI", O="Test client", CN="4321", serialNumber="DEV/ss2/COM"),
        "2.5.4.5=#130b4445562f7373322f434f4d,CN=4321,O=Test client,C=FI",
    ),
    (x509.Name([]), ""),
]


@pytest.mark.parametrize(("subject", "expected"), JAVA_NAMES)
def test_java_rfc2253(subject: x509.Name, expected: str) -> None:
    assert certs.java_rfc2253(subject) == expected
    assert certs.java_rfc2253(subject.public_bytes()) == expected


_JAVA_PRINTER = """
import java.io.*; import java.security.cert.*; import java.util.*;
public class Names {
  public static void main(String[] a) throws Exception {
    CertificateFactory cf = CertificateFactory.getInstance("X.509");
    PrintStream out = new PrintStream(System.out, true, "UTF-8");
    for (String f : a) {
      X509Certificate x = (X509Certificate) cf.generateCertificate(new FileInputStream(f));
      out.println("NAME " + x.getSubjectX500Principal().getName().replace("\\n", "<NL>"));
      Collection<List<?>> san = x.getSubjectAlternativeNames();
      if (san != null) for (List<?> l : san)
        out.println("SAN " + l.get(0) + ":" + (l.get(1) instanceof String ? l.get(1) : "<bytes>"));
    }
  }
}
"""


@pytest.mark.skipif(shutil.which("java") is None, reason="no Java runtime to compare with")
def test_names_match_a_java_runtime(tmp_path: Path) -> None:
    # Independent check: the JDK's own X500Principal and SAN decoding.
    extra = [
        _n(
            [_a(CN, 'Ärger; über "Dinge"  ')],
            [_a(OU, " lead")],
            [_a(NameOID.EMAIL_ADDRESS, "a@b.c")],
        ),
        _n([_a(ORG, "x+y", _ASN1Type.UTF8String), _a(C, "EE")]),
    ]
    san = x509.SubjectAlternativeName(
        [
            x509.IPAddress(ipaddress.IPv6Address("2001:db8::1")),
            x509.IPAddress(ipaddress.IPv6Address("::ffff:10.0.0.1")),
            x509.DNSName("host.example"),
            x509.DirectoryName(name(C="EE", CN="dir")),
            x509.RegisteredID(x509.ObjectIdentifier("1.2.3.4.5")),
            x509.UniformResourceIdentifier("https://example.org/a?b=c"),
            x509.RFC822Name("x@example.org"),
        ]
    )
    subjects = [s for s, _ in JAVA_NAMES if len(s.rdns)] + extra
    files, expected = [], []
    for i, subject in enumerate(subjects):
        exts = [(san, False)] if i == 0 else []
        cert = _self_signed(subject, *exts)
        path = tmp_path / f"c{i}.der"
        path.write_bytes(cert.public_bytes(Encoding.DER))
        files.append(str(path))
        expected.append("NAME " + certs.java_rfc2253(subject).replace("\n", "<NL>"))
        if i == 0:
            ours = certs.subject_alt_names(cert)
            assert ours is not None
            labels = {
                "IP Address": 7,
                "DNS": 2,
                "DirName": 4,
                "Registered ID": 8,
                "URI": 6,
                "email": 1,
            }
            for item in ours.split(", "):
                label, value = item.split(":", 1)
                expected.append(f"SAN {labels[label]}:{value}")
    (tmp_path / "Names.java").write_text(_JAVA_PRINTER)
    out = subprocess.run(
        ["java", str(tmp_path / "Names.java"), *files],
        capture_output=True, check=True, timeout=120,
    )  # fmt: skip
    assert out.stdout.decode("utf-8").split("\n")[:-1] == expected


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=120))
def test_name_parser_on_random_bytes(blob: bytes) -> None:
    try:
        assert isinstance(certs.java_rfc2253(blob), str)
    except XRoadError as exc:
        assert exc.code == "incorrect_certificate"  # noqa: PT017


# ---------------------------------------------------------------------------------------------
# NIIS getRDNValue semantics


def test_subject_field_follows_niis() -> None:
    cert = _self_signed(
        _n(
            [_a(OU, "first")],
            [_a(OU, "second")],
            [_a(CN, "x"), _a(SN, "sn-in-multi")],
            [_a(ORG, ' a,b"c ')],
            [_a(NameOID.ORGANIZATION_IDENTIFIER, "#NTREE")],
            [_a(NameOID.TITLE, "uni", _ASN1Type.UniversalString)],
            [_a(C, "EE", _ASN1Type.BMPString)],
        )
    )
    # The last RDN in encoded order wins (NIIS re-parses the reversed RFC 2253 string).
    assert certs.subject_field(cert, OU) == "second"
    # A multi-valued RDN answers with its first attribute.
    assert certs.subject_field(cert, SN) == "x"
    assert certs.subject_field(cert, "2.5.4.3") == "x"
    # BouncyCastle escaping comes back.
    assert certs.subject_field(cert, ORG) == '\\ a\\,b\\"c\\ '
    assert certs.subject_field(cert, NameOID.ORGANIZATION_IDENTIFIER) == "\\#NTREE"
    assert certs.subject_field(cert, NameOID.TITLE) == "#1c0c000000750000006e00000069"
    assert certs.subject_field(cert, C) == "\x00E\x00E"  # Java's UTF-8 view of a BMPString
    assert certs.subject_field(cert, NameOID.BUSINESS_CATEGORY) is None


def test_names_equal() -> None:
    a = _n([_a(C, "EE")], [_a(ORG, "Cyber  Netica")], [_a(CN, "Test")])
    b = _n([_a(C, "ee", _ASN1Type.UTF8String)], [_a(ORG, "cyber netica")], [_a(CN, "TEST")])
    reverse = x509.Name(list(reversed(a.rdns)))
    assert certs.names_equal(a, b)
    assert not certs.names_equal(a, reverse)
    assert certs.names_equal(a, reverse, any_order=True)
    assert not certs.names_equal(a, _n([_a(C, "EE")], [_a(CN, "Test")]), any_order=True)
    assert not certs.names_equal(a, b"\x30\x80")


# ---------------------------------------------------------------------------------------------
# Subject alternative names


def _with_raw_san(raw: bytes) -> x509.Certificate:
    ext = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, raw)
    return _self_signed(name(CN="san"), (ext, False))


def test_subject_alt_names_edge_cases() -> None:
    v6 = x509.SubjectAlternativeName(
        [
            x509.IPAddress(ipaddress.IPv6Address("::1")),
            x509.IPAddress(ipaddress.IPv6Address("::ffff:192.0.2.1")),
        ]
    )
    assert certs.subject_alt_names(_self_signed(name(CN="v6"), (v6, False))) == (
        "IP Address:0:0:0:0:0:0:0:1, IP Address:192.0.2.1"
    )
    assert (
        certs.subject_alt_names(_with_raw_san(bytes.fromhex("3003a30100"))) == "x400:<unsupported>"
    )
    assert certs.subject_alt_names(_with_raw_san(bytes.fromhex("3003a50100"))) == (
        "ediPartyName:<unsupported>"
    )
    assert certs.subject_alt_names(_with_raw_san(bytes.fromhex("3000"))) is None
    for junk in ("0400", "30028800", "3003a90100", "3005820368"):
        with pytest.raises(XRoadError) as err:
            certs.subject_alt_names(_with_raw_san(bytes.fromhex(junk)))
        assert err.value.code == "incorrect_certificate"


def test_describe(leaf: Issued) -> None:
    assert certs.describe(leaf.cert).startswith("CN=leaf,O=COM,C=XX (serial 0x")
