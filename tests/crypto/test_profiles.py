"""crypto.profiles: signing-certificate subject -> member, per NIIS certificate profile."""

from __future__ import annotations

import datetime as dt
import functools

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroad.crypto.profiles import (
    KNOWN_PROFILES,
    PACKAGE,
    member_id_from_sign_cert,
    profile_key,
    server_code_from_auth_cert,
)
from crossroad.errors import XRoadError
from crossroad.identifiers import ClientId
from crossroad.testing.pki import EPOCH, rsa_key

_OIDS = {
    "C": NameOID.COUNTRY_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "CN": NameOID.COMMON_NAME,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "BUSINESSCATEGORY": NameOID.BUSINESS_CATEGORY,
    "2.5.4.97": NameOID.ORGANIZATION_IDENTIFIER,
}


@functools.cache
def cert(subject: str) -> x509.Certificate:
    """A certificate whose subject is ``"C=XX, O=Foo, CN=bar"`` (encoded in that order)."""
    attrs = []
    for part in filter(None, (p.strip() for p in subject.split(","))):
        attr, value = part.split("=", 1)
        attrs.append(x509.NameAttribute(_OIDS[attr.upper()], value))
    name = x509.Name(attrs)
    key = rsa_key(70)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(EPOCH)
        .not_valid_after(EPOCH + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def member(subject: str, profile: str, instance: str = "XX") -> ClientId:
    return member_id_from_sign_cert(cert(subject), profile, instance)


def code_of(subject: str, profile: str) -> str:
    with pytest.raises(XRoadError) as err:
        member(subject, profile)
    return err.value.code


# ---------------------------------------------------------------------------------------------


def test_profile_names() -> None:
    assert profile_key(PACKAGE + "FiVRKCertificateProfileInfoProvider") == "FiVRK"
    assert profile_key("SkKlass3CertificateProfileInfoProvider") == "SkKlass3"
    assert profile_key(" Ejbca ") == "Ejbca"
    assert len(KNOWN_PROFILES) == 9
    for bad in ("Unknown", "com.example.EjbcaCertificateProfileInfoProvider", ""):
        with pytest.raises(XRoadError) as err:
            profile_key(bad)
        assert err.value.code == "internal_error"
    with pytest.raises(XRoadError):
        member("C=XX, O=Foo, CN=bar", "org.example.Mine")


def test_ejbca() -> None:
    assert member("C=EE, O=COM, CN=1234", "Ejbca", "ignored") == ClientId("EE", "COM", "1234")
    for subject in ("O=COM, CN=1234", "C=EE, CN=1234", "C=EE, O=COM"):
        assert code_of(subject, "Ejbca") == "incorrect_certificate"


def test_test_profile() -> None:
    profile = PACKAGE + "TestCertificateProfileInfoProvider"
    assert member("C=EE, O=Cybernetica, CN=producer", profile, "EE") == ClientId(
        "EE", "BUSINESS", "producer"
    )
    assert code_of("C=EE", profile) == "incorrect_certificate"


@pytest.mark.parametrize(
    ("profile", "code"), [("Basic", "incorrect_certificate"), ("BasicACME", "invalid_certificate")]
)
def test_basic(profile: str, code: str) -> None:
    subject = "C=FI, O=Firm, CN=Firm, businessCategory=GOV, serialNumber=123-4"
    assert member(subject, profile, "DEV") == ClientId("DEV", "GOV", "123-4")
    assert code_of("C=FI, O=Firm, serialNumber=1", profile) == code
    assert code_of("C=FI, O=Firm, businessCategory=GOV", profile) == code


@pytest.mark.parametrize(
    ("serial", "member_class"),
    [
        (f"{d}6543212", c)
        for d, c in zip("123456789", ["COM"] * 6 + ["GOV", "NGO", "NGO"], strict=True)
    ],
)
def test_sk_klass3_by_serial_number(serial: str, member_class: str) -> None:
    assert member(f"C=EE, CN=Org, serialNumber={serial}", "SkKlass3") == ClientId(
        "XX", member_class, serial
    )


def test_sk_klass3_by_organization_identifier() -> None:
    cases = {
        "NTREE-16543212": ("COM", "16543212"),
        "GO:EE-86543212": ("GOV", "86543212"),
        "NP:EE-96543212": ("NGO", "96543212"),
        "NP:FI-96543212": ("NEE", "NP:FI-96543212"),
    }
    for org_id, (member_class, code) in cases.items():
        got = member(f"C=EE, CN=Org, serialNumber=12345678, 2.5.4.97={org_id}", "SkKlass3")
        assert got == ClientId("XX", member_class, code)


def test_sk_klass3_failures() -> None:
    assert code_of("C=EE, CN=Org", "SkKlass3") == "invalid_certificate"
    assert code_of("C=EE, serialNumber=1234567a", "SkKlass3") == "invalid_certificate"
    assert code_of("C=EE, serialNumber=123456789", "SkKlass3") == "invalid_certificate"
    assert code_of("C=EE, serialNumber=06543212", "SkKlass3") == "internal_error"


def test_sk_esteid() -> None:
    assert member("C=EE, CN=Mari, serialNumber=foobar", "SkEsteId") == ClientId(
        "XX", "PERSON", "foobar"
    )
    assert code_of("O=x", "SkEsteId") == "invalid_certificate"


def test_fivrk() -> None:
    profile = PACKAGE + "FiVRKCertificateProfileInfoProvider"
    # The DEV signer of the NIIS ASiC vectors.
    assert member("C=FI, O=Test client, CN=4321, serialNumber=DEV/ss2/COM", profile) == ClientId(
        "DEV", "COM", "4321"
    )
    assert member("C=FI, O=x, CN=1, serialNumber=DEV//COM", profile).member_class == "COM"
    # Legacy FI form and the Ejbca fallback.
    assert member("C=FI, O=FI-DEV, OU=GOV, CN=0245437-2", profile) == ClientId(
        "FI-DEV", "GOV", "0245437-2"
    )
    assert member("C=XX, O=Foo, CN=bar", profile) == ClientId("XX", "Foo", "bar")
    for subject in (
        "C=SE, O=x, CN=1, serialNumber=DEV/ss2/COM",
        "C=FI, CN=1, serialNumber=DEV/ss2/COM",
        "C=FI, O=x, serialNumber=DEV/ss2/COM",
        "C=FI, O=x, CN=1, serialNumber=DEV/COM",
        "C=FI, O=x, CN=1, serialNumber=DEV/ss2/",  # Java's split drops the trailing empty part
        "C=FI, O=x, CN=1, serialNumber=DEV/ss2/COM/x",
        "C=SE, O=FI-DEV, OU=GOV, CN=1",
    ):
        assert code_of(subject, profile) == "incorrect_certificate", subject


def test_fo_and_is() -> None:
    assert member("C=FO, O=XX, OU=Foo, CN=bar, serialNumber=qux", "Fo") == ClientId(
        "XX", "Foo", "bar"
    )
    assert code_of("C=FO, O=XX, OU=Foo, CN=bar", "Fo") == "incorrect_certificate"
    assert code_of("C=IS, O=XX, OU=Foo, CN=bar, serialNumber=q", "Fo") == "incorrect_certificate"
    assert member("C=IS, O=IS-DEV, OU=GOV, CN=1, serialNumber=q", "Is") == ClientId(
        "IS-DEV", "GOV", "1"
    )
    assert member("C=XX, O=Foo, CN=bar", "Is") == ClientId("XX", "Foo", "bar")
    assert code_of("C=IS, O=IS-DEV, OU=GOV, CN=1", "Is") == "incorrect_certificate"
    assert code_of("C=FO, O=IS-DEV, OU=GOV, CN=1, serialNumber=q", "Is") == "incorrect_certificate"


def test_values_are_read_as_niis_reads_them() -> None:
    # NIIS re-parses Java's RFC 2253 string: escapes come back, the last RDN wins.
    assert member("C=EE, O=COM, CN=a+b", "Ejbca").member_code == "a\\+b"
    assert member("C=EE, O=COM, O=GOV, CN=1", "Ejbca").member_class == "GOV"


def test_server_codes() -> None:
    assert server_code_from_auth_cert(cert("C=EE, CN=ss1"), "Ejbca") == "ss1"
    assert (
        server_code_from_auth_cert(cert("C=FI, O=x, CN=host, serialNumber=DEV/ss2/COM"), "FiVRK")
        == "ss2"
    )
    assert server_code_from_auth_cert(cert("C=FI, O=x, CN=host"), "FiVRK") is None
    assert server_code_from_auth_cert(cert("C=FO, O=XX, CN=XX/GOV/123/ss3"), "Fo") == "ss3"
    assert server_code_from_auth_cert(cert("C=IS, CN=h, serialNumber=IS/GOV/1/ss4"), "Is") == "ss4"
    assert server_code_from_auth_cert(cert("C=IS, CN=h"), "Is") is None
    assert server_code_from_auth_cert(cert("C=FI, CN=h, serialNumber=1"), "Basic") is None
    with pytest.raises(XRoadError):
        server_code_from_auth_cert(cert("C=EE, CN=ss1"), "Nope")


_TEXT = st.text(st.characters(codec="utf-8", exclude_characters=",="), max_size=12)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(sorted({k.removeprefix(PACKAGE) for k in KNOWN_PROFILES})),
    st.lists(
        st.tuples(st.sampled_from(sorted(_OIDS.values(), key=str)), _TEXT.filter(bool)),
        max_size=6,
    ),
)
def test_any_subject_gives_a_member_or_a_coded_error(
    profile: str, attrs: list[tuple[x509.ObjectIdentifier, str]]
) -> None:
    key = rsa_key(71)
    try:
        name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs])
        c = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(1)
            .not_valid_before(EPOCH)
            .not_valid_after(EPOCH + dt.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
    except ValueError:
        return  # not encodable (a country name of the wrong length, ";" in a PrintableString)
    try:
        assert isinstance(member_id_from_sign_cert(c, profile, "XX"), ClientId)
        server_code_from_auth_cert(c, profile)
    except XRoadError as exc:
        assert exc.code in ("incorrect_certificate", "invalid_certificate", "internal_error")  # noqa: PT017
