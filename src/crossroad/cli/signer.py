"""``crossroad signer``: the signer process and its administration.

``init`` creates a state directory with a PIN-protected software token (and names PKCS#11
modules), ``run`` serves the signer on a unix socket until SIGTERM/SIGINT; the other
commands talk to a running signer over that socket (``--socket`` or
``$CROSSROAD_SIGNER_SOCKET``): ``token list|login|logout``, ``key generate|list``,
``csr generate``, ``cert import|activate|deactivate``, ``status``.  PINs are read from a file
(``--pin-file``), from ``$CROSSROAD_SIGNER_PIN`` or from a hidden prompt, never from the
command line.  Errors are printed as ``error: <code>: <detail>`` with exit status 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from crossroad.cli.failure import errors as _errors

T = TypeVar("T")

PIN_ENV = "CROSSROAD_SIGNER_PIN"
SOCKET_ENV = "CROSSROAD_SIGNER_SOCKET"

signer_app = typer.Typer(
    name="signer", help="The signer: keys, certificates, batch signing.", no_args_is_help=True
)
token_app = typer.Typer(help="Tokens: list, log in, log out.", no_args_is_help=True)
key_app = typer.Typer(help="Keys: generate, list.", no_args_is_help=True)
csr_app = typer.Typer(help="Certificate signing requests.", no_args_is_help=True)
cert_app = typer.Typer(help="Certificates: import, activate, deactivate.", no_args_is_help=True)
signer_app.add_typer(token_app, name="token")
signer_app.add_typer(key_app, name="key")
signer_app.add_typer(csr_app, name="csr")
signer_app.add_typer(cert_app, name="cert")

_DIR = typer.Argument(..., help="State directory of the signer.")
_SOCKET = typer.Option(
    ..., "--socket", envvar=SOCKET_ENV, help="Unix socket of the running signer."
)
_PIN_FILE = typer.Option(None, "--pin-file", help=f"File holding the PIN (else ${PIN_ENV}).")


def _pin(path: Path | None, *, confirm: bool = False) -> str:
    if path is not None:
        return path.read_text("utf-8").rstrip("\r\n")
    value = os.environ.get(PIN_ENV)
    if value:
        return value
    return str(typer.prompt("PIN", hide_input=True, confirmation_prompt=confirm))


def _client_call(socket: Path, fn: Callable[[Any], Awaitable[T]]) -> T:
    from crossroad.signer.client import SignerClient

    async def go() -> T:
        async with SignerClient(socket) as client:
            return await fn(client)

    return asyncio.run(go())


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


@signer_app.command()
def init(
    directory: Path = _DIR,
    pin_file: Path | None = _PIN_FILE,
    pkcs11_module: list[str] = typer.Option(
        [], "--pkcs11-module", help="PKCS#11 library to use (ID=PATH or PATH); repeatable."
    ),
) -> None:
    """Create a signer state directory with a software token protected by a PIN."""
    from crossroad.signer.manager import init_state

    modules = []
    for item in pkcs11_module:
        module_id, sep, path = item.partition("=")
        if not sep:
            path = item
            module_id = Path(item).stem.removeprefix("lib") or "pkcs11"
        modules.append((module_id, path))
    with _errors():
        init_state(directory, _pin(pin_file, confirm=True), pkcs11_modules=modules)
    typer.echo(f"initialised {directory} (software token 0)")


def _read_pins(path: Path | None) -> dict[str, str]:
    """``TOKEN=PIN`` lines, or one bare PIN for the software token."""
    if path is None:
        value = os.environ.get(PIN_ENV)
        return {"0": value} if value else {}
    pins = {}
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            continue
        token, sep, pin = line.partition("=")
        if sep and token.strip():
            pins[token.strip()] = pin
        else:
            pins["0"] = line
    return pins


@signer_app.command()
def run(
    directory: Path = _DIR,
    socket: Path | None = typer.Option(
        None, "--socket", envvar=SOCKET_ENV, help="Unix socket to serve (default DIR/signer.sock)."
    ),
    globalconf: Path | None = typer.Option(
        None, help="Global configuration directory: trust policy and OCSP fetch interval."
    ),
    trust_ca: list[Path] = typer.Option(
        [], "--trust-ca", help="Approved CA certificate (PEM) when there is no global conf."
    ),
    ocsp_cert: list[Path] = typer.Option([], "--ocsp-cert", help="OCSP responder certificate."),
    instance: str = typer.Option("DEV", help="Instance of the --trust-ca policy."),
    profile: str = typer.Option("FiVRK", help="Certificate profile of the --trust-ca CAs."),
    ocsp_url: list[str] = typer.Option([], "--ocsp-url", help="OCSP responder URL to try first."),
    ocsp_interval: float | None = typer.Option(None, help="Seconds between OCSP fetches."),
    ocsp_retry: float = typer.Option(60.0, help="Seconds before retrying a failed OCSP fetch."),
    rsa_pss: bool = typer.Option(False, help="Sign with RSASSA-PSS instead of PKCS#1 v1.5."),
    pin_file: Path | None = typer.Option(
        None, "--pin-file", help="Log in at start: TOKEN=PIN lines, or a bare software-token PIN."
    ),
) -> None:
    """Serve the signer on a unix socket until SIGTERM or SIGINT."""
    from crossroad.crypto.certs import load_certificates
    from crossroad.signer.manager import SignerSettings
    from crossroad.signer.ocsp import DEFAULT_INTERVAL, TrustSource
    from crossroad.signer.service import DirectoryTrust, run_signer, static_trust

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    path = socket or directory / "signer.sock"

    def ready(_signer: object) -> None:
        typer.echo(f"ready: signer on {path}")
        sys.stdout.flush()

    with _errors():
        trust: TrustSource = lambda: None  # noqa: E731
        if globalconf is not None:
            trust = DirectoryTrust(globalconf)
        elif trust_ca:
            cas = [c for p in trust_ca for c in load_certificates(p.read_bytes())]
            ocsps = [c for p in ocsp_cert for c in load_certificates(p.read_bytes())]
            trust = static_trust(instance, cas, profile=profile, ocsp_certs=ocsps)
        settings = SignerSettings(
            ocsp_interval=ocsp_interval or DEFAULT_INTERVAL,
            ocsp_retry=ocsp_retry,
            ocsp_responder_urls=tuple(ocsp_url),
            rsa_pss=rsa_pss,
        )
        asyncio.run(
            run_signer(
                directory,
                path,
                trust=trust,
                settings=settings,
                pins=_read_pins(pin_file),
                on_ready=ready,
            )
        )
    typer.echo("stopped")


@signer_app.command()
def status(socket: Path = _SOCKET) -> None:
    """The running signer's tokens, certificates, OCSP and batch figures (JSON)."""
    with _errors():
        _print_json(_client_call(socket, lambda c: c.status()))


# -- tokens ------------------------------------------------------------------------------


@token_app.command("list")
def token_list(socket: Path = _SOCKET) -> None:
    """List the tokens (JSON)."""
    with _errors():
        _print_json(_client_call(socket, lambda c: c.list_tokens()))


@token_app.command("login")
def token_login(
    token: str = typer.Argument("0", help="Token id or label (0: the software token)."),
    socket: Path = _SOCKET,
    pin_file: Path | None = _PIN_FILE,
) -> None:
    """Log in to a token: its keys can sign until logout or signer restart."""
    pin = _pin(pin_file)
    with _errors():
        info = _client_call(socket, lambda c: c.login(token, pin))
    typer.echo(f"token {info['id']} logged in")


@token_app.command("logout")
def token_logout(token: str = typer.Argument("0"), socket: Path = _SOCKET) -> None:
    """Log out of a token."""
    with _errors():
        info = _client_call(socket, lambda c: c.logout(token))
    typer.echo(f"token {info['id']} logged out")


# -- keys --------------------------------------------------------------------------------


@key_app.command("generate")
def key_generate(
    socket: Path = _SOCKET,
    token: str = typer.Option("0", help="Token id or label."),
    key_type: str = typer.Option("rsa2048", "--type", help="rsa2048, rsa3072, ec-p256, ec-p384."),
    label: str = typer.Option("", help="Key label."),
    usage: str | None = typer.Option(None, help="auth or sign (else set by the first CSR)."),
    member: str | None = typer.Option(None, help="Member of a signing key (MEMBER:I/C/M)."),
) -> None:
    """Generate a key pair on a token (logged in)."""
    from crossroad.signer.keyconf import parse_member

    with _errors():
        owner = parse_member(member)
        info = _client_call(
            socket,
            lambda c: c.generate_key(token, key_type, label=label, usage=usage, member=owner),
        )
    typer.echo(info["id"])


@key_app.command("list")
def key_list(socket: Path = _SOCKET) -> None:
    """List keys with their certificates and requests (JSON)."""
    with _errors():
        _print_json(_client_call(socket, lambda c: c.list_keys()))


# -- CSRs --------------------------------------------------------------------------------


@csr_app.command("generate")
def csr_generate(
    key: str = typer.Argument(..., help="Key id."),
    socket: Path = _SOCKET,
    usage: str = typer.Option(..., help="auth or sign."),
    member: str | None = typer.Option(None, help="Member (signing requests)."),
    server: str | None = typer.Option(None, help="Security server id (SERVER:I/C/M/code)."),
    profile: str | None = typer.Option(None, help="CA profile: fivrk (default) or ejbca."),
    subject: str | None = typer.Option(None, help="Explicit subject instead of the profile's."),
    org_name: str | None = typer.Option(None, help="Organisation name (O) for FiVRK."),
    out: Path | None = typer.Option(None, help="Write the PEM request here (else stdout)."),
) -> None:
    """Make a certificate signing request for a key, signed on its token."""
    from crossroad.identifiers import SecurityServerId
    from crossroad.signer.keyconf import parse_member

    with _errors():
        owner = parse_member(member)
        ss = SecurityServerId.parse(server) if server else None
        info = _client_call(
            socket,
            lambda c: c.generate_csr(
                key,
                usage,
                member=owner,
                server=ss,
                profile=profile,
                subject=subject,
                org_name=org_name,
            ),
        )
        if out is not None:
            out.write_text(info["pem"])
    if out is None:
        typer.echo(info["pem"], nl=False)
    typer.echo(f"request {info['id']}: {info['subject']}", err=True)


# -- certificates ------------------------------------------------------------------------


@cert_app.command("import")
def cert_import(
    file: Path = typer.Argument(..., help="Certificate file (PEM or DER)."),
    socket: Path = _SOCKET,
    member: str | None = typer.Option(None, help="Member of a signing certificate."),
    inactive: bool = typer.Option(False, help="Import without activating."),
) -> None:
    """Import a certificate for one of the signer's keys (matched by public key)."""
    from crossroad.signer.keyconf import parse_member

    with _errors():
        owner = parse_member(member)
        data = file.read_bytes()
        info = _client_call(
            socket, lambda c: c.import_cert(data, member=owner, activate=not inactive)
        )
    typer.echo(f"imported {info['usage']} certificate {info['id']}: {info['subject']}")


@cert_app.command("activate")
def cert_activate(
    cert: str = typer.Argument(..., help="Certificate id (SHA-1 hex)."), socket: Path = _SOCKET
) -> None:
    """Activate a certificate."""
    with _errors():
        info = _client_call(socket, lambda c: c.activate_cert(cert, True))
    typer.echo(f"certificate {info['id']} active")


@cert_app.command("deactivate")
def cert_deactivate(
    cert: str = typer.Argument(..., help="Certificate id (SHA-1 hex)."), socket: Path = _SOCKET
) -> None:
    """Deactivate a certificate (it no longer signs)."""
    with _errors():
        info = _client_call(socket, lambda c: c.activate_cert(cert, False))
    typer.echo(f"certificate {info['id']} inactive")


def register(app: typer.Typer) -> None:
    app.add_typer(signer_app, name="signer")
