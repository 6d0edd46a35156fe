"""The test certification authority: its key and certificate, issuance from CSRs, revocation.

This is the logic of the development/pilot CA (protocols.md §10.1 certificate kinds, §10.2
profiles); it opens no sockets and reads no clock (``now`` is a parameter).  Persistence is
delegated to a :class:`CertRegistry` (in memory here, SQLite in :mod:`crossroad.trust.store`).

Certificates follow what NIIS's own development CA issues (and what X-Road checks):

* signing: keyUsage nonRepudiation (critical);
* authentication: keyUsage digitalSignature (+ keyEncipherment for RSA keys), EKU clientAuth and
  serverAuth;
* OCSP responder: EKU OCSPSigning (critical) and id-pkix-ocsp-nocheck;
* TSA: EKU timeStamping (critical, RFC 3161 §2.3);
* every leaf: basicConstraints CA:false, SKI, AKI and, when the CA knows its responder URL, an
  AIA with the OCSP URL.

Subjects follow a certificate profile: ``fivrk`` (NIIS's dev CA: ``C=FI, O=name, CN=memberCode,
serialNumber=INSTANCE/serverCode/memberClass``), ``ejbca`` (``C=instance, O=memberClass,
CN=memberCode``; auth ``C=instance, CN=serverCode``) or ``csr`` (the CSR's subject verbatim).
"""

from __future__ import annotations

import datetime as dt
import inspect
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from crossroad.crypto.certs import name_field
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId

DEFAULT_DAYS = 7300  # NIIS's development CA certifies for 20 years
KEY_TYPES = ("rsa2048", "rsa3072", "ec-p256")
LeafKind = Literal["sign", "auth"]
CertKind = Literal["sign", "auth", "ocsp", "tsa"]
CertState = Literal["good", "revoked", "unknown"]

# RFC 5280 CRLReason names in snake case, as asn1crypto spells them (key_compromise, ...).
REVOCATION_REASONS = tuple(flag.name for flag in x509.ReasonFlags)


class Profile(StrEnum):
    FIVRK = "fivrk"
    EJBCA = "ejbca"
    CSR = "csr"


# Shared parameters name profiles by Java class (FiVRKCertificateProfileInfoProvider).
_PROFILE_ALIASES = {p.value: p for p in Profile} | {
    f"{p.value}certificateprofileinfoprovider": p for p in (Profile.FIVRK, Profile.EJBCA)
}


def parse_profile(text: str | Profile) -> Profile:
    """A profile from its short name or its NIIS Java class name."""
    if isinstance(text, Profile):
        return text
    key = text.strip().rsplit(".", 1)[-1].lower()
    try:
        return _PROFILE_ALIASES[key]
    except KeyError:
        names = ", ".join(p.value for p in Profile)
        raise XRoadError(
            Code.INVALID_REQUEST, f"Unknown certificate profile {text!r} (known: {names})"
        ) from None


def parse_reason(text: str | None) -> str:
    """A revocation reason in RFC 5280 terms, from ``keyCompromise`` or ``key_compromise``."""
    if not text:
        return "unspecified"
    snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", text.strip()).lower().replace("-", "_")
    if snake in REVOCATION_REASONS:
        return snake
    raise XRoadError(
        Code.INVALID_REQUEST,
        f"Unknown revocation reason {text!r} (known: {', '.join(REVOCATION_REASONS)})",
    )


def generate_key(key_type: str = "rsa2048") -> CertificateIssuerPrivateKeyTypes:
    """A new private key: ``rsa2048``, ``rsa3072`` or ``ec-p256``."""
    if key_type == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "rsa3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    raise XRoadError(
        Code.INVALID_REQUEST, f"Unknown key type {key_type!r} (known: {', '.join(KEY_TYPES)})"
    )


_ATTRIBUTE_NAMES = {
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "DC": NameOID.DOMAIN_COMPONENT,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "businessCategory": NameOID.BUSINESS_CATEGORY,
    "organizationIdentifier": NameOID.ORGANIZATION_IDENTIFIER,
}


def parse_name(text: str | x509.Name) -> x509.Name:
    """A distinguished name from text.

    ``/O=Test/CN=Test CA`` (openssl ``-subj`` style) lists the RDNs in encoding order, as
    ``openssl x509 -subject`` prints them; ``CN=Test CA,O=Test`` is RFC 4514 (last RDN first);
    text without ``=`` is a bare common name.
    """
    if isinstance(text, x509.Name):
        return text
    if "=" not in text:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])
    try:
        if text.startswith("/"):
            attrs = []
            for part in re.split(r"(?<!\\)/", text[1:]):
                key, _, value = part.partition("=")
                key = key.strip()
                oid = _ATTRIBUTE_NAMES.get(key) or x509.ObjectIdentifier(key)
                attrs.append(_attribute(oid, value.replace("\\/", "/")))
            return x509.Name(attrs)
        overrides = {k: v for k, v in _ATTRIBUTE_NAMES.items() if len(k) > 2}
        return x509.Name.from_rfc4514_string(text, overrides)
    except ValueError as exc:
        raise XRoadError(
            Code.INVALID_REQUEST, f"Malformed distinguished name {text!r}: {exc}"
        ) from exc


@contextmanager
def _lenient_names() -> Iterator[None]:
    """Silence cryptography's warning about countryName values that are not two letters."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Attribute's length", UserWarning)
        yield


def display_name(name: x509.Name) -> str:
    """RFC 4514 text of ``name`` with X-Road's attribute names (``serialNumber``, not 2.5.4.5)."""
    return name.rfc4514_string({oid: key for key, oid in _ATTRIBUTE_NAMES.items()})


@dataclass(frozen=True)
class CertRecord:
    """One certificate the CA issued, with its revocation state."""

    serial: int
    kind: str
    subject: str  # RFC 4514
    not_before: dt.datetime
    not_after: dt.datetime
    pem: str
    revoked_at: dt.datetime | None = None
    reason: str | None = None

    @property
    def status(self) -> Literal["good", "revoked"]:
        return "revoked" if self.revoked_at is not None else "good"

    @property
    def cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.pem.encode("ascii"))


@dataclass(frozen=True)
class CertStatus:
    """What the OCSP responder says about one serial number."""

    state: CertState
    revoked_at: dt.datetime | None = None
    reason: str | None = None


GOOD = CertStatus("good")
UNKNOWN = CertStatus("unknown")


class CertRegistry(Protocol):
    """Where a CA keeps its serial counter and what it issued."""

    def allocate_serial(self) -> int: ...
    def add(self, record: CertRecord) -> None: ...
    def get(self, serial: int) -> CertRecord | None: ...
    def set_revoked(self, serial: int, at: dt.datetime, reason: str) -> None: ...
    def records(self) -> Iterator[CertRecord]: ...


class MemoryRegistry:
    """A :class:`CertRegistry` in memory, for tests and the demo."""

    def __init__(self) -> None:
        self._next = 1
        self._records: dict[int, CertRecord] = {}

    def allocate_serial(self) -> int:
        serial, self._next = self._next, self._next + 1
        return serial

    def add(self, record: CertRecord) -> None:
        self._records[record.serial] = record

    def get(self, serial: int) -> CertRecord | None:
        return self._records.get(serial)

    def set_revoked(self, serial: int, at: dt.datetime, reason: str) -> None:
        self._records[serial] = replace(self._records[serial], revoked_at=at, reason=reason)

    def records(self) -> Iterator[CertRecord]:
        return iter(sorted(self._records.values(), key=lambda r: r.serial))


def load_csr(data: bytes | str | x509.CertificateSigningRequest) -> x509.CertificateSigningRequest:
    """A CSR from PEM or DER whose self-signature verifies; anything else is ``invalid_request``."""
    if isinstance(data, x509.CertificateSigningRequest):
        csr = data
    else:
        raw = data.encode("utf-8", "replace") if isinstance(data, str) else bytes(data)
        stripped = raw.strip()
        try:
            if stripped.startswith(b"-----BEGIN"):
                csr = x509.load_pem_x509_csr(stripped)
            else:
                csr = x509.load_der_x509_csr(raw)
            valid = csr.is_signature_valid
            csr.public_key()
        except Exception as exc:  # the parsers raise ValueError and assorted others
            raise XRoadError(
                Code.INVALID_REQUEST,
                f"Malformed certificate signing request (expected PEM or DER PKCS#10): {exc}",
            ) from exc
        if not valid:
            raise XRoadError(
                Code.INVALID_REQUEST,
                "The certificate signing request's signature does not verify with its public key",
            )
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        raise XRoadError(
            Code.INVALID_REQUEST, f"RSA key of {key.key_size} bits is too short (2048 at least)"
        )
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise XRoadError(
            Code.INVALID_REQUEST, f"Unsupported key type {type(key).__name__} in the CSR"
        )
    return csr


def _attribute(oid: x509.ObjectIdentifier, value: str) -> x509.NameAttribute[str]:
    # X-Road puts instance codes such as "DEV" into countryName (Ejbca profile); the ISO 3166
    # two-letter check cryptography applies would refuse them, Java/NIIS does not check.
    if oid != NameOID.COUNTRY_NAME or len(value) == 2:
        return x509.NameAttribute(oid, value)
    with _lenient_names():
        return x509.NameAttribute(oid, value, _validate=False)


def _name(*pairs: tuple[x509.ObjectIdentifier, str]) -> x509.Name:
    return x509.Name([_attribute(oid, value) for oid, value in pairs])


_C, _O, _CN, _SN = (
    NameOID.COUNTRY_NAME,
    NameOID.ORGANIZATION_NAME,
    NameOID.COMMON_NAME,
    NameOID.SERIAL_NUMBER,
)


def subject_for(
    kind: LeafKind,
    profile: Profile,
    *,
    member: ClientId | None = None,
    server: SecurityServerId | None = None,
    org_name: str | None = None,
    dns_name: str | None = None,
) -> x509.Name:
    """The subject a ``kind`` certificate of ``member`` / ``server`` gets under ``profile``."""
    if profile is Profile.CSR:
        raise XRoadError(
            Code.INVALID_REQUEST, "The csr profile takes the subject from the CSR, not from ids"
        )
    if kind == "sign":
        if member is None:
            raise XRoadError(Code.INVALID_REQUEST, "A signing certificate needs the member id")
        m = member.member_id().validate()
        if profile is Profile.EJBCA:
            return _name((_C, m.instance), (_O, m.member_class), (_CN, m.member_code))
        if server is None:
            raise XRoadError(
                Code.INVALID_REQUEST,
                "The FiVRK profile puts the server code in the signing certificate: "
                "give the security server id too",
            )
        serial = f"{m.instance}/{server.server_code}/{m.member_class}"
        return _name(
            (_C, "FI"), (_O, org_name or m.member_code), (_CN, m.member_code), (_SN, serial)
        )
    if server is None:
        raise XRoadError(
            Code.INVALID_REQUEST, "An authentication certificate needs the security server id"
        )
    s, owner = server.validate(), server.owner
    if profile is Profile.EJBCA:
        return _name((_C, s.instance), (_CN, s.server_code))
    serial = f"{owner.instance}/{s.server_code}/{owner.member_class}"
    cn = dns_name or s.server_code
    return _name((_C, "FI"), (_O, org_name or owner.member_code), (_CN, cn), (_SN, serial))


def check_subject(
    subject: x509.Name, kind: LeafKind, profile: Profile, instance: str | None
) -> None:
    """Refuse a CSR subject that the relying profile could not map to an X-Road identity."""
    if profile is Profile.CSR:
        return
    where = f"{kind} certificate subject {display_name(subject)!r} ({profile} profile)"
    cn = name_field(subject, NameOID.COMMON_NAME)
    if not cn:
        raise XRoadError(Code.INVALID_REQUEST, f"The {where} has no CN")
    if profile is Profile.FIVRK:
        serial = name_field(subject, NameOID.SERIAL_NUMBER) or ""
        parts = serial.split("/")
        if len(parts) != 3 or not all(parts):
            raise XRoadError(
                Code.INVALID_REQUEST,
                f"The {where} needs serialNumber=INSTANCE/serverCode/memberClass",
            )
        if instance is not None and parts[0] != instance:
            raise XRoadError(
                Code.INVALID_REQUEST, f"The {where} names instance {parts[0]!r}, not {instance!r}"
            )
        return
    country = name_field(subject, NameOID.COUNTRY_NAME)
    if not country:
        raise XRoadError(Code.INVALID_REQUEST, f"The {where} needs C=instance")
    if instance is not None and country != instance:
        raise XRoadError(
            Code.INVALID_REQUEST, f"The {where} names instance {country!r}, not {instance!r}"
        )
    if kind == "sign" and not name_field(subject, NameOID.ORGANIZATION_NAME):
        raise XRoadError(Code.INVALID_REQUEST, f"The {where} needs O=memberClass")


# Every KeyUsage flag off; issuers switch on what a certificate kind needs.
_NO_USAGE = dict.fromkeys(inspect.signature(x509.KeyUsage).parameters, False)


def _seconds(at: dt.datetime) -> dt.datetime:
    if at.tzinfo is None:
        raise ValueError("times must be timezone-aware (UTC)")
    return at.astimezone(dt.UTC).replace(microsecond=0)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


class TestCA:
    """A CA key and certificate that issues X-Road certificates and tracks their revocation."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        key: CertificateIssuerPrivateKeyTypes,
        cert: x509.Certificate,
        registry: CertRegistry | None = None,
        *,
        ocsp_url: str | None = None,
    ) -> None:
        self.key = key
        self.cert = cert
        self.registry: CertRegistry = registry if registry is not None else MemoryRegistry()
        self.ocsp_url = ocsp_url

    @classmethod
    def create(
        cls,
        name: str | x509.Name,
        *,
        now: dt.datetime,
        key_type: str = "rsa2048",
        key: CertificateIssuerPrivateKeyTypes | None = None,
        days: int = DEFAULT_DAYS,
        registry: CertRegistry | None = None,
        ocsp_url: str | None = None,
    ) -> TestCA:
        """A new self-signed CA called ``name`` (see :func:`parse_name`)."""
        key = key if key is not None else generate_key(key_type)
        subject = parse_name(name)
        start = _seconds(now)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        usage = dict(_NO_USAGE, digital_signature=True, key_cert_sign=True, crl_sign=True)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(**usage), critical=True)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert, registry, ocsp_url=ocsp_url)

    # -- issuing ---------------------------------------------------------------------------

    def _build(
        self,
        subject: x509.Name,
        public_key: CertificatePublicKeyTypes,
        kind: CertKind,
        now: dt.datetime,
        days: int,
        extensions: list[tuple[x509.ExtensionType, bool]],
        with_aia: bool = True,
    ) -> x509.Certificate:
        if days <= 0:
            raise XRoadError(Code.INVALID_REQUEST, f"Validity of {days} days is not positive")
        start = _seconds(now)
        # A certificate must not outlive the CA that vouches for it.
        end = min(start + dt.timedelta(days=days), self.cert.not_valid_after_utc)
        if end <= start:
            raise XRoadError(Code.INVALID_REQUEST, "The CA certificate has expired")
        try:
            aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
            )
        except x509.ExtensionNotFound:
            aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key())
        serial = self.registry.allocate_serial()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(aki, critical=False)
        )
        for ext, critical in extensions:
            builder = builder.add_extension(ext, critical=critical)
        if with_aia and self.ocsp_url:
            url = x509.UniformResourceIdentifier(self.ocsp_url)
            aia = x509.AccessDescription(AuthorityInformationAccessOID.OCSP, url)
            builder = builder.add_extension(x509.AuthorityInformationAccess([aia]), critical=False)
        try:
            cert = builder.sign(self.key, hashes.SHA256())
        except ValueError as exc:
            raise XRoadError(Code.INVALID_REQUEST, f"Cannot issue the certificate: {exc}") from exc
        self.registry.add(
            CertRecord(
                serial=serial,
                kind=kind,
                subject=display_name(subject),
                not_before=start,
                not_after=end,
                pem=_pem(cert),
            )
        )
        return cert

    def issue(
        self,
        csr: bytes | str | x509.CertificateSigningRequest,
        kind: LeafKind,
        *,
        now: dt.datetime,
        profile: str | Profile = Profile.FIVRK,
        instance: str | None = None,
        member: ClientId | None = None,
        server: SecurityServerId | None = None,
        org_name: str | None = None,
        dns_name: str | None = None,
        days: int = DEFAULT_DAYS,
    ) -> x509.Certificate:
        """Certify the key of ``csr`` as a signing or authentication certificate.

        The subject is built from ``member`` (signing) / ``server`` (authentication) when given,
        else taken from the CSR and checked against ``profile`` (and ``instance`` if given).
        """
        if kind not in ("sign", "auth"):
            raise XRoadError(
                Code.INVALID_REQUEST, f"Unknown certificate type {kind!r} (sign or auth)"
            )
        request = load_csr(csr)
        prof = parse_profile(profile)
        ident = member if kind == "sign" else server
        if ident is not None:
            subject = subject_for(
                kind, prof, member=member, server=server, org_name=org_name, dns_name=dns_name
            )
            if instance is not None and ident.instance != instance:
                raise XRoadError(
                    Code.INVALID_REQUEST,
                    f"The identifier is of instance {ident.instance!r}; this CA: {instance!r}",
                )
        else:
            with _lenient_names():
                subject = request.subject
            check_subject(subject, kind, prof, instance)
        public_key = request.public_key()
        extensions: list[tuple[x509.ExtensionType, bool]]
        if kind == "sign":
            extensions = [(x509.KeyUsage(**dict(_NO_USAGE, content_commitment=True)), True)]
        else:
            # keyEncipherment only means something for RSA (TLS RSA key transport).
            usage = dict(
                _NO_USAGE,
                digital_signature=True,
                key_encipherment=isinstance(public_key, rsa.RSAPublicKey),
            )
            eku = x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            )
            extensions = [(x509.KeyUsage(**usage), True), (eku, False)]
            if dns_name:
                extensions.append((x509.SubjectAlternativeName([x509.DNSName(dns_name)]), False))
        return self._build(subject, public_key, kind, now, days, extensions)

    def issue_ocsp_responder(
        self,
        public_key: CertificatePublicKeyTypes,
        subject: str | x509.Name,
        *,
        now: dt.datetime,
        days: int = DEFAULT_DAYS,
    ) -> x509.Certificate:
        """A delegated OCSP responder certificate (EKU OCSPSigning, no revocation check)."""
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.KeyUsage(**dict(_NO_USAGE, digital_signature=True)), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), True),
            (x509.OCSPNoCheck(), False),
        ]
        # No AIA: with ocsp-nocheck nobody asks the responder about itself.
        return self._build(parse_name(subject), public_key, "ocsp", now, days, extensions, False)

    def issue_tsa(
        self,
        public_key: CertificatePublicKeyTypes,
        subject: str | x509.Name,
        *,
        now: dt.datetime,
        days: int = DEFAULT_DAYS,
    ) -> x509.Certificate:
        """A time-stamping unit certificate (EKU timeStamping, critical, RFC 3161 §2.3)."""
        usage = dict(_NO_USAGE, digital_signature=True, content_commitment=True)
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.KeyUsage(**usage), True),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), True),
        ]
        return self._build(parse_name(subject), public_key, "tsa", now, days, extensions)

    # -- revocation ------------------------------------------------------------------------

    def revoke(self, serial: int, reason: str | None = None, *, at: dt.datetime) -> CertRecord:
        """Mark certificate ``serial`` revoked since ``at``; the responder reports it at once."""
        record = self.registry.get(serial)
        if record is None:
            raise XRoadError(
                Code.INVALID_REQUEST, f"This CA has not issued a certificate with serial {serial}"
            )
        if record.revoked_at is not None:
            raise XRoadError(
                Code.INVALID_REQUEST,
                f"Certificate {serial} was already revoked at {record.revoked_at.isoformat()}",
            )
        name = parse_reason(reason)
        self.registry.set_revoked(serial, _seconds(at), name)
        return replace(record, revoked_at=_seconds(at), reason=name)

    def status(self, serial: int) -> CertStatus:
        """The OCSP status of ``serial``: unknown unless this CA issued it."""
        record = self.registry.get(serial)
        if record is None:
            return UNKNOWN
        if record.revoked_at is None:
            return GOOD
        return CertStatus("revoked", record.revoked_at, record.reason)
