"""Creating a security server's state directory (``crossroad security-server init``).

What NIIS's initialisation asks for (protocols.md §10.5, §10.1): the configuration anchor of the
own instance, the owner member and server code, and the PIN of the software token.  This writes
the layout :mod:`crossroad.securityserver.settings` describes: the settings, the anchor, the
server configuration database with owner and server code (the owner becomes the first client),
the signer's state with a PIN-protected software token (and PKCS#11 modules when named), and the
internal TLS key and self-signed certificate the IS-facing HTTPS listener presents.

Keys for authentication and signing are not made here: as in NIIS they are generated on a
running signer, certified by the CA and registered at the central server afterwards.  A failed
``init`` leaves nothing behind in a directory it created, so it can simply be run again.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crossroad.errors import Code, XRoadError
from crossroad.globalconf.privateparams import anchor_hash, parse_anchor
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.securityserver.settings import FILE_NAME, SecurityServerSettings

INTERNAL_KEY = "internal.key"
INTERNAL_CERT = "internal.crt"
INTERNAL_CERT_DAYS = 20 * 365  # NIIS's internal certificate is long-lived too; rotate by hand


@dataclass(frozen=True)
class Initialized:
    settings: SecurityServerSettings
    server_id: SecurityServerId
    anchor_hash: str
    instance: str


def initialize(
    state_dir: str | os.PathLike[str],
    *,
    owner: ClientId,
    server_code: str,
    anchor: bytes,
    pin: str,
    database_url: str = "",
    pkcs11_modules: Sequence[tuple[str, str]] = (),
    settings: SecurityServerSettings | None = None,
    autologin: bool = False,
) -> Initialized:
    """Create a security server in ``state_dir``; see the module docstring.

    ``settings`` (any ``state_dir`` in it is replaced) gives listen addresses, ports and
    intervals; ``autologin`` keeps the PIN in ``signer-pin`` (mode 0600) so that ``run`` logs
    the software token in at start, for unattended servers and demos."""
    state = Path(state_dir).resolve()
    if (state / FILE_NAME).exists():
        raise XRoadError(Code.INIT_ALREADY_INITIALIZED, f"{state} is already initialised")
    if not pin:
        raise XRoadError(Code.INVALID_REQUEST, "The software token needs a PIN")
    parsed = parse_anchor(anchor)
    member = owner.member_id()
    if owner.is_subsystem:
        raise XRoadError(Code.INVALID_CLIENT_IDENTIFIER, f"The owner must be a member, not {owner}")
    if parsed.instance_identifier != member.instance:
        raise XRoadError(
            Code.INVALID_CLIENT_IDENTIFIER,
            f"The owner {owner} is not of the anchor's instance {parsed.instance_identifier}",
        )
    server_id = SecurityServerId(member, server_code).validate()
    created = not state.exists() or not any(state.iterdir())
    base = settings or SecurityServerSettings(state)
    config = base.replace(
        state_dir=state,
        database_url=database_url or base.database_url,
        signer_pin_file="signer-pin" if autologin else base.signer_pin_file,
    )
    try:
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        config.anchor_path.write_bytes(anchor)
        _init_serverconf(config, member, server_code)
        _init_signer(config, pin, pkcs11_modules)
        write_internal_tls(config.tls_dir, server_id)
        if autologin:
            _write_private(state / "signer-pin", pin + "\n")
        config.save()  # last: its presence means "initialised"
    except BaseException:
        if created:
            shutil.rmtree(state, ignore_errors=True)
        raise
    return Initialized(config, server_id, anchor_hash(anchor), parsed.instance_identifier)


def _init_serverconf(config: SecurityServerSettings, owner: ClientId, server_code: str) -> None:
    from crossroad.serverconf.store import ServerConfStore
    from crossroad.storage.engine import create_engine

    engine = create_engine(config.resolved_database_url())
    try:
        store = ServerConfStore(engine)
        existing = store.server_id()
        if existing is None:
            store.initialize(owner, server_code)
        elif existing != SecurityServerId(owner, server_code):
            raise XRoadError(
                Code.SERVER_ALREADY_FULLY_INITIALIZED,
                f"The database already belongs to {existing}",
            )
    finally:
        engine.dispose()


def _init_signer(
    config: SecurityServerSettings, pin: str, pkcs11_modules: Sequence[tuple[str, str]]
) -> None:
    from crossroad.signer.manager import init_state

    init_state(config.signer_dir, pin, pkcs11_modules=pkcs11_modules)


def _write_private(path: Path, text: str | bytes) -> None:
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def write_internal_tls(directory: Path, server_id: SecurityServerId) -> tuple[Path, Path]:
    """A new internal TLS key (RSA 2048, PEM, 0600) and self-signed certificate, as NIIS makes
    at installation (``internal.key`` / ``internal.crt``); returns their paths."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_id.server_code)])
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=INTERNAL_CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / INTERNAL_KEY, directory / INTERNAL_CERT
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path
