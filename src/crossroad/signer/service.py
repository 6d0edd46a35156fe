"""The signer process: the :class:`~crossroad.signer.manager.Signer` served on a unix socket.

``crossroad signer run STATE_DIR --socket PATH`` runs :func:`run_signer`: aiohttp on a
``UnixSite`` whose socket file is created mode 0600 (only the owner may ask for signatures
or for the authentication key), the protocol of :mod:`crossroad.signer.protocol`, and a
clean stop on SIGTERM or SIGINT (pending signatures fail with a coded error, tokens log
out, the socket file goes away).  Request bodies are never logged: ``login`` carries a PIN.

The trust policy that OCSP responses are verified against comes from a global
configuration directory (:class:`DirectoryTrust`, re-read at most every 30 s, which also
supplies ``ocspFetchInterval``) or from explicitly given CA certificates
(:func:`static_trust`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import stat
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crossroad.crypto.algorithms import digest_algorithm
from crossroad.crypto.profiles import KNOWN_PROFILES, profile_key
from crossroad.crypto.trust import ApprovedCA, OcspResponder, TrustPolicy
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.signer import protocol
from crossroad.signer.csr import csr_pem
from crossroad.signer.keyconf import parse_member, parse_usage
from crossroad.signer.manager import Signer, SignerSettings
from crossroad.signer.ocsp import TrustSource

log = logging.getLogger(__name__)

Handler = Callable[[Signer, dict[str, Any]], Awaitable[dict[str, Any]]]


# -- trust sources ---------------------------------------------------------------------


class DirectoryTrust:
    """The own instance's trust policy from a global configuration directory."""

    def __init__(self, directory: Path, *, reload_seconds: float = 30.0) -> None:
        self.directory = directory
        self.reload_seconds = reload_seconds
        self.fetch_interval: int | None = None
        self._policy: TrustPolicy | None = None
        self._loaded_at = -1e9

    def __call__(self) -> TrustPolicy | None:
        now = time.monotonic()
        if now - self._loaded_at >= self.reload_seconds:
            self._loaded_at = now
            from crossroad.globalconf.directory import load_directory
            from crossroad.globalconf.snapshot import GlobalConfSnapshot

            try:
                snapshot = GlobalConfSnapshot.from_directory(load_directory(self.directory))
                self._policy = snapshot.trust_policy()
                self.fetch_interval = snapshot.ocsp_fetch_interval
            except XRoadError as err:
                log.warning("global configuration in %s unusable: %s", self.directory, err)
        return self._policy


def _profile_class(name: str) -> str:
    key = profile_key(name)
    return next(p for p in KNOWN_PROFILES if profile_key(p) == key)


def static_trust(
    instance: str,
    ca_certs: list[x509.Certificate],
    *,
    profile: str = "FiVRK",
    ocsp_certs: list[x509.Certificate] | None = None,
    ocsp_url: str = "",
) -> TrustSource:
    """A fixed trust policy: these CA certificates (and OCSP responder certificates)."""
    responders = tuple(OcspResponder(ocsp_url, c) for c in ocsp_certs or [])
    if ocsp_url and not responders:
        responders = (OcspResponder(ocsp_url),)
    cas = tuple(
        ApprovedCA(
            name=cert.subject.rfc4514_string(),
            top_ca=cert,
            certificate_profile=_profile_class(profile),
            ocsp=responders,
        )
        for cert in ca_certs
    )
    policy = TrustPolicy(instance=instance, cas=cas)
    return lambda: policy


# -- RPC handlers ----------------------------------------------------------------------


def _str(body: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        if required:
            raise XRoadError(Code.INVALID_REQUEST, f"{key} is required")
        return None
    if not isinstance(value, str):
        raise XRoadError(Code.INVALID_REQUEST, f"{key} must be a string")
    return value


def _req(body: dict[str, Any], key: str) -> str:
    value = _str(body, key)
    if value is None:  # _str raised already; this informs the type checker
        raise XRoadError(Code.INVALID_REQUEST, f"{key} is required")
    return value


def _member(body: dict[str, Any]) -> ClientId:
    member = parse_member(_req(body, "member"))
    if member is None:
        raise XRoadError(Code.INVALID_REQUEST, "member is required")
    return member


async def _sign(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    member = _member(body)
    digest = digest_algorithm(_str(body, "digest", required=False) or "SHA-512")
    parts = protocol.decode_parts(body.get("parts"))
    return protocol.encode_signed(await s.sign(member, parts, digest))


async def _list_tokens(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    return {"tokens": s.list_tokens()}


async def _list_keys(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    return {"keys": s.list_keys()}


async def _login(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    return {"token": await s.login(_req(body, "token"), _req(body, "pin"))}


async def _logout(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    return {"token": await s.logout(_req(body, "token"))}


async def _generate_key(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    record = await s.generate_key(
        _str(body, "token", required=False) or "0",
        _str(body, "key_type", required=False) or "rsa2048",
        label=_str(body, "label", required=False) or "",
        usage=parse_usage(_str(body, "usage", required=False)),
        member=parse_member(_str(body, "member", required=False)),
    )
    return {"key": s.describe_key(record)}


async def _delete_key(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    await s.delete_key(_req(body, "key"))
    return {}


async def _generate_csr(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    usage = parse_usage(_req(body, "usage")) or "sign"
    server_text = _str(body, "server", required=False)
    record = await s.generate_csr(
        _req(body, "key"),
        usage,
        member=parse_member(_str(body, "member", required=False)),
        server=SecurityServerId.parse(server_text) if server_text else None,
        profile=_str(body, "profile", required=False),
        subject=_str(body, "subject", required=False),
        org_name=_str(body, "org_name", required=False),
    )
    info = record.to_json()
    info["pem"] = csr_pem(record.der).decode("ascii")
    return {"csr": info}


async def _import_cert(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    text = _req(body, "cert")
    record = await s.import_cert(
        text,
        member=parse_member(_str(body, "member", required=False)),
        activate=bool(body.get("activate", True)),
    )
    return {"cert": s.describe_cert(record)}


async def _activate_cert(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    record = await s.set_cert_active(_req(body, "cert"), bool(body.get("active", True)))
    return {"cert": s.describe_cert(record)}


async def _delete_cert(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    await s.delete_cert(_req(body, "cert"))
    return {}


async def _member_cert(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    member = _member(body)
    record = s.signing_cert(member)
    info = s.describe_cert(record)
    info["der"] = protocol.b64(record.der)
    return {"cert": info}


async def _auth_key(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    pem, record = s.auth_key()
    extra, responses = s.ocsp.signing_material(record.cert)
    return {
        "key_pem": pem.decode("ascii"),
        "cert": protocol.b64(record.der),
        "chain": [protocol.b64(c.public_bytes(serialization.Encoding.DER)) for c in extra],
        "ocsp": [protocol.b64(r) for r in responses],
    }


async def _ocsp_responses(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    hashes = body.get("hashes")
    if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
        raise XRoadError(Code.INVALID_REQUEST, "hashes must be a list of strings")
    return {"responses": [protocol.b64(r) for r in s.ocsp_responses(hashes)]}


async def _refresh_ocsp(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    s.ocsp.wake()
    return {}


async def _status(s: Signer, body: dict[str, Any]) -> dict[str, Any]:
    return s.status()


HANDLERS: dict[str, Handler] = {
    "sign": _sign,
    "list_tokens": _list_tokens,
    "list_keys": _list_keys,
    "login": _login,
    "logout": _logout,
    "generate_key": _generate_key,
    "delete_key": _delete_key,
    "generate_csr": _generate_csr,
    "import_cert": _import_cert,
    "activate_cert": _activate_cert,
    "delete_cert": _delete_cert,
    "member_cert": _member_cert,
    "auth_key": _auth_key,
    "ocsp_responses": _ocsp_responses,
    "refresh_ocsp": _refresh_ocsp,
    "status": _status,
}


def _error(err: XRoadError) -> web.Response:
    return web.json_response(protocol.error_body(err), status=protocol.http_status(err))


def signer_app(signer: Signer) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        handler = HANDLERS.get(method)
        if handler is None:
            return _error(XRoadError(Code.INVALID_REQUEST, f"Unknown signer method {method!r}"))
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return _error(XRoadError(Code.INVALID_REQUEST, "The body is not JSON"))
        if not isinstance(body, dict):
            return _error(XRoadError(Code.INVALID_REQUEST, "The body must be a JSON object"))
        try:
            return web.json_response(await handler(signer, body))
        except XRoadError as err:
            return _error(err)
        except Exception as exc:
            log.exception("signer method %s failed", method)
            return _error(XRoadError(Code.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}"))

    app = web.Application(client_max_size=protocol.MAX_BODY)
    app.router.add_post("/{method}", handle)
    return app


# -- the process -----------------------------------------------------------------------


def _remove_stale_socket(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise XRoadError(Code.IO_ERROR, f"{path} exists and is not a socket")
    path.unlink()


@contextlib.asynccontextmanager
async def serve(signer: Signer, socket_path: Path) -> Any:
    """Serve ``signer`` on ``socket_path`` (mode 0600) for the duration of the context."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_socket(socket_path)
    runner = web.AppRunner(signer_app(signer), access_log=None, handle_signals=False)
    await runner.setup()
    old_umask = os.umask(0o177)  # the socket is born 0600: no window for other users
    try:
        await web.UnixSite(runner, str(socket_path)).start()
    finally:
        os.umask(old_umask)
    os.chmod(socket_path, 0o600)
    try:
        yield runner
    finally:
        await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()


async def run_signer(
    state_dir: Path,
    socket_path: Path,
    *,
    trust: TrustSource = lambda: None,
    settings: SignerSettings | None = None,
    pins: dict[str, str] | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[Signer], None] | None = None,
) -> None:
    """Run the signer until ``stop`` is set (by default: until SIGTERM or SIGINT)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
    signer = Signer(state_dir, trust=trust, settings=settings)
    try:
        await signer.start()
        if isinstance(trust, DirectoryTrust):
            trust()
            if trust.fetch_interval:
                signer.ocsp.interval = float(trust.fetch_interval)
        for token_id, pin in (pins or {}).items():
            try:
                await signer.login(token_id, pin)
            except XRoadError as err:
                log.error("automatic login to token %s failed: %s", token_id, err.code)
        async with serve(signer, socket_path):
            log.info("signer listening on %s", socket_path)
            if on_ready is not None:
                on_ready(signer)
            await stop.wait()
            log.info("signer stopping")
    finally:
        await signer.close()
        for sig in installed:
            loop.remove_signal_handler(sig)
