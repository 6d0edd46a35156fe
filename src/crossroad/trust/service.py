"""The trust services over HTTP: test CA, OCSP responder and TSA (aiohttp, shell layer).

Three small aiohttp applications over one :class:`~crossroad.trust.store.TrustStore`:

* CA (NIIS dev port 8887): ``POST /sign?type=sign|auth`` with a CSR body (PEM or DER; or NIIS's
  test-CA form, multipart fields ``certreq`` and ``type``) → PEM certificate; ``GET /ca.pem``
  (also ``/ocsp.pem``, ``/tsa.pem``); ``POST /revoke`` with a serial number (``?reason=``).
* OCSP responder (8888, protocols.md §10.3): ``POST /`` ``application/ocsp-request`` →
  ``application/ocsp-response``, and ``GET /{url-encoded base64 request}`` (RFC 6960 A.1).
* TSA (8899, §9.2): ``POST /`` ``application/timestamp-query`` → ``application/timestamp-reply``;
  another content type gets 415.

:func:`start_trust_services` runs them in-process (tests, the demo) on ephemeral ports by
default; :func:`run_trust_services` runs them until SIGTERM/SIGINT (``crossroad trust run``).
The PKI is created on first start.  SQLite and signing are quick enough for a development
service to run on the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime as dt
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crossroad.clock import SYSTEM, Clock
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.trust.ca import DEFAULT_DAYS, TestCA, display_name
from crossroad.trust.ocsp_responder import TestOcspResponder
from crossroad.trust.store import TrustStore
from crossroad.trust.tsa import TimeStampAuthority

log = logging.getLogger(__name__)

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
TS_QUERY = "application/timestamp-query"
TS_REPLY = "application/timestamp-reply"
PEM_TYPE = "application/x-pem-file"
DEFAULT_PORTS = {"ca": 8887, "ocsp": 8888, "tsa": 8899}


@dataclass(frozen=True)
class TrustServices:
    """Running trust services: where they listen and the certificates a verifier trusts."""

    state_dir: Path
    ca_url: str
    ocsp_url: str
    tsa_url: str
    ca_cert: x509.Certificate
    ocsp_cert: x509.Certificate
    tsa_cert: x509.Certificate
    ca: TestCA  # the running CA, for in-process issuing in tests and the demo


class _Services:
    """What the handlers share: the store, the CA, the responder, the TSA and the clock."""

    def __init__(
        self,
        store: TrustStore,
        passphrase: bytes | None,
        clock: Clock,
        ocsp_next_update: dt.timedelta | None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ca = store.load_ca(passphrase)
        self.responder: TestOcspResponder = store.ocsp_responder(
            passphrase, next_update=ocsp_next_update
        )
        pair = store.key_pair("tsa", passphrase)
        self.tsa = TimeStampAuthority(pair.key, pair.cert)  # type: ignore[arg-type]


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _error(status: int, err: XRoadError) -> web.Response:
    return web.Response(status=status, text=f"{err.code}: {err.detail}\n")


def _media_type(request: web.Request) -> str:
    return request.content_type.lower() if request.headers.get("Content-Type") else ""


def _parse_serial(text: str) -> int:
    value = text.strip()
    try:
        return int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        raise XRoadError(
            Code.INVALID_REQUEST, f"Not a certificate serial number: {value[:40]!r}"
        ) from None


def _parse_days(text: str | None) -> int:
    if not text:
        return DEFAULT_DAYS
    if not text.strip().isdigit():
        raise XRoadError(Code.INVALID_REQUEST, f"days must be a positive number, not {text!r}")
    return int(text)


# -- CA ------------------------------------------------------------------------------------


def ca_app(services: _Services) -> web.Application:
    """``POST /sign``, ``POST /revoke``, ``GET /ca.pem`` (and the responder and TSA certs)."""

    async def sign(request: web.Request) -> web.Response:
        params = dict(request.query)
        if _media_type(request) == "multipart/form-data":
            # NIIS's test CA form: fields certreq (file) and type.
            form = await request.post()
            field = form.get("certreq")
            body = field.file.read() if isinstance(field, web.FileField) else str(field or "")
            for name in ("type", "member", "server", "name", "dns", "days", "profile"):
                if name in form and not isinstance(form[name], web.FileField):
                    params[name] = str(form[name])
        else:
            body = await request.read()
        try:
            member = params.get("member")
            server = params.get("server")
            cert = services.ca.issue(
                body.encode() if isinstance(body, str) else body,
                params.get("type", "sign"),  # type: ignore[arg-type]
                now=services.clock.now(),
                profile=params.get("profile") or services.store.profile,
                instance=services.store.instance,
                member=ClientId.parse(member) if member else None,
                server=SecurityServerId.parse(server) if server else None,
                org_name=params.get("name"),
                dns_name=params.get("dns"),
                days=_parse_days(params.get("days")),
            )
        except XRoadError as err:
            return _error(400, err)
        log.info(
            "issued %s certificate %d to %s",
            params.get("type", "sign"),
            cert.serial_number,
            display_name(cert.subject),
        )
        return web.Response(
            text=_pem(cert),
            content_type=PEM_TYPE,
            headers={"X-Certificate-Serial": str(cert.serial_number)},
        )

    async def revoke(request: web.Request) -> web.Response:
        # The serial as the body (text/plain), or an HTML form with fields serial and reason.
        text = (await request.read()).decode("utf-8", "replace")
        reason = request.query.get("reason")
        if "serial=" in text:
            form = parse_qs(text)
            text = form.get("serial", [""])[0]
            reason = form.get("reason", [reason or ""])[0] or None
        try:
            record = services.ca.revoke(
                _parse_serial(text),
                reason,
                at=services.clock.now(),
            )
        except XRoadError as err:
            return _error(400, err)
        log.info("revoked certificate %d (%s)", record.serial, record.reason)
        at = record.revoked_at.isoformat() if record.revoked_at else ""
        return web.Response(text=f"revoked {record.serial} {record.reason} {at}\n")

    def cert_handler(role: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=_pem(services.store.certificate(role)), content_type=PEM_TYPE)

        return handler

    app = web.Application()
    app.router.add_post("/sign", sign)
    app.router.add_post("/revoke", revoke)
    for role in ("ca", "ocsp", "tsa"):
        app.router.add_get(f"/{role}.pem", cert_handler(role))
    return app


# -- OCSP ----------------------------------------------------------------------------------


def ocsp_app(services: _Services) -> web.Application:
    """``POST /`` and ``GET /{base64}`` per RFC 6960 appendix A."""

    def answer(der: bytes) -> web.Response:
        body = services.responder.respond(der, now=services.clock.now(), lookup=services.ca.status)
        return web.Response(body=body, content_type=OCSP_RESPONSE)

    async def post(request: web.Request) -> web.Response:
        if _media_type(request) not in ("", OCSP_REQUEST):
            return web.Response(status=415, text=f"Content-Type must be {OCSP_REQUEST}\n")
        return answer(await request.read())

    async def get(request: web.Request) -> web.Response:
        # Use the raw path: a base64 request may contain '/', '+' and '=' (percent-encoded).
        raw = request.raw_path.split("?", 1)[0].lstrip("/")
        try:
            der = base64.b64decode(unquote(raw), validate=True)
        except (binascii.Error, ValueError):
            der = b""  # answered with malformedRequest
        return answer(der)

    app = web.Application()
    app.router.add_post("/", post)
    app.router.add_route("GET", r"/{request:.*}", get)
    return app


# -- TSA -----------------------------------------------------------------------------------


def tsa_app(services: _Services) -> web.Application:
    """``POST /`` with a TimeStampReq (RFC 3161 §3.4)."""

    async def post(request: web.Request) -> web.Response:
        if _media_type(request) != TS_QUERY:
            return web.Response(status=415, text=f"Content-Type must be {TS_QUERY}\n")
        der = await request.read()
        # The core answers a bad request with a rejection TimeStampResp, never an exception.
        reply = services.tsa.respond(
            der, gen_time=services.clock.now(), serial=services.store.next_tsa_serial()
        )
        return web.Response(body=reply, content_type=TS_REPLY)

    app = web.Application()
    app.router.add_post("/", post)
    return app


# -- running -------------------------------------------------------------------------------


def _listen(host: str, port: int) -> socket.socket:
    try:
        return socket.create_server((host, port), backlog=128)
    except OSError as exc:
        raise XRoadError(
            Code.NETWORK_ERROR, f"Cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc


def _url(host: str, port: int) -> str:
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 (spelling out the wildcard, not binding it)
        host = "127.0.0.1"
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


@contextlib.asynccontextmanager
async def start_trust_services(
    state_dir: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    ca_port: int = 0,
    ocsp_port: int = 0,
    tsa_port: int = 0,
    instance: str = "DEV",
    passphrase: bytes | None = None,
    key_type: str = "rsa2048",
    clock: Clock = SYSTEM,
    ocsp_next_update: dt.timedelta | None = None,
) -> AsyncIterator[TrustServices]:
    """Run the CA, OCSP responder and TSA in this event loop (port 0 = ephemeral)."""
    socks: list[socket.socket] = []
    runners: list[web.AppRunner] = []
    store = TrustStore.open(state_dir)
    try:
        for port in (ca_port, ocsp_port, tsa_port):
            socks.append(_listen(host, port))
        ports = [s.getsockname()[1] for s in socks]
        urls = [_url(host, p) for p in ports]
        if not store.initialised:
            store.initialise(
                now=clock.now(),
                instance=instance,
                key_type=key_type,
                passphrase=passphrase,
                ocsp_url=urls[1],
            )
            log.info("initialised trust services state in %s", store.directory)
        elif store.setting("ocsp_url") != urls[1]:
            # Certificates issued from now on name the responder that is actually running.
            store.set_setting("ocsp_url", urls[1])
        store.export_certificates()
        services = _Services(store, passphrase, clock, ocsp_next_update)
        for app, sock in zip(
            (ca_app(services), ocsp_app(services), tsa_app(services)), socks, strict=True
        ):
            runner = web.AppRunner(app, access_log=log)
            await runner.setup()
            runners.append(runner)
            await web.SockSite(runner, sock).start()
        yield TrustServices(
            state_dir=store.directory,
            ca_url=urls[0],
            ocsp_url=urls[1],
            tsa_url=urls[2],
            ca_cert=services.ca.cert,
            ocsp_cert=services.responder.cert,
            tsa_cert=store.certificate("tsa"),
            ca=services.ca,
        )
    finally:
        for runner in reversed(runners):
            await runner.cleanup()
        for sock in socks:
            sock.close()
        store.close()


async def run_trust_services(
    state_dir: str | os.PathLike[str],
    host: str = "127.0.0.1",
    ca_port: int = DEFAULT_PORTS["ca"],
    ocsp_port: int = DEFAULT_PORTS["ocsp"],
    tsa_port: int = DEFAULT_PORTS["tsa"],
    *,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[TrustServices], None] | None = None,
    **options: Any,
) -> None:
    """Run the trust services until ``stop`` is set (by default: until SIGTERM or SIGINT)."""
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
    try:
        async with start_trust_services(
            state_dir,
            host=host,
            ca_port=ca_port,
            ocsp_port=ocsp_port,
            tsa_port=tsa_port,
            **options,
        ) as services:
            if on_ready is not None:
                on_ready(services)
            await stop.wait()
            log.info("stopping trust services")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
