"""The configuration directory loader: layout, metadata, broken files, states, validity."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroad.errors import XRoadError
from crossroad.globalconf.directory import (
    DirectoryState,
    Metadata,
    check_directory,
    load_directory,
)
from crossroad.globalconf.model import (
    ApprovedCAInfo,
    CaInfo,
    ConfigurationSource,
    GlobalSettings,
    ManagementService,
    PrivateParameters,
    SharedParameters,
)
from crossroad.globalconf.privateparams import render_private_parameters
from crossroad.identifiers import ClientId

if TYPE_CHECKING:
    from crossroad.testing.pki import TestPKI

UTC = dt.UTC


def write_instance(
    root: Path,
    pki: TestPKI,
    instance: str,
    *,
    expires: str | None = "2030-01-01T00:00:00Z",
    private: bool = True,
    version: int = 3,
) -> SharedParameters:
    shared = SharedParameters(
        instance_identifier=instance,
        global_settings=GlobalSettings(90),
        sources=(ConfigurationSource("cs"),),
        approved_cas=(
            ApprovedCAInfo("CA", CaInfo(pki.ca.cert.public_bytes(Encoding.DER)), "profile"),
        ),
    )
    d = root / instance
    d.mkdir(parents=True)
    (d / "shared-params.xml").write_bytes(shared.render(version))
    meta = {"contentIdentifier": "SHARED-PARAMETERS", "instanceIdentifier": instance}
    if expires:
        meta["expirationDate"] = expires
    meta["configurationVersion"] = str(version)
    (d / "shared-params.xml.metadata").write_text(json.dumps(meta))
    if private:
        params = PrivateParameters(
            instance, ManagementService("http://cs:4001", ClientId(instance, "GOV", "1")), 60
        )
        (d / "private-params.xml").write_bytes(render_private_parameters(params))
        (d / "private-params.xml.metadata").write_text(
            json.dumps({**meta, "contentIdentifier": "PRIVATE-PARAMETERS"})
        )
    return shared


def test_loads_own_and_federated_instances(tmp_path: Path, pki: TestPKI) -> None:
    (tmp_path / "instance-identifier").write_text("EE\n")
    own = write_instance(tmp_path, pki, "EE")
    write_instance(tmp_path, pki, "FI", private=False, version=6)
    (tmp_path / "EE" / "nextupdate-params.xml").write_bytes(
        b'<tns:conf xmlns:tns="http://x-road.eu/xsd/xroad.xsd">'
        b"<verifyNextUpdate>false</verifyNextUpdate></tns:conf>"
    )
    directory = load_directory(tmp_path)
    assert directory.instance == "EE"
    assert directory.instances() == ("EE", "FI")
    assert directory.shared() == own
    assert directory.private("FI") is None
    assert directory.shared_version("FI") == 6
    assert directory.shared_version("XX") is None
    policy = directory.trust_policy()
    assert policy.verify_ocsp_next_update is False
    assert policy.ocsp_freshness_seconds == 90
    assert directory.trust_policy("FI").instance == "FI"
    assert len(directory.tsa_certs()) == 0
    assert directory.problems == ()
    files = directory.files()
    assert tmp_path / "EE" / "shared-params.xml" in files
    assert not any(p.name.endswith(".metadata") or p.name == "instance-identifier" for p in files)
    with pytest.raises(XRoadError):
        directory.trust_policy("XX")


def test_validity(tmp_path: Path, pki: TestPKI) -> None:
    (tmp_path / "instance-identifier").write_text("EE")
    write_instance(tmp_path, pki, "EE", expires="2030-01-01T00:00:00+02:00")
    directory = load_directory(tmp_path)
    expires = dt.datetime(2029, 12, 31, 22, tzinfo=UTC)
    assert directory.expires_at() == expires
    directory.check_valid(expires - dt.timedelta(seconds=1))
    with pytest.raises(XRoadError) as info:
        directory.check_valid(expires)
    assert info.value.code == "global_conf_outdated"


def test_own_private_parameters_are_required_for_validity(tmp_path: Path, pki: TestPKI) -> None:
    (tmp_path / "instance-identifier").write_text("EE")
    write_instance(tmp_path, pki, "EE", private=False)
    with pytest.raises(XRoadError) as info:
        load_directory(tmp_path).check_valid(dt.datetime(2025, 1, 1, tzinfo=UTC))
    assert info.value.code == "global_conf_outdated"


def test_broken_files_are_reported_not_fatal(tmp_path: Path, pki: TestPKI) -> None:
    (tmp_path / "instance-identifier").write_text("EE")
    write_instance(tmp_path, pki, "EE")
    (tmp_path / "EE" / "shared-params.xml.metadata").write_text("{not json")
    (tmp_path / "EE" / "private-params.xml").write_text("xxx")
    directory = load_directory(tmp_path)
    assert directory.shared() is not None
    assert directory.private() is None
    assert {(p.path.name, p.error.code) for p in directory.problems} == {
        ("shared-params.xml.metadata", "malformed_globalconf"),
        ("private-params.xml", "malformed_globalconf"),
    }


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"{}", Metadata()),
        (
            b'{"configurationVersion": 5, "expirationDate": "2014-11-12T15:58:07.000+02:00"}',
            Metadata(
                expiration_date=dt.datetime(2014, 11, 12, 13, 58, 7, tzinfo=UTC),
                configuration_version=5,
            ),
        ),
    ],
)
def test_metadata(data: bytes, expected: Metadata) -> None:
    assert Metadata.parse(data) == expected


@pytest.mark.parametrize(
    "data", [b"[]", b"nope", b'{"configurationVersion": "six"}', b'{"expirationDate": "soon"}']
)
def test_bad_metadata(data: bytes) -> None:
    with pytest.raises(XRoadError) as info:
        Metadata.parse(data)
    assert info.value.code == "malformed_globalconf"


def test_directory_states(tmp_path: Path) -> None:
    assert check_directory(tmp_path / "missing") is DirectoryState.FAILURE_CONFIGURATION_ERROR
    file = tmp_path / "file"
    file.write_text("x")
    assert check_directory(file) is DirectoryState.FAILURE_CONFIGURATION_ERROR
    assert check_directory(tmp_path) is DirectoryState.FAILURE_MALFORMED
    (tmp_path / "EE").mkdir()
    assert check_directory(tmp_path) is DirectoryState.FAILURE_MISSING_INSTANCE_IDENTIFIER
    (tmp_path / "instance-identifier").write_text("")
    assert check_directory(tmp_path) is DirectoryState.READY_TO_INIT
    with pytest.raises(XRoadError) as info:
        load_directory(tmp_path)  # empty instance identifier
    assert info.value.code == "global_conf_missing_instance_identifier"
    for path, code in (
        (file, "global_conf_configuration_error"),
        (tmp_path / "missing", "global_conf_configuration_error"),
    ):
        with pytest.raises(XRoadError) as info:
            load_directory(path)
        assert info.value.code == code


def test_allow_empty(tmp_path: Path) -> None:
    (tmp_path / "instance-identifier").write_text("EE")
    with pytest.raises(XRoadError) as info:
        load_directory(tmp_path)
    assert info.value.code == "malformed_globalconf"
    directory = load_directory(tmp_path, allow_empty=True)
    assert directory.instances() == ()
    assert directory.shared() is None
    assert directory.expires_at() is None


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=80) | st.text(max_size=40).map(lambda t: t.encode()))
def test_metadata_parser_never_crashes(data: bytes) -> None:
    try:
        Metadata.parse(data)
    except XRoadError as exc:
        assert exc.code == "malformed_globalconf"  # noqa: PT017
