"""`crossroad globalconf verify/show`: exit codes, JSON output, --at, certificate sources."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from typer.testing import CliRunner

from crossroad.cli.main import app
from crossroad.crypto import keys
from crossroad.crypto.algorithms import SHA512, SHA512_WITH_RSA
from crossroad.globalconf.signed import DirectoryEntry, build_signed_directory
from crossroad.testing.pki import make_cert, name, rsa_key

runner = CliRunner()


@pytest.fixture(scope="module")
def system(vectors: Path) -> Path:
    return vectors / "configuration-directory" / "system-test"


@pytest.fixture(scope="module")
def client(vectors: Path) -> Path:
    return vectors / "configuration-directory" / "client"


def _json(args: list[str]) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["globalconf", *args, "--json"])
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON object
    return result.exit_code, json.loads(lines[0])


def test_verify_v6_with_anchor(system: Path) -> None:
    code, out = _json(
        [
            "verify",
            str(system / "public/V6/internalconf"),
            "--anchor",
            str(system / "configuration_anchor_CS_internal.xml"),
            "--at",
            "2026-02-06T00:00:00Z",
        ]
    )
    assert code == 0
    assert out["valid"] is True
    assert out["code"] is None
    assert out["expires"] == "2035-11-11T03:07:40Z"
    assert out["version"] == 6
    assert out["signer"] == "CN=internalSigningKey"
    parts = out["parts"]
    assert isinstance(parts, list)
    assert [(p["content_identifier"], p["instance"]) for p in parts] == [
        ("SHARED-PARAMETERS", "DEV"),
        ("PRIVATE-PARAMETERS", "DEV"),
    ]
    folder = system / "public/V6/20251110170000548026000"
    for p in parts:
        data = (folder / Path(p["location"]).name).read_bytes()
        assert p["hash"] == base64.b64encode(SHA512.digest(data)).decode()


def test_verify_human_output(system: Path) -> None:
    result = runner.invoke(
        app,
        [
            "globalconf",
            "verify",
            str(system / "public/V6/internalconf"),
            "--anchor",
            str(system / "configuration_anchor_CS_internal.xml"),
            "--at",
            "2026-02-06",
        ],
    )
    assert result.exit_code == 0
    assert "Result: VALID" in result.stdout
    assert "SHARED-PARAMETERS" in result.stdout
    assert "2035-11-11T03:07:40Z" in result.stdout


def test_verify_with_cert_and_pinned_clock(client: Path, vectors: Path) -> None:
    consumer = vectors / "certs/common-test/consumer.pem"
    path = str(client / "test-conf-simple.txt")
    code, out = _json(["verify", path, "--cert", str(consumer), "--at", "2025-01-01T00:00:00Z"])
    assert (code, out["valid"], out["version"]) == (0, True, None)
    assert [p["location"] for p in out["parts"]] == [  # type: ignore[attr-defined]
        "/private-params.xml",
        "/shared-params.xml",
        "/foo.xml",
    ]
    code, out = _json(["verify", path, "--cert", str(consumer), "--at", "2027-01-01T00:00:00Z"])
    assert (code, out["valid"], out["code"]) == (1, False, "global_conf_outdated")
    assert out["expires"] == "2026-05-20T17:42:55Z"
    producer = vectors / "certs/common-test/producer.pem"
    code, out = _json(["verify", path, "--cert", str(producer), "--at", "2025-01-01"])
    assert (code, out["code"]) == (1, "global_conf_missing_verification_cert")


def test_verify_malformed(client: Path, vectors: Path) -> None:
    consumer = str(vectors / "certs/common-test/consumer.pem")
    code, out = _json(["verify", str(client / "test-conf-malformed.txt"), "--cert", consumer])
    assert (code, out["code"]) == (1, "global_conf_missing_signed_data_expiration_date")
    assert out["parts"] == []
    code, out = _json(
        ["verify", str(client / "test-conf-missing-signature.txt"), "--cert", consumer]
    )
    assert (code, out["code"]) == (1, "global_conf_signature_verification_failure")


@pytest.mark.parametrize("version", [3, 4, 5])
def test_verify_with_shared_params_sources(system: Path, version: int) -> None:
    (folder,) = [p for p in (system / f"public/V{version}").iterdir() if p.is_dir()]
    for kind in ("internalconf", "externalconf"):
        code, out = _json(
            [
                "verify",
                str(system / f"public/V{version}/{kind}"),
                "--shared-params",
                str(folder / "shared-params.xml"),
                "--at",
                "2026-02-06",
            ]
        )
        assert (code, out["valid"], out["version"]) == (0, True, version)


def test_verify_generated(tmp_path: Path) -> None:
    signer = make_cert(name(CN="conf signer"), key=rsa_key(9), kind="ca")
    data = build_signed_directory(
        [DirectoryEntry("SHARED-PARAMETERS", "EE", "/V6/x/shared-params.xml", b"<x/>")],
        expires=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
        version=6,
        signing_cert=signer.cert,
        sign=lambda d: keys.sign(signer.key, SHA512_WITH_RSA, d),
    )
    directory = tmp_path / "internalconf"
    directory.write_bytes(data)
    pem = tmp_path / "signer.pem"
    pem.write_bytes(signer.cert.public_bytes(Encoding.PEM))
    code, out = _json(["verify", str(directory), "--cert", str(pem), "--at", "2029-01-01"])
    assert (code, out["valid"], out["expires"]) == (0, True, "2030-01-01T00:00:00Z")
    directory.write_bytes(data.replace(b"Version: 6", b"Version: 5"))
    code, out = _json(["verify", str(directory), "--cert", str(pem), "--at", "2029-01-01"])
    assert (code, out["code"]) == (1, "global_conf_signature_verification_failure")


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "/nonexistent/internalconf", "--cert", "/nonexistent.pem"],
        ["verify", "{internalconf}"],  # no certificate source
        ["verify", "{internalconf}", "--anchor", "{internalconf}"],  # not an anchor
        ["verify", "{internalconf}", "--cert", "{anchor}", "--at", "yesterday"],
        ["verify", "{internalconf}", "--cert", "{internalconf}"],  # not a certificate
        ["verify", "{internalconf}", "--shared-params", "{anchor}"],  # not shared params
    ],
)
def test_cannot_run(system: Path, args: list[str]) -> None:
    values = {
        "internalconf": str(system / "public/V6/internalconf"),
        "anchor": str(system / "configuration_anchor_CS_internal.xml"),
    }
    code, out = _json([a.format(**values) for a in args])
    assert code == 2
    assert out["valid"] is False
    assert out["error"]


def test_show_json(vectors: Path) -> None:
    code, out = _json(["show", str(vectors / "globalconf/globalconf_good_v2")])
    assert code == 0
    assert out["instance"] == "EE"
    instances = out["instances"]
    assert isinstance(instances, list)
    assert instances[0]["instance"] == "EE"
    assert {"EE", "bar", "foo"} <= {i["instance"] for i in instances}
    ee = instances[0]
    assert [m["id"] for m in ee["members"]] == [
        "MEMBER:EE/BUSINESS/producer",
        "MEMBER:EE/BUSINESS/consumer",
        "MEMBER:EE/BUSINESS/foo",
    ]
    assert [s["id"] for s in ee["subsystems"]] == ["SUBSYSTEM:EE/BUSINESS/foo/foosubsystem"]
    assert [s["server_code"] for s in ee["security_servers"]] == [
        "producerServerCode",
        "consumerServerCode",
        "fooServerCode",
        "FooBarServerCode",
    ]
    assert len(ee["approved_cas"]) == 5
    assert len(ee["approved_tsas"]) >= 1
    assert ee["expires"] == "2124-05-20T17:42:55Z"
    assert out["management_service"] == "http://mgmt.com:1234"


def test_show_human(vectors: Path) -> None:
    result = runner.invoke(
        app, ["globalconf", "show", str(vectors / "globalconf/globalconf_good_v6")]
    )
    assert result.exit_code == 0
    for needle in (
        "Own instance: EE",
        "members",
        "subsystems",
        "security servers",
        "approved CAs",
        "approved TSAs",
        "FOO Subsystem",
    ):
        assert needle in result.stdout


def test_show_problems_and_failures(vectors: Path) -> None:
    code, out = _json(["show", str(vectors / "globalconf/globalconf_empty")])
    assert code == 2
    assert "no instance directories" in str(out["error"])
    code, out = _json(["show", str(vectors / "globalconf/globalconf_missing_identifier")])
    assert code == 2
    result = runner.invoke(app, ["globalconf", "show", "/nonexistent/dir"])
    assert result.exit_code == 2
