"""The signer's key configuration: keys, certificates and certificate requests (§10.1).

Records are frozen values; :class:`KeyConf` is the whole configuration, itself immutable, and
:class:`KeyConfStore` persists it as one JSON file (``keyconf.json`` in the signer's state
directory, written atomically, mode 0600).  Nothing secret is in it: private keys stay on
their tokens.

* a key: its token, usage (``auth`` or ``sign``; fixed at generation or by the first CSR),
  label, member (signing keys), key type and public key;
* a certificate: the key it certifies (matched by public key on import), its member
  (signing certificates), whether it is active;
* a CSR: the key, usage, member and subject it was made for.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, Literal

from cryptography import x509

from crossroad.crypto.certs import cert_der, cert_hash_hex, load_certificate
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId
from crossroad.signer.tokens import write_private

Usage = Literal["auth", "sign"]
USAGES: Final = ("auth", "sign")
FILE_NAME: Final = "keyconf.json"
VERSION: Final = 1


def parse_usage(text: str | None) -> Usage | None:
    if text is None or text == "":
        return None
    value = text.strip().lower()
    if value in ("auth", "authentication"):
        return "auth"
    if value in ("sign", "signing"):
        return "sign"
    raise XRoadError(Code.INVALID_REQUEST, f"Key usage must be auth or sign, not {text!r}")


def parse_member(text: str | None) -> ClientId | None:
    """A member id in the typed (``MEMBER:I/C/M``) or slash (``I/C/M``) form; subsystems map
    to their member, whose key signs for them."""
    if not text:
        return None
    client = ClientId.parse(text) if ":" in text else ClientId.from_header(text)
    return client.member_id()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any) -> bytes:
    if not isinstance(value, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(value, validate=True)


def _time(value: Any) -> dt.datetime:
    return dt.datetime.fromisoformat(str(value))


@dataclass(frozen=True)
class KeyRecord:
    id: str
    token_id: str
    label: str
    key_type: str  # rsa2048, ec-p256, ... (or "unknown" for keys found on a token)
    public_key_der: bytes  # SubjectPublicKeyInfo
    usage: Usage | None = None
    member: ClientId | None = None  # signing keys

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "token": self.token_id,
            "label": self.label,
            "key_type": self.key_type,
            "public_key": _b64(self.public_key_der),
            "usage": self.usage,
            "member": str(self.member) if self.member else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> KeyRecord:
        return cls(
            id=str(data["id"]),
            token_id=str(data["token"]),
            label=str(data.get("label") or ""),
            key_type=str(data.get("key_type") or "unknown"),
            public_key_der=_unb64(data["public_key"]),
            usage=parse_usage(data.get("usage")),
            member=parse_member(data.get("member")),
        )


@dataclass(frozen=True)
class CertRecord:
    """An imported certificate; ``id`` is the SHA-1 hex of its DER (NIIS's cert hash)."""

    id: str
    key_id: str
    der: bytes
    usage: Usage
    member: ClientId | None
    active: bool
    imported_at: dt.datetime
    cert: x509.Certificate = field(compare=False, repr=False)

    @classmethod
    def create(
        cls,
        cert: x509.Certificate,
        key_id: str,
        usage: Usage,
        member: ClientId | None,
        *,
        active: bool,
        now: dt.datetime,
    ) -> CertRecord:
        return cls(cert_hash_hex(cert), key_id, cert_der(cert), usage, member, active, now, cert)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key_id,
            "der": _b64(self.der),
            "usage": self.usage,
            "member": str(self.member) if self.member else None,
            "active": self.active,
            "imported_at": self.imported_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CertRecord:
        der = _unb64(data["der"])
        cert = load_certificate(der)
        usage = parse_usage(data["usage"])
        if usage is None:
            raise ValueError("certificate without usage")
        return cls(
            id=cert_hash_hex(cert),
            key_id=str(data["key"]),
            der=der,
            usage=usage,
            member=parse_member(data.get("member")),
            active=bool(data.get("active", True)),
            imported_at=_time(data["imported_at"]),
            cert=cert,
        )


@dataclass(frozen=True)
class CsrRecord:
    id: str
    key_id: str
    usage: Usage
    member: ClientId | None
    subject: str
    der: bytes
    created_at: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key_id,
            "usage": self.usage,
            "member": str(self.member) if self.member else None,
            "subject": self.subject,
            "der": _b64(self.der),
            "created_at": self.created_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CsrRecord:
        usage = parse_usage(data["usage"])
        if usage is None:
            raise ValueError("request without usage")
        return cls(
            id=str(data["id"]),
            key_id=str(data["key"]),
            usage=usage,
            member=parse_member(data.get("member")),
            subject=str(data.get("subject") or ""),
            der=_unb64(data["der"]),
            created_at=_time(data["created_at"]),
        )


@dataclass(frozen=True)
class Pkcs11ModuleRecord:
    id: str
    path: str


@dataclass(frozen=True)
class KeyConf:
    """The whole key configuration (immutable; changes give a new value)."""

    keys: tuple[KeyRecord, ...] = ()
    certs: tuple[CertRecord, ...] = ()
    csrs: tuple[CsrRecord, ...] = ()
    modules: tuple[Pkcs11ModuleRecord, ...] = ()

    # -- lookups -----------------------------------------------------------------------

    def key(self, key_id: str) -> KeyRecord:
        for key in self.keys:
            if key.id == key_id:
                return key
        raise XRoadError(Code.KEY_NOT_FOUND, f"Key '{key_id}' not found")

    def find_key(self, key_id: str) -> KeyRecord | None:
        return next((k for k in self.keys if k.id == key_id), None)

    def key_by_public_key(self, spki: bytes) -> KeyRecord | None:
        return next((k for k in self.keys if k.public_key_der == spki), None)

    def cert(self, cert_id: str) -> CertRecord:
        wanted = cert_id.strip().lower().replace(":", "")
        for cert in self.certs:
            if cert.id == wanted:
                return cert
        raise XRoadError(Code.CERT_NOT_FOUND, f"Certificate '{cert_id}' not found")

    def certs_of(self, key_id: str) -> tuple[CertRecord, ...]:
        return tuple(c for c in self.certs if c.key_id == key_id)

    def csr(self, csr_id: str) -> CsrRecord:
        for csr in self.csrs:
            if csr.id == csr_id:
                return csr
        raise XRoadError(Code.CSR_NOT_FOUND, f"Certificate request '{csr_id}' not found")

    def sign_certs_of(self, member: ClientId) -> tuple[CertRecord, ...]:
        """The member's signing certificates, active or not, newest first."""
        wanted = member.member_id()
        found = [c for c in self.certs if c.usage == "sign" and c.member == wanted]
        return tuple(sorted(found, key=lambda c: c.cert.not_valid_before_utc, reverse=True))

    # -- changes -----------------------------------------------------------------------

    def with_key(self, key: KeyRecord) -> KeyConf:
        others = tuple(k for k in self.keys if k.id != key.id)
        return replace(self, keys=(*others, key))

    def without_key(self, key_id: str) -> KeyConf:
        return replace(
            self,
            keys=tuple(k for k in self.keys if k.id != key_id),
            certs=tuple(c for c in self.certs if c.key_id != key_id),
            csrs=tuple(r for r in self.csrs if r.key_id != key_id),
        )

    def with_cert(self, cert: CertRecord) -> KeyConf:
        others = tuple(c for c in self.certs if c.id != cert.id)
        return replace(self, certs=(*others, cert))

    def without_cert(self, cert_id: str) -> KeyConf:
        return replace(self, certs=tuple(c for c in self.certs if c.id != cert_id))

    def with_csr(self, csr: CsrRecord) -> KeyConf:
        return replace(self, csrs=(*self.csrs, csr))

    def without_csrs(self, ids: Iterable[str]) -> KeyConf:
        drop = set(ids)
        return replace(self, csrs=tuple(r for r in self.csrs if r.id not in drop))

    def with_module(self, module: Pkcs11ModuleRecord) -> KeyConf:
        others = tuple(m for m in self.modules if m.id != module.id)
        return replace(self, modules=(*others, module))

    # -- JSON --------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "pkcs11_modules": [{"id": m.id, "path": m.path} for m in self.modules],
            "keys": [k.to_json() for k in self.keys],
            "certs": [c.to_json() for c in self.certs],
            "csrs": [r.to_json() for r in self.csrs],
        }

    @classmethod
    def from_json(cls, data: Any) -> KeyConf:
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise ValueError(f"not a version {VERSION} key configuration")
        return cls(
            keys=tuple(KeyRecord.from_json(k) for k in data.get("keys", [])),
            certs=tuple(CertRecord.from_json(c) for c in data.get("certs", [])),
            csrs=tuple(CsrRecord.from_json(r) for r in data.get("csrs", [])),
            modules=tuple(
                Pkcs11ModuleRecord(str(m["id"]), str(m["path"]))
                for m in data.get("pkcs11_modules", [])
            ),
        )


class KeyConfStore:
    """``keyconf.json`` in a state directory: read once, replaced atomically on every change."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> KeyConf:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return KeyConf()
        except OSError as exc:
            raise XRoadError(Code.IO_ERROR, f"Cannot read {self.path}: {exc}") from exc
        try:
            return KeyConf.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError, XRoadError) as exc:
            raise XRoadError(
                Code.IO_ERROR, f"Malformed key configuration {self.path}: {exc}"
            ) from exc

    def save(self, conf: KeyConf) -> None:
        data = json.dumps(conf.to_json(), indent=2, sort_keys=True).encode("utf-8")
        try:
            write_private(self.path, data + b"\n")
        except OSError as exc:
            raise XRoadError(Code.IO_ERROR, f"Cannot write {self.path}: {exc}") from exc
