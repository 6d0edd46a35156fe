"""``crossroad central init|generate|keys|anchor`` in-process; ``run`` as a real subprocess."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossroad.cli.main import app
from crossroad.globalconf.privateparams import parse_anchor
from crossroad.globalconf.signed import SignedDirectory
from crossroad.testing.output import ProcessOutput

CROSSROAD = [sys.executable, "-m", "crossroad.cli.main"]
PASSPHRASE = {"CROSSROAD_CENTRAL_PASSPHRASE": "s3cret"}


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["central", *args], env={**PASSPHRASE, **(env or {})})
    assert "Traceback" not in result.output
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def init(directory: Path, *extra: str) -> str:
    result = invoke(
        "init", str(directory), "--instance", "DEV", "--address", "127.0.0.1",
        "--key-type", "ec-p256", "--management-provider", "SUBSYSTEM:DEV/GOV/1234/MANAGEMENT",
        *extra,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return str(result.output)


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli") / "cs"
    out = init(directory)
    assert "initialised" in out
    assert "internal anchor hash: " in out
    assert "external anchor hash: " in out
    assert (directory / "central.toml").is_file()
    assert "warning" not in out  # the passphrase was set: the keys are encrypted
    for key in (directory / "keys").iterdir():
        assert key.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    return directory


def keys(state: Path) -> list[dict[str, object]]:
    result = invoke("keys", "list", "--json", "--dir", str(state))
    assert result.exit_code == 0, result.output
    return list(json.loads(result.output))


def test_init_twice_fails(state: Path) -> None:
    result = invoke("init", str(state), "--instance", "DEV", "--address", "127.0.0.1")
    assert result.exit_code == 1
    assert "error: init_already_initialized:" in result.output


def test_generate_publishes_every_version(state: Path) -> None:
    result = invoke("generate", str(state))
    assert result.exit_code == 0, result.output
    assert "(V2,V3,V4,V5,V6)" in result.output
    anchor = state / "anchor.xml"
    result = invoke(
        "anchor", "export", "--source", "internal", "--out", str(anchor), "--dir", str(state)
    )
    assert result.exit_code == 0, result.output
    digest = hashlib.sha224(anchor.read_bytes()).hexdigest().upper()
    shown = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    assert f"hash: {shown}" in result.output
    certs = list(parse_anchor(anchor.read_bytes()).sources[0].verification_certs)
    SignedDirectory.parse((state / "public" / "V6" / "internalconf").read_bytes()).verify(
        certs, dt.datetime.now(dt.UTC)
    )


def test_key_rotation_commands(state: Path) -> None:
    before = keys(state)
    assert [(k["source"], k["active"]) for k in before] == [("internal", True), ("external", True)]
    result = invoke(
        "keys", "add", "--source", "internal", "--key-type", "ec-p256", "--dir", str(state)
    )
    assert result.exit_code == 0, result.output
    assert "(inactive)" in result.output
    added = [k for k in keys(state) if k["key_id"] not in {b["key_id"] for b in before}]
    assert len(added) == 1
    assert added[0]["active"] is False
    new_id = str(added[0]["key_id"])
    # The re-exported anchor (to stdout) trusts both keys.
    result = invoke("anchor", "export", "--source", "internal", "--dir", str(state))
    assert result.exit_code == 0, result.output
    assert result.output.count("<verificationCert>") == 2
    assert "hash: " in result.output

    old_id = str(before[0]["key_id"])
    result = invoke("keys", "delete", old_id, "--dir", str(state))
    assert result.exit_code == 1
    assert "error: signing_key_action_not_possible:" in result.output
    result = invoke("keys", "activate", new_id.lower(), "--dir", str(state))
    assert result.exit_code == 0, result.output
    assert invoke("generate", str(state)).exit_code == 0
    result = invoke("keys", "delete", old_id, "--dir", str(state))
    assert result.exit_code == 0, result.output
    assert [k["key_id"] for k in keys(state) if k["source"] == "internal"] == [new_id]
    assert not (state / "keys" / f"{old_id}.pem").exists()
    plain = invoke("keys", "list", "--dir", str(state))
    assert new_id in plain.output
    assert "CN=internalSigningKey" in plain.output


def test_refusals(state: Path, tmp_path: Path) -> None:
    cases = [
        (("keys", "activate", "00" * 20, "--dir", str(state)), "signing_key_not_found"),
        (("keys", "add", "--source", "middle", "--dir", str(state)), "invalid_request"),
        (("keys", "add", "--source", "external", "--key-type", "dsa", "--dir", str(state)),
         "invalid_request"),
        (("keys", "list", "--state-dir", str(tmp_path / "none")), "io_error"),
        (("generate", str(tmp_path / "none")), "io_error"),
    ]  # fmt: skip
    for args, code in cases:
        result = invoke(*args)
        assert result.exit_code == 1, (args, result.output)
        assert f"error: {code}:" in result.output, result.output
    # Without the passphrase the encrypted keys cannot sign.
    result = CliRunner().invoke(app, ["central", "generate", str(state)], env={})
    assert result.exit_code == 1
    assert "cannot_create_signature" in result.output


def test_without_passphrase_keys_are_plain(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["central", "init", str(tmp_path / "cs"), "--instance", "DEV", "--address", "cs.example",
         "--key-type", "ec-p256"],
        env={"CROSSROAD_CENTRAL_PASSPHRASE": ""},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "stored unencrypted" in result.output
    assert "management service provider" in result.output
    result = CliRunner().invoke(app, ["central", "generate", str(tmp_path / "cs")])
    assert result.exit_code == 1
    assert "management_service_provider_not_set" in result.output


# --- run as a subprocess ----------------------------------------------------------------------


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONUNBUFFERED="1", **PASSPHRASE)


@pytest.mark.integration
def test_run_once_as_a_subprocess(tmp_path: Path) -> None:
    init(tmp_path / "cs")
    done = subprocess.run(
        [*CROSSROAD, "central", "run", "--once", str(tmp_path / "cs")],
        capture_output=True, text=True, timeout=60, env=_env(), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "published" in done.stdout
    assert "Traceback" not in done.stderr
    for version in range(2, 7):
        assert (tmp_path / "cs" / "public" / f"V{version}" / "internalconf").is_file()


@pytest.mark.integration
def test_run_serves_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    init(tmp_path / "cs", "--distribution-port", str(port))
    proc = subprocess.Popen(
        [*CROSSROAD, "central", "run", str(tmp_path / "cs")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    output = ProcessOutput(proc)
    try:
        out = output.until("ready")
        assert f"distribution http://127.0.0.1:{port}/" in out
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/internalconf?version=6") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/octet-stream"
            directory = SignedDirectory.parse(resp.read())
        assert directory.version == 6
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    assert "stopped" in output.rest()
    assert "Traceback" not in stderr


@pytest.mark.integration
def test_run_on_a_busy_port_fails_cleanly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        init(tmp_path / "cs", "--distribution-port", str(busy.getsockname()[1]))
        done = subprocess.run(
            [*CROSSROAD, "central", "run", str(tmp_path / "cs")],
            capture_output=True, text=True, timeout=60, env=_env(), check=False,
        )  # fmt: skip
    assert done.returncode == 1
    assert "error: io_error:" in done.stderr
    assert "Traceback" not in done.stderr
