"""A configuration proxy's directory: settings, sources, signing keys and its own anchor (a shell;
protocols.md §5.3, §11.2).

Layout of ``DIR``::

    confproxy.json                  settings, sources, key records, the active key
    keys/<KEY_ID>.pem               signing key (PKCS#8 PEM, mode 0600; encrypted when the
    keys/<KEY_ID>.crt               passphrase variable is set) and its self-signed certificate
    sources/<NAME>/anchor.xml       the anchor of each mirrored source
    download/<NAME>/V<n>/           what the configuration client downloaded (NIIS layout)
    public/<NAME>/conf-v<n>         the re-signed directories, served as /<NAME>/conf?version=n
    public/<NAME>/<GEN>/V<n>/...    their content files

A source is served under its name, by default the instance identifier of its anchor.  Several
keys may exist; the active one signs, and all of them are listed in the proxy's anchor and in the
``source`` of the V3+ shared parameters it serves, so that a new key is trusted by clients one
cycle before it starts signing (rotation without loss of trust).  Settings are re-read every
cycle, so ``keys activate`` and ``add-source`` take effect while the proxy runs.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from crossroad import settingsfile
from crossroad.crypto.algorithms import (
    SHA512,
    DigestAlgorithm,
    SignatureAlgorithm,
    digest_algorithm,
)
from crossroad.crypto.certs import load_certificate
from crossroad.crypto.keys import default_algorithm
from crossroad.crypto.keys import sign as raw_sign
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import AnchorSource, ConfigurationAnchor
from crossroad.globalconf.privateparams import parse_anchor, render_anchor

CONFIG_FILE = "confproxy.json"
PASSPHRASE_ENV = "CROSSROAD_CONFPROXY_PASSPHRASE"  # noqa: S105 (a variable name)
KEY_TYPES = ("rsa2048", "rsa3072", "rsa4096", "ec-p256", "ec-p384")
VERSIONS = (2, 3, 4, 5, 6)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_ADDRESS = re.compile(r"(?P<host>\[[0-9A-Fa-f:]+\]|[A-Za-z0-9._-]+):(?P<port>\d{1,5})\Z")
_KEY_ID = re.compile(r"[0-9A-F]{40}\Z")


def _invalid(message: str) -> XRoadError:
    return XRoadError(Code.INVALID_REQUEST, message)


def check_name(name: str, what: str = "name") -> str:
    """A name used in URLs and file names: letters, digits, ``.``, ``_``, ``-``."""
    if not _NAME.match(name) or name in (".", ".."):
        raise _invalid(f"Invalid {what} {name!r} (letters, digits, '.', '_', '-')")
    return name


def split_address(address: str) -> tuple[str, int]:
    found = _ADDRESS.match(address.strip())
    if found is None or not 0 < int(found["port"]) < 65536:
        raise _invalid(f"Address must be HOST:PORT, not {address!r}")
    return found["host"].strip("[]"), int(found["port"])


@dataclass(frozen=True)
class SourceConfig:
    """A mirrored source: its name (URL path), instance and allowed federation partners."""

    name: str
    instance: str
    allowed_federations: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    key_type: str
    created: str


@dataclass(frozen=True)
class ProxyConfig:
    """``confproxy.json``."""

    directory: Path
    name: str
    address: str
    public_address: str | None = None
    validity_interval_seconds: int = 600
    update_interval_seconds: float = 60.0
    hash_algorithm: str = SHA512.uri
    signature_digest: str = SHA512.name
    min_version: int = 2
    active_key: str | None = None
    keys: tuple[KeyRecord, ...] = ()
    sources: tuple[SourceConfig, ...] = ()

    def __post_init__(self) -> None:
        check_name(self.name, "proxy name")
        split_address(self.address)
        if self.public_address is not None and not self.public_address.strip():
            raise _invalid("public_address must not be empty")
        if not 1 <= self.validity_interval_seconds <= 10**7:
            raise _invalid("validity_interval_seconds must be between 1 and 10000000")
        if not 0.05 <= self.update_interval_seconds <= 86400:
            raise _invalid("update_interval_seconds must be between 0.05 and 86400")
        if self.min_version not in VERSIONS:
            raise _invalid(f"min_version must be one of {VERSIONS}")
        self.digest  # noqa: B018 (validates)
        self.hash_digest  # noqa: B018

    # -- derived --

    @property
    def listen(self) -> tuple[str, int]:
        return split_address(self.address)

    @property
    def served_address(self) -> str:
        """What clients connect to: the address in anchors and in rewritten ``source``."""
        return self.public_address or self.address

    @property
    def digest(self) -> DigestAlgorithm:
        return digest_algorithm(self.signature_digest)

    @property
    def hash_digest(self) -> DigestAlgorithm:
        return digest_algorithm(self.hash_algorithm)

    @property
    def versions(self) -> tuple[int, ...]:
        """Mirrored versions, newest first (lower ones borrow the newer ones' source certs)."""
        return tuple(v for v in sorted(VERSIONS, reverse=True) if v >= self.min_version)

    def source(self, name: str | None = None) -> SourceConfig:
        if name is None:
            if len(self.sources) != 1:
                raise _invalid(f"The proxy has {len(self.sources)} sources: name one")
            return self.sources[0]
        for found in self.sources:
            if found.name == name:
                return found
        raise _invalid(f"No source {name!r}")

    def anchor_path(self, source: str) -> Path:
        return self.directory / "sources" / check_name(source) / "anchor.xml"

    def download_dir(self, source: str, version: int) -> Path:
        return self.directory / "download" / check_name(source) / f"V{version}"

    def public_dir(self, source: str | None = None) -> Path:
        root = self.directory / "public"
        return root if source is None else root / check_name(source)

    def download_url(self, source: str) -> str:
        return f"http://{self.served_address}/{source}/conf"

    # -- persistence --

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> ProxyConfig:
        path = Path(directory) / CONFIG_FILE
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise _invalid(f"{directory} is not a configuration proxy directory") from None
        except (OSError, ValueError) as exc:
            raise _invalid(f"Cannot read {path}: {exc}") from exc
        if not isinstance(raw, dict):
            raise _invalid(f"{path} must hold a JSON object")
        try:
            return cls(
                directory=Path(directory),
                keys=tuple(KeyRecord(**k) for k in raw.pop("keys", ())),
                sources=tuple(
                    SourceConfig(s["name"], s["instance"], tuple(s.get("allowed_federations", ())))
                    for s in raw.pop("sources", ())
                ),
                **raw,
            )
        except (TypeError, KeyError) as exc:
            raise _invalid(f"{path} has unexpected content: {exc}") from exc

    def save(self) -> None:
        raw: dict[str, Any] = dataclasses.asdict(self)
        del raw["directory"]
        # Atomic: the running proxy re-reads this file every cycle.
        settingsfile.write(self.directory / CONFIG_FILE, json.dumps(raw, indent=2) + "\n")


# --- initialisation and sources ------------------------------------------------------------------


def init_proxy(
    directory: str | os.PathLike[str],
    name: str,
    address: str,
    *,
    public_address: str | None = None,
    validity_interval_seconds: int = 600,
    update_interval_seconds: float = 60.0,
    key_type: str = "rsa2048",
    passphrase: bytes | None = None,
) -> ProxyConfig:
    """Create a proxy directory with one (active) signing key."""
    root = Path(directory)
    if (root / CONFIG_FILE).exists():
        raise _invalid(f"{root} is already a configuration proxy directory")
    config = ProxyConfig(
        directory=root,
        name=name,
        address=address,
        public_address=public_address,
        validity_interval_seconds=validity_interval_seconds,
        update_interval_seconds=update_interval_seconds,
    )
    record = create_key(root, key_type, config.name, passphrase)
    config = dataclasses.replace(config, keys=(record,), active_key=record.key_id)
    config.save()
    return config


def add_source(
    config: ProxyConfig,
    anchor_bytes: bytes,
    name: str | None = None,
    allowed_federations: tuple[str, ...] = (),
) -> ProxyConfig:
    """Mirror the source of ``anchor_bytes`` (replacing a source of the same name)."""
    anchor = parse_anchor(anchor_bytes)
    source = SourceConfig(
        check_name(name or anchor.instance_identifier, "source name"),
        anchor.instance_identifier,
        allowed_federations,
    )
    path = config.anchor_path(source.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("anchor.xml.tmp")
    tmp.write_bytes(anchor_bytes)
    os.replace(tmp, path)
    others = tuple(s for s in config.sources if s.name != source.name)
    updated = dataclasses.replace(config, sources=(*others, source))
    updated.save()
    return updated


def load_source_anchor(config: ProxyConfig, source: str) -> tuple[ConfigurationAnchor, bytes]:
    path = config.anchor_path(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise XRoadError(Code.MALFORMED_ANCHOR, f"Cannot read {path}: {exc}") from exc
    return parse_anchor(data), data


# --- signing keys --------------------------------------------------------------------------------


def _generate(key_type: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if key_type in ("rsa2048", "rsa3072", "rsa4096"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[3:]))
    if key_type == "ec-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec-p384":
        return ec.generate_private_key(ec.SECP384R1())
    raise _invalid(f"Unknown key type {key_type!r} (one of {', '.join(KEY_TYPES)})")


def key_id_of(cert: x509.Certificate) -> str:
    """Upper-case hex SHA-1 of the public key (SubjectPublicKeyInfo DER)."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha1(spki).hexdigest().upper()


def _key_files(directory: Path, key_id: str) -> tuple[Path, Path]:
    if not _KEY_ID.match(key_id):
        raise _invalid(f"Invalid key id {key_id!r}")
    keys = directory / "keys"
    return keys / f"{key_id}.pem", keys / f"{key_id}.crt"


def create_key(
    directory: Path, key_type: str, proxy_name: str, passphrase: bytes | None
) -> KeyRecord:
    """A new key and its self-signed certificate (only a public-key container, §5.3)."""
    key = _generate(key_type)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{proxy_name} signing key")])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=20 * 365))
        .sign(key, hashes.SHA256())
    )
    key_id = key_id_of(cert)
    key_path, cert_path = _key_files(directory, key_id)
    key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return KeyRecord(key_id, key_type, now.isoformat())


def add_key(
    config: ProxyConfig, key_type: str, passphrase: bytes | None, *, activate: bool = False
) -> tuple[ProxyConfig, KeyRecord]:
    record = create_key(config.directory, key_type, config.name, passphrase)
    active = record.key_id if activate or config.active_key is None else config.active_key
    updated = dataclasses.replace(config, keys=(*config.keys, record), active_key=active)
    updated.save()
    return updated, record


def _record(config: ProxyConfig, key_id: str) -> KeyRecord:
    wanted = key_id.strip().upper()
    for record in config.keys:
        if record.key_id == wanted:
            return record
    raise _invalid(f"No signing key {key_id!r}")


def activate_key(config: ProxyConfig, key_id: str) -> ProxyConfig:
    updated = dataclasses.replace(config, active_key=_record(config, key_id).key_id)
    updated.save()
    return updated


def delete_key(config: ProxyConfig, key_id: str) -> ProxyConfig:
    record = _record(config, key_id)
    if record.key_id == config.active_key:
        raise _invalid("The active signing key cannot be deleted; activate another one first")
    updated = dataclasses.replace(config, keys=tuple(k for k in config.keys if k is not record))
    updated.save()
    for path in _key_files(config.directory, record.key_id):
        path.unlink(missing_ok=True)
    return updated


def key_certificate(config: ProxyConfig, key_id: str) -> x509.Certificate:
    _, cert_path = _key_files(config.directory, key_id)
    try:
        return load_certificate(cert_path.read_bytes())
    except OSError as exc:
        raise XRoadError(Code.CANNOT_CREATE_SIGNATURE, f"Cannot read {cert_path}: {exc}") from exc


def verification_certs(config: ProxyConfig) -> tuple[bytes, ...]:
    """DER certificates of every key, the active one first."""
    ordered = sorted(config.keys, key=lambda k: k.key_id != config.active_key)
    return tuple(
        key_certificate(config, k.key_id).public_bytes(serialization.Encoding.DER) for k in ordered
    )


@dataclass(frozen=True)
class Signer:
    """The active key, ready to sign directories."""

    key_id: str
    cert: x509.Certificate
    algorithm: SignatureAlgorithm
    private_key: PrivateKeyTypes = dataclasses.field(repr=False)

    def sign(self, data: bytes) -> bytes:
        return raw_sign(self.private_key, self.algorithm, data)


def active_signer(config: ProxyConfig, passphrase: bytes | None) -> Signer:
    if config.active_key is None:
        raise XRoadError(Code.CANNOT_CREATE_SIGNATURE, "The proxy has no active signing key")
    key_path, _ = _key_files(config.directory, config.active_key)
    try:
        pem = key_path.read_bytes()
        key = serialization.load_pem_private_key(
            pem, password=passphrase if b"ENCRYPTED" in pem.split(b"\n", 1)[0] else None
        )
    except (OSError, ValueError, TypeError) as exc:
        raise XRoadError(
            Code.CANNOT_CREATE_SIGNATURE,
            f"Cannot load signing key {config.active_key} (missing file or wrong passphrase)",
        ) from exc
    cert = key_certificate(config, config.active_key)
    return Signer(config.active_key, cert, default_algorithm(key, config.digest), key)


def passphrase_from_env() -> bytes | None:
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode() if value else None


# --- the proxy's own anchor ----------------------------------------------------------------------


def proxy_anchor(
    config: ProxyConfig, source: str | None = None, at: dt.datetime | None = None
) -> bytes:
    """The anchor clients use to download ``source`` through this proxy: its URL and the
    certificates of every proxy key."""
    chosen = config.source(source)
    anchor = ConfigurationAnchor(
        instance_identifier=chosen.instance,
        sources=(AnchorSource(config.download_url(chosen.name), verification_certs(config)),),
        generated_at=at or dt.datetime.now(dt.UTC),
    )
    return render_anchor(anchor)
