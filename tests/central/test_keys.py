"""Configuration signing keys: files, certificates in NIIS's shape, passphrases, refusals."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from crossroad.central import keys as k
from crossroad.crypto import keys as raw
from crossroad.crypto.certs import load_certificate
from crossroad.errors import Code, XRoadError

PASS = b"correct horse"


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, k.NewKey]:
    directory = tmp_path_factory.mktemp("keys")
    return directory, k.create_key(directory, "internal", PASS)


def test_certificate_has_the_niis_shape(rsa_key: tuple[Path, k.NewKey]) -> None:
    _, new = rsa_key
    cert = load_certificate(new.cert_der)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == (
        "internalSigningKey"
    )
    assert cert.issuer == cert.subject
    assert cert.serial_number == 1
    assert cert.not_valid_before_utc == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    assert cert.not_valid_after_utc == dt.datetime(2038, 1, 1, tzinfo=dt.UTC)
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.content_commitment
    assert usage.value.key_cert_sign
    assert not usage.value.digital_signature
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    assert isinstance(cert.public_key(), rsa.RSAPublicKey)
    assert cert.public_key().key_size == 2048  # type: ignore[union-attr]
    assert new.key_id == k.key_id_of(cert) == k.key_id_of(new.cert_der)
    assert k.is_key_id(new.key_id)
    assert new.source is k.KeySource.INTERNAL
    assert "cert_der" not in repr(new)


def test_key_file_is_private_and_encrypted(rsa_key: tuple[Path, k.NewKey]) -> None:
    directory, new = rsa_key
    path = directory / new.file_name
    assert new.file_name == f"{new.key_id}.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert not list(directory.glob("*.tmp"))


def test_loaded_key_signs_with_sha512_rsa(rsa_key: tuple[Path, k.NewKey]) -> None:
    directory, new = rsa_key
    key = k.load_signing_key(directory, new.file_name, new.cert_der, PASS)
    assert key.key_id == new.key_id
    assert key.algorithm.name == "SHA512withRSA"
    signature = key.sign(b"data")
    public = load_certificate(new.cert_der).public_key()
    assert raw.verify(public, key.algorithm, signature, b"data")
    text = repr(key)
    assert "PRIVATE" not in text
    assert "private_key" not in text


def test_wrong_or_missing_passphrase(rsa_key: tuple[Path, k.NewKey]) -> None:
    directory, new = rsa_key
    for passphrase in (b"wrong", None):
        with pytest.raises(XRoadError) as err:
            k.load_signing_key(directory, new.file_name, new.cert_der, passphrase)
        assert err.value.code == Code.CANNOT_CREATE_SIGNATURE
        assert "correct horse" not in err.value.detail


def test_key_and_certificate_must_match(tmp_path: Path, rsa_key: tuple[Path, k.NewKey]) -> None:
    directory, new = rsa_key
    other = k.create_key(tmp_path, "external", None, "ec-p256")
    with pytest.raises(XRoadError) as err:
        k.load_signing_key(directory, new.file_name, other.cert_der, PASS)
    assert err.value.code == Code.CANNOT_CREATE_SIGNATURE


def test_unencrypted_ec_key(tmp_path: Path) -> None:
    new = k.create_key(tmp_path / "keys", k.KeySource.EXTERNAL, None, "ec-p256")
    assert (tmp_path / "keys" / new.file_name).read_bytes().startswith(b"-----BEGIN PRIVATE KEY")
    key = k.load_signing_key(tmp_path / "keys", new.file_name, new.cert_der, None)
    assert key.algorithm.name == "SHA512withECDSA"
    cert = load_certificate(new.cert_der)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.subject.rfc4514_string() == "CN=externalSigningKey"
    assert raw.verify(cert.public_key(), key.algorithm, key.sign(b"x"), b"x")
    # A passphrase given for an unencrypted key does no harm.
    assert k.load_signing_key(tmp_path / "keys", new.file_name, new.cert_der, PASS).key_id


def test_delete_and_refusals(tmp_path: Path) -> None:
    new = k.create_key(tmp_path, "internal", None, "ec-p256")
    k.delete_key_file(tmp_path, new.file_name)
    assert not (tmp_path / new.file_name).exists()
    with pytest.raises(XRoadError) as err:
        k.load_signing_key(tmp_path, new.file_name, new.cert_der, None)
    assert err.value.code == Code.CANNOT_CREATE_SIGNATURE
    for bad in ("../central.toml", "/etc/passwd", ".hidden", ""):
        with pytest.raises(XRoadError) as err:
            k.load_signing_key(tmp_path, bad, new.cert_der, None)
        assert err.value.code == Code.INVALID_REQUEST
    with pytest.raises(XRoadError) as err:
        k.create_key(tmp_path, "internal", None, "dsa1024")
    assert err.value.code == Code.INVALID_REQUEST
    with pytest.raises(ValueError):
        k.create_key(tmp_path, "other", None)
    (tmp_path / "damaged.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n")
    with pytest.raises(XRoadError) as err:
        k.load_signing_key(tmp_path, "damaged.pem", new.cert_der, None)
    assert err.value.code == Code.CANNOT_CREATE_SIGNATURE
