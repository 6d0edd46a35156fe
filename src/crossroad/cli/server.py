"""``crossroad server ...``: the security server's configuration from the command line (a shell
over :class:`crossroad.serverconf.store.ServerConfStore`; protocols.md §10.4–10.6).

The state directory (``--dir``, default ``$CROSSROAD_SERVER_DIR``, else the current directory)
holds ``server.toml`` with ``database_url``; without one the database is ``server.db`` there.
Identifiers are written in their ``TYPE:...`` form: ``SUBSYSTEM:EE/GOV/1234/sub``,
``SERVICE:EE/GOV/1234/sub/getX/v1``, ``GLOBALGROUP:EE/security-server-owners``,
``LOCALGROUP:code``.  Errors print ``error: <code>: <detail>`` and exit with status 1.

New service descriptions are disabled, as in NIIS, unless ``--enable`` is given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from crossroad import settingsfile
from crossroad.cli.failure import errors as _errors
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, ServiceId, parse_identifier

if TYPE_CHECKING:
    from crossroad.serverconf.store import ServerConfStore

SETTINGS = "server.toml"
_ENV = "CROSSROAD_SERVER_DIR"
_DIR = typer.Option(
    Path("."), "--dir", "-d", envvar=_ENV, help=f"State directory of the security server (${_ENV})."
)
_JSON = typer.Option(False, "--json", help="Print JSON.")

server_app = typer.Typer(help="Security server configuration.", no_args_is_help=True)
client_app = typer.Typer(help="Clients (members and subsystems).", no_args_is_help=True)
cert_app = typer.Typer(
    help="Information-system TLS certificates of a client.", no_args_is_help=True
)
description_app = typer.Typer(
    help="Service descriptions (WSDL, OpenAPI 3, REST).", no_args_is_help=True
)
service_app = typer.Typer(help="Services: URL, timeout, TLS verification.", no_args_is_help=True)
endpoint_app = typer.Typer(help="REST endpoints of a service.", no_args_is_help=True)
acl_app = typer.Typer(help="Access rights.", no_args_is_help=True)
group_app = typer.Typer(help="Local groups.", no_args_is_help=True)
member_app = typer.Typer(help="Members of a local group.", no_args_is_help=True)
apikey_app = typer.Typer(help="Management API keys.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(server_app, name="server")


# --- plumbing ----------------------------------------------------------------------------------


def database_url(state_dir: Path) -> str:
    """The database of a state directory (``server.toml``, else ``server.db`` in it)."""
    path = state_dir / SETTINGS
    if not path.exists():
        return _default_database_url(state_dir)
    data = settingsfile.read(path)
    settingsfile.refuse_unknown(data, [("", "database_url")], str(path))
    url = data.get("database_url")
    if not isinstance(url, str) or not url:
        raise XRoadError(Code.INVALID_CONFIGURATION, f"{path}: database_url is missing")
    return url


def write_settings(state_dir: Path, url: str) -> Path:
    """Write ``server.toml`` (0600: a database URL may hold a password)."""
    text = settingsfile.render([("", "database_url", url)])
    return settingsfile.write(state_dir / SETTINGS, text, private=True)


def _default_database_url(state_dir: Path) -> str:
    return f"sqlite:///{(state_dir / 'server.db').resolve()}"


def open_store(state_dir: Path) -> ServerConfStore:
    from crossroad.serverconf.store import ServerConfStore
    from crossroad.storage.engine import create_engine

    return ServerConfStore(create_engine(database_url(state_dir)))


def _client(text: str) -> ClientId:
    ident = parse_identifier(text.strip())
    if not isinstance(ident, ClientId):
        raise XRoadError(Code.INVALID_CLIENT_IDENTIFIER, f"{text!r} is not a MEMBER or SUBSYSTEM")
    return ident


def _service(text: str) -> ServiceId:
    ident = parse_identifier(text.strip())
    if not isinstance(ident, ServiceId):
        raise XRoadError(Code.INVALID_SERVICE_IDENTIFIER, f"{text!r} is not a SERVICE")
    return ident


def _print(rows: list[dict[str, Any]], as_json: bool, columns: tuple[str, ...]) -> None:
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    for row in rows:
        typer.echo("\t".join("" if row.get(c) is None else str(row.get(c)) for c in columns))


# --- server ------------------------------------------------------------------------------------


@server_app.command("init")
def init(
    owner: str = typer.Option(..., "--owner", help="Owner member, MEMBER:INSTANCE/CLASS/CODE."),
    server_code: str = typer.Option(..., "--server-code", help="Security server code."),
    db_url: str | None = typer.Option(None, "--database-url", help="Default: server.db in --dir."),
    state_dir: Path = _DIR,
) -> None:
    """Create the state directory, its settings and database, and set owner and server code."""
    with _errors():
        state_dir.mkdir(parents=True, exist_ok=True)
        settings = state_dir / SETTINGS
        if not settings.exists():
            write_settings(state_dir, db_url or _default_database_url(state_dir))
        server_id = open_store(state_dir).initialize(_client(owner), server_code)
        typer.echo(f"initialized {server_id}")


@server_app.command("show")
def show(state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    """The server identity and a summary of its clients."""
    with _errors():
        conf = open_store(state_dir).snapshot()
        clients: list[dict[str, Any]] = [
            {
                "id": str(c.id),
                "status": c.status.value,
                "services": len(conf.services_of(c.id)),
                "access_rights": len(c.access_rights),
            }
            for c in conf.clients
        ]
        server = None if conf.server_id is None else str(conf.server_id)
        if as_json:
            typer.echo(json.dumps({"server": server, "clients": clients}))
            return
        typer.echo(f"server\t{server}")
        _print(clients, False, ("id", "status", "services", "access_rights"))


@server_app.command("api")
def api(
    state_dir: Path = _DIR,
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(4000, "--port"),
) -> None:
    """Serve the management REST API (``/api/v1``, OpenAPI at ``/api/v1/openapi.json``)."""
    import uvicorn

    from crossroad.serverconf.api import create_app

    with _errors():
        app = create_app(open_store(state_dir))
    uvicorn.run(app, host=host, port=port, log_level="warning")


# --- clients -----------------------------------------------------------------------------------


@client_app.command("add")
def client_add(
    client: str,
    connection_type: str = typer.Option("SSLAUTH", "--connection-type"),
    state_dir: Path = _DIR,
) -> None:
    """Add a member or subsystem (status ``saved``)."""
    from crossroad.serverconf.model import ConnectionType

    with _errors():
        try:
            ct = ConnectionType(connection_type.upper())
        except ValueError:
            raise XRoadError(Code.INVALID_CONNECTION_TYPE, connection_type) from None
        open_store(state_dir).add_client(_client(client), connection_type=ct)
        typer.echo(f"added {client}")


@client_app.command("list")
def client_list(state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    with _errors():
        conf = open_store(state_dir).snapshot()
        rows = [
            {"id": str(c.id), "status": c.status.value, "connection_type": c.connection_type.value}
            for c in conf.clients
        ]
        _print(rows, as_json, ("id", "status", "connection_type"))


@client_app.command("status")
def client_status(client: str, status: str, state_dir: Path = _DIR) -> None:
    """Set a client's status (saved, registration in progress, registered, ...)."""
    from crossroad.serverconf.model import ClientStatus

    with _errors():
        try:
            value = ClientStatus(status.lower().replace("_", " "))
        except ValueError:
            raise XRoadError(Code.VALIDATION_FAILURE, f"Unknown client status {status!r}") from None
        open_store(state_dir).set_client_status(_client(client), value)
        typer.echo(f"{client}: {value.value}")


@client_app.command("register")
def client_register(client: str, state_dir: Path = _DIR) -> None:
    """Mark the client's registration as requested (status ``registration in progress``)."""
    with _errors():
        open_store(state_dir).register_client(_client(client))
        typer.echo(f"{client}: registration in progress")


@client_app.command("connection-type")
def client_connection_type(client: str, connection_type: str, state_dir: Path = _DIR) -> None:
    """NOSSL, SSLNOAUTH or SSLAUTH."""
    with _errors():
        open_store(state_dir).set_connection_type(_client(client), connection_type.upper())
        typer.echo(f"{client}: {connection_type.upper()}")


@client_app.command("delete")
def client_delete(client: str, state_dir: Path = _DIR) -> None:
    with _errors():
        open_store(state_dir).delete_client(_client(client))
        typer.echo(f"deleted {client}")


@cert_app.command("add")
def cert_add(client: str, cert_file: Path, state_dir: Path = _DIR) -> None:
    """Register an IS TLS certificate (PEM or DER) for SSLAUTH connections."""
    with _errors():
        digest = open_store(state_dir).add_is_cert(_client(client), cert_file.read_bytes())
        typer.echo(digest)


@cert_app.command("list")
def cert_list(client: str, state_dir: Path = _DIR) -> None:
    import hashlib

    with _errors():
        conf = open_store(state_dir).snapshot()
        for der in sorted(conf.is_certs(_client(client))):
            typer.echo(hashlib.sha256(der).hexdigest())


@cert_app.command("remove")
def cert_remove(client: str, cert_hash: str, state_dir: Path = _DIR) -> None:
    with _errors():
        open_store(state_dir).remove_is_cert(_client(client), cert_hash)
        typer.echo(f"removed {cert_hash}")


# --- descriptions and services ----------------------------------------------------------------


@description_app.command("add")
def description_add(
    client: str,
    wsdl: Path | None = typer.Option(None, "--wsdl", help="WSDL file."),
    openapi: Path | None = typer.Option(None, "--openapi", help="OpenAPI 3 file (YAML/JSON)."),
    rest: str | None = typer.Option(None, "--rest", help="Base URL of a plain REST service."),
    url: str | None = typer.Option(None, "--url", help="Where the description lives."),
    service_code: str | None = typer.Option(None, "--service-code", help="REST service code."),
    enable: bool = typer.Option(False, "--enable", help="Enable it at once."),
    state_dir: Path = _DIR,
) -> None:
    """Add a description from --wsdl FILE, --openapi FILE or --rest URL; prints its id."""
    with _errors():
        if sum(x is not None for x in (wsdl, openapi, rest)) != 1:
            raise XRoadError(Code.MISSING_PARAMETER, "Give one of --wsdl, --openapi, --rest")
        store, cid = open_store(state_dir), _client(client)
        if wsdl is not None:
            did = store.add_wsdl(
                cid, url or wsdl.resolve().as_uri(), wsdl.read_bytes(), enabled=enable
            )
        else:
            if not service_code:
                raise XRoadError(Code.MISSING_PARAMETER, "--service-code is needed for REST")
            if openapi is not None:
                source = url or openapi.resolve().as_uri()
                did = store.add_openapi(
                    cid, source, openapi.read_bytes(), service_code, enabled=enable
                )
            else:
                did = store.add_rest(cid, str(rest), service_code, enabled=enable)
        typer.echo(str(did))


@description_app.command("list")
def description_list(client: str, state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    with _errors():
        conf = open_store(state_dir).snapshot()
        found = conf.client(_client(client))
        if found is None:
            raise XRoadError(Code.CLIENT_NOT_FOUND, f"Client {client} not found")
        rows = [
            {
                "id": d.id,
                "type": d.type.value,
                "url": d.url,
                "disabled": d.disabled,
                "services": ",".join(s.full_code for s in d.services),
            }
            for d in found.descriptions
        ]
        _print(rows, as_json, ("id", "type", "disabled", "url", "services"))


@description_app.command("enable")
def description_enable(description_id: int, state_dir: Path = _DIR) -> None:
    with _errors():
        open_store(state_dir).enable_description(description_id)
        typer.echo(f"enabled {description_id}")


@description_app.command("disable")
def description_disable(
    description_id: int,
    notice: str | None = typer.Option(None, "--notice"),
    state_dir: Path = _DIR,
) -> None:
    with _errors():
        open_store(state_dir).disable_description(description_id, notice)
        typer.echo(f"disabled {description_id}")


@description_app.command("refresh")
def description_refresh(
    description_id: int,
    file: Path | None = typer.Option(None, "--file", help="The new WSDL/OpenAPI document."),
    state_dir: Path = _DIR,
) -> None:
    """Re-read a description (from --file, or from its file: URL)."""
    from urllib.parse import unquote, urlsplit

    with _errors():
        store = open_store(state_dir)
        description = store.snapshot().description(description_id)
        if description is None:
            raise XRoadError(Code.SERVICE_DESCRIPTION_NOT_FOUND, f"No description {description_id}")
        content = None
        if file is not None:
            content = file.read_bytes()
        elif description.url.startswith("file:"):
            content = Path(unquote(urlsplit(description.url).path)).read_bytes()
        store.refresh_description(description_id, content)
        typer.echo(f"refreshed {description_id}")


@description_app.command("delete")
def description_delete(description_id: int, state_dir: Path = _DIR) -> None:
    with _errors():
        open_store(state_dir).delete_description(description_id)
        typer.echo(f"deleted {description_id}")


@service_app.command("list")
def service_list(client: str, state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    with _errors():
        conf = open_store(state_dir).snapshot()
        rows = [
            {
                "id": str(e.id),
                "type": e.type.value,
                "url": e.service.url,
                "timeout": e.service.timeout,
                "verify_tls": e.service.ssl_authentication,
                "disabled": e.description.disabled,
            }
            for e in conf.services_of(_client(client))
        ]
        _print(rows, as_json, ("id", "type", "url", "timeout", "verify_tls", "disabled"))


@service_app.command("set-url")
def service_set_url(service: str, url: str, state_dir: Path = _DIR) -> None:
    with _errors():
        open_store(state_dir).update_service(_service(service), url=url)
        typer.echo(f"{service}: {url}")


@service_app.command("timeout")
def service_timeout(service: str, seconds: int, state_dir: Path = _DIR) -> None:
    with _errors():
        open_store(state_dir).update_service(_service(service), timeout=seconds)
        typer.echo(f"{service}: {seconds} s")


@service_app.command("verify-tls")
def service_verify_tls(
    service: str, on: bool = typer.Argument(...), state_dir: Path = _DIR
) -> None:
    """Verify the provider IS's TLS certificate against the client's IS certificates."""
    with _errors():
        open_store(state_dir).update_service(_service(service), ssl_authentication=on)
        typer.echo(f"{service}: verify TLS {'on' if on else 'off'}")


@endpoint_app.command("add")
def endpoint_add(service: str, method: str, path: str, state_dir: Path = _DIR) -> None:
    """Add an endpoint (METHOD or *, path glob) to a REST service; prints its id."""
    with _errors():
        sid = _service(service)
        eid = open_store(state_dir).add_endpoint(sid.client, sid.service_code, method, path)
        typer.echo(str(eid))


@endpoint_app.command("list")
def endpoint_list(service: str, state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    with _errors():
        sid = _service(service)
        conf = open_store(state_dir).snapshot()
        rows = [
            {"id": e.id, "method": e.method, "path": e.path, "generated": e.generated}
            for e in conf.endpoints(sid.client, sid.service_code)
        ]
        _print(rows, as_json, ("id", "method", "path", "generated"))


@endpoint_app.command("delete")
def endpoint_delete(endpoint_id: int, state_dir: Path = _DIR) -> None:
    with _errors():
        open_store(state_dir).delete_endpoint(endpoint_id)
        typer.echo(f"deleted {endpoint_id}")


# --- access rights and local groups ------------------------------------------------------------

_ENDPOINT = typer.Option(None, "--endpoint", help="An endpoint id (default: the whole service).")


@acl_app.command("add")
def acl_add(
    service: str, subjects: list[str], endpoint: int | None = _ENDPOINT, state_dir: Path = _DIR
) -> None:
    """Let SUBJECTS (members, subsystems, GLOBALGROUP:..., LOCALGROUP:...) call SERVICE."""
    with _errors():
        sid = _service(service)
        code = None if endpoint is not None else sid.service_code
        open_store(state_dir).add_access_rights(sid.client, code, subjects, endpoint_id=endpoint)
        typer.echo(f"granted {service} to {', '.join(subjects)}")


@acl_app.command("remove")
def acl_remove(
    service: str, subjects: list[str], endpoint: int | None = _ENDPOINT, state_dir: Path = _DIR
) -> None:
    with _errors():
        sid = _service(service)
        code = None if endpoint is not None else sid.service_code
        open_store(state_dir).remove_access_rights(sid.client, code, subjects, endpoint_id=endpoint)
        typer.echo(f"revoked {service} from {', '.join(subjects)}")


@acl_app.command("list")
def acl_list(target: str, state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    """The access rights of a SERVICE, or of every service of a client."""
    with _errors():
        conf = open_store(state_dir).snapshot()
        ident = parse_identifier(target.strip())
        if isinstance(ident, ServiceId):
            pairs = [(ident.client, ident.service_code)]
        elif isinstance(ident, ClientId):
            pairs = sorted({(ident, e.service.service_code) for e in conf.services_of(ident)})
        else:
            raise XRoadError(Code.INVALID_IDENTIFIER, f"{target!r}: give a SERVICE or a client")
        rows = [
            {
                "service": code,
                "subject": str(right.subject),
                "method": endpoint.method,
                "path": endpoint.path,
                "given_at": right.rights_given_at,
            }
            for provider, code in pairs
            for right, endpoint in conf.acl(provider, code).all
        ]
        _print(rows, as_json, ("service", "subject", "method", "path", "given_at"))


@group_app.command("add")
def group_add(client: str, code: str, description: str, state_dir: Path = _DIR) -> None:
    """Add local group CODE to CLIENT; prints its id."""
    with _errors():
        typer.echo(str(open_store(state_dir).add_local_group(_client(client), code, description)))


@group_app.command("list")
def group_list(client: str, state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    with _errors():
        found = open_store(state_dir).snapshot().client(_client(client))
        if found is None:
            raise XRoadError(Code.CLIENT_NOT_FOUND, f"Client {client} not found")
        rows = [
            {
                "id": g.id,
                "code": g.code,
                "description": g.description,
                "members": ",".join(str(m.id) for m in g.members),
            }
            for g in found.local_groups
        ]
        _print(rows, as_json, ("id", "code", "description", "members"))


def _group_id(store: ServerConfStore, client: str, code: str) -> int:
    group = store.snapshot().local_group(_client(client), code)
    if group is None:
        raise XRoadError(Code.LOCAL_GROUP_NOT_FOUND, f"{client} has no local group {code}")
    return group.id


@group_app.command("delete")
def group_delete(client: str, code: str, state_dir: Path = _DIR) -> None:
    with _errors():
        store = open_store(state_dir)
        store.delete_local_group(_group_id(store, client, code))
        typer.echo(f"deleted {code}")


@member_app.command("add")
def member_add(client: str, code: str, members: list[str], state_dir: Path = _DIR) -> None:
    """Add MEMBERS (members or subsystems) to local group CODE of CLIENT."""
    with _errors():
        store = open_store(state_dir)
        store.add_local_group_members(_group_id(store, client, code), [_client(m) for m in members])
        typer.echo(f"{code}: added {', '.join(members)}")


@member_app.command("remove")
def member_remove(client: str, code: str, members: list[str], state_dir: Path = _DIR) -> None:
    with _errors():
        store = open_store(state_dir)
        gid = _group_id(store, client, code)
        store.remove_local_group_members(gid, [_client(m) for m in members])
        typer.echo(f"{code}: removed {', '.join(members)}")


# --- API keys ----------------------------------------------------------------------------------


@apikey_app.command("create")
def apikey_create(
    name: str,
    role: list[str] = typer.Option(..., "--role", help="Role (repeatable)."),
    state_dir: Path = _DIR,
) -> None:
    """Create a management API key; the key is printed once."""
    from crossroad.serverconf.api import role_from_text

    with _errors():
        _record, secret = open_store(state_dir).create_api_key(
            name, [role_from_text(r) for r in role]
        )
        typer.echo(secret)


@apikey_app.command("list")
def apikey_list(state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    with _errors():
        rows = [
            {"id": k.id, "name": k.name, "roles": ",".join(sorted(k.roles))}
            for k in open_store(state_dir).api_keys()
        ]
        _print(rows, as_json, ("id", "name", "roles"))


@apikey_app.command("revoke")
def apikey_revoke(name: str, state_dir: Path = _DIR) -> None:
    with _errors():
        open_store(state_dir).revoke_api_key(int(name) if name.isdigit() else name)
        typer.echo(f"revoked {name}")


client_app.add_typer(cert_app, name="cert")
group_app.add_typer(member_app, name="member")
for _name, _sub in (
    ("client", client_app),
    ("description", description_app),
    ("service", service_app),
    ("endpoint", endpoint_app),
    ("acl", acl_app),
    ("localgroup", group_app),
    ("apikey", apikey_app),
):
    server_app.add_typer(_sub, name=_name)
