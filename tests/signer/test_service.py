"""The signer as its own process on a unix socket: protocol, coded errors, CLI, SIGTERM.

Each test starts ``crossroad signer run`` in a subprocess, talks to it with
:class:`~crossroad.signer.client.SignerClient` (and the CLI), and stops it with SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crossroad.crypto.trust import TrustPolicy
from crossroad.errors import XRoadError
from crossroad.identifiers import ClientId
from crossroad.signer.client import SignerClient
from crossroad.trust.client import request_certificate
from crossroad.trust.service import TrustServices

from .conftest import MEMBER, PIN, SERVER, SoftHsm, message_parts, verify_signed

pytestmark = pytest.mark.integration

CLI = "from crossroad.cli.signer import signer_app; signer_app(prog_name='crossroad signer')"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@contextlib.contextmanager
def signer_process(
    state: Path,
    services: TrustServices,
    *extra: str,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """``crossroad signer run`` trusting the test CA; yields once it says ready."""
    sock = state.parent / f"{state.name}.sock"
    args = [
        "run",
        str(state),
        "--socket",
        str(sock),
        "--trust-ca",
        str(services.state_dir / "ca.pem"),
        "--ocsp-cert",
        str(services.state_dir / "ocsp.pem"),
        "--instance",
        "DEV",
        "--profile",
        "FiVRK",
        "--ocsp-retry",
        "0.2",
        *extra,
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("ready"):
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(30), "".join(lines)
        assert proc.poll() is None, "".join(lines)
        yield proc, sock
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        reader.join(5)


def init(state: Path, tmp_path: Path, *options: str, env: dict[str, str] | None = None) -> Path:
    pin_file = tmp_path / "pin"
    pin_file.write_text(PIN + "\n")
    result = cli("init", str(state), "--pin-file", str(pin_file), *options, env=env)
    assert result.returncode == 0, result.stderr
    return pin_file


async def code_of(call: object) -> str:
    with pytest.raises(XRoadError) as err:
        await call  # type: ignore[misc]
    return err.value.code


async def certify_remote(
    client: SignerClient, services: TrustServices, key_id: str, usage: str
) -> x509.Certificate:
    csr = await client.generate_csr(
        key_id, usage, member=MEMBER if usage == "sign" else None, server=SERVER
    )
    async with aiohttp.ClientSession() as session:
        cert = await request_certificate(session, services.ca_url, csr["pem"].encode(), usage)
    info = await client.import_cert(cert)
    assert info["usage"] == usage
    return cert


async def wait_for_ocsp(client: SignerClient, count: int) -> None:
    for _ in range(500):
        certs = (await client.status())["certs"]
        if sum(1 for c in certs if c["ocsp"]["usable"]) >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"OCSP responses not fetched: {certs}")


def test_signer_process_end_to_end(
    tmp_path: Path, trust_services: TrustServices, trust: TrustPolicy
) -> None:
    state = tmp_path / "signer"
    init(state, tmp_path)

    async def main(sock: Path) -> None:
        async with SignerClient(sock) as client:
            assert await code_of(client.login("0", "bad-pin")) == "signer.pin_incorrect"
            assert await code_of(client.generate_key("0")) == "signer.token_not_active"
            await client.login("0", PIN)
            sign_key = await client.generate_key("0", "rsa2048", member=MEMBER)
            auth_key = await client.generate_key("0", "ec-p256", usage="auth")
            sign_cert = await certify_remote(client, trust_services, sign_key["id"], "sign")
            auth_cert = await certify_remote(client, trust_services, auth_key["id"], "auth")
            await wait_for_ocsp(client, 2)

            requests = [message_parts(n, attachments=n % 2) for n in range(30)]
            results = await asyncio.gather(*(client.sign(MEMBER, p) for p, _ in requests))
            for signed, (_, files) in zip(results, requests, strict=True):
                assert verify_signed(signed, files, trust).signing_cert == sign_cert

            assert await client.member_cert(MEMBER.subsystem("x")) == sign_cert
            key_pem, cert, chain, ocsp = await client.auth_key()
            assert cert == auth_cert
            assert chain == []
            assert len(ocsp) == 1
            private = serialization.load_pem_private_key(key_pem, None)
            assert private.public_key() == auth_cert.public_key()
            hashes = [(await client.status())["certs"][i]["id"] for i in range(2)]
            responses = await client.ocsp_responses([*hashes, "ff" * 20])
            assert responses[0] is not None
            assert responses[1] is not None
            assert responses[2] is None

            # Coded errors over the wire.
            other = ClientId("DEV", "COM", "nobody")
            assert await code_of(client.sign(other, requests[0][0])) == "signer.unknown_member"
            assert await code_of(client.generate_csr("NOKEY", "sign")) == "signer.key_not_found"
            assert await code_of(client.call("no_such_method")) == "signer.invalid_request"
            assert await code_of(client.call("login", {"token": "0"})) == "signer.invalid_request"
            assert await code_of(client.login("nope", PIN)) == "signer.token_not_found"
            assert await code_of(client.import_cert(sign_cert)) == "signer.cert_exists"
            bad_parts = {"member": str(MEMBER), "parts": [["/message.xml", "SHA-512", "AAAA"]]}
            assert await code_of(client.call("sign", bad_parts)) == "signer.invalid_request"
            conn = aiohttp.UnixConnector(path=str(sock))
            async with (
                aiohttp.ClientSession(connector=conn) as raw,
                raw.post("http://signer/status", data=b"{not json") as resp,
            ):
                body = await resp.json()
                assert resp.status == 400
                assert body["error"]["code"] == "signer.invalid_request"
            await client.logout("0")
            assert await code_of(client.sign(MEMBER, requests[0][0])) == "signer.token_not_active"

    with signer_process(state, trust_services) as (proc, sock):
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        asyncio.run(main(sock))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert not sock.exists()

    async def after(sock: Path) -> None:
        async with SignerClient(sock, timeout=2) as client:
            assert await code_of(client.status()) == "signer.network_error"

    asyncio.run(after(tmp_path / "signer.sock"))


def test_signer_process_with_softhsm_and_autologin(
    tmp_path: Path, trust_services: TrustServices, trust: TrustPolicy, softhsm: SoftHsm
) -> None:
    state = tmp_path / "signer"
    env = softhsm.env()
    label = softhsm.take()
    init(state, tmp_path, "--pkcs11-module", f"softhsm={softhsm.lib}", env=env)
    pins = tmp_path / "pins"
    pins.write_text(f"{PIN}\n")  # a bare PIN logs in the software token

    async def main(sock: Path) -> None:
        async with SignerClient(sock) as client:
            tokens = {t["label"]: t for t in await client.list_tokens()}
            assert tokens["softToken-0"]["active"]  # logged in at start
            hsm = tokens[label]
            assert (hsm["type"], hsm["active"]) == ("pkcs11", False)
            info = await client.login(label, PIN)
            key = await client.generate_key(info["id"], "ec-p256", member=MEMBER)
            assert key["token"] == hsm["id"]
            cert = await certify_remote(client, trust_services, key["id"], "sign")
            await wait_for_ocsp(client, 1)
            parts, files = message_parts(1, attachments=1)
            signed = await client.sign(MEMBER, parts)
            assert verify_signed(signed, files, trust).signing_cert == cert
            keys = await client.list_keys()
            assert [k["certs"][0]["id"] for k in keys] == [
                (await client.status())["certs"][0]["id"]
            ]

    with signer_process(state, trust_services, "--pin-file", str(pins), env=env) as (proc, sock):
        asyncio.run(main(sock))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_cli_against_a_running_signer(tmp_path: Path, trust_services: TrustServices) -> None:
    state = tmp_path / "signer"
    pin_file = init(state, tmp_path)
    again = cli("init", str(state), "--pin-file", str(pin_file))
    assert again.returncode == 1
    assert "error: invalid_request" in again.stderr
    with signer_process(state, trust_services) as (proc, sock):
        env = {**os.environ, "CROSSROAD_SIGNER_SOCKET": str(sock)}
        wrong = tmp_path / "wrong"
        wrong.write_text("not-the-pin")
        failed = cli("token", "login", "0", "--pin-file", str(wrong), env=env)
        assert failed.returncode == 1
        assert "error: signer.pin_incorrect" in failed.stderr
        assert cli("token", "login", "0", "--pin-file", str(pin_file), env=env).returncode == 0
        made = cli("key", "generate", "--member", "DEV/COM/1234", "--type", "ec-p256", env=env)
        assert made.returncode == 0, made.stderr
        key_id = made.stdout.strip()
        csr_file = tmp_path / "req.pem"
        csr = cli(
            "csr", "generate", key_id, "--usage", "sign", "--server", str(SERVER),
            "--out", str(csr_file), env=env,
        )  # fmt: skip
        assert csr.returncode == 0, csr.stderr
        request = x509.load_pem_x509_csr(csr_file.read_bytes())
        assert request.is_signature_valid

        async def issue() -> x509.Certificate:
            async with aiohttp.ClientSession() as session:
                return await request_certificate(
                    session, trust_services.ca_url, csr_file.read_bytes(), "sign"
                )

        cert_file = tmp_path / "cert.pem"
        cert_file.write_bytes(asyncio.run(issue()).public_bytes(serialization.Encoding.PEM))
        imported = cli("cert", "import", str(cert_file), env=env)
        assert imported.returncode == 0, imported.stderr
        assert imported.stdout.startswith("imported sign certificate")
        status = json.loads(cli("status", env=env).stdout)
        assert status["keys"] == 1
        assert status["certs"][0]["member"] == str(MEMBER)
        listed = json.loads(cli("token", "list", env=env).stdout)
        assert listed[0]["keys"] == [key_id]
        cert_id = status["certs"][0]["id"]
        assert cli("cert", "deactivate", cert_id, env=env).returncode == 0
        assert not json.loads(cli("key", "list", env=env).stdout)[0]["certs"][0]["active"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    gone = cli("status", "--socket", str(sock))
    assert gone.returncode == 1
    assert "error: signer.network_error" in gone.stderr
