"""``crossroad trust``: the development trust services (test CA, OCSP responder, TSA).

``init`` creates the state directory, ``run`` serves the three services (NIIS's development ports
8887/8888/8899 by default) until SIGTERM/SIGINT, ``issue`` and ``revoke`` work on the state
directly (also while ``run`` is serving it), ``show`` prints what is there.  Errors are printed
as ``error: <code>: <detail>`` with exit status 1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from cryptography.hazmat.primitives import hashes, serialization

from crossroad.cli.failure import errors as _errors
from crossroad.clock import SYSTEM
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.trust.ca import display_name

T = TypeVar("T")

trust_app = typer.Typer(
    name="trust",
    help="Test CA, OCSP responder and TSA for development, tests and pilots.",
    no_args_is_help=True,
)

_DIR = typer.Argument(..., help="State directory of the trust services.")
_PASSPHRASE = typer.Option(
    None,
    "--passphrase-file",
    help="File holding the passphrase of the keys (else $CROSSROAD_TRUST_PASSPHRASE).",
)


def _passphrase(path: Path | None) -> bytes | None:
    from crossroad.trust.store import PASSPHRASE_ENV

    if path is not None:
        return path.read_bytes().rstrip(b"\r\n") or None
    value = os.environ.get(PASSPHRASE_ENV)
    return value.encode("utf-8") if value else None


def _parsed(parse: Callable[[str], T], text: str | None) -> T | None:
    return parse(text) if text else None


@trust_app.command()
def init(
    directory: Path = _DIR,
    instance: str = typer.Option("DEV", help="X-Road instance the CA serves."),
    profile: str = typer.Option("fivrk", help="Certificate profile: fivrk, ejbca or csr."),
    key_type: str = typer.Option("rsa2048", help="rsa2048, rsa3072 or ec-p256."),
    ca_name: str = typer.Option("/O=Test/CN=Test CA", help="CA subject."),
    ocsp_name: str = typer.Option("/O=Test/CN=Test OCSP", help="OCSP responder subject."),
    tsa_name: str = typer.Option("/O=Test/CN=Test TSA", help="TSA subject."),
    ocsp_url: str = typer.Option(
        "http://127.0.0.1:8888/", help="OCSP URL put in certificates (run updates it)."
    ),
    days: int = typer.Option(7300, help="Validity of the CA, OCSP and TSA certificates."),
    passphrase_file: Path | None = _PASSPHRASE,
) -> None:
    """Create the CA, OCSP responder and TSA keys and certificates in DIRECTORY."""
    from crossroad.trust.store import TrustStore

    with _errors(), TrustStore.open(directory) as store:
        if store.initialised:
            raise XRoadError(Code.INVALID_REQUEST, f"{directory} is already initialised")
        store.initialise(
            now=SYSTEM.now(),
            instance=instance,
            profile=profile,
            ca_name=ca_name,
            ocsp_name=ocsp_name,
            tsa_name=tsa_name,
            key_type=key_type,
            passphrase=_passphrase(passphrase_file),
            ocsp_url=ocsp_url,
            days=days,
        )
        paths = store.export_certificates()
    typer.echo(f"initialised {directory} (instance {instance}, profile {profile})")
    for role, path in paths.items():
        typer.echo(f"  {role} certificate: {path}")


@trust_app.command()
def run(
    directory: Path = _DIR,
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    ca_port: int = typer.Option(8887, help="CA port (POST /sign, GET /ca.pem, POST /revoke)."),
    ocsp_port: int = typer.Option(8888, help="OCSP responder port."),
    tsa_port: int = typer.Option(8899, help="Time-stamping authority port."),
    instance: str = typer.Option("DEV", help="Instance, if the state is created now."),
    ocsp_next_update: int | None = typer.Option(
        None, help="Seconds to nextUpdate in OCSP responses (default: none, like NIIS)."
    ),
    passphrase_file: Path | None = _PASSPHRASE,
) -> None:
    """Serve the CA, OCSP responder and TSA until SIGTERM or SIGINT (creating the PKI if new)."""
    from crossroad.trust.service import TrustServices, run_trust_services

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    def ready(services: TrustServices) -> None:
        typer.echo(f"CA   {services.ca_url}")
        typer.echo(f"OCSP {services.ocsp_url}")
        typer.echo(f"TSA  {services.tsa_url}")
        typer.echo(f"ready: certificates in {services.state_dir}")
        sys.stdout.flush()

    next_update = dt.timedelta(seconds=ocsp_next_update) if ocsp_next_update else None
    with _errors():
        asyncio.run(
            run_trust_services(
                directory,
                host,
                ca_port,
                ocsp_port,
                tsa_port,
                on_ready=ready,
                instance=instance,
                passphrase=_passphrase(passphrase_file),
                ocsp_next_update=next_update,
            )
        )
    typer.echo("stopped")


@trust_app.command()
def issue(
    directory: Path = _DIR,
    csr: Path = typer.Option(..., "--csr", help="CSR file, PEM or DER."),
    kind: str = typer.Option(..., "--type", help="sign or auth."),
    member: str | None = typer.Option(
        None, help="Member id (MEMBER:DEV/COM/1234): build the subject from it."
    ),
    server: str | None = typer.Option(
        None, help="Security server id (SERVER:DEV/COM/1234/ss1): build the subject from it."
    ),
    name: str | None = typer.Option(None, help="Organisation name (O) for the FiVRK profile."),
    dns: str | None = typer.Option(None, help="DNS name of the server (auth certificates)."),
    profile: str | None = typer.Option(None, help="Override the state's certificate profile."),
    days: int = typer.Option(7300, help="Validity in days."),
    out: Path | None = typer.Option(None, help="Write the PEM certificate here (else stdout)."),
    passphrase_file: Path | None = _PASSPHRASE,
) -> None:
    """Issue a signing or authentication certificate for a CSR."""
    from crossroad.trust.store import TrustStore

    with _errors(), TrustStore.open(directory, create=False) as store:
        ca = store.load_ca(_passphrase(passphrase_file))
        cert = ca.issue(
            csr.read_bytes(),
            kind,  # type: ignore[arg-type]
            now=SYSTEM.now(),
            profile=profile or store.profile,
            instance=store.instance,
            member=_parsed(ClientId.parse, member),
            server=_parsed(SecurityServerId.parse, server),
            org_name=name,
            dns_name=dns,
            days=days,
        )
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        if out is not None:
            out.write_text(pem)
    if out is None:
        typer.echo(pem, nl=False)
    typer.echo(
        f"issued {kind} certificate serial {cert.serial_number}: {display_name(cert.subject)}",
        err=True,
    )


@trust_app.command()
def revoke(
    directory: Path = _DIR,
    serial: str = typer.Argument(..., help="Serial number (decimal, or hex with 0x)."),
    reason: str = typer.Option("unspecified", help="RFC 5280 reason, e.g. keyCompromise."),
    passphrase_file: Path | None = _PASSPHRASE,
) -> None:
    """Revoke a certificate; the OCSP responder reports it revoked at once."""
    from crossroad.trust.store import TrustStore

    with _errors(), TrustStore.open(directory, create=False) as store:
        try:
            number = int(serial, 16) if serial.lower().startswith("0x") else int(serial)
        except ValueError:
            raise XRoadError(Code.INVALID_REQUEST, f"Not a serial number: {serial!r}") from None
        record = store.load_ca(_passphrase(passphrase_file)).revoke(number, reason, at=SYSTEM.now())
    assert record.revoked_at is not None
    typer.echo(f"revoked {record.serial} ({record.reason}) at {record.revoked_at.isoformat()}")


@trust_app.command()
def show(directory: Path = _DIR) -> None:
    """Print the instance, the CA, OCSP and TSA certificates and what the CA issued."""
    from crossroad.trust.store import TrustStore

    with _errors(), TrustStore.open(directory, create=False) as store:
        if not store.initialised:
            raise XRoadError(Code.IO_ERROR, f"{directory} is not initialised")
        typer.echo(f"state:    {directory}")
        typer.echo(f"instance: {store.instance}")
        typer.echo(f"profile:  {store.profile}")
        typer.echo(f"OCSP URL: {store.setting('ocsp_url')}")
        typer.echo(f"keys:     {'encrypted' if store.encrypted else 'not encrypted'}")
        for role in ("ca", "ocsp", "tsa"):
            cert = store.certificate(role)
            fingerprint = cert.fingerprint(hashes.SHA256()).hex(":").upper()
            typer.echo(f"{role.upper():4}      {display_name(cert.subject)}")
            typer.echo(
                f"          until {cert.not_valid_after_utc:%Y-%m-%d}, SHA-256 {fingerprint}"
            )
        typer.echo("issued:")
        for rec in store.records():
            state = "good"
            if rec.revoked_at is not None:
                state = f"revoked {rec.revoked_at:%Y-%m-%dT%H:%M:%SZ} ({rec.reason})"
            typer.echo(
                f"  {rec.serial:>6}  {rec.kind:4}  {rec.not_after:%Y-%m-%d}  {state:8}  "
                f"{rec.subject}"
            )


def register(app: typer.Typer) -> None:
    app.add_typer(trust_app, name="trust")
