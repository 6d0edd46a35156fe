"""The demo end to end, as a user runs it: real trust services over HTTP, then the CLI verifier."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CROSSROAD = [sys.executable, "-m", "crossroad.cli.main"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CROSSROAD, *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("demo")
    done = _run("demo", "evidence", "--dir", str(directory), "--check")
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert json.loads(last) == {"evidence": "ok", "containers": 2, "archive": "ok"}
    return directory


def _containers(directory: Path) -> list[Path]:
    return sorted((directory / "evidence").glob("*.asice"))


def test_demo_output_verifies_with_the_cli(demo_dir: Path) -> None:
    containers = _containers(demo_dir)
    assert [p.name.rsplit("-", 1)[1] for p in containers] == ["request.asice", "response.asice"]
    for path in containers:
        done = _run("verify", str(path), "--globalconf", str(demo_dir / "globalconf"), "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        report = json.loads(done.stdout)
        assert report["valid"] is True
        assert report["code"] is None
    [archive] = (demo_dir / "evidence").glob("mlog-*.zip")
    done = _run("verify", str(archive), "--globalconf", str(demo_dir / "globalconf"), "--first")
    assert done.returncode == 0, done.stdout + done.stderr


def _rewrite(container: bytes, entry: str, change: bytes, into: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(container)) as src, zipfile.ZipFile(out, "w") as dst:
        dst.comment = src.comment
        for info in src.infolist():
            data = src.read(info)
            if info.filename == entry:
                assert change in data
                data = data.replace(change, into, 1)
            dst.writestr(info, data)
    return out.getvalue()


@pytest.mark.parametrize(
    ("role", "entry", "change", "into", "code"),
    [
        ("request", "message.xml", b"getRandom/", b"getRandoM/", "invalid_signature_value"),
        ("response", "attachment1", b"Rex", b"Max", "invalid_hash_chain_ref"),
    ],
)
def test_tampered_demo_evidence_fails_with_a_fault_code(
    demo_dir: Path, tmp_path: Path, role: str, entry: str, change: bytes, into: bytes, code: str
) -> None:
    [path] = [p for p in _containers(demo_dir) if p.name.endswith(f"-{role}.asice")]
    tampered = tmp_path / path.name
    tampered.write_bytes(_rewrite(path.read_bytes(), entry, change, into))
    done = _run("verify", str(tampered), "--globalconf", str(demo_dir / "globalconf"), "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["valid"] is False
    assert report["code"].endswith(code), report["code"]
