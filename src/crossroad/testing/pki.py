"""An in-memory PKI for tests, benchmarks and the demo: CAs, X-Road certificates, OCSP responses.

Certificates follow the X-Road profiles (protocols.md §10.1–10.2): signing certificates carry
keyUsage nonRepudiation and an Ejbca/FiVRK-style subject; authentication certificates carry
digitalSignature + keyEncipherment and EKU clientAuth/serverAuth.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@cache
def _cached_rsa(index: int, bits: int) -> rsa.RSAPrivateKey:
    # Key generation dominates test time; tests that do not care share a few keys.
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def rsa_key(index: int = 0, bits: int = 2048) -> rsa.RSAPrivateKey:
    return _cached_rsa(index, bits)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes


def name(**attrs: str) -> x509.Name:
    oids = {
        "C": NameOID.COUNTRY_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "CN": NameOID.COMMON_NAME,
        "serialNumber": NameOID.SERIAL_NUMBER,
        "businessCategory": NameOID.BUSINESS_CATEGORY,
        "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER,
    }
    return x509.Name([x509.NameAttribute(oids[k], v) for k, v in attrs.items()])


_serial = [1000]


def _next_serial() -> int:
    _serial[0] += 1
    return _serial[0]


def make_cert(
    subject: x509.Name,
    *,
    key: CertificateIssuerPrivateKeyTypes | None = None,
    issuer: Issued | None = None,
    kind: str = "sign",
    not_before: dt.datetime = EPOCH,
    days: int = 3650,
    serial: int | None = None,
) -> Issued:
    """Issue a certificate of ``kind``: ``ca``, ``sign``, ``auth``, ``ocsp``, ``tsa``."""
    key = key or rsa_key(_next_serial() % 8 + 1)
    signer_key = issuer.key if issuer else key
    issuer_name = issuer.cert.subject if issuer else subject
    b = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(serial or _next_serial())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    usage = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    eku: list[x509.ObjectIdentifier] = []
    if kind == "ca":
        b = b.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        usage.update(key_cert_sign=True, crl_sign=True)
    else:
        b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        if kind == "sign":
            usage.update(content_commitment=True)
        elif kind == "auth":
            usage.update(digital_signature=True, key_encipherment=True)
            eku = [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
        elif kind == "ocsp":
            usage.update(digital_signature=True)
            eku = [ExtendedKeyUsageOID.OCSP_SIGNING]
        elif kind == "tsa":
            usage.update(digital_signature=True, content_commitment=True)
            eku = [ExtendedKeyUsageOID.TIME_STAMPING]
        else:
            raise ValueError(f"unknown certificate kind {kind!r}")
    b = b.add_extension(x509.KeyUsage(**usage), critical=True)
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), critical=kind == "tsa")
    cert = b.sign(signer_key, hashes.SHA256())
    return Issued(cert, key)


def make_ocsp_response(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    responder: Issued,
    *,
    this_update: dt.datetime,
    next_update: dt.datetime | None = None,
    revoked_at: dt.datetime | None = None,
    unknown: bool = False,
    include_responder_cert: bool = True,
) -> bytes:
    """A DER OCSPResponse (SUCCESSFUL) for ``cert``, SHA-1 CertID, signed by ``responder``."""
    if unknown:
        status = ocsp.OCSPCertStatus.UNKNOWN
    elif revoked_at is not None:
        status = ocsp.OCSPCertStatus.REVOKED
    else:
        status = ocsp.OCSPCertStatus.GOOD
    b = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=issuer,
        algorithm=hashes.SHA1(),
        cert_status=status,
        this_update=this_update,
        next_update=next_update,
        revocation_time=revoked_at,
        revocation_reason=None,
    )
    b = b.responder_id(ocsp.OCSPResponderEncoding.NAME, responder.cert)
    if include_responder_cert:
        b = b.certificates([responder.cert])
    resp = b.sign(responder.key, hashes.SHA256())
    from cryptography.hazmat.primitives.serialization import Encoding

    return resp.public_bytes(Encoding.DER)


@dataclass(frozen=True)
class TestPKI:
    """A small instance PKI: one CA with an OCSP responder and a TSA certificate."""

    __test__ = False  # not a pytest test class despite its name

    ca: Issued
    ocsp: Issued
    tsa: Issued

    @classmethod
    def create(cls, org: str = "Test") -> TestPKI:
        ca = make_cert(name(O=org, CN=f"{org} CA"), kind="ca", key=rsa_key(100))
        ocsp_ = make_cert(name(O=org, CN=f"{org} OCSP"), issuer=ca, kind="ocsp", key=rsa_key(101))
        tsa = make_cert(name(O=org, CN=f"{org} TSA"), issuer=ca, kind="tsa", key=rsa_key(102))
        return cls(ca, ocsp_, tsa)

    def sign_cert(self, instance: str, member_class: str, member_code: str) -> Issued:
        """A signing certificate in the Ejbca profile: C=instance, O=class, CN=code."""
        return make_cert(
            name(C=instance, O=member_class, CN=member_code), issuer=self.ca, kind="sign"
        )

    def auth_cert(self, instance: str, server_code: str) -> Issued:
        return make_cert(name(C=instance, CN=server_code), issuer=self.ca, kind="auth")

    def ocsp_for(self, cert: x509.Certificate, at: dt.datetime, **kw: object) -> bytes:
        return make_ocsp_response(cert, self.ca.cert, self.ocsp, this_update=at, **kw)  # type: ignore[arg-type]
