"""The proxy directory's settings file: round trip, validation, malformed content."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossroad.confproxy import config as cp
from crossroad.errors import XRoadError


def test_round_trip_and_derived_values(tmp_path: Path) -> None:
    config = cp.init_proxy(
        tmp_path / "p", "PROXY1", "0.0.0.0:8090", public_address="cp.example.org:80"
    )
    loaded = cp.ProxyConfig.load(tmp_path / "p")
    assert loaded == config
    assert loaded.listen == ("0.0.0.0", 8090)
    assert loaded.download_url("DEV") == "http://cp.example.org:80/DEV/conf"
    assert loaded.versions == (6, 5, 4, 3, 2)
    assert dataclasses.replace(loaded, min_version=4).versions == (6, 5, 4)
    assert cp.split_address("[::1]:8080") == ("::1", 8080)


@pytest.mark.parametrize(
    "change",
    [
        {"name": "a/b"},
        {"name": ".."},
        {"address": "host"},
        {"address": "host:0"},
        {"validity_interval_seconds": 0},
        {"update_interval_seconds": 0},
        {"min_version": 7},
        {"signature_digest": "MD5"},
        {"hash_algorithm": "urn:nothing"},
    ],
)
def test_invalid_settings_are_refused(tmp_path: Path, change: dict[str, object]) -> None:
    cp.init_proxy(tmp_path / "p", "PROXY1", "127.0.0.1:8090")
    path = tmp_path / "p" / cp.CONFIG_FILE
    raw = json.loads(path.read_text())
    raw.update(change)
    path.write_text(json.dumps(raw))
    with pytest.raises(XRoadError) as info:
        cp.ProxyConfig.load(tmp_path / "p")
    assert info.value.code == "invalid_request"


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_malformed_settings_files_give_a_coded_error(tmp_path: Path, data: bytes) -> None:
    directory = tmp_path / "m"
    directory.mkdir(exist_ok=True)
    (directory / cp.CONFIG_FILE).write_bytes(data)
    codes = []
    try:
        cp.ProxyConfig.load(directory)
    except XRoadError as exc:
        codes.append(exc.code)
    assert set(codes) <= {"invalid_request"}


@settings(max_examples=40, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["name", "address", "keys", "sources", "min_version", "extra"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=10), st.lists(st.integers())),
    )
)
def test_odd_json_gives_a_coded_error(raw: dict[str, object]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / cp.CONFIG_FILE).write_text(json.dumps(raw))
        codes = []
        try:
            cp.ProxyConfig.load(tmp)
        except XRoadError as exc:
            codes.append(exc.code)
        assert set(codes) <= {"invalid_request"}
