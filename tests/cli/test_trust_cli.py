"""``crossroad trust``: init / issue / revoke / show in-process, ``run`` as a real subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from typer.testing import CliRunner

from crossroad.cli.main import app
from crossroad.testing.output import ProcessOutput
from crossroad.testing.pki import rsa_key
from crossroad.trust.ca import parse_name

CROSSROAD = [sys.executable, "-m", "crossroad.cli.main"]


def invoke(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["trust", *args], env=env)
    assert "Traceback" not in result.output
    return result


def write_csr(
    path: Path, subject: str = "/C=FI/O=Org/CN=1234/serialNumber=DEV\\/ss1\\/COM"
) -> Path:
    csr = x509.CertificateSigningRequestBuilder().subject_name(parse_name(subject))
    path.write_bytes(
        csr.sign(rsa_key(12), hashes.SHA256()).public_bytes(serialization.Encoding.PEM)
    )
    return path


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("cli") / "trust"
    result = invoke("init", str(directory), "--instance", "DEV", "--key-type", "ec-p256")
    assert result.exit_code == 0, result.output
    assert "initialised" in result.output
    return directory


def test_init_twice_fails(state: Path) -> None:
    result = invoke("init", str(state))
    assert result.exit_code == 1
    assert "error: invalid_request:" in result.output
    assert "already initialised" in result.output


def test_init_refuses_bad_options(tmp_path: Path) -> None:
    result = invoke("init", str(tmp_path / "x"), "--key-type", "dsa")
    assert result.exit_code == 1
    assert "Unknown key type" in result.output
    result = invoke("init", str(tmp_path / "y"), "--profile", "nope")
    assert result.exit_code == 1
    assert "Unknown certificate profile" in result.output


def test_issue_revoke_show(state: Path, tmp_path: Path) -> None:
    csr = write_csr(tmp_path / "sign.csr")
    out = tmp_path / "sign.pem"
    result = invoke("issue", str(state), "--csr", str(csr), "--type", "sign", "--out", str(out))
    assert result.exit_code == 0, result.output
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    assert cert.issuer == x509.load_pem_x509_certificate((state / "ca.pem").read_bytes()).subject

    result = invoke(
        "issue", str(state), "--csr", str(csr), "--type", "auth",
        "--server", "SERVER:DEV/COM/1234/ss1", "--name", "Org", "--dns", "ss1.example",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "-----BEGIN CERTIFICATE-----" in result.output

    result = invoke("revoke", str(state), str(cert.serial_number), "--reason", "keyCompromise")
    assert result.exit_code == 0, result.output
    assert f"revoked {cert.serial_number} (key_compromise)" in result.output

    result = invoke("show", str(state))
    assert result.exit_code == 0, result.output
    assert "instance: DEV" in result.output
    assert "profile:  fivrk" in result.output
    assert "revoked" in result.output
    assert "serialNumber=DEV/ss1/COM,CN=ss1.example,O=Org,C=FI" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--csr", "MISSING", "--type", "sign"], "error: io_error:"),
        (["--csr", "{garbage}", "--type", "sign"], "Malformed certificate signing request"),
        (["--csr", "{csr}", "--type", "root"], "Unknown certificate type"),
        (["--csr", "{csr}", "--type", "sign", "--member", "DEV/COM"], "invalid_client_identifier"),
    ],
)
def test_issue_errors(state: Path, tmp_path: Path, args: list[str], message: str) -> None:
    garbage = tmp_path / "garbage.csr"
    garbage.write_bytes(b"\x00not a csr")
    csr = write_csr(tmp_path / "ok.csr")
    args = [a.format(garbage=garbage, csr=csr) for a in args]
    result = invoke("issue", str(state), *args)
    assert result.exit_code == 1
    assert message in result.output


def test_revoke_errors(state: Path) -> None:
    assert "Not a serial number" in invoke("revoke", str(state), "twelve").output
    result = invoke("revoke", str(state), "0xFFFFFF")
    assert result.exit_code == 1
    assert "has not issued" in result.output
    result = invoke("revoke", str(state), "1", "--reason", "bored")
    assert result.exit_code == 1
    assert "Unknown revocation reason" in result.output


def test_show_uninitialised(tmp_path: Path) -> None:
    result = invoke("show", str(tmp_path / "nothing"))
    assert result.exit_code == 1
    assert "holds no trust services state" in result.output


def test_passphrase_from_env_and_file(tmp_path: Path) -> None:
    directory = tmp_path / "locked"
    env = {"CROSSROAD_TRUST_PASSPHRASE": "s3cret"}
    assert invoke("init", str(directory), "--key-type", "ec-p256", env=env).exit_code == 0
    csr = str(write_csr(tmp_path / "c.csr"))
    result = invoke("issue", str(directory), "--csr", csr, "--type", "sign", env={})
    assert result.exit_code == 1
    assert "encrypted: give the passphrase" in result.output
    secret = tmp_path / "pass.txt"
    secret.write_text("s3cret\n")
    result = invoke(
        "issue", str(directory), "--csr", csr, "--type", "sign", "--passphrase-file", str(secret)
    )
    assert result.exit_code == 0, result.output


# -- `trust run` as a real process ---------------------------------------------------------


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.integration
def test_run_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    directory = tmp_path / "served"
    ca_port, ocsp_port, tsa_port = free_ports(3)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            *CROSSROAD, "trust", "run", str(directory),
            "--ca-port", str(ca_port), "--ocsp-port", str(ocsp_port), "--tsa-port", str(tsa_port),
        ],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    output = ProcessOutput(proc)
    try:
        out = output.until("ready")
        assert f"OCSP http://127.0.0.1:{ocsp_port}/" in out
        csr = write_csr(tmp_path / "c.csr")
        cert = tmp_path / "c.pem"
        issued = subprocess.run(
            ["curl", "-sf", "--data-binary", f"@{csr}",
             f"http://127.0.0.1:{ca_port}/sign?type=sign", "-o", str(cert)],
            timeout=30, check=False,
        )  # fmt: skip
        assert issued.returncode == 0
        check = subprocess.run(
            [
                "openssl", "ocsp",
                "-issuer", str(directory / "ca.pem"), "-cert", str(cert),
                "-url", f"http://127.0.0.1:{ocsp_port}",
                "-VAfile", str(directory / "ocsp.pem"), "-CAfile", str(directory / "ca.pem"),
            ],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert f"{cert}: good" in check.stdout, check.stdout + check.stderr
        # revoking through the CLI while the service runs is seen at once
        serial = x509.load_pem_x509_certificate(cert.read_bytes()).serial_number
        assert invoke("revoke", str(directory), str(serial)).exit_code == 0
        check = subprocess.run(check.args, capture_output=True, text=True, timeout=30, check=False)
        assert f"{cert}: revoked" in check.stdout, check.stdout + check.stderr
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
        port = busy.getsockname()[1]
        ca_port, tsa_port = free_ports(2)
        result = subprocess.run(
            [
                *CROSSROAD, "trust", "run", str(tmp_path / "s"),
                "--ca-port", str(ca_port), "--ocsp-port", str(port), "--tsa-port", str(tsa_port),
            ],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"error: network_error: Cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr
