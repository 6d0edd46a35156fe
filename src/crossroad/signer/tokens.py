"""Tokens that hold the signer's private keys, and the software token (protocols.md §10.1).

A token is a container of key pairs that signs after a PIN login.  Two kinds exist: the
software token here (keys encrypted at rest under the PIN) and PKCS#11 tokens
(:mod:`crossroad.signer.pkcs11`).  Both implement :class:`Token`; their methods block (disk,
key derivation, private-key operations) and are called from the token's own worker thread
(:attr:`Token.executor`), never from the event loop.

Software token layout (one directory, every file 0600)::

    token.json        salt and scrypt parameters, and a verifier of the derived key
    keys/<id>.pem     PKCS#8, encrypted with a password derived from the PIN

The PIN is stretched with scrypt; the first half of the result encrypts the keys (PKCS#8
PBES2, cryptography's best available encryption), the second half is hashed once more and
stored as the verifier, so a wrong PIN is refused without trying to decrypt anything.  The
PIN itself is never stored or logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from crossroad.crypto import keys
from crossroad.crypto.algorithms import SignatureAlgorithm
from crossroad.errors import Code, XRoadError

SOFTWARE_TOKEN_ID: Final = "0"  # noqa: S105 (NIIS's id of the software token)
MIN_PIN_LENGTH: Final = 4


@dataclass(frozen=True)
class KeySpec:
    """A key type the signer generates: ``rsa2048``, ``rsa3072``, ``ec-p256``, ``ec-p384``."""

    name: str
    algorithm: str  # "RSA" or "EC"
    size: int  # RSA modulus bits, or EC field bits
    curve_oid: str | None = None

    def generate(self) -> PrivateKeyTypes:
        """A new key pair in software (the software token's generator)."""
        if self.algorithm == "RSA":
            return rsa.generate_private_key(public_exponent=65537, key_size=self.size)
        return ec.generate_private_key(ec.SECP256R1() if self.size == 256 else ec.SECP384R1())


KEY_SPECS: Final = {
    s.name: s
    for s in (
        KeySpec("rsa2048", "RSA", 2048),
        KeySpec("rsa3072", "RSA", 3072),
        KeySpec("ec-p256", "EC", 256, "1.2.840.10045.3.1.7"),
        KeySpec("ec-p384", "EC", 384, "1.3.132.0.34"),
    )
}
DEFAULT_KEY_SPEC: Final = "rsa2048"  # signer.key-length 2048 (§10.1)


def key_spec(name: str) -> KeySpec:
    spec = KEY_SPECS.get(name.strip().lower())
    if spec is None:
        raise XRoadError(
            Code.INVALID_REQUEST,
            f"Unknown key type {name!r} (known: {', '.join(KEY_SPECS)})",
        )
    return spec


@dataclass(frozen=True)
class TokenKey:
    """A key pair as the token sees it: its id, label and public key (SubjectPublicKeyInfo)."""

    key_id: str
    label: str
    public_key_der: bytes


def check_pin_policy(pin: str) -> None:
    if len(pin) < MIN_PIN_LENGTH:
        raise XRoadError(
            Code.TOKEN_PIN_POLICY_FAILURE, f"The PIN must have at least {MIN_PIN_LENGTH} characters"
        )


class Token(Protocol):
    """What the signer needs of a token.  Every method blocks: call it on :attr:`executor`."""

    id: str
    label: str
    executor: ThreadPoolExecutor
    sign_operations: int  # private-key operations performed (for status and tests)

    @property
    def kind(self) -> str:
        """``software`` or ``pkcs11``."""
        ...

    @property
    def active(self) -> bool:
        """Logged in: its keys can sign."""
        ...

    @property
    def initialized(self) -> bool: ...

    def describe(self) -> dict[str, Any]: ...

    def login(self, pin: str) -> None: ...

    def logout(self) -> None: ...

    def key_pairs(self) -> list[TokenKey]:
        """The key pairs on the token (the software token needs no login for this)."""
        ...

    def generate_key(self, spec: KeySpec, label: str) -> TokenKey: ...

    def delete_key(self, key_id: str) -> None: ...

    def sign(self, key_id: str, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        """Sign ``data`` (hashing it with the algorithm's digest); ECDSA results are DER."""
        ...

    def close(self) -> None: ...


def not_active(token_id: str) -> XRoadError:
    return XRoadError(Code.TOKEN_NOT_ACTIVE, f"Token '{token_id}' not active")


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to a file only the owner can read."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def spki_der(key: PrivateKeyTypes) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class SoftwareToken:
    """Keys in files, encrypted with a key derived from the PIN; decrypted into memory on login.

    Loading a private key is slow (tens of milliseconds for RSA), so keys are loaded once at
    login and kept until logout.
    """

    kind: Final = "software"

    def __init__(self, directory: Path, token_id: str = SOFTWARE_TOKEN_ID) -> None:
        self.id = token_id
        self.label = f"softToken-{token_id}"
        self.directory = directory
        # Software keys sign in parallel; two workers keep both cores busy between batches.
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix=f"token-{token_id}")
        self.sign_operations = 0
        self._lock = threading.Lock()
        self._password: bytes | None = None
        self._loaded: dict[str, PrivateKeyTypes] = {}

    # -- state on disk -----------------------------------------------------------------

    @property
    def _meta_path(self) -> Path:
        return self.directory / "token.json"

    @property
    def _keys_dir(self) -> Path:
        return self.directory / "keys"

    @property
    def initialized(self) -> bool:
        return self._meta_path.is_file()

    def _meta(self) -> dict[str, Any]:
        try:
            meta = json.loads(self._meta_path.read_bytes())
        except FileNotFoundError:
            raise XRoadError(
                Code.TOKEN_NOT_INITIALIZED, f"Token '{self.id}' is not initialized"
            ) from None
        except (OSError, ValueError) as exc:
            raise XRoadError(Code.IO_ERROR, f"Cannot read token '{self.id}': {exc}") from exc
        if not isinstance(meta, dict):
            raise XRoadError(Code.IO_ERROR, f"Token '{self.id}' metadata is malformed")
        return meta

    @staticmethod
    def _derive(pin: str, meta: dict[str, Any]) -> tuple[bytes, str]:
        """(key-encryption password, verifier) from the PIN and the token's scrypt settings."""
        try:
            kdf = Scrypt(
                salt=base64.b64decode(meta["salt"]),
                length=64,
                n=int(meta["n"]),
                r=int(meta["r"]),
                p=int(meta["p"]),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise XRoadError(Code.IO_ERROR, "Token metadata is malformed") from exc
        derived = kdf.derive(pin.encode("utf-8"))
        password = base64.b64encode(derived[:32])
        verifier = hashlib.sha256(b"crossroad-token-verifier" + derived[32:]).hexdigest()
        return password, verifier

    def initialize(self, pin: str, *, n: int = 2**15) -> None:
        """Create the token with ``pin`` (refused if it exists)."""
        check_pin_policy(pin)
        if self.initialized:
            raise XRoadError(Code.INVALID_REQUEST, f"Token '{self.id}' is already initialized")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._keys_dir.mkdir(exist_ok=True, mode=0o700)
        meta: dict[str, Any] = {
            "version": 1,
            "kdf": "scrypt",
            "salt": base64.b64encode(secrets.token_bytes(16)).decode(),
            "n": n,
            "r": 8,
            "p": 1,
        }
        meta["verifier"] = self._derive(pin, meta)[1]
        write_private(self._meta_path, json.dumps(meta, indent=2).encode())

    # -- login -------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._password is not None

    def login(self, pin: str) -> None:
        meta = self._meta()
        password, verifier = self._derive(pin, meta)
        if not hmac.compare_digest(verifier, str(meta.get("verifier", ""))):
            raise XRoadError(Code.PIN_INCORRECT, "PIN incorrect")
        loaded = {}
        for path in sorted(self._keys_dir.glob("*.pem")):
            loaded[path.stem] = self._load(path, password)
        with self._lock:
            self._password = password
            self._loaded = loaded

    def logout(self) -> None:
        with self._lock:
            self._password = None
            self._loaded = {}

    def _load(self, path: Path, password: bytes) -> PrivateKeyTypes:
        try:
            return serialization.load_pem_private_key(path.read_bytes(), password)
        except (ValueError, TypeError) as exc:
            raise XRoadError(
                Code.KEY_NOT_AVAILABLE, f"Key '{path.stem}' cannot be decrypted with this PIN"
            ) from exc

    # -- keys --------------------------------------------------------------------------

    def key_pairs(self) -> list[TokenKey]:
        """Key ids and public keys; the public halves are kept beside the encrypted keys."""
        found = []
        for path in sorted(self._keys_dir.glob("*.pub")):
            label = ""
            label_path = path.with_suffix(".label")
            if label_path.is_file():
                label = label_path.read_text("utf-8")
            found.append(TokenKey(path.stem, label, path.read_bytes()))
        return found

    def generate_key(self, spec: KeySpec, label: str) -> TokenKey:
        if self._password is None:
            raise not_active(self.id)
        key = spec.generate()
        key_id = secrets.token_hex(20).upper()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(self._password),
        )
        public = spki_der(key)
        write_private(self._keys_dir / f"{key_id}.pem", pem)
        write_private(self._keys_dir / f"{key_id}.pub", public)
        write_private(self._keys_dir / f"{key_id}.label", label.encode("utf-8"))
        with self._lock:
            self._loaded[key_id] = key
        return TokenKey(key_id, label, public)

    def delete_key(self, key_id: str) -> None:
        if self._password is None:
            raise not_active(self.id)
        for suffix in (".pem", ".pub", ".label"):
            (self._keys_dir / f"{key_id}{suffix}").unlink(missing_ok=True)
        with self._lock:
            self._loaded.pop(key_id, None)

    def private_key(self, key_id: str) -> PrivateKeyTypes:
        """The loaded private key (for the authentication key handed to the TLS layer)."""
        if self._password is None:
            raise not_active(self.id)
        key = self._loaded.get(key_id)
        if key is None:
            raise XRoadError(Code.KEY_NOT_FOUND, f"Key '{key_id}' not found on token '{self.id}'")
        return key

    def sign(self, key_id: str, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        key = self.private_key(key_id)
        try:
            signature = keys.sign(key, algorithm, data)
        except XRoadError as err:
            raise XRoadError(Code.UNSUPPORTED_SIGN_ALGORITHM, err.detail) from err
        with self._lock:
            self.sign_operations += 1
        return signature

    # -- description -------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.kind,
            "label": self.label,
            "initialized": self.initialized,
            "active": self.active,
            "available": True,
            "sign_operations": self.sign_operations,
        }

    def close(self) -> None:
        self.logout()
        self.executor.shutdown(wait=True)
