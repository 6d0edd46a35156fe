"""security-server.toml: defaults, round trip, validation, the signer socket path."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from crossroad.errors import Code, XRoadError
from crossroad.securityserver.settings import SERVERCONF_FILE, SecurityServerSettings


def test_defaults_are_the_x_road_ports(tmp_path: Path) -> None:
    s = SecurityServerSettings(tmp_path)
    assert (s.client_http_port, s.client_https_port, s.server_port, s.ocsp_port, s.admin_port) == (
        8080,
        8443,
        5500,
        5577,
        4000,
    )
    assert s.workers == 2
    assert s.resolved_database_url() == f"sqlite:///{(tmp_path / 'server.db').resolve()}"
    assert s.socket_path == tmp_path.resolve() / "signer.sock"


def test_round_trip_and_serverconf_file(tmp_path: Path) -> None:
    s = SecurityServerSettings(
        tmp_path,
        client_host="127.0.0.7",
        server_port=5501,
        workers=3,
        conf_interval_seconds=5,
        signer_pin_file="signer-pin",
        admin_enabled=False,
    )
    s.save()
    loaded = SecurityServerSettings.load(tmp_path)
    assert loaded == s.replace(conf_interval_seconds=5.0)
    assert loaded.pin_path == tmp_path / "signer-pin"
    # ``crossroad server --dir STATE`` finds the same database.
    serverconf = tomllib.loads((tmp_path / SERVERCONF_FILE).read_text())
    assert serverconf["database_url"] == s.resolved_database_url()


def test_explicit_database_url_is_kept(tmp_path: Path) -> None:
    url = "postgresql://ss@127.0.0.1/ss"
    SecurityServerSettings(tmp_path, database_url=url).save()
    assert SecurityServerSettings.load(tmp_path).resolved_database_url() == url
    assert url in (tmp_path / SERVERCONF_FILE).read_text()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[proxy]\nworkers = 0\n", "workers"),
        ("[proxy]\nworkers = 'two'\n", "must be of type int"),
        ("[server_proxy]\nport = 70000\n", "server_port"),
        ("[nonsense]\nx = 1\n", "unknown setting [nonsense] x"),
        ("surprise = 1\n", "unknown setting surprise"),
        ("proxy = 3\n", "unknown setting proxy"),
        ("[configuration_client]\ninterval_seconds = 0\n", "conf_interval_seconds"),
        ("[admin_api]\nenabled = 1\n", "must be of type bool"),
        ("[client_proxy]\nhost = ''\n", "client_host"),
        ("not toml at all [", ""),
    ],
)
def test_bad_settings_are_coded(tmp_path: Path, text: str, fragment: str) -> None:
    (tmp_path / "security-server.toml").write_text(text)
    with pytest.raises(XRoadError) as err:
        SecurityServerSettings.load(tmp_path)
    assert err.value.code == Code.INVALID_CONFIGURATION
    assert fragment in err.value.detail


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(XRoadError) as err:
        SecurityServerSettings.load(tmp_path)
    assert err.value.code == Code.IO_ERROR
    assert "security-server init" in err.value.detail


def test_long_state_paths_get_a_short_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    path = SecurityServerSettings(deep).socket_path
    assert len(str(path)) <= 100
    assert path != SecurityServerSettings(tmp_path / "other").socket_path
    assert SecurityServerSettings(deep).socket_path == path  # stable
    assert SecurityServerSettings(deep, signer_socket="/run/x.sock").socket_path == Path(
        "/run/x.sock"
    )
