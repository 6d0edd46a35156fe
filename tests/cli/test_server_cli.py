"""``crossroad server ...`` through Typer's CliRunner, on a SQLite state directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from crossroad.cli.server import database_url, open_store, register
from crossroad.identifiers import ClientId, ServiceId
from crossroad.serverconf.access import check_access

PROV = "SUBSYSTEM:EE/GOV/1/prov"
CONS = "SUBSYSTEM:EE/COM/2/cons"


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    register(app)
    runner = CliRunner()
    state = tmp_path / "ss"

    def run(*args: str, ok: bool = True) -> str:
        result = runner.invoke(app, ["server", *args, "--dir", str(state)])
        assert (result.exit_code == 0) is ok, result.output
        return result.output

    run.state = state  # type: ignore[attr-defined]
    return run


def test_full_configuration(cli, vectors: Path) -> None:  # type: ignore[no-untyped-def]
    meta = vectors / "metaservice"
    assert "SERVER:EE/GOV/1/ss1" in cli(
        "init", "--owner", "MEMBER:EE/GOV/1", "--server-code", "ss1"
    )
    assert (cli.state / "server.toml").is_file()
    cli("client", "add", PROV, "--connection-type", "nossl")
    cli("client", "status", PROV, "registered")
    wsdl_id = cli("description", "add", PROV, "--wsdl", str(meta / "wsdl.wsdl"), "--enable").strip()
    api_id = cli(
        "description", "add", PROV, "--rest", "http://127.0.0.1:9/api", "--service-code", "api"
    ).strip()
    cli(
        "description",
        "add",
        PROV,
        "--openapi",
        str(meta / "petstore.yaml"),
        "--service-code",
        "pets",
    )
    cli("description", "enable", api_id)
    cli("service", "set-url", "SERVICE:EE/GOV/1/prov/getRandom/v1", "http://127.0.0.1:9/soap")
    cli("service", "timeout", "SERVICE:EE/GOV/1/prov/getRandom/v1", "25")
    cli("service", "verify-tls", "SERVICE:EE/GOV/1/prov/api", "false")
    endpoint = cli("endpoint", "add", "SERVICE:EE/GOV/1/prov/api", "GET", "/items/*").strip()
    cli("localgroup", "add", PROV, "team", "The team")
    cli("localgroup", "member", "add", PROV, "team", CONS)
    cli("acl", "add", "SERVICE:EE/GOV/1/prov/getRandom/v1", CONS, "GLOBALGROUP:EE/owners")
    cli("acl", "add", "SERVICE:EE/GOV/1/prov/api", "LOCALGROUP:team", "--endpoint", endpoint)
    cli("acl", "remove", "SERVICE:EE/GOV/1/prov/getRandom/v1", "GLOBALGROUP:EE/owners")
    key = cli("apikey", "create", "ops", "--role", "service_administrator").strip()
    assert key.startswith("ssk_")

    rows = json.loads(cli("acl", "list", PROV, "--json"))
    assert {(r["service"], r["subject"], r["path"]) for r in rows} == {
        ("getRandom", CONS, "**"),
        ("api", "LOCALGROUP:team", "/items/*"),
    }
    services = {r["id"]: r for r in json.loads(cli("service", "list", PROV, "--json"))}
    assert services["SERVICE:EE/GOV/1/prov/getRandom/v1"]["timeout"] == 25
    assert services["SERVICE:EE/GOV/1/prov/api"]["verify_tls"] is False
    assert services["SERVICE:EE/GOV/1/prov/pets"]["disabled"] is True
    clients = json.loads(cli("client", "list", "--json"))
    assert {c["id"]: c["connection_type"] for c in clients}[PROV] == "NOSSL"
    assert json.loads(cli("apikey", "list", "--json"))[0]["name"] == "ops"
    assert "team" in cli("localgroup", "list", PROV)
    assert "/items/*" in cli("endpoint", "list", "SERVICE:EE/GOV/1/prov/api")
    assert "getRandom.v1" in cli("description", "list", PROV)
    cli("description", "refresh", wsdl_id)  # re-read from its file: URL

    conf = open_store(cli.state).snapshot()
    cons = ClientId("EE", "COM", "2", "cons")
    provider = ClientId("EE", "GOV", "1", "prov")
    check_access(conf, lambda c, g: False, cons, ServiceId(provider, "getRandom", "v1"))
    check_access(
        conf, lambda c, g: False, cons, ServiceId(provider, "api"), method="GET", path="/items/1"
    )
    summary = json.loads(cli("show", "--json"))
    assert summary["server"] == "SERVER:EE/GOV/1/ss1"


def test_errors_are_coded(cli) -> None:  # type: ignore[no-untyped-def]
    cli("init", "--owner", "MEMBER:EE/GOV/1", "--server-code", "ss1")
    out = cli("init", "--owner", "MEMBER:EE/GOV/1", "--server-code", "ss1", ok=False)
    assert "server_already_fully_initialized" in out
    assert "client_not_found" in cli("client", "register", PROV, ok=False)
    assert "invalid_client_identifier" in cli("client", "add", "SERVICE:EE/GOV/1/x/y", ok=False)
    assert "missing_parameter" in cli("description", "add", "MEMBER:EE/GOV/1", ok=False)
    assert "io_error" in cli(
        "description", "add", "MEMBER:EE/GOV/1", "--wsdl", "/nonexistent.wsdl", ok=False
    )
    assert "invalid_role" in cli("apikey", "create", "x", "--role", "root", ok=False)
    assert "local_group_not_found" in cli("localgroup", "delete", "MEMBER:EE/GOV/1", "g", ok=False)


def test_settings_file(tmp_path: Path) -> None:
    assert database_url(tmp_path).endswith("/server.db")
    (tmp_path / "server.toml").write_text('database_url = "sqlite:///x.db"\n')
    assert database_url(tmp_path) == "sqlite:///x.db"
    (tmp_path / "server.toml").write_text("database_url = [\n")
    with pytest.raises(Exception, match="invalid_configuration"):
        database_url(tmp_path)
