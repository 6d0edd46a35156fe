"""``crossroad central`` registry commands through typer's CliRunner: a registry built from the
command line ends up in the shared parameters; errors are one line with the X-Road code and exit
status 1; identifier arguments parse or give coded errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from crossroad.central.config import CentralConfig
from crossroad.central.registry import Registry
from crossroad.cli.central_registry import open_registry, parse_client, parse_server
from crossroad.cli.main import app
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import AnchorSource, ConfigurationAnchor
from crossroad.globalconf.privateparams import render_anchor
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.testing.pki import TestPKI as _PKI

PROFILE = "ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider"
runner = CliRunner()


@pytest.fixture(scope="module")
def pki() -> _PKI:
    return _PKI.create()


@pytest.fixture
def state(tmp_path: Path) -> Path:
    CentralConfig(
        tmp_path, instance_identifier="EE", central_server_address="cs.example.org"
    ).save()
    registry = open_registry(tmp_path)
    registry.initialize("EE", "cs.example.org")
    registry.engine.dispose()
    return tmp_path


def run(state: Path, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["central", *args, "--dir", str(state)])
    assert result.exit_code == code, result.output
    return result.output


def write(path: Path, cert: Any) -> Path:
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return path


def test_build_a_registry_from_the_command_line(state: Path, pki: _PKI) -> None:
    run(state, "member-class", "add", "GOV", "Government")
    run(state, "member", "add", "GOV/1", "Agency")
    run(state, "member", "add", "MEMBER:EE/GOV/2", "Other")
    run(state, "subsystem", "add", "GOV/2/sub", "--name", "Sub")
    run(state, "server", "add", "GOV/1/ss1", "--address", "ss1.example.org")
    run(state, "server", "address", "SERVER:EE/GOV/1/ss1", "10.0.0.1")
    out = run(
        state,
        "server",
        "auth-cert",
        "add",
        "GOV/1/ss1",
        str(write(state / "auth.pem", pki.auth_cert("EE", "ss1").cert)),
    )
    cert_id = out.split()[0]
    run(state, "server", "client", "add", "GOV/1/ss1", "GOV/2/sub")
    run(state, "server", "client", "add", "GOV/1/ss1", "GOV/2", "--disabled")
    run(state, "server", "client", "disable", "GOV/1/ss1", "GOV/2/sub")
    run(state, "server", "client", "enable", "GOV/1/ss1", "GOV/2/sub")
    run(state, "server", "maintenance", "GOV/1/ss1", "--on", "--message", "upgrade")
    run(state, "group", "add", "grp", "A group")
    run(state, "group", "member", "add", "grp", "GOV/2/sub")
    ca_out = run(
        state,
        "ca",
        "add",
        str(write(state / "ca.pem", pki.ca.cert)),
        "--profile",
        PROFILE,
        "--ocsp-url",
        "http://ocsp.example.org",
        "--ocsp-cert",
        str(write(state / "ocsp.pem", pki.ocsp.cert)),
        "--ocsp-cost-type",
        "FREE",
        "--csr-format",
        "DER",
        "--acme-url",
        "https://acme.example.org/d",
    )
    ca_id = ca_out.split()[0]
    run(state, "ca", "ocsp-add", ca_id, "http://ocsp2.example.org", "--cost-type", "PAID")
    run(
        state,
        "tsa",
        "add",
        "http://tsa.example.org",
        str(write(state / "tsa.pem", pki.tsa.cert)),
        "--cost-type",
        "FREE",
    )
    run(state, "management-service", "set", "--provider", "GOV/2/sub")
    assert "SUBSYSTEM:EE/GOV/2/sub" in run(state, "management-service", "show")
    run(state, "parameter", "set", "ocspFreshnessSeconds", "1800")
    assert run(state, "parameter", "show", "ocspFreshnessSeconds").strip() == "1800"
    assert (
        json.loads(run(state, "parameter", "show", "--json"))["timeStampingIntervalSeconds"] == "60"
    )
    (state / "fetch.xml").write_bytes(
        b'<tns:conf xmlns:tns="http://x-road.eu/xsd/xroad.xsd"><ocspFetchInterval>300</ocspFetchInterval></tns:conf>'
    )
    run(state, "part", "set", "FETCHINTERVAL", str(state / "fetch.xml"))
    assert "fetchinterval-params.xml" in run(state, "part", "list")
    (state / "fi.xml").write_bytes(
        render_anchor(ConfigurationAnchor("FI", (AnchorSource("http://fi/externalconf", (b"c",)),)))
    )
    assert run(state, "trusted-anchor", "add", str(state / "fi.xml")).startswith("FI\t")
    assert "FI" in run(state, "trusted-anchor", "list")

    members = json.loads(run(state, "member", "list", "--json"))
    assert [m["id"] for m in members] == ["MEMBER:EE/GOV/1", "MEMBER:EE/GOV/2"]
    assert members[1]["subsystems"] == [{"id": "SUBSYSTEM:EE/GOV/2/sub", "name": "Sub"}]
    servers = json.loads(run(state, "server", "list", "--json"))
    assert servers[0]["address"] == "10.0.0.1"
    assert servers[0]["in_maintenance"]
    assert [c["enabled"] for c in servers[0]["clients"]] == [True, False]
    assert "(disabled)" in run(state, "server", "list")
    cas = json.loads(run(state, "ca", "list", "--json"))
    assert [o["url"] for o in cas[0]["ocsp"]] == [
        "http://ocsp.example.org",
        "http://ocsp2.example.org",
    ]
    assert "Test TSA" in run(state, "tsa", "list")
    groups = json.loads(run(state, "group", "list", "--json"))
    assert {g["code"]: g["members"] for g in groups} == {
        "security-server-owners": ["MEMBER:EE/GOV/1"],
        "grp": ["SUBSYSTEM:EE/GOV/2/sub"],
    }

    registry = open_registry(state)
    shared = registry.shared_parameters()
    private = registry.private_parameters()
    registry.engine.dispose()
    assert shared.security_servers[0].clients == (ClientId("EE", "GOV", "2", "sub"),)
    assert shared.global_settings.ocsp_freshness_seconds == 1800
    assert private.configuration_anchors[0].instance_identifier == "FI"
    history = json.loads(run(state, "history", "--json", "--limit", "500"))
    assert all(h["actor"].startswith("cli") for h in history)
    assert any(h["table_name"] == "auth_certs" for h in history)

    # And take it apart again.
    run(state, "server", "auth-cert", "remove", "GOV/1/ss1", cert_id)
    run(state, "server", "client", "remove", "GOV/1/ss1", "GOV/2/sub")
    run(state, "server", "client", "remove", "GOV/1/ss1", "GOV/2")
    run(state, "server", "delete", "GOV/1/ss1")
    run(state, "group", "member", "remove", "grp", "GOV/2/sub")
    run(state, "group", "delete", "grp")
    run(state, "ca", "delete", ca_id)
    run(state, "tsa", "delete", "1")
    run(state, "trusted-anchor", "delete", "FI")
    run(state, "part", "delete", "FETCHINTERVAL")
    run(state, "parameter", "reset", "ocspFreshnessSeconds")
    run(state, "member", "rename", "GOV/1", "Renamed")
    run(state, "subsystem", "rename", "GOV/2/sub", "Renamed sub")
    run(state, "member", "delete", "GOV/1")
    assert "MEMBER:EE/GOV/1" not in run(state, "member", "list")


def test_api_keys(state: Path) -> None:
    result = runner.invoke(
        app,
        [
            "central",
            "apikey",
            "create",
            "robot",
            "--role",
            "observer",
            "--role",
            "security_officer",
            "--dir",
            str(state),
        ],
    )
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[0]
    registry = Registry(open_registry(state).engine)
    assert registry.authenticate(secret) is not None
    registry.engine.dispose()
    listed = run(state, "apikey", "list")
    assert "robot" in listed
    assert "observer,security_officer" in listed
    assert secret not in listed
    run(state, "apikey", "revoke", "robot")
    assert "robot" not in run(state, "apikey", "list")
    out = run(state, "apikey", "create", "x", "--role", "king", code=1)
    assert "error: invalid_request" in out


def test_errors(state: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    run(state, "member-class", "add", "GOV", "Government")
    run(state, "member", "add", "GOV/1", "Agency")
    assert "error: member_exists:" in run(state, "member", "add", "GOV/1", "Again", code=1)
    assert "error: invalid_client_identifier:" in run(state, "member", "add", "GOV", "x", code=1)
    assert "error: invalid_client_identifier:" in run(
        state, "member", "add", "GOV/1/sub", "x", code=1
    )
    assert "error: security_server_not_found:" in run(
        state, "server", "address", "GOV/1/nope", "h", code=1
    )
    assert "error: invalid_security_server:" in run(state, "server", "add", "GOV/1", code=1)
    assert "error: io_error:" in run(
        state, "server", "auth-cert", "add", "GOV/1/x", str(state / "missing.pem"), code=1
    )
    assert "error: invalid_system_parameter:" in run(state, "parameter", "show", "nope", code=1)
    assert "error: management_service_provider_not_set:" in run(
        state, "management-service", "show", code=1
    )
    empty = tmp_path_factory.mktemp("empty")
    assert "error: io_error:" in run(empty, "member", "list", code=1)
    run(state, "member", "add", code=2)  # usage error: missing arguments


def test_identifier_arguments() -> None:
    assert parse_client("GOV/1", "EE") == ClientId("EE", "GOV", "1")
    assert parse_client(" GOV/1/sub ", "EE") == ClientId("EE", "GOV", "1", "sub")
    assert parse_client("SUBSYSTEM:FI/GOV/1/sub", "EE") == ClientId("FI", "GOV", "1", "sub")
    assert parse_server("GOV/1/ss", "EE") == SecurityServerId(ClientId("EE", "GOV", "1"), "ss")
    assert parse_server("SERVER:EE/GOV/1/ss", "XX") == SecurityServerId(
        ClientId("EE", "GOV", "1"), "ss"
    )


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_identifier_arguments_only_raise_coded_errors(text: str) -> None:
    codes = set()
    for parse in (parse_client, parse_server):
        try:
            parse(text, "EE")
        except XRoadError as exc:
            codes.add(exc.code)
    assert codes <= {
        Code.INVALID_CLIENT_IDENTIFIER,
        Code.INVALID_SECURITY_SERVER,
        Code.INVALID_IDENTIFIER,
    }
