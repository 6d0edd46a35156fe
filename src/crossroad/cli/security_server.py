"""``crossroad security-server init|run|status``: one security server, one command.

``init STATE --owner MEMBER:I/C/M --server-code SS1 --anchor FILE`` creates the state directory
(:mod:`crossroad.securityserver.state`); ``run STATE`` starts the signer, the configuration
client, the proxy workers, the OCSP download service and the management API, prints where they
listen once ready, and stops them all on SIGTERM/SIGINT (:mod:`crossroad.securityserver.
supervisor`); ``status STATE`` prints what a running server wrote to ``run.json``.  The
server's configuration (clients, services, access rights) is managed with ``crossroad server
--dir STATE ...``, its keys with ``crossroad signer ... --socket STATE/signer.sock``.  Errors
print ``error: <code>: <detail>`` and exit with status 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import typer

from crossroad.cli.failure import errors as _errors
from crossroad.errors import Code, XRoadError

PIN_ENV = "CROSSROAD_SIGNER_PIN"

security_server_app = typer.Typer(
    help="One security server, one command: init a state directory, run everything.",
    no_args_is_help=True,
)
_STATE = typer.Argument(..., help="State directory of the security server.")


def register(app: typer.Typer) -> None:
    app.add_typer(security_server_app, name="security-server")


def _pin(path: Path | None) -> str:
    if path is not None:
        return path.read_text("utf-8").rstrip("\r\n")
    value = os.environ.get(PIN_ENV)
    if value:
        return value
    return str(typer.prompt("Software token PIN", hide_input=True, confirmation_prompt=True))


@security_server_app.command("init")
def init(
    state_dir: Path = _STATE,
    owner: str = typer.Option(..., "--owner", help="Owner member, MEMBER:INSTANCE/CLASS/CODE."),
    server_code: str = typer.Option(..., "--server-code", help="Security server code."),
    anchor: Path = typer.Option(..., "--anchor", help="Configuration anchor of the instance."),
    db: str = typer.Option("", "--db", help="Database URL (default: STATE/server.db, SQLite)."),
    token_type: str = typer.Option(
        "software", "--token", help="software, or pkcs11 (with a module)."
    ),
    pkcs11_module: list[str] = typer.Option(
        [], "--pkcs11-module", help="PKCS#11 library (ID=PATH or PATH); repeatable."
    ),
    pin_file: Path | None = typer.Option(
        None, "--pin-file", help=f"File holding the software token PIN (else ${PIN_ENV})."
    ),
    autologin: bool = typer.Option(
        False, "--autologin", help="Keep the PIN (0600) and log the token in at every start."
    ),
    host: str | None = typer.Option(None, "--host", help="Bind every listener to this address."),
    client_http_port: int = typer.Option(8080, "--client-http-port"),
    client_https_port: int = typer.Option(8443, "--client-https-port"),
    server_port: int = typer.Option(5500, "--server-port"),
    ocsp_port: int = typer.Option(5577, "--ocsp-port"),
    admin_port: int = typer.Option(4000, "--admin-port"),
    workers: int = typer.Option(2, "--workers", help="Proxy worker processes."),
    conf_interval: float = typer.Option(
        60.0, "--conf-interval", help="Seconds between global configuration downloads."
    ),
) -> None:
    """Create a security server's state directory: settings, anchor, database, signer, TLS."""
    from crossroad.identifiers import ClientId
    from crossroad.securityserver.settings import SecurityServerSettings
    from crossroad.securityserver.state import initialize

    with _errors():
        member = ClientId.parse(owner)
        modules = []
        for item in pkcs11_module:
            module_id, sep, path = item.partition("=")
            if not sep:
                path, module_id = item, Path(item).stem.removeprefix("lib") or "pkcs11"
            modules.append((module_id, path))
        hsm = {"software": False, "pkcs11": True}.get(token_type)
        if hsm is None:
            raise XRoadError(Code.INVALID_REQUEST, "--token must be software or pkcs11")
        if hsm and not modules:
            raise XRoadError(Code.INVALID_REQUEST, "--token pkcs11 needs --pkcs11-module PATH")
        settings = SecurityServerSettings(
            state_dir,
            client_http_port=client_http_port,
            client_https_port=client_https_port,
            server_port=server_port,
            ocsp_port=ocsp_port,
            admin_port=admin_port,
            workers=workers,
            conf_interval_seconds=conf_interval,
        )
        if host:
            settings = settings.replace(
                client_host=host, server_host=host, ocsp_host=host, admin_host=host
            )
        done = initialize(
            state_dir,
            owner=member,
            server_code=server_code,
            anchor=anchor.read_bytes(),
            pin=_pin(pin_file),
            database_url=db,
            pkcs11_modules=modules,
            settings=settings,
            autologin=autologin,
        )
    typer.echo(f"initialised security server {done.server_id} in {done.settings.state_dir}")
    typer.echo(f"anchor of instance {done.instance}, hash {done.anchor_hash}")
    typer.echo(f"next: crossroad security-server run {state_dir}")


@security_server_app.command("run")
def run(
    state_dir: Path = _STATE,
    workers: int | None = typer.Option(None, "--workers", help="Proxy worker processes."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log more."),
) -> None:
    """Run the security server until SIGTERM or SIGINT (SIGHUP: update the configuration now)."""
    from crossroad.securityserver.launch import die_with_parent
    from crossroad.securityserver.supervisor import Ready, run_security_server

    die_with_parent()  # when started by a supervisor of our own (the demo)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("aiohttp.access", "sqlalchemy", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    def ready(r: Ready) -> None:
        typer.echo(f"ready: security server {r.server_id} (pid {r.pid})")
        typer.echo(f"  client proxy     {r.client_http}  {r.client_https}")
        typer.echo(f"  server proxy     {r.server_proxy}  ({len(r.worker_pids)} workers)")
        typer.echo(f"  OCSP service     {r.ocsp_service}")
        if r.admin_api:
            typer.echo(f"  management API   {r.admin_api}")
        typer.echo(f"  signer           {r.signer_socket} (pid {r.signer_pid})")
        typer.echo(f"  global conf      {r.globalconf}")
        sys.stdout.flush()

    with _errors():
        status = asyncio.run(run_security_server(state_dir, workers=workers, on_ready=ready))
    typer.echo("stopped")
    raise typer.Exit(status)


@security_server_app.command("status")
def status(state_dir: Path = _STATE) -> None:
    """What the running server wrote to ``STATE/run.json`` (JSON); exit 1 if it is not running."""
    from crossroad.securityserver.settings import SecurityServerSettings

    with _errors():
        settings = SecurityServerSettings.load(state_dir)
        try:
            data = json.loads(settings.run_file.read_text("utf-8"))
        except FileNotFoundError:
            raise XRoadError(Code.IO_ERROR, f"{state_dir} is not running") from None
        pid = data.get("pid")
        try:
            os.kill(int(pid), 0)
        except (TypeError, ValueError, ProcessLookupError):
            raise XRoadError(
                Code.IO_ERROR, f"{state_dir} is not running (stale run.json)"
            ) from None
        except PermissionError:
            pass
    typer.echo(json.dumps(data, indent=2))
