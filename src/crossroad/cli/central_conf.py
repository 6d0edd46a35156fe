"""``crossroad central init|run|generate|keys|anchor``: the central server's state directory,
its generation and distribution loop, configuration signing keys and anchors.

protocols.md §5.1–5.3, §11.1.  ``init`` creates ``central.toml``, the database schema, the
instance and its default member classes, and one internal and one external signing key (active),
and prints both anchors' hashes.  ``run`` generates every interval and serves ``/internalconf``,
``/externalconf`` (and the management API when installed) until SIGTERM/SIGINT; ``run --once``
and ``generate`` run one cycle.  ``keys`` and ``anchor`` work on the state directory given with
``--dir`` (as the registry commands; default ``$CROSSROAD_CENTRAL_STATE``, else the current
directory).

Key rotation: ``keys add`` (the new key is inactive; it is published in shared parameters and
in the re-exported anchor), wait until clients have it, ``keys activate``, later ``keys delete``
the old one.  The keys' passphrase comes from the environment variable named in ``central.toml``
(``$CROSSROAD_CENTRAL_PASSPHRASE`` by default).  Errors print ``error: <code>: <detail>`` and
exit with status 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from crossroad.cli.failure import errors as _errors
from crossroad.cli.failure import fail as _fail
from crossroad.errors import Code
from crossroad.identifiers import ClientId

if TYPE_CHECKING:
    from crossroad.central.registry import SigningKeyRecord
    from crossroad.central.server import GenerationStatus

_STATE_ENV = "CROSSROAD_CENTRAL_STATE"
_DIR = typer.Argument(..., help="State directory of the central server.")
_STATE = typer.Option(
    Path("."),
    "--dir",
    "--state-dir",
    "-d",
    envvar=_STATE_ENV,
    help=f"State directory of the central server (${_STATE_ENV}).",
)
_SOURCE = typer.Option(..., "--source", help="internal or external.")

keys_app = typer.Typer(help="Configuration signing keys (rotation: add, activate, delete).")
anchor_app = typer.Typer(help="Configuration anchors of this central server's sources.")


def _source(value: str) -> str:
    from crossroad.central.keys import KeySource

    try:
        return KeySource(value.strip().lower()).value
    except ValueError:
        raise _fail(f"{Code.INVALID_REQUEST}: --source must be internal or external") from None


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


# --- init, run, generate ---------------------------------------------------------------------


def init(
    state_dir: Path = _DIR,
    instance: str = typer.Option(..., "--instance", help="X-Road instance identifier."),
    address: str = typer.Option(
        ..., "--address", help="Central server address security servers reach (host[:port])."
    ),
    db: str | None = typer.Option(
        None, "--db", help="Database URL (default: SQLite in the state directory)."
    ),
    distribution_port: int = typer.Option(8080, help="Port serving /internalconf."),
    api_port: int = typer.Option(4000, help="Port of the management API."),
    interval: int = typer.Option(60, "--interval", help="Seconds between generations."),
    conf_expire: int = typer.Option(
        600, "--conf-expire", help="Seconds a published configuration stays valid."
    ),
    key_type: str = typer.Option(
        "rsa2048", help="Signing key type: rsa2048|3072|4096, ec-p256|384."
    ),
    management_provider: str | None = typer.Option(
        None,
        "--management-provider",
        help="Management service provider, e.g. SUBSYSTEM:DEV/GOV/1234/MANAGEMENT "
        "(its member and subsystem are created).",
    ),
    management_name: str = typer.Option(
        "X-Road Operator", help="Name of the management provider's member, if created."
    ),
) -> None:
    """Create a central server in STATE_DIR: settings, database, instance, signing keys."""
    from crossroad.central import server

    with _errors():
        created = server.initialize(
            state_dir,
            instance=instance,
            address=address,
            database_url=db or "",
            distribution_port=distribution_port,
            api_port=api_port,
            key_type=key_type,
            management_provider=ClientId.parse(management_provider)
            if management_provider
            else None,
            management_name=management_name,
            generation_interval_seconds=interval,
            conf_expire_interval_seconds=conf_expire,
        )
    for record in created.keys:
        typer.echo(f"{record.source_type.value} signing key {record.key_id} (active)")
    if not created.encrypted:
        typer.echo(
            f"warning: ${created.config.key_passphrase_env} is not set: "
            "the signing keys are stored unencrypted",
            err=True,
        )
    if management_provider is None:
        typer.echo(
            "note: set the management service provider before the first generation "
            "(--management-provider, or the registry commands)",
            err=True,
        )
    typer.echo(f"initialised {state_dir} (instance {instance}, address {address})")
    for source, exported in created.anchors.items():
        typer.echo(f"{source.value} anchor hash: {exported.hash}")


def run(
    state_dir: Path = _DIR,
    once: bool = typer.Option(False, "--once", help="Generate once and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every cycle."),
) -> None:
    """Generate and publish every interval and serve the configuration (SIGTERM/SIGINT stop)."""
    from crossroad.central import server

    _logging(verbose or not once)

    def ready(running: server.Running) -> None:
        typer.echo(f"distribution {running.distribution_url}")
        if running.api_url:
            typer.echo(f"management API {running.api_url}")
        typer.echo(f"ready: {_describe(running.status)}")
        sys.stdout.flush()

    with _errors():
        status = asyncio.run(server.run(state_dir, once=once, on_ready=ready))
    if not once:
        typer.echo("stopped")
        return
    typer.echo(_describe(status))
    if not status.success:
        raise typer.Exit(1)


def generate(state_dir: Path = _DIR) -> None:
    """Run one generation cycle: generate, sign and publish every version."""
    from crossroad.central import server

    _logging()
    with _errors(), server.CentralState.open(state_dir, actor="cli:generate") as state:
        status = server.generate_once(state)
    typer.echo(_describe(status))
    if not status.success:
        raise typer.Exit(1)


def _describe(status: GenerationStatus) -> str:
    if status.success:
        versions = ",".join(f"V{v}" for v in status.versions)
        expires = status.expires.isoformat() if status.expires else "?"
        return f"published {status.timestamp} ({versions}), expires {expires}"
    return f"generation failed: {status.error_code}: {status.error}"


# --- keys ------------------------------------------------------------------------------------


def _key_json(record: SigningKeyRecord) -> dict[str, object]:
    from crossroad.crypto.algorithms import SHA256
    from crossroad.crypto.certs import load_certificate

    cert = load_certificate(record.cert)
    return {
        "key_id": record.key_id,
        "source": record.source_type.value,
        "active": record.active,
        "created_at": record.created_at.isoformat() if record.created_at else None,
        "subject": cert.subject.rfc4514_string(),
        "cert_sha256": SHA256.digest(record.cert).hex(),
        "node": record.ha_node_name,
    }


@keys_app.command("add")
def keys_add(
    source: str = _SOURCE,
    key_type: str = typer.Option("rsa2048", help="rsa2048|3072|4096, ec-p256|384."),
    activate: bool = typer.Option(
        False, "--activate", help="Activate at once (clients may not know the key yet)."
    ),
    state_dir: Path = _STATE,
) -> None:
    """Add a signing key (inactive unless it is the source's first or --activate)."""
    from crossroad.central import server

    with _errors(), server.CentralState.open(state_dir, actor="cli:keys") as state:
        record = server.add_signing_key(
            state, _source(source), key_type=key_type, activate=True if activate else None
        )
    typer.echo(
        f"{record.source_type.value} signing key {record.key_id} added"
        + (" (active)" if record.active else " (inactive)")
    )


@keys_app.command("list")
def keys_list(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    state_dir: Path = _STATE,
) -> None:
    """List the signing keys of both sources."""
    from crossroad.central import server

    with _errors(), server.CentralState.open(state_dir, actor="cli:keys") as state:
        records = [_key_json(r) for r in state.registry.signing_keys()]
    if as_json:
        typer.echo(json.dumps(records, indent=2))
        return
    for r in records:
        flag = "active" if r["active"] else "inactive"
        typer.echo(f"{r['source']:8}  {r['key_id']}  {flag:8}  {r['created_at']}  {r['subject']}")


@keys_app.command("activate")
def keys_activate(
    key_id: str = typer.Argument(..., help="Key id (from keys list)."),
    state_dir: Path = _STATE,
) -> None:
    """Make KEY_ID the key that signs its source's directories."""
    from crossroad.central import server

    with _errors(), server.CentralState.open(state_dir, actor="cli:keys") as state:
        record = server.activate_signing_key(state, key_id.strip().upper())
    typer.echo(f"{record.source_type.value} signing key {record.key_id} activated")


@keys_app.command("delete")
def keys_delete(
    key_id: str = typer.Argument(..., help="Key id (from keys list); not the active one."),
    state_dir: Path = _STATE,
) -> None:
    """Delete an inactive signing key and its key file."""
    from crossroad.central import server

    with _errors(), server.CentralState.open(state_dir, actor="cli:keys") as state:
        record = server.delete_signing_key(state, key_id.strip().upper())
    typer.echo(f"{record.source_type.value} signing key {record.key_id} deleted")


# --- anchors ---------------------------------------------------------------------------------


@anchor_app.command("export")
def anchor_export(
    source: str = _SOURCE,
    out: Path | None = typer.Option(None, "--out", help="File to write (default: stdout)."),
    state_dir: Path = _STATE,
) -> None:
    """Write the anchor of a source and print its SHA-224 hash (as NIIS shows it)."""
    from crossroad.central import server

    with _errors(), server.CentralState.open(state_dir, actor="cli:anchor") as state:
        exported = server.export_anchor(state, _source(source))
        if out is None:
            sys.stdout.buffer.write(exported.data)
            sys.stdout.flush()
            typer.echo(f"hash: {exported.hash}", err=True)
            return
        out.write_bytes(exported.data)
    generated = exported.anchor.generated_at
    typer.echo(f"anchor written to {out}")
    typer.echo(f"generated at: {generated.isoformat() if generated else '?'}")
    typer.echo(f"hash: {exported.hash}")


def register(central_app: typer.Typer) -> None:
    central_app.command("init")(init)
    central_app.command("run")(run)
    central_app.command("generate")(generate)
    central_app.add_typer(keys_app, name="keys")
    central_app.add_typer(anchor_app, name="anchor")
