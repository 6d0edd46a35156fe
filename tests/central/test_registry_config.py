"""central.toml: defaults, save/load round trips (also odd strings), relative database paths,
and coded errors for missing, malformed or wrongly typed settings."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroad.central.config import FILE_NAME, CentralConfig
from crossroad.errors import Code, XRoadError
from crossroad.storage.engine import database_url_for


def test_defaults_and_round_trip(tmp_path: Path) -> None:
    config = CentralConfig(tmp_path, instance_identifier="EE", central_server_address="cs.example")
    assert config.database_url == database_url_for(tmp_path)
    assert (config.distribution_host, config.distribution_port) == ("127.0.0.1", 8080)
    assert (config.api_host, config.api_port) == ("127.0.0.1", 4000)
    assert config.generation_interval_seconds == 60
    assert config.conf_expire_interval_seconds == 600
    config.save()
    text = (tmp_path / FILE_NAME).read_text()
    assert "database_url" not in text  # the default keeps the directory relocatable
    assert CentralConfig.load(tmp_path) == config
    changed = config.replace(api_port=4400, database_url="postgresql://u@127.0.0.1/cs")
    changed.save()
    assert CentralConfig.load(tmp_path) == changed


def test_relative_sqlite_path_is_relative_to_the_state_dir(tmp_path: Path) -> None:
    (tmp_path / FILE_NAME).write_text('database_url = "sqlite:///data/cs.db"\n')
    config = CentralConfig.load(tmp_path)
    assert config.database_url == f"sqlite:///{(tmp_path / 'data' / 'cs.db').resolve()}"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("api_port = 4000\n", Code.INVALID_CONFIGURATION),  # not in [api]
        ("[api]\nport = '4000'\n", Code.INVALID_CONFIGURATION),
        ("[api]\nport = 70000\n", Code.INVALID_CONFIGURATION),
        ("[generation]\ninterval_seconds = 0\n", Code.INVALID_CONFIGURATION),
        ("[api]\nnonsense = 1\n", Code.INVALID_CONFIGURATION),
        ("api = 1\n", Code.INVALID_CONFIGURATION),
        ("this is = = not toml", Code.INVALID_CONFIGURATION),
    ],
)
def test_bad_files(tmp_path: Path, text: str, code: str) -> None:
    (tmp_path / FILE_NAME).write_text(text)
    with pytest.raises(XRoadError) as info:
        CentralConfig.load(tmp_path)
    assert info.value.code == code


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(XRoadError) as info:
        CentralConfig.load(tmp_path / "nowhere")
    assert info.value.code == Code.IO_ERROR
    assert "crossroad central init" in info.value.detail


def test_passphrase_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = CentralConfig(tmp_path, key_passphrase_env="TEST_CS_PASS")
    monkeypatch.delenv("TEST_CS_PASS", raising=False)
    assert config.key_passphrase() is None
    monkeypatch.setenv("TEST_CS_PASS", "secret")
    assert config.key_passphrase() == b"secret"


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(max_size=40))
def test_any_strings_survive_save_and_load(
    tmp_path_factory: pytest.TempPathFactory, a: str, b: str
) -> None:
    state = tmp_path_factory.mktemp("cfg")
    config = CentralConfig(state, instance_identifier=b, api_host=a.replace("\x00", "x") or "h")
    config.save()
    assert CentralConfig.load(state) == config


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_files_give_coded_errors(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    state = tmp_path_factory.mktemp("cfg")
    (state / FILE_NAME).write_bytes(data)
    codes = []
    try:
        CentralConfig.load(state)
    except XRoadError as exc:
        codes.append(exc.code)
    assert set(codes) <= {Code.INVALID_CONFIGURATION, Code.IO_ERROR}
