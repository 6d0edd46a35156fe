"""Configuration signing keys of the central server: key files and their certificates.

protocols.md §5.1 (the internal and external directories are each signed with their own key),
§5.2 (``Verification-certificate-hash`` names the certificate), §5.3 (the certificate in anchors
and in shared parameters' ``source`` is only a public-key container), §11.1 (several keys per
source, one active).

A key is a private key in ``STATE/keys/<KEY_ID>.pem`` (PKCS#8 PEM, encrypted when a passphrase is
configured, mode 0600) and a self-signed certificate shaped like NIIS's configuration signing
certificates: ``CN=internalSigningKey`` / ``CN=externalSigningKey``, serial 1, valid from
1970-01-01 to 2038-01-01, key usage nonRepudiation + keyCertSign, CA basic constraints.  The key
id is the upper-case hex SHA-1 of the public key (SubjectPublicKeyInfo DER), so it is stable and
names the key everywhere (registry records, file names, the CLI).

Which key is active is a registry fact (:mod:`crossroad.central.registry`); this module only
creates, loads and deletes the files.  Private keys never appear in a repr or a message.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from crossroad.crypto.algorithms import SHA512, DigestAlgorithm, SignatureAlgorithm
from crossroad.crypto.certs import cert_der, load_certificate
from crossroad.crypto.keys import default_algorithm
from crossroad.crypto.keys import sign as raw_sign
from crossroad.errors import Code, XRoadError

__all__ = [
    "KEY_TYPES",
    "KeySource",
    "NewKey",
    "SigningKey",
    "create_key",
    "delete_key_file",
    "key_id_of",
    "load_signing_key",
    "new_key_and_certificate",
]

KEYS_DIR = "keys"
_NOT_BEFORE = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NOT_AFTER = dt.datetime(2038, 1, 1, tzinfo=dt.UTC)
_KEY_ID = re.compile(r"[0-9A-F]{40}")

#: Key types ``crossroad central keys add --key-type`` accepts.
KEY_TYPES = ("rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384")


class KeySource(StrEnum):
    """The configuration source a key signs for."""

    INTERNAL = "internal"
    EXTERNAL = "external"

    @property
    def common_name(self) -> str:
        return f"{self.value}SigningKey"


def _generate(key_type: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if key_type.startswith("rsa") and key_type[3:] in ("2048", "3072", "4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    curves: dict[str, ec.EllipticCurve] = {"ec-p256": ec.SECP256R1(), "ec-p384": ec.SECP384R1()}
    if key_type in curves:
        return ec.generate_private_key(curves[key_type])
    raise XRoadError(
        Code.INVALID_REQUEST, f"Unknown key type {key_type!r} (one of {', '.join(KEY_TYPES)})"
    )


def key_id_of(cert: x509.Certificate | bytes) -> str:
    """The key id: upper-case hex SHA-1 of the certificate's SubjectPublicKeyInfo."""
    certificate = load_certificate(cert) if isinstance(cert, bytes) else cert
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha1(spki).hexdigest().upper()


def new_key_and_certificate(
    source: KeySource | str, key_type: str = "rsa2048"
) -> tuple[PrivateKeyTypes, x509.Certificate]:
    """A fresh key pair and its self-signed certificate (NIIS's shape, see module doc)."""
    src = KeySource(source)
    key = _generate(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, src.common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(_NOT_BEFORE)
        .not_valid_after(_NOT_AFTER)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA512())
    )
    return key, cert


@dataclass(frozen=True)
class NewKey:
    """What :func:`create_key` wrote: the record the registry keeps about the key."""

    key_id: str
    source: KeySource
    cert_der: bytes = dataclasses.field(repr=False)
    file_name: str


@dataclass(frozen=True)
class SigningKey:
    """A loaded configuration signing key, ready to sign a directory."""

    key_id: str
    cert_der: bytes = dataclasses.field(repr=False)
    private_key: PrivateKeyTypes = dataclasses.field(repr=False, compare=False)
    algorithm: SignatureAlgorithm

    @classmethod
    def from_key(
        cls, private_key: PrivateKeyTypes, cert: x509.Certificate, digest: DigestAlgorithm = SHA512
    ) -> SigningKey:
        if private_key.public_key() != cert.public_key():
            raise XRoadError(
                Code.CANNOT_CREATE_SIGNATURE, "The signing key does not match its certificate"
            )
        return cls(
            key_id=key_id_of(cert),
            cert_der=cert_der(cert),
            private_key=private_key,
            algorithm=default_algorithm(private_key, digest),
        )

    def sign(self, data: bytes) -> bytes:
        return raw_sign(self.private_key, self.algorithm, data)


def keys_dir(state_dir: str | os.PathLike[str]) -> Path:
    return Path(state_dir) / KEYS_DIR


def _key_path(directory: Path, file_name: str) -> Path:
    # The file name comes from a registry record: never let it point outside the keys directory.
    if "/" in file_name or "\\" in file_name or file_name.startswith(".") or not file_name:
        raise XRoadError(Code.INVALID_REQUEST, f"Bad key file name {file_name!r}")
    return directory / file_name


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create_key(
    directory: str | os.PathLike[str],
    source: KeySource | str,
    passphrase: bytes | None,
    key_type: str = "rsa2048",
) -> NewKey:
    """Generate a key for ``source`` and store it in ``directory`` (``STATE/keys``)."""
    src = KeySource(source)
    key, cert = new_key_and_certificate(src, key_type)
    key_id = key_id_of(cert)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True, mode=0o700)
    file_name = f"{key_id}.pem"
    _write_private(_key_path(target, file_name), pem)
    return NewKey(key_id=key_id, source=src, cert_der=cert_der(cert), file_name=file_name)


def load_signing_key(
    directory: str | os.PathLike[str],
    file_name: str,
    cert: bytes,
    passphrase: bytes | None,
    digest: DigestAlgorithm = SHA512,
) -> SigningKey:
    """Load the key in ``directory/file_name`` and pair it with its certificate ``cert``."""
    path = _key_path(Path(directory), file_name)
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise XRoadError(
            Code.CANNOT_CREATE_SIGNATURE, f"Cannot read signing key file {path}: {exc.strerror}"
        ) from exc
    encrypted = b"ENCRYPTED" in pem.split(b"\n", 1)[0]
    if encrypted and not passphrase:
        raise XRoadError(
            Code.CANNOT_CREATE_SIGNATURE,
            f"Signing key {path.name} is encrypted and no passphrase is configured",
        )
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase if encrypted else None)
    except (ValueError, TypeError) as exc:
        # The message of cryptography never contains key material; keep ours just as plain.
        raise XRoadError(
            Code.CANNOT_CREATE_SIGNATURE,
            f"Cannot load signing key {path.name} (wrong passphrase or damaged file)",
        ) from exc
    return SigningKey.from_key(key, load_certificate(cert), digest)


def delete_key_file(directory: str | os.PathLike[str], file_name: str) -> None:
    _key_path(Path(directory), file_name).unlink(missing_ok=True)


def is_key_id(text: str) -> bool:
    return _KEY_ID.fullmatch(text) is not None
