"""``crossroad central ...`` registry commands: member classes, members, subsystems, security
servers (address, authentication certificates, clients, maintenance) and global groups here;
approved CAs and TSAs, the management service, system parameters, optional parts, trusted
anchors, API keys and the change history in :mod:`.central_registry_system` (protocols.md §11.1).

Every command takes ``--dir STATE_DIR`` (default ``.``), reads ``central.toml`` there and opens
(and migrates) its database.  Clients are written ``CLASS/CODE`` or ``CLASS/CODE/SUBSYSTEM``
(this instance), or in full (``SUBSYSTEM:EE/GOV/1234/sub``); servers ``CLASS/CODE/SERVER`` or
``SERVER:EE/GOV/1234/ss1``.  Errors print ``error: <code>: <detail>`` and exit with status 1;
history rows name the actor ``cli:<user>``.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from crossroad.central.registry import Registry
from crossroad.cli.failure import errors as _errors
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, ObjectType, SecurityServerId

_DIR = typer.Option(Path("."), "--dir", help="Central server state directory (with central.toml).")
_JSON = typer.Option(False, "--json", help="Print JSON.")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def open_registry(state_dir: Path) -> Registry:
    """The registry of the central server in ``state_dir`` (schema migrated to the newest)."""
    from crossroad.central.config import CentralConfig
    from crossroad.storage.engine import create_engine, migrate

    config = CentralConfig.load(state_dir)
    engine = create_engine(config.database_url)
    migrate(engine)
    return Registry(engine, actor=_actor())


@contextmanager
def _registry(state_dir: Path) -> Iterator[Registry]:
    with _errors():
        registry = open_registry(state_dir)
        try:
            yield registry
        finally:
            registry.engine.dispose()


# --- identifier arguments ------------------------------------------------------------------------


def parse_client(text: str, instance: str) -> ClientId:
    """``CLASS/CODE[/SUBSYSTEM]`` of ``instance``, or a full ``MEMBER:``/``SUBSYSTEM:`` id."""
    text = text.strip()
    if ":" in text:
        return ClientId.parse(text)
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise XRoadError(
            Code.INVALID_CLIENT_IDENTIFIER,
            f"Client {text!r}: write CLASS/CODE, CLASS/CODE/SUBSYSTEM or MEMBER:INST/CLASS/CODE",
        )
    return ClientId(instance, *parts)


def parse_server(text: str, instance: str) -> SecurityServerId:
    """``CLASS/CODE/SERVER`` of ``instance``, or ``SERVER:INST/CLASS/CODE/SERVER``."""
    text = text.strip()
    if ":" in text:
        return SecurityServerId.parse(text)
    parts = text.split("/")
    if len(parts) != 3 or not all(parts):
        raise XRoadError(
            Code.INVALID_SECURITY_SERVER,
            f"Server {text!r}: write CLASS/CODE/SERVER or SERVER:INST/CLASS/CODE/SERVER",
        )
    return SecurityServerId(ClientId(instance, parts[0], parts[1]), parts[2])


def _member(text: str, reg: Registry) -> ClientId:
    client = parse_client(text, reg.instance_identifier())
    if client.object_type is not ObjectType.MEMBER:
        raise XRoadError(Code.INVALID_CLIENT_IDENTIFIER, f"{client} is not a member")
    return client


def _subsystem(text: str, reg: Registry) -> ClientId:
    client = parse_client(text, reg.instance_identifier())
    if client.subsystem_code is None:
        raise XRoadError(Code.INVALID_CLIENT_IDENTIFIER, f"{client} is not a subsystem")
    return client


def _server(text: str, reg: Registry) -> SecurityServerId:
    return parse_server(text, reg.instance_identifier())


def _read(path: Path) -> bytes:
    return path.read_bytes()


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


# --- typer applications --------------------------------------------------------------------------

member_class_app = typer.Typer(help="Member classes.", no_args_is_help=True)
member_app = typer.Typer(help="Members.", no_args_is_help=True)
subsystem_app = typer.Typer(help="Subsystems.", no_args_is_help=True)
server_app = typer.Typer(help="Security servers.", no_args_is_help=True)
auth_cert_app = typer.Typer(
    help="Authentication certificates of a security server.", no_args_is_help=True
)
client_app = typer.Typer(help="Clients registered on a security server.", no_args_is_help=True)
group_app = typer.Typer(help="Global groups.", no_args_is_help=True)
group_member_app = typer.Typer(help="Members of a global group.", no_args_is_help=True)


def register(central_app: typer.Typer) -> None:
    """Add the registry commands to ``crossroad central``."""
    from crossroad.cli.central_registry_system import (
        anchor_app,
        apikey_app,
        ca_app,
        history,
        management_app,
        parameter_app,
        part_app,
        tsa_app,
    )

    server_app.add_typer(auth_cert_app, name="auth-cert")
    server_app.add_typer(client_app, name="client")
    group_app.add_typer(group_member_app, name="member")
    for app, name in (
        (member_class_app, "member-class"),
        (member_app, "member"),
        (subsystem_app, "subsystem"),
        (server_app, "server"),
        (group_app, "group"),
        (ca_app, "ca"),
        (tsa_app, "tsa"),
        (management_app, "management-service"),
        (parameter_app, "parameter"),
        (part_app, "part"),
        (anchor_app, "trusted-anchor"),
        (apikey_app, "apikey"),
    ):
        central_app.add_typer(app, name=name)
    central_app.command("history")(history)


# --- member classes, members, subsystems ---------------------------------------------------------


@member_class_app.command("add")
def member_class_add(code: str, description: str, state_dir: Path = _DIR) -> None:
    """Add a member class (GOV, COM, ...)."""
    with _registry(state_dir) as reg:
        reg.add_member_class(code, description)


@member_class_app.command("list")
def member_class_list(state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    with _registry(state_dir) as reg:
        classes = reg.member_classes()
    if as_json:
        _print_json([{"code": c.code, "description": c.description} for c in classes])
    for c in classes if not as_json else ():
        typer.echo(f"{c.code}\t{c.description}")


@member_class_app.command("delete")
def member_class_delete(code: str, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        reg.delete_member_class(code)


@member_app.command("add")
def member_add(member: str, name: str, state_dir: Path = _DIR) -> None:
    """Add a member: MEMBER is CLASS/CODE."""
    with _registry(state_dir) as reg:
        reg.add_member(_member(member, reg), name)


@member_app.command("rename")
def member_rename(member: str, name: str, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        reg.rename_member(_member(member, reg), name)


@member_app.command("delete")
def member_delete(member: str, state_dir: Path = _DIR) -> None:
    """Delete a member and its subsystems (refused while it is on a security server)."""
    with _registry(state_dir) as reg:
        reg.delete_member(_member(member, reg))


@member_app.command("list")
def member_list(state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    """List members and their subsystems."""
    with _registry(state_dir) as reg:
        members = reg.members()
    if as_json:
        _print_json(
            [
                {
                    "id": str(m.id),
                    "name": m.name,
                    "subsystems": [{"id": str(s.id), "name": s.name} for s in m.subsystems],
                }
                for m in members
            ]
        )
        return
    for m in members:
        typer.echo(f"{m.id}\t{m.name}")
        for s in m.subsystems:
            typer.echo(f"  {s.id}" + (f"\t{s.name}" if s.name else ""))


@subsystem_app.command("add")
def subsystem_add(
    subsystem: str,
    name: str | None = typer.Option(None, "--name", help="Subsystem name (V5+)."),
    state_dir: Path = _DIR,
) -> None:
    """Add a subsystem: SUBSYSTEM is CLASS/CODE/SUBSYSTEM."""
    with _registry(state_dir) as reg:
        reg.add_subsystem(_subsystem(subsystem, reg), name)


@subsystem_app.command("rename")
def subsystem_rename(subsystem: str, name: str, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        reg.rename_subsystem(_subsystem(subsystem, reg), name)


@subsystem_app.command("delete")
def subsystem_delete(subsystem: str, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        reg.delete_subsystem(_subsystem(subsystem, reg))


# --- security servers ----------------------------------------------------------------------------


@server_app.command("add")
def server_add(
    server: str,
    address: str | None = typer.Option(None, "--address", help="Host name or IP address."),
    state_dir: Path = _DIR,
) -> None:
    """Add a security server: SERVER is OWNERCLASS/OWNERCODE/SERVERCODE."""
    with _registry(state_dir) as reg:
        reg.add_security_server(_server(server, reg), address)


@server_app.command("address")
def server_address(server: str, address: str, state_dir: Path = _DIR) -> None:
    """Change a security server's address."""
    with _registry(state_dir) as reg:
        reg.set_server_address(_server(server, reg), address)


@server_app.command("delete")
def server_delete(server: str, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        reg.delete_security_server(_server(server, reg))


@server_app.command("maintenance")
def server_maintenance(
    server: str,
    on: bool = typer.Option(..., "--on/--off", help="Enter or leave maintenance mode."),
    message: str | None = typer.Option(None, "--message", help="Shown to clients (V5+)."),
    state_dir: Path = _DIR,
) -> None:
    with _registry(state_dir) as reg:
        reg.set_maintenance_mode(_server(server, reg), on, message)


@server_app.command("list")
def server_list(state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    """List security servers with their addresses, certificates and clients."""
    with _registry(state_dir) as reg:
        servers = reg.security_servers()
    if as_json:
        _print_json(
            [
                {
                    "id": str(s.id),
                    "owner_name": s.owner_name,
                    "address": s.address,
                    "in_maintenance": s.in_maintenance,
                    "maintenance_message": s.maintenance_message,
                    "auth_certs": [{"id": a.id, "hash": a.hash} for a in s.auth_certs],
                    "clients": [{"id": str(c.client), "enabled": c.enabled} for c in s.clients],
                }
                for s in servers
            ]
        )
        return
    for s in servers:
        flags = " (maintenance)" if s.in_maintenance else ""
        typer.echo(f"{s.id}\t{s.address or '-'}{flags}")
        for a in s.auth_certs:
            typer.echo(f"  auth-cert {a.id}\t{a.hash}")
        for c in s.clients:
            typer.echo(f"  client {c.client}" + ("" if c.enabled else "\t(disabled)"))


@auth_cert_app.command("add")
def auth_cert_add(server: str, cert_file: Path, state_dir: Path = _DIR) -> None:
    """Register an authentication certificate (PEM or DER file)."""
    with _registry(state_dir) as reg:
        record = reg.add_auth_cert(_server(server, reg), _read(cert_file))
    typer.echo(f"{record.id}\t{record.hash}")


@auth_cert_app.command("remove")
def auth_cert_remove(server: str, cert: str, state_dir: Path = _DIR) -> None:
    """Remove an authentication certificate by id or SHA-256 hash."""
    with _registry(state_dir) as reg:
        reg.delete_auth_cert(_server(server, reg), int(cert) if cert.isdigit() else cert)


@client_app.command("add")
def client_add(
    server: str,
    client: str,
    disabled: bool = typer.Option(False, "--disabled", help="Register it disabled."),
    state_dir: Path = _DIR,
) -> None:
    """Register CLIENT (CLASS/CODE[/SUBSYSTEM]) on SERVER."""
    with _registry(state_dir) as reg:
        instance = reg.instance_identifier()
        reg.add_server_client(
            _server(server, reg), parse_client(client, instance), enabled=not disabled
        )


@client_app.command("enable")
def client_enable(server: str, client: str, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        instance = reg.instance_identifier()
        reg.set_server_client_enabled(_server(server, reg), parse_client(client, instance), True)


@client_app.command("disable")
def client_disable(server: str, client: str, state_dir: Path = _DIR) -> None:
    """Disable a client: it leaves the global configuration but stays registered."""
    with _registry(state_dir) as reg:
        instance = reg.instance_identifier()
        reg.set_server_client_enabled(_server(server, reg), parse_client(client, instance), False)


@client_app.command("remove")
def client_remove(server: str, client: str, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        instance = reg.instance_identifier()
        reg.delete_server_client(_server(server, reg), parse_client(client, instance))


# --- global groups -------------------------------------------------------------------------------


@group_app.command("add")
def group_add(code: str, description: str, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        reg.add_global_group(code, description)


@group_app.command("delete")
def group_delete(code: str, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        reg.delete_global_group(code)


@group_app.command("list")
def group_list(state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    with _registry(state_dir) as reg:
        groups = reg.global_groups()
    if as_json:
        _print_json(
            [
                {
                    "code": g.code,
                    "description": g.description,
                    "members": [str(m) for m in g.members],
                }
                for g in groups
            ]
        )
        return
    for g in groups:
        typer.echo(f"{g.code}\t{g.description}")
        for m in g.members:
            typer.echo(f"  {m}")


@group_member_app.command("add")
def group_member_add(code: str, client: str, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        reg.add_global_group_member(code, parse_client(client, reg.instance_identifier()))


@group_member_app.command("remove")
def group_member_remove(code: str, client: str, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        reg.delete_global_group_member(code, parse_client(client, reg.instance_identifier()))
