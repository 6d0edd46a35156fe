"""PKCS#11 tokens (hardware security modules; SoftHSM2 in tests) through python-pkcs11 (§10.1).

A :class:`Pkcs11Module` is one configured PKCS#11 library; every token present in its slots
becomes a :class:`Pkcs11Token` with the id ``<module id>:<token serial>``.  Keys are generated
on the token, private halves sensitive and not extractable, and found again by ``CKA_ID``
(the signer's key id is its upper-case hex).

Signing hashes the data here and hands the digest to the token with the raw mechanisms
(``CKM_RSA_PKCS`` over a DigestInfo, ``CKM_RSA_PKCS_PSS``, ``CKM_ECDSA``), which every
PKCS#11 implementation offers, unlike the combined hash-and-sign ones.  A token's session is
not safe to share between threads, so each token works on one worker thread of its own.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import MGF, Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.util.ec import encode_ec_public_key, encode_named_curve_parameters

from crossroad.crypto.algorithms import DigestAlgorithm, SignatureAlgorithm
from crossroad.crypto.keys import ecdsa_raw_to_der
from crossroad.errors import Code, XRoadError
from crossroad.signer.tokens import KeySpec, TokenKey, check_pin_policy, not_active

DEFAULT_MODULE: Final = "/usr/lib/softhsm/libsofthsm2.so"

_HASH_MECHANISMS: Final = {
    "sha1": (Mechanism.SHA_1, MGF.SHA1),
    "sha224": (Mechanism.SHA224, MGF.SHA224),
    "sha256": (Mechanism.SHA256, MGF.SHA256),
    "sha384": (Mechanism.SHA384, MGF.SHA384),
    "sha512": (Mechanism.SHA512, MGF.SHA512),
}
_CAPABILITIES: Final = MechanismFlag.SIGN | MechanismFlag.VERIFY


# RFC 8017 §9.2 note 1: the DER DigestInfo prefix per hash (NULL parameters included).
_DIGEST_INFO_PREFIX: Final = {
    "sha1": bytes.fromhex("3021300906052b0e03021a05000414"),
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}
# Named curves by their DER OID (CKA_EC_PARAMS): the byte length of the group order.
_CURVE_ORDER_BYTES: Final = {
    bytes.fromhex("06082a8648ce3d030107"): 32,  # P-256
    bytes.fromhex("06052b81040022"): 48,  # P-384
    bytes.fromhex("06052b81040023"): 66,  # P-521
}


def _digest_info(digest: DigestAlgorithm, value: bytes) -> bytes:
    """The PKCS#1 v1.5 DigestInfo that CKM_RSA_PKCS signs."""
    return _DIGEST_INFO_PREFIX[digest.hashlib_name] + value


def _login_error(exc: Exception, token_id: str) -> XRoadError:
    if isinstance(exc, pkcs11.PinIncorrect):
        return XRoadError(Code.PIN_INCORRECT, "PIN incorrect")
    if isinstance(exc, pkcs11.PinLocked):
        return XRoadError(Code.LOGIN_FAILED, f"The PIN of token '{token_id}' is locked")
    if isinstance(exc, pkcs11.UserPinNotInitialized):
        return XRoadError(Code.TOKEN_NOT_INITIALIZED, f"Token '{token_id}' has no user PIN")
    if isinstance(exc, pkcs11.PinLenRange | pkcs11.PinInvalid):
        return XRoadError(Code.PIN_INCORRECT, "PIN incorrect (refused by the token)")
    if isinstance(exc, pkcs11.TokenNotPresent | pkcs11.DeviceRemoved):
        return XRoadError(Code.TOKEN_NOT_AVAILABLE, f"Token '{token_id}' is not present")
    return XRoadError(Code.LOGIN_FAILED, f"Login to token '{token_id}' failed: {exc!r}")


class Pkcs11Module:
    """One PKCS#11 library and the tokens in its slots."""

    def __init__(self, module_id: str, path: str | Path = DEFAULT_MODULE) -> None:
        self.id = module_id
        self.path = str(path)
        self._lib: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._lib is None:
                try:
                    self._lib = pkcs11.lib(self.path)
                except (RuntimeError, OSError, pkcs11.PKCS11Error) as exc:
                    raise XRoadError(
                        Code.TOKEN_NOT_AVAILABLE,
                        f"Cannot load PKCS#11 module {self.path}: {exc}",
                    ) from exc
            return self._lib

    def rescan(self) -> None:
        """Let the library see tokens created since it was loaded (closes every session)."""
        lib = self._load()
        with self._lock:
            lib.reinitialize()

    def tokens(self) -> list[Pkcs11Token]:
        lib = self._load()
        found = []
        try:
            for slot in lib.get_slots(token_present=True):
                token = slot.get_token()
                if pkcs11.TokenFlag.TOKEN_INITIALIZED not in token.flags:
                    continue
                found.append(Pkcs11Token(self, token))
        except pkcs11.PKCS11Error as exc:
            raise XRoadError(
                Code.TOKEN_NOT_AVAILABLE, f"PKCS#11 module {self.path} failed: {exc!r}"
            ) from exc
        return found


class Pkcs11Token:
    """A token in a PKCS#11 slot.  Logged in means: one open read-write user session."""

    kind: Final = "pkcs11"
    initialized: Final = True

    def __init__(self, module: Pkcs11Module, token: Any) -> None:
        self.module = module
        self._token = token
        self.serial = token.serial.decode("ascii", "replace").strip()
        self.id = f"{module.id}:{self.serial}"
        self.label = str(token.label).strip()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"p11-{self.serial}")
        self.sign_operations = 0
        self._session: Any = None
        self._handles: dict[str, Any] = {}

    # -- login -------------------------------------------------------------------------

    @property
    def active(self) -> bool:
        return self._session is not None

    def login(self, pin: str) -> None:
        check_pin_policy(pin)
        self.logout()
        try:
            self._session = self._token.open(user_pin=pin, rw=True)
        except pkcs11.PKCS11Error as exc:
            raise _login_error(exc, self.id) from exc

    def logout(self) -> None:
        session, self._session = self._session, None
        self._handles = {}
        if session is not None:
            # A removed token's session is gone anyway.
            with contextlib.suppress(pkcs11.PKCS11Error):
                session.close()

    # -- keys --------------------------------------------------------------------------

    def _with_session(self) -> tuple[Any, bool]:
        if self._session is not None:
            return self._session, False
        try:
            return self._token.open(), True
        except pkcs11.PKCS11Error as exc:
            raise XRoadError(
                Code.TOKEN_NOT_AVAILABLE, f"Token '{self.id}' cannot be opened: {exc!r}"
            ) from exc

    @staticmethod
    def _spki(public: Any) -> bytes:
        if public.key_type == KeyType.RSA:
            numbers = rsa.RSAPublicNumbers(
                int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big"),
                int.from_bytes(public[Attribute.MODULUS], "big"),
            )
            return numbers.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        if public.key_type == KeyType.EC:
            return bytes(encode_ec_public_key(public))
        raise XRoadError(Code.KEY_NOT_AVAILABLE, f"Unsupported key type {public.key_type!r}")

    def key_pairs(self) -> list[TokenKey]:
        session, temporary = self._with_session()
        try:
            found = []
            for public in session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY}):
                key_id = bytes(public.id or b"")
                if not key_id or public.key_type not in (KeyType.RSA, KeyType.EC):
                    continue
                found.append(TokenKey(key_id.hex().upper(), public.label or "", self._spki(public)))
            return found
        except pkcs11.PKCS11Error as exc:
            raise XRoadError(
                Code.TOKEN_NOT_AVAILABLE, f"Cannot list keys of token '{self.id}': {exc!r}"
            ) from exc
        finally:
            if temporary:
                session.close()

    def generate_key(self, spec: KeySpec, label: str) -> TokenKey:
        if self._session is None:
            raise not_active(self.id)
        key_id = secrets.token_bytes(20)
        private_template = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.SIGN: True,
        }
        public_template = {Attribute.TOKEN: True, Attribute.VERIFY: True}
        options: dict[str, Any] = {
            "id": key_id,
            "label": label,
            "store": True,
            "capabilities": _CAPABILITIES,
            "public_template": public_template,
            "private_template": private_template,
        }
        try:
            if spec.algorithm == "RSA":
                public, _private = self._session.generate_keypair(KeyType.RSA, spec.size, **options)
            else:
                params = self._session.create_domain_parameters(
                    KeyType.EC,
                    {Attribute.EC_PARAMS: encode_named_curve_parameters(spec.curve_oid or "")},
                    local=True,
                )
                public, _private = params.generate_keypair(**options)
        except pkcs11.PKCS11Error as exc:
            raise XRoadError(
                Code.FAILED_TO_GENERATE_PRIVATE_KEY,
                f"Token '{self.id}' could not generate a {spec.name} key: {exc!r}",
            ) from exc
        return TokenKey(key_id.hex().upper(), label, self._spki(public))

    def _private(self, key_id: str) -> Any:
        if self._session is None:
            raise not_active(self.id)
        handle = self._handles.get(key_id)
        if handle is None:
            try:
                handle = self._session.get_key(
                    object_class=ObjectClass.PRIVATE_KEY, id=bytes.fromhex(key_id)
                )
            except (pkcs11.NoSuchKey, ValueError) as exc:
                raise XRoadError(
                    Code.KEY_NOT_FOUND, f"Key '{key_id}' not found on token '{self.id}'"
                ) from exc
            except pkcs11.PKCS11Error as exc:
                raise XRoadError(
                    Code.KEY_NOT_AVAILABLE, f"Key '{key_id}' on token '{self.id}': {exc!r}"
                ) from exc
            self._handles[key_id] = handle
        return handle

    def delete_key(self, key_id: str) -> None:
        if self._session is None:
            raise not_active(self.id)
        try:
            for obj in self._session.get_objects({Attribute.ID: bytes.fromhex(key_id)}):
                obj.destroy()
        except pkcs11.PKCS11Error as exc:
            raise XRoadError(
                Code.KEY_NOT_AVAILABLE, f"Cannot delete key '{key_id}': {exc!r}"
            ) from exc
        self._handles.pop(key_id, None)

    def sign(self, key_id: str, algorithm: SignatureAlgorithm, data: bytes) -> bytes:
        key = self._private(key_id)
        digest = algorithm.digest.digest(data)
        wanted = KeyType.EC if algorithm.key_type == "EC" else KeyType.RSA
        if key.key_type != wanted:
            raise XRoadError(
                Code.UNSUPPORTED_SIGN_ALGORITHM,
                f"Key '{key_id}' is {key.key_type.name}, cannot sign with {algorithm.name}",
            )
        try:
            if algorithm.key_type == "RSA":
                signature = bytes(
                    key.sign(_digest_info(algorithm.digest, digest), mechanism=Mechanism.RSA_PKCS)
                )
            elif algorithm.key_type == "RSA-PSS":
                hash_mech, mgf = _HASH_MECHANISMS[algorithm.digest.hashlib_name]
                signature = bytes(
                    key.sign(
                        digest,
                        mechanism=Mechanism.RSA_PKCS_PSS,
                        mechanism_param=(hash_mech, mgf, algorithm.digest.size),
                    )
                )
            else:
                # CKM_ECDSA takes the leftmost bits of the hash up to the order's length.
                size = _CURVE_ORDER_BYTES.get(bytes(key[Attribute.EC_PARAMS]), len(digest))
                raw = bytes(key.sign(digest[:size], mechanism=Mechanism.ECDSA))
                signature = ecdsa_raw_to_der(raw)
            self.sign_operations += 1
            return signature
        except pkcs11.PKCS11Error as exc:
            raise XRoadError(
                Code.CANNOT_SIGN, f"Token '{self.id}' failed to sign with key '{key_id}': {exc!r}"
            ) from exc

    # -- description -------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.kind,
            "label": self.label,
            "serial": self.serial,
            "module": self.module.path,
            "initialized": True,
            "active": self.active,
            "available": True,
            "sign_operations": self.sign_operations,
        }

    def close(self) -> None:
        self.executor.submit(self.logout).result()
        self.executor.shutdown(wait=True)
