"""The signer: tokens, the key configuration, OCSP for own certificates and batch signing.

:class:`Signer` is what the signer process (:mod:`crossroad.signer.service`) serves; it runs
on one event loop and sends every blocking token operation (PIN derivation, key generation,
private-key operations) to the token's worker thread.  Its state directory holds::

    keyconf.json     keys, certificates, certificate requests, PKCS#11 modules
    softtoken/       the software token (token id "0")
    ocsp/            the cached OCSP responses of own certificates

Signing (§4.6–4.7): the member's signing key is the key of its newest active signing
certificate whose token is logged in and whose OCSP response is good and fresh; requests
for one key are batched (:mod:`crossroad.signer.batch`).  Errors carry the NIIS signer codes
(``token_not_active``, ``key_not_found``, ...); the service adds the ``signer.`` prefix.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crossroad.clock import SYSTEM, Clock
from crossroad.crypto import xades
from crossroad.crypto.algorithms import SHA512, DigestAlgorithm, SignatureAlgorithm
from crossroad.crypto.algorithms import signature_algorithm_for as algorithm_for
from crossroad.crypto.certs import is_auth_cert, is_sign_cert, load_certificate
from crossroad.crypto.profiles import member_id_from_sign_cert
from crossroad.crypto.xades import MessagePart, SignedMessage
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.signer.batch import DEFAULT_MAX_BATCH, BatchSigner
from crossroad.signer.csr import build_csr, csr_subject, key_algorithm
from crossroad.signer.keyconf import (
    CertRecord,
    CsrRecord,
    KeyConf,
    KeyConfStore,
    KeyRecord,
    Pkcs11ModuleRecord,
    Usage,
)
from crossroad.signer.ocsp import DEFAULT_INTERVAL, DEFAULT_RETRY, OcspCache, TrustSource
from crossroad.signer.pkcs11 import Pkcs11Module
from crossroad.signer.tokens import (
    SOFTWARE_TOKEN_ID,
    SoftwareToken,
    Token,
    TokenKey,
    key_spec,
    not_active,
)
from crossroad.trust.ca import display_name

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignerSettings:
    ocsp_interval: float = DEFAULT_INTERVAL  # ocspFetchInterval
    ocsp_retry: float = DEFAULT_RETRY  # signer.ocsp-retry-delay
    ocsp_responder_urls: tuple[str, ...] = ()  # tried before the CA's and the AIA's
    rsa_pss: bool = False  # sign with RSASSA-PSS instead of PKCS#1 v1.5
    max_batch: int = DEFAULT_MAX_BATCH


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _key_type_of(spki: bytes) -> str:
    key = serialization.load_der_public_key(spki)
    size = getattr(key, "key_size", 0)
    return f"rsa{size}" if key_algorithm(spki) == "RSA" else f"ec-p{size}"


def init_state(
    state_dir: Path, pin: str, *, pkcs11_modules: Sequence[tuple[str, str]] = ()
) -> None:
    """Create a signer state directory with a software token protected by ``pin``."""
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = KeyConfStore(state_dir)
    if store.exists():
        raise XRoadError(Code.INVALID_REQUEST, f"{state_dir} is already a signer state directory")
    SoftwareToken(state_dir / "softtoken").initialize(pin)
    conf = KeyConf()
    for module_id, path in pkcs11_modules:
        conf = conf.with_module(Pkcs11ModuleRecord(module_id, path))
    store.save(conf)


class Signer:
    """Everything the signer process does, as async methods on one event loop."""

    def __init__(
        self,
        state_dir: Path,
        *,
        trust: TrustSource = lambda: None,
        settings: SignerSettings | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.settings = settings or SignerSettings()
        self.clock = clock
        self.trust = trust
        self.store = KeyConfStore(self.state_dir)
        self.conf = KeyConf()
        self.tokens: dict[str, Token] = {}
        self.ocsp = OcspCache(
            self.state_dir / "ocsp",
            trust,
            interval=self.settings.ocsp_interval,
            retry=self.settings.ocsp_retry,
            responder_urls=self.settings.ocsp_responder_urls,
            clock=clock,
        )
        self._batchers: dict[tuple[str, str], BatchSigner] = {}
        self._lock = asyncio.Lock()
        self._started = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if not self.store.exists():
            raise XRoadError(
                Code.TOKEN_NOT_INITIALIZED,
                f"{self.state_dir} is not a signer state directory (run crossroad signer init)",
            )
        self.conf = self.store.load()
        soft = SoftwareToken(self.state_dir / "softtoken", SOFTWARE_TOKEN_ID)
        self.tokens[soft.id] = soft
        for record in self.conf.modules:
            module = Pkcs11Module(record.id, record.path)
            try:
                found = await asyncio.to_thread(module.tokens)
            except XRoadError as err:
                log.error("PKCS#11 module %s unusable: %s", record.path, err)
                continue
            for token in found:
                self.tokens[token.id] = token
        for cert in self.conf.certs:
            if cert.active:
                self.ocsp.track(cert.cert)

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        await self.ocsp.close()
        for token in self.tokens.values():
            await asyncio.to_thread(token.close)

    async def _save(self, conf: KeyConf) -> None:
        self.store.save(conf)
        self.conf = conf

    async def _on_token(self, token: Token, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(token.executor, fn, *args)

    # -- tokens ------------------------------------------------------------------------

    def token(self, token_id: str) -> Token:
        token = self.tokens.get(token_id)
        if token is None:
            matches = [t for t in self.tokens.values() if t.label == token_id]
            if len(matches) == 1:
                return matches[0]
            raise XRoadError(Code.TOKEN_NOT_FOUND, f"Token '{token_id}' not found")
        return token

    def list_tokens(self) -> list[dict[str, Any]]:
        out = []
        for token in self.tokens.values():
            info = token.describe()
            info["keys"] = [k.id for k in self.conf.keys if k.token_id == token.id]
            out.append(info)
        return out

    async def login(self, token_id: str, pin: str) -> dict[str, Any]:
        token = self.token(token_id)
        await self._on_token(token, token.login, pin)
        log.info("token %s logged in", token.id)
        await self._sync_keys(token)
        self.ocsp.wake()
        return token.describe()

    async def logout(self, token_id: str) -> dict[str, Any]:
        token = self.token(token_id)
        await self._on_token(token, token.logout)
        log.info("token %s logged out", token.id)
        return token.describe()

    async def _sync_keys(self, token: Token) -> None:
        """Adopt key pairs found on the token that the configuration does not know yet."""
        found: list[TokenKey] = await self._on_token(token, token.key_pairs)
        async with self._lock:
            conf = self.conf
            for key in found:
                if conf.find_key(key.key_id) is None:
                    record = KeyRecord(
                        key.key_id,
                        token.id,
                        key.label,
                        _key_type_of(key.public_key_der),
                        key.public_key_der,
                    )
                    conf = conf.with_key(record)
            if conf is not self.conf:
                await self._save(conf)

    # -- keys --------------------------------------------------------------------------

    async def generate_key(
        self,
        token_id: str,
        key_type: str = "rsa2048",
        *,
        label: str = "",
        usage: Usage | None = None,
        member: ClientId | None = None,
    ) -> KeyRecord:
        token = self.token(token_id)
        spec = key_spec(key_type)
        if not token.active:
            raise not_active(token.id)
        if usage == "auth" and member is not None:
            raise XRoadError(Code.INVALID_REQUEST, "Authentication keys belong to no member")
        generated: TokenKey = await self._on_token(token, token.generate_key, spec, label)
        record = KeyRecord(
            generated.key_id,
            token.id,
            label,
            spec.name,
            generated.public_key_der,
            usage="sign" if member is not None and usage is None else usage,
            member=member.member_id() if member else None,
        )
        async with self._lock:
            await self._save(self.conf.with_key(record))
        log.info("generated %s key %s on token %s", spec.name, record.id, token.id)
        return record

    async def delete_key(self, key_id: str) -> None:
        key = self.conf.key(key_id)
        token = self.tokens.get(key.token_id)
        if token is not None:
            if not token.active:
                raise not_active(token.id)
            await self._on_token(token, token.delete_key, key_id)
        async with self._lock:
            for cert in self.conf.certs_of(key_id):
                await self.ocsp.untrack(cert.id)
            await self._save(self.conf.without_key(key_id))
        self._batchers = {k: v for k, v in self._batchers.items() if k[0] != key_id}

    def _token_of(self, key: KeyRecord) -> Token:
        token = self.tokens.get(key.token_id)
        if token is None:
            raise XRoadError(
                Code.KEY_NOT_AVAILABLE, f"Token '{key.token_id}' of key '{key.id}' is not present"
            )
        return token

    def describe_key(self, key: KeyRecord) -> dict[str, Any]:
        token = self.tokens.get(key.token_id)
        info = key.to_json()
        del info["public_key"]
        info["available"] = token is not None
        info["token_active"] = bool(token and token.active)
        info["certs"] = [self.describe_cert(c) for c in self.conf.certs_of(key.id)]
        info["csrs"] = [
            {
                "id": r.id,
                "usage": r.usage,
                "subject": r.subject,
                "created_at": r.created_at.isoformat(),
            }
            for r in self.conf.csrs
            if r.key_id == key.id
        ]
        return info

    def describe_cert(self, cert: CertRecord) -> dict[str, Any]:
        return {
            "id": cert.id,
            "usage": cert.usage,
            "member": str(cert.member) if cert.member else None,
            "active": cert.active,
            "subject": display_name(cert.cert.subject),
            "issuer": display_name(cert.cert.issuer),
            "serial": str(cert.cert.serial_number),
            "not_after": cert.cert.not_valid_after_utc.isoformat(),
            "ocsp": self.ocsp.describe(cert.cert),
        }

    def list_keys(self) -> list[dict[str, Any]]:
        return [self.describe_key(k) for k in self.conf.keys]

    # -- certificate requests ----------------------------------------------------------

    async def generate_csr(
        self,
        key_id: str,
        usage: Usage,
        *,
        member: ClientId | None = None,
        server: SecurityServerId | None = None,
        profile: str | None = None,
        subject: str | None = None,
        org_name: str | None = None,
    ) -> CsrRecord:
        key = self.conf.key(key_id)
        if key.usage is not None and key.usage != usage:
            raise XRoadError(
                Code.WRONG_CERT_USAGE, f"Key '{key_id}' is a {key.usage} key, not a {usage} key"
            )
        if usage == "sign":
            member = member or key.member or (server.owner if server else None)
            if member is None:
                raise XRoadError(Code.INVALID_REQUEST, "A signing request needs the member id")
            member = member.member_id()
            if key.member is not None and key.member != member:
                raise XRoadError(
                    Code.INVALID_REQUEST, f"Key '{key_id}' belongs to {key.member}, not {member}"
                )
        else:
            member = None
        name = csr_subject(
            usage, profile=profile, subject=subject, member=member, server=server, org_name=org_name
        )
        token = self._token_of(key)
        if not token.active:
            raise not_active(token.id)

        def sign(algorithm: SignatureAlgorithm, data: bytes) -> bytes:
            return token.sign(key.id, algorithm, data)

        der: bytes = await self._on_token(token, build_csr, name, key.public_key_der, sign)
        record = CsrRecord(
            id=os.urandom(10).hex().upper(),
            key_id=key.id,
            usage=usage,
            member=member,
            subject=display_name(name),
            der=der,
            created_at=self.clock.now(),
        )
        async with self._lock:
            conf = self.conf.with_key(replace(self.conf.key(key_id), usage=usage, member=member))
            await self._save(conf.with_csr(record))
        return record

    # -- certificates ------------------------------------------------------------------

    def _member_from_cert(self, cert: x509.Certificate) -> ClientId | None:
        trust = self.trust()
        if trust is None:
            return None
        ca = trust.ca_for_issuer(cert)
        if ca is None:
            return None
        try:
            return member_id_from_sign_cert(cert, ca.certificate_profile, trust.instance)
        except XRoadError:
            return None

    async def import_cert(
        self, data: bytes | str, *, member: ClientId | None = None, activate: bool = True
    ) -> CertRecord:
        cert = load_certificate(data)
        key = self.conf.key_by_public_key(_spki(cert))
        if key is None:
            raise XRoadError(Code.KEY_NOT_FOUND, "No key on this signer matches the certificate")
        usage: Usage
        if key.usage is not None:
            usage = key.usage
            fits = is_sign_cert(cert) if usage == "sign" else is_auth_cert(cert)
            if not fits:
                raise XRoadError(
                    Code.WRONG_CERT_USAGE, f"The certificate does not fit {usage} key '{key.id}'"
                )
        elif is_sign_cert(cert):
            usage = "sign"
        elif is_auth_cert(cert):
            usage = "auth"
        else:
            raise XRoadError(
                Code.WRONG_CERT_USAGE,
                "The certificate is neither a signing nor an authentication one",
            )
        owner: ClientId | None = None
        if usage == "sign":
            owner = (member.member_id() if member else None) or key.member
            owner = owner or self._member_from_cert(cert)
            if owner is None:
                raise XRoadError(
                    Code.NO_MEMBER_ID_FROM_CERT,
                    "Cannot tell which member the signing certificate belongs to: give the member",
                )
            if key.member is not None and key.member != owner:
                raise XRoadError(
                    Code.WRONG_CERT_USAGE, f"Key '{key.id}' belongs to {key.member}, not {owner}"
                )
        record = CertRecord.create(
            cert, key.id, usage, owner, active=activate, now=self.clock.now()
        )
        async with self._lock:
            if any(c.id == record.id for c in self.conf.certs):
                raise XRoadError(Code.CERT_EXISTS, f"Certificate '{record.id}' already exists")
            conf = self.conf.with_key(replace(key, usage=usage, member=owner))
            done = [r.id for r in conf.csrs if r.key_id == key.id and r.usage == usage]
            await self._save(conf.with_cert(record).without_csrs(done))
        if activate:
            self.ocsp.track(cert)
        log.info("imported %s certificate %s for key %s", usage, record.id, key.id)
        return record

    async def set_cert_active(self, cert_id: str, active: bool) -> CertRecord:
        async with self._lock:
            record = replace(self.conf.cert(cert_id), active=active)
            await self._save(self.conf.with_cert(record))
        if active:
            self.ocsp.track(record.cert)
        else:
            await self.ocsp.untrack(record.id)
        return record

    async def delete_cert(self, cert_id: str) -> None:
        async with self._lock:
            record = self.conf.cert(cert_id)
            await self._save(self.conf.without_cert(record.id))
        await self.ocsp.untrack(record.id)

    # -- signing -----------------------------------------------------------------------

    def _algorithm(self, key: KeyRecord, digest: DigestAlgorithm) -> SignatureAlgorithm:
        kind = key_algorithm(key.public_key_der)
        if kind == "RSA" and self.settings.rsa_pss:
            kind = "RSA-PSS"
        try:
            return algorithm_for(kind, digest)
        except XRoadError as err:
            raise XRoadError(Code.UNSUPPORTED_SIGN_ALGORITHM, err.detail) from err

    def _usable(self, cert: CertRecord, now: dt.datetime) -> XRoadError | None:
        """Why ``cert`` cannot sign now (None: it can)."""
        if not cert.active:
            return XRoadError(Code.CERT_NOT_FOUND, f"Certificate '{cert.id}' is not active")
        if not cert.cert.not_valid_before_utc <= now <= cert.cert.not_valid_after_utc:
            return XRoadError(Code.CERT_VALIDATION, f"Certificate '{cert.id}' is not valid now")
        key = self.conf.find_key(cert.key_id)
        if key is None:
            return XRoadError(Code.KEY_NOT_FOUND, f"Key of certificate '{cert.id}' not found")
        token = self.tokens.get(key.token_id)
        if token is None:
            return XRoadError(Code.KEY_NOT_AVAILABLE, f"Token '{key.token_id}' is not present")
        if not token.active:
            return not_active(token.id)
        try:
            self.ocsp.response(cert.cert)
        except XRoadError as err:
            return err
        return None

    def signing_cert(self, member: ClientId) -> CertRecord:
        """The member's certificate that signs now (newest usable active one)."""
        certs = self.conf.sign_certs_of(member)
        if not certs:
            raise XRoadError(
                Code.UNKNOWN_MEMBER, f"Member '{member.member_id()}' has no suitable certificates"
            )
        now = self.clock.now()
        problems = [(c, self._usable(c, now)) for c in certs]
        for cert, problem in problems:
            if problem is None:
                return cert
        # Report the most telling reason: that of an active certificate if there is one.
        active = [p for c, p in problems if c.active]
        raise cast(XRoadError, (active or [problems[0][1]])[0])

    async def sign(
        self, member: ClientId, parts: Sequence[MessagePart], digest: DigestAlgorithm = SHA512
    ) -> SignedMessage:
        """Sign one message's parts as ``member`` (batched with others waiting on the key)."""
        if not parts:
            raise XRoadError(Code.CANNOT_CREATE_SIGNATURE, "Nothing to sign")
        for part in parts:
            if part.data is None and part.digest != digest:
                raise XRoadError(
                    Code.CANNOT_CREATE_SIGNATURE,
                    f"Part {part.name} is hashed with {part.digest}, the signature uses {digest}",
                )
        cert = self.signing_cert(member)
        key = self.conf.key(cert.key_id)
        algorithm = self._algorithm(key, digest)
        batcher = self._batchers.get((key.id, algorithm.name))
        if batcher is None:
            token = self._token_of(key)
            batcher = BatchSigner(
                lambda: self._prepare(key.id, algorithm),
                token.executor,
                max_batch=self.settings.max_batch,
            )
            self._batchers[(key.id, algorithm.name)] = batcher
        return await batcher.sign(parts)

    def _prepare(self, key_id: str, algorithm: SignatureAlgorithm) -> Any:
        """On the loop, at the start of a batch: the blocking function that signs it."""
        key = self.conf.key(key_id)
        token = self._token_of(key)
        now = self.clock.now()
        usable = (
            [c for c in self.conf.sign_certs_of(key.member) if c.key_id == key_id]
            if key.member
            else []
        )
        cert = next((c for c in usable if self._usable(c, now) is None), None)
        if cert is None:
            if not token.active:
                raise not_active(token.id)
            raise XRoadError(Code.CERT_NOT_FOUND, f"Key '{key_id}' has no usable certificate")
        extra, responses = self.ocsp.signing_material(cert.cert)

        def sign_batch(requests: list[Sequence[MessagePart]]) -> list[SignedMessage]:
            return xades.sign_batch(
                requests,
                signing_cert=cert.cert,
                extra_certs=extra,
                ocsp_responses=responses,
                sign=lambda data: token.sign(key_id, algorithm, data),
                algorithm=algorithm,
                signing_time=now,
            )

        return sign_batch

    def batch_stats(self) -> dict[str, int]:
        return {
            "batches": sum(b.batches for b in self._batchers.values()),
            "signed": sum(b.signed for b in self._batchers.values()),
        }

    # -- authentication key, OCSP ------------------------------------------------------

    def auth_key(self) -> tuple[bytes, CertRecord]:
        """(unencrypted PKCS#8 PEM, certificate) of the active authentication key, for TLS.

        Only a software-token key can be handed out; the socket is readable by the owner only.
        """
        now = self.clock.now()
        certs = [c for c in self.conf.certs if c.usage == "auth" and c.active]
        certs.sort(key=lambda c: c.cert.not_valid_before_utc, reverse=True)
        if not certs:
            raise XRoadError(Code.CERT_NOT_FOUND, "No active authentication certificate")
        for cert in certs:
            if self._usable(cert, now) is not None:
                continue
            token = self._token_of(self.conf.key(cert.key_id))
            if not isinstance(token, SoftwareToken):
                continue
            key = token.private_key(cert.key_id)
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            return pem, cert
        problem = self._usable(certs[0], now)
        raise problem or XRoadError(
            Code.KEY_NOT_AVAILABLE, "The authentication key must be on the software token"
        )

    def ocsp_responses(self, hashes: Sequence[str]) -> list[bytes | None]:
        return self.ocsp.responses_by_hash(hashes)

    def status(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "uptime_seconds": round(time.monotonic() - self._started, 1),
            "trust_policy": self.trust() is not None,
            "tokens": self.list_tokens(),
            "keys": len(self.conf.keys),
            "certs": [self.describe_cert(c) for c in self.conf.certs],
            "ocsp_fetches": self.ocsp.fetches,
            **self.batch_stats(),
        }
