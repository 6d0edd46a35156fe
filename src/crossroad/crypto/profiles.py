"""Certificate profiles: which member a signing certificate speaks for (protocols.md §10.2).

An approved CA names its profile in shared parameters (``certificateProfileInfo``) by the Java
class name of a NIIS ``CertificateProfileInfoProvider``.  The profile maps the subject of a
signing certificate to a member identifier; the signature verifier compares that with the
sender (protocols.md §4.9 step 5).  Attribute values are read as NIIS reads them
(:func:`crossroad.crypto.certs.subject_field`), and the fault codes are NIIS's: the older
providers raise ``incorrect_certificate``, the 7.x rewrites (BasicACME, SkKlass3, SkEsteId)
``invalid_certificate``, an unknown provider class ``internal_error``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from cryptography import x509
from cryptography.x509.oid import NameOID

from crossroad.crypto.certs import subject_field
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId

PACKAGE = "ee.ria.xroad.common.certificateprofile.impl."
_SUFFIX = "CertificateProfileInfoProvider"
_ORGANIZATION_IDENTIFIER = "2.5.4.97"

_Decoder = Callable[[x509.Certificate, str], ClientId]


def _field(cert: x509.Certificate, oid: x509.ObjectIdentifier | str) -> str | None:
    return subject_field(cert, oid)


def _require(cert: x509.Certificate, oid: x509.ObjectIdentifier, what: str, code: str) -> str:
    value = _field(cert, oid)
    if value is None:
        raise XRoadError(code, f"Certificate subject name does not contain {what}")
    return value


def _java_split(text: str, sep: str) -> list[str]:
    """``String.split``: trailing empty strings are dropped."""
    if sep not in text:
        return [text]
    parts = text.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


# ---------------------------------------------------------------------------------------------
# Sign profiles


def _ejbca(cert: x509.Certificate, instance: str) -> ClientId:
    """``CertSubjectUtils``: C = instance, O = member class, CN = member code."""
    ic = Code.INCORRECT_CERTIFICATE
    c = _require(cert, NameOID.COUNTRY_NAME, "country code", ic)
    o = _require(cert, NameOID.ORGANIZATION_NAME, "organization", ic)
    cn = _require(cert, NameOID.COMMON_NAME, "common name", ic)
    return ClientId(c, o, cn)


def _test(cert: x509.Certificate, instance: str) -> ClientId:
    """NIIS test profile (in the test global configurations): class BUSINESS, code = CN."""
    cn = _require(cert, NameOID.COMMON_NAME, "common name", Code.INCORRECT_CERTIFICATE)
    return ClientId(instance, "BUSINESS", cn)


def _basic(code: str) -> _Decoder:
    """businessCategory = member class, serialNumber = member code, instance from context."""

    def decode(cert: x509.Certificate, instance: str) -> ClientId:
        member_class = _require(cert, NameOID.BUSINESS_CATEGORY, "business category", code)
        member_code = _require(cert, NameOID.SERIAL_NUMBER, "serial number", code)
        return ClientId(instance, member_class, member_code)

    return decode


_SK_PREFIXES = (("NTREE-", "COM"), ("GO:EE-", "GOV"), ("NP:EE-", "NGO"))


def _sk_klass3(cert: x509.Certificate, instance: str) -> ClientId:
    """SK ID Solutions e-seals: organizationIdentifier, else an 8-digit serialNumber."""
    org_id = _field(cert, _ORGANIZATION_IDENTIFIER)
    if org_id:
        for prefix, member_class in _SK_PREFIXES:
            if org_id.startswith(prefix):
                return ClientId(instance, member_class, org_id[len(prefix) :])
        # Non-Estonian enterprises keep the whole identifier, so codes stay unique.
        return ClientId(instance, "NEE", org_id)
    sn = _field(cert, NameOID.SERIAL_NUMBER)
    if not sn:
        raise XRoadError(Code.INVALID_CERTIFICATE, "Subject name does not contain serial number")
    if not sn.isdecimal():
        raise XRoadError(Code.INVALID_CERTIFICATE, "Serial number is not an integer")
    if len(sn) != 8:
        raise XRoadError(Code.INVALID_CERTIFICATE, "Serial number must be 8 digits long")
    first = sn[0]
    if first in "123456":
        member_class = "COM"
    elif first == "7":
        member_class = "GOV"
    elif first in "89":
        member_class = "NGO"
    else:
        raise XRoadError(Code.INTERNAL_ERROR, f"Malformed serial number: {sn}")
    return ClientId(instance, member_class, sn)


def _sk_esteid(cert: x509.Certificate, instance: str) -> ClientId:
    """Estonian ID cards: class PERSON, code = serialNumber."""
    sn = _field(cert, NameOID.SERIAL_NUMBER)
    if not sn:
        raise XRoadError(Code.INVALID_CERTIFICATE, "Subject name does not contain serial number")
    return ClientId(instance, "PERSON", sn)


def _country(cert: x509.Certificate, expected: str) -> None:
    if _field(cert, NameOID.COUNTRY_NAME) != expected:
        raise XRoadError(
            Code.INCORRECT_CERTIFICATE,
            "Certificate subject name does not contain valid country code",
        )


def _instance_class_code(cert: x509.Certificate) -> ClientId:
    """O = instance, OU = member class, CN = member code (FO, IS and legacy FI subjects)."""
    ic = Code.INCORRECT_CERTIFICATE
    instance = _require(cert, NameOID.ORGANIZATION_NAME, "organization", ic)
    member_class = _require(cert, NameOID.ORGANIZATIONAL_UNIT_NAME, "organization unit", ic)
    member_code = _require(cert, NameOID.COMMON_NAME, "common name", ic)
    return ClientId(instance, member_class, member_code)


def _fivrk(cert: x509.Certificate, instance: str) -> ClientId:
    """Finland: C=FI, O=name, CN=member code, serialNumber=INSTANCE/serverCode/memberClass;
    legacy C=FI, O=instance, OU=class, CN=code; else the Ejbca form."""
    ic = Code.INCORRECT_CERTIFICATE
    serial = _field(cert, NameOID.SERIAL_NUMBER)
    if serial is None:
        if _field(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) is None:
            return _ejbca(cert, instance)
        _country(cert, "FI")
        return _instance_class_code(cert)
    _country(cert, "FI")
    _require(cert, NameOID.ORGANIZATION_NAME, "organization", ic)
    member_code = _require(cert, NameOID.COMMON_NAME, "common name", ic)
    parts = _java_split(serial, "/")
    if len(parts) != 3:
        raise XRoadError(ic, "Certificate subject name's attribute serialNumber has invalid value")
    return ClientId(parts[0], parts[2], member_code)


def _fo(cert: x509.Certificate, instance: str) -> ClientId:
    """Faroe Islands: C=FO, O=instance, OU=class, CN=code, serialNumber present."""
    _country(cert, "FO")
    client = _instance_class_code(cert)
    _require(cert, NameOID.SERIAL_NUMBER, "serial number", Code.INCORRECT_CERTIFICATE)
    return client


def _is(cert: x509.Certificate, instance: str) -> ClientId:
    """Iceland: like FO with C=IS; without serialNumber and OU the Ejbca form."""
    serial = _field(cert, NameOID.SERIAL_NUMBER)
    if serial is None and _field(cert, NameOID.ORGANIZATIONAL_UNIT_NAME) is None:
        return _ejbca(cert, instance)
    _country(cert, "IS")
    client = _instance_class_code(cert)
    _require(cert, NameOID.SERIAL_NUMBER, "serial number", Code.INCORRECT_CERTIFICATE)
    return client


_SIGN_DECODERS: dict[str, _Decoder] = {
    "Ejbca": _ejbca,
    "Basic": _basic(Code.INCORRECT_CERTIFICATE),
    "BasicACME": _basic(Code.INVALID_CERTIFICATE),
    "SkKlass3": _sk_klass3,
    "SkEsteId": _sk_esteid,
    "FiVRK": _fivrk,
    "Fo": _fo,
    "Is": _is,
    "Test": _test,
}

#: The full Java class names this module implements.
KNOWN_PROFILES: tuple[str, ...] = tuple(PACKAGE + k + _SUFFIX for k in _SIGN_DECODERS)


def profile_key(profile_class: str) -> str:
    """The short key (``FiVRK``) of a profile given by full class name, simple class name
    or short key; unknown profiles raise ``internal_error`` as in NIIS."""
    name = profile_class.strip()
    if name.startswith(PACKAGE):
        name = name[len(PACKAGE) :]
    if name.endswith(_SUFFIX):
        name = name[: -len(_SUFFIX)]
    if name in _SIGN_DECODERS:
        return name
    raise XRoadError(
        Code.INTERNAL_ERROR, f"Certificate profile {profile_class!r} could not be found"
    )


@functools.lru_cache(maxsize=1024)
def member_id_from_sign_cert(cert: x509.Certificate, profile_class: str, instance: str) -> ClientId:
    """The member a signing certificate belongs to under ``profile_class``.

    ``instance`` is the X-Road instance of the claimed signer; profiles whose subjects do
    not carry the instance (Basic, BasicACME, SkKlass3, SkEsteId, Test) take it from here.
    Memoised: a pure function of the certificate's bytes and the two strings, asked for
    every message a member signs (failures are not cached).
    """
    return _SIGN_DECODERS[profile_key(profile_class)](cert, instance)


def server_code_from_auth_cert(cert: x509.Certificate, profile_class: str) -> str | None:
    """The security server code an authentication certificate names, where the profile puts
    it in the subject (Ejbca/Test: CN; FiVRK: serialNumber ``INST/serverCode/class``; Fo: CN,
    Is: serialNumber, both ``INST/CLASS/CODE/serverCode``); None for the other profiles."""
    key = profile_key(profile_class)
    if key in ("Ejbca", "Test"):
        return _field(cert, NameOID.COMMON_NAME)
    if key == "FiVRK":
        serial = _field(cert, NameOID.SERIAL_NUMBER)
        parts = _java_split(serial, "/") if serial is not None else []
        return parts[1] if len(parts) == 3 else None
    if key in ("Fo", "Is"):
        oid = NameOID.COMMON_NAME if key == "Fo" else NameOID.SERIAL_NUMBER
        value = _field(cert, oid)
        parts = _java_split(value, "/") if value is not None else []
        return parts[3] if len(parts) == 4 else None
    return None
