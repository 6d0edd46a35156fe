"""`crossroad verify`: exit codes, JSON output, --at, archives and archive chains."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossroad.cli.main import app
from crossroad.crypto.archive import build_archive

runner = CliRunner()


@pytest.fixture(scope="module")
def globalconf(vectors: Path) -> Path:
    return vectors / "globalconf" / "globalconf_good2_v3"


@pytest.fixture(scope="module")
def valid(vectors: Path) -> Path:
    return vectors / "asic" / "verifier" / "valid-signed-message.asice"


def _json(args: list[str]) -> tuple[int, dict[str, object]]:
    result = runner.invoke(app, ["verify", *args, "--json"])
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result.stdout  # exactly one JSON object
    return result.exit_code, json.loads(lines[0])


def test_valid_container(valid: Path, globalconf: Path) -> None:
    code, payload = _json([str(valid), "--globalconf", str(globalconf)])
    assert code == 0
    assert payload["valid"] is True
    assert payload["code"] is None
    assert payload["signer"] == "SUBSYSTEM:DEV/COM/4321/TestClient"
    assert payload["timestamp"]["gen_time"] == "2024-12-05T13:16:35Z"  # type: ignore[index]
    assert payload["verified_at"] == "2024-12-05T13:16:35Z"
    roles = {c["role"] for c in payload["certificates"]}  # type: ignore[attr-defined]
    assert {"signer", "time-stamp authority", "OCSP responder", "approved CA"} <= roles


def test_human_report(valid: Path, globalconf: Path) -> None:
    result = runner.invoke(app, ["verify", str(valid), "--globalconf", str(globalconf)])
    assert result.exit_code == 0
    out = result.stdout
    for needle in (
        "Result: VALID",
        "SUBSYSTEM:DEV/COM/4321/TestClient",
        "2024-12-05T13:16:35",
        "CN=Test TSA",
        "SERIALNUMBER=DEV/ss2/COM",
        "OCSP responder",
        "container structure",
        "time-stamp",
        "signature",
    ):
        assert needle in out, needle


# The OCSP response of this container was produced at 13:13:26Z; ocspFreshnessSeconds is 3600.
@pytest.mark.parametrize(
    ("at", "exit_code"),
    [
        ("2024-12-05T13:30:00Z", 0),
        ("2024-12-05T13:30:00", 0),  # no zone: UTC
        ("2024-12-05T15:00:00+01:00", 0),  # 14:00Z
        ("2024-12-05T16:00:00Z", 1),  # OCSP older than ocspFreshnessSeconds
    ],
)
def test_at(valid: Path, globalconf: Path, at: str, exit_code: int) -> None:
    code, payload = _json([str(valid), "--globalconf", str(globalconf), "--at", at])
    assert code == exit_code
    assert payload["valid"] is (exit_code == 0)
    assert payload["timestamp"]["gen_time"] == "2024-12-05T13:16:35Z"  # type: ignore[index]
    assert payload["verified_at"] != payload["timestamp"]["gen_time"]  # type: ignore[index]


def test_invalid_container_exit_1(vectors: Path, globalconf: Path) -> None:
    path = vectors / "asic" / "verifier" / "wrong-message.asice"
    code, payload = _json([str(path), "--globalconf", str(globalconf)])
    assert code == 1
    assert payload == payload | {"valid": False, "code": "invalid_signature_value"}


@pytest.mark.parametrize(
    "args",
    [
        ["/nonexistent/file.asice", "--globalconf", "{gc}"],
        ["{valid}", "--globalconf", "/nonexistent/dir"],
        ["{valid}", "--globalconf", "{valid}"],  # a file, not a directory
        ["{valid}"],  # containers need a global configuration
        ["{valid}", "--globalconf", "{gc}", "--at", "yesterday"],
        ["{valid}", "{valid}", "--globalconf", "{gc}"],
    ],
)
def test_cannot_run_exit_2(valid: Path, globalconf: Path, args: list[str]) -> None:
    argv = [a.format(gc=globalconf, valid=valid) for a in args]
    result = runner.invoke(app, ["verify", *argv])
    assert result.exit_code == 2, result.output
    code, payload = _json(argv)
    assert code == 2
    assert payload["valid"] is False
    assert payload["code"] is None


def test_not_a_container(tmp_path: Path, globalconf: Path) -> None:
    junk = tmp_path / "junk.asice"
    junk.write_bytes(b"this is not a zip")
    code, payload = _json([str(junk), "--globalconf", str(globalconf)])
    assert code == 1
    assert payload["code"] == "invalid_asic_container"


# --- archives ------------------------------------------------------------------------------------

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("archives")
    paths = []
    previous = None
    for i in range(3):
        containers = [(f"r{i}-{j}.asice", f"container {i}/{j}".encode()) for j in range(2)]
        data, last, name = build_archive(containers, previous, start=T0, end=T0)
        path = root / name
        path.write_bytes(data)
        paths.append(path)
        previous = (last, name)
    return paths


def test_archive_chain(chain: list[Path]) -> None:
    code, payload = _json([*map(str, chain), "--first"])
    assert code == 0
    assert payload["valid"] is True
    assert payload["containers_verified"] is False
    result = runner.invoke(app, ["verify", *map(str, chain)])
    assert result.exit_code == 0
    assert "Containers not verified" in result.stdout


def test_archive_chain_gap(chain: list[Path]) -> None:
    code, payload = _json([str(chain[0]), str(chain[2])])
    assert code == 1
    assert payload["code"] == "invalid_log_archive"
    code, _ = _json([str(chain[1]), str(chain[0])])
    assert code == 1


def test_previous(chain: list[Path]) -> None:
    assert _json([str(chain[1]), "--previous", str(chain[0])])[0] == 0
    assert _json([str(chain[2]), "--previous", str(chain[0])])[0] == 1
    assert _json([str(chain[1]), "--first"])[0] == 1
    assert _json([str(chain[1]), "--first", "--previous", str(chain[0])])[0] == 2


def test_archive_with_unverifiable_containers(vectors: Path, globalconf: Path) -> None:
    # The 2023 archive links correctly, but its container's CA is in no test configuration.
    path = vectors / "messagelog-archive" / "message-archive-0.zip"
    assert _json([str(path), "--first"])[0] == 0
    code, payload = _json([str(path), "--first", "--globalconf", str(globalconf)])
    assert code == 1
    assert payload["linking"]["valid"] is True  # type: ignore[index]
    assert payload["containers_verified"] is True


def test_real_process(valid: Path, globalconf: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "crossroad.cli.main",
            "verify",
            str(valid),
            "--globalconf",
            str(globalconf),
            "--json",
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) | {"valid": True, "code": None} == json.loads(proc.stdout)
