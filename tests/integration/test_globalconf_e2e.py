"""Global configuration end to end, with real processes on 127.0.0.1 (protocols.md §5, §11).

A central server (``crossroad central init`` + ``run``, SQLite, 1 s generation interval) publishes;
a configuration proxy (``crossroad confproxy run``, 1 s cycle, 8 s validity) mirrors it; two
configuration clients in this process download — one through the proxy (behind a TCP relay that
can cut a connection mid-response), one straight from the central server.  The test shows that
a registry change reaches the clients within a cycle, that key rotations on the central server
and on the proxy pass without a single failed update, that a dropped connection is recovered on
the next attempt, and that with the central server stopped the proxy's client keeps its
configuration until it expires and then reports ``global_conf_outdated``.  Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.crypto.certs import load_certificate
from crossroad.errors import XRoadError
from crossroad.globalconf.client import ConfigurationClient, UpdateResult
from crossroad.globalconf.directory import load_directory
from crossroad.globalconf.privateparams import parse_anchor
from crossroad.identifiers import ClientId

pytestmark = pytest.mark.integration

CROSSROAD = [sys.executable, "-m", "crossroad.cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# The central server's signing keys are encrypted with this passphrase.
ENV = {**os.environ, "CROSSROAD_CENTRAL_PASSPHRASE": "e2e-secret"}


def cli(*args: str) -> str:
    done = subprocess.run(
        [*CROSSROAD, *args], capture_output=True, text=True, timeout=60, env=ENV, check=False
    )
    assert done.returncode == 0, f"crossroad {' '.join(args)}: {done.stdout}{done.stderr}"
    return done.stdout


class Process:
    """A long-running crossroad command whose stdout is read line by line."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.proc = subprocess.Popen(
            [*CROSSROAD, *args],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.output.append(line)
            self.lines.put(line)

    def wait_for(self, prefix: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.proc.poll() is None, f"{self.args} exited: {''.join(self.output)}"
                continue
            if line.startswith(prefix):
                return line
        raise AssertionError(f"{self.args}: no {prefix!r} in {timeout} s: {''.join(self.output)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Relay:
    """A TCP relay to ``target``; :meth:`drop_next_content` cuts the connection 64 bytes into
    the body of the response to the next request for a content file (``GET ….xml``)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.armed = False
        self.dropped = 0
        self.server: asyncio.Server | None = None

    def drop_next_content(self) -> None:
        self.armed = True

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        cut = asyncio.Event()

        async def upstream() -> None:
            while data := await reader.read(65536):
                if self.armed and b".xml HTTP/1.1" in data:
                    self.armed = False
                    cut.set()
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            response = b""  # what has come back since the content request
            while data := await up_reader.read(65536):
                if not cut.is_set():
                    writer.write(data)
                    await writer.drain()
                    continue
                response += data
                head_end = response.find(b"\r\n\r\n")
                if head_end >= 0 and len(response) >= head_end + 4 + 64:
                    # the status line, the headers and 64 bytes of the body, then nothing
                    writer.write(response[: head_end + 4 + 64])
                    await writer.drain()
                    self.dropped += 1
                    writer.transport.abort()
                    return

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()


async def until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, interval: float = 0.25
) -> float:
    """Poll ``check`` until true; returns the seconds it took."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await check():
            return time.monotonic() - start
        await asyncio.sleep(interval)
    raise AssertionError(f"not within {timeout} s: {what}")


def sha256(der: bytes | None) -> str:
    return hashlib.sha256(der or b"").hexdigest()


def announced(client: ConfigurationClient) -> set[str]:
    """SHA-256 of every signing certificate the held shared parameters announce."""
    snapshot = client.snapshot
    if snapshot is None:
        return set()
    return {
        sha256(cert)
        for source in snapshot.own_shared.sources
        for cert in source.internal_verification_certs + source.external_verification_certs
    }


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    try:
        yield started
    finally:
        for p in started:
            p.stop()


def test_globalconf_end_to_end(tmp_path: Path, processes: list[Process]) -> None:
    cs_port, api_port, proxy_port = free_port(), free_port(), free_port()
    cs, cp = tmp_path / "cs", tmp_path / "cp"

    # --- a central server, generating every second ---
    cli(
        "central", "init", str(cs), "--instance", "DEV", "--address", "127.0.0.1",
        "--distribution-port", str(cs_port), "--api-port", str(api_port),
        "--management-provider", "SUBSYSTEM:DEV/GOV/1234/MANAGEMENT",
    )  # fmt: skip
    toml = cs / "central.toml"
    toml.write_text(toml.read_text().replace("interval_seconds = 60", "interval_seconds = 1"))
    cli("central", "anchor", "export", "--source", "internal", "--out", str(tmp_path / "cs.xml"),
        "-d", str(cs))  # fmt: skip
    central = Process("central", "run", str(cs))
    processes.append(central)
    assert "published" in central.wait_for("ready:")

    # --- a configuration proxy mirroring it ---
    # Clients reach the proxy through a relay that can cut connections: the relay's address is
    # the proxy's public one (in its anchor and in the ``source`` it serves), so every location
    # a client knows goes through it.
    relay = Relay(proxy_port)
    cli("confproxy", "init", str(cp), "--name", "PROXY1", "--address", f"127.0.0.1:{proxy_port}",
        "--public-address", f"127.0.0.1:{relay.port}", "--validity", "8", "--interval", "1",
    )  # fmt: skip
    cli("confproxy", "add-source", str(cp), "--anchor", str(tmp_path / "cs.xml"))
    cli("confproxy", "anchor", str(cp), "--out", str(tmp_path / "proxy.xml"))
    proxy = Process("confproxy", "run", str(cp), "--verbose")
    processes.append(proxy)
    proxy.wait_for("configuration proxy serving")

    via_proxy = ConfigurationClient(
        parse_anchor((tmp_path / "proxy.xml").read_bytes()),
        tmp_path / "gc-proxy",
        connect_timeout=2,
        read_timeout=5,
    )
    direct = ConfigurationClient(
        parse_anchor((tmp_path / "cs.xml").read_bytes()),
        tmp_path / "gc-direct",
        connect_timeout=2,
        read_timeout=5,
    )
    results: list[UpdateResult] = []

    async def update(client: ConfigurationClient) -> UpdateResult:
        result = await client.update_once()
        if client is via_proxy:
            results.append(result)
        return result

    async def ok(client: ConfigurationClient) -> bool:
        return (await update(client)).ok

    def has_member(client: ConfigurationClient, code: str) -> bool:
        snapshot = client.snapshot
        return snapshot is not None and snapshot.has_client(ClientId("DEV", "COM", code))

    async def sees(client: ConfigurationClient, code: str) -> bool:
        result = await update(client)
        assert result.ok, result.error
        return has_member(client, code)

    async def scenario() -> None:
        await relay.start()
        try:
            await run_scenario()
        finally:
            await relay.stop()

    async def run_scenario() -> None:
        # first download, through the proxy and directly
        await until(lambda: ok(via_proxy), 15, "a first download through the proxy")
        await until(lambda: ok(direct), 10, "a first direct download")
        assert via_proxy.negotiated_version == 6
        assert direct.negotiated_version == 6
        assert via_proxy.snapshot is not None
        assert via_proxy.snapshot.member_name(ClientId("DEV", "GOV", "1234")) == "X-Road Operator"
        assert load_directory(tmp_path / "gc-proxy").instance == "DEV"

        # a registry change reaches both clients within a cycle of each hop
        results.clear()
        await asyncio.to_thread(cli, "central", "member", "add", "COM/5678", "Second member",
                                "--dir", str(cs))  # fmt: skip
        took = await until(lambda: sees(via_proxy, "5678"), 8, "the new member via the proxy")
        assert took < 5, took  # central 1 s + proxy 1 s + polling
        await until(lambda: sees(direct, "5678"), 5, "the new member directly")

        # central server key rotation: add, wait until it is announced, activate
        results.clear()
        added = await asyncio.to_thread(
            cli, "central", "keys", "add", "--source", "internal", "-d", str(cs)
        )
        key_id = added.split()[3]
        listed = json.loads(
            await asyncio.to_thread(cli, "central", "keys", "list", "--json", "-d", str(cs))
        )
        new_hash: str = next(k["cert_sha256"] for k in listed if k["key_id"] == key_id)

        async def announced_everywhere() -> bool:
            assert (await update(direct)).ok
            mirrored = load_directory(cp / "download" / "DEV" / "V6").shared()
            assert mirrored is not None
            certs = {sha256(c) for s in mirrored.sources for c in s.internal_verification_certs}
            return new_hash in announced(direct) and new_hash in certs

        await until(announced_everywhere, 8, "the new central key announced")
        await asyncio.to_thread(cli, "central", "keys", "activate", key_id, "-d", str(cs))

        async def signed_with_new_key() -> bool:
            result = await update(direct)
            assert result.ok, result.error  # not a single failure: trust is never lost
            return sha256(result.signer) == new_hash

        await until(signed_with_new_key, 8, "a directory signed with the new central key")
        await asyncio.to_thread(cli, "central", "member", "add", "COM/9999", "After rotation",
                                "--dir", str(cs))  # fmt: skip
        await until(lambda: sees(via_proxy, "9999"), 8, "the proxy trusting the new central key")
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]

        # configuration proxy key rotation
        results.clear()
        proxy_key = (await asyncio.to_thread(cli, "confproxy", "keys", "add", str(cp))).split()[0]
        proxy_cert = load_certificate((cp / "keys" / f"{proxy_key}.crt").read_bytes())
        proxy_hash = sha256(proxy_cert.public_bytes(Encoding.DER))

        async def proxy_key_announced() -> bool:
            assert (await update(via_proxy)).ok
            return proxy_hash in announced(via_proxy)

        await until(proxy_key_announced, 8, "the new proxy key announced")
        await asyncio.to_thread(cli, "confproxy", "keys", "activate", str(cp), proxy_key)

        async def proxy_signs_with_new_key() -> bool:
            result = await update(via_proxy)
            assert result.ok, result.error
            return sha256(result.signer) == proxy_hash

        await until(proxy_signs_with_new_key, 8, "a directory signed with the new proxy key")
        assert all(r.ok for r in results)

        # a connection dropped in the middle of a content file; the next attempt recovers
        await asyncio.to_thread(cli, "central", "member", "add", "COM/4242", "Dropped",
                                "--dir", str(cs))  # fmt: skip
        relay.drop_next_content()
        failed: list[UpdateResult] = []

        async def dropped() -> bool:
            result = await update(via_proxy)
            if relay.dropped:
                failed.append(result)
                return True
            assert result.ok, result.error
            return False

        await until(dropped, 8, "a dropped content download")
        assert failed[0].code == "global_conf_part_download_failure", failed[0].error
        assert not has_member(via_proxy, "4242")
        assert via_proxy.is_valid()
        recovered = await update(via_proxy)
        assert recovered.ok, recovered.error
        assert has_member(via_proxy, "4242")

        # central server stopped: the proxy publishes nothing new; its client keeps the last
        # configuration until it expires, then it is outdated
        await asyncio.to_thread(central.stop)
        snapshot = via_proxy.snapshot
        assert snapshot is not None
        assert via_proxy.is_valid()
        expires = snapshot.expires_at()
        assert expires is not None
        seen_valid = []

        async def outdated() -> bool:
            result = await update(via_proxy)
            valid = via_proxy.is_valid()
            seen_valid.append(valid)
            return not valid and result.code == "global_conf_outdated"

        await until(outdated, 15, "the proxy's configuration expiring", interval=0.5)
        assert seen_valid[0]
        assert via_proxy.snapshot is not None  # kept, only outdated
        with pytest.raises(XRoadError) as info:
            via_proxy.check_valid()
        assert info.value.code == "global_conf_outdated"
        # the direct client cannot reach the central server but keeps its (longer) validity
        unreachable = await update(direct)
        assert unreachable.code == "global_conf_download_url_connection_failure"
        assert direct.is_valid()

    started = time.monotonic()
    asyncio.run(scenario())
    assert time.monotonic() - started < 50
