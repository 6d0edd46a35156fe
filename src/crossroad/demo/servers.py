"""One security server of the demo instance: created, run as ``crossroad security-server run``
in processes of its own, given keys, its clients added, and watched until it can exchange.

Each step goes through what an administrator uses: :mod:`crossroad.securityserver.state` (``init``),
the signer's socket (keys, CSRs, certificate import, OCSP), the test CA's HTTP interface, and the
security server's management REST API (``Authorization: X-Road-ApiKey token=…``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId

PIN = "demo-pin-1234"  # the demo's software tokens (kept in each state directory)


@dataclass(frozen=True)
class ServerSpec:
    name: str
    server_id: SecurityServerId
    org_name: str
    clients: tuple[ClientId, ...]
    address: str
    workers: int


@dataclass
class Node:
    """One security server of the demo, as it comes up."""

    spec: ServerSpec
    state: Path
    proc: asyncio.subprocess.Process | None = None
    ready_lines: list[str] = field(default_factory=list)
    api_key: str = ""
    signer_socket: Path | None = None
    cert_hashes: tuple[str, ...] = ()
    auth_pem: str = ""
    drain: asyncio.Task[None] | None = None

    @property
    def client_url(self) -> str:
        return f"http://{self.spec.address}:8080"

    @property
    def admin_url(self) -> str:
        return f"http://{self.spec.address}:4000/api/v1"

    def hangup(self) -> None:
        """Ask the server to download the global configuration now."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGHUP)


class Api:
    """A management API (central server or security server) with its API key."""

    def __init__(self, session: aiohttp.ClientSession, base: str, key: str) -> None:
        self.session, self.base = session, base.rstrip("/")
        self.headers = {"Authorization": f"X-Road-ApiKey token={key}"}

    async def __call__(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(
            method, self.base + path, json=body, headers=self.headers
        ) as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise XRoadError(
                    Code.HTTP_ERROR, f"{method} {self.base}{path}: {resp.status} {text[:300]}"
                )
            return json.loads(text) if text.strip() else None


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except (XRoadError, aiohttp.ClientError, OSError) as exc:
            last = exc
        await asyncio.sleep(0.2)
    raise XRoadError(Code.INTERNAL_ERROR, f"not within {timeout:g} s: {what} (last: {last})")


def encoded(client: ClientId | SecurityServerId) -> str:
    """The identifier in the management APIs' path form (``DEV:COM:1111:CLIENT``)."""
    return ":".join(client.parts())


async def init_server(node: Node, anchor: bytes) -> None:
    """``security-server init`` with every listener on the node's own address; a management
    API key (as ``crossroad server apikey create`` makes one)."""
    from crossroad.securityserver.settings import SecurityServerSettings
    from crossroad.securityserver.state import initialize
    from crossroad.serverconf.store import Role, ServerConfStore
    from crossroad.storage.engine import create_engine

    a = node.spec.address

    def init() -> None:
        settings = SecurityServerSettings(
            node.state,
            client_host=a,
            server_host=a,
            ocsp_host=a,
            admin_host=a,
            workers=node.spec.workers,
            conf_interval_seconds=30.0,
            signer_ocsp_retry=2.0,
        )
        done = initialize(
            node.state,
            owner=node.spec.server_id.owner,
            server_code=node.spec.server_id.server_code,
            anchor=anchor,
            pin=PIN,
            settings=settings,
            autologin=True,
        )
        node.signer_socket = done.settings.socket_path
        engine = create_engine(done.settings.resolved_database_url())
        try:
            node.api_key = ServerConfStore(engine).create_api_key("demo", list(Role))[1]
        finally:
            engine.dispose()

    await asyncio.to_thread(init)


async def run_server(node: Node, log_path: Path, timeout: float = 60) -> None:
    """Start ``security-server run`` (dies with this process) and wait for its ``ready``."""
    from crossroad.securityserver.launch import PARENT_ENV

    with log_path.open("wb") as log:
        node.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "crossroad.securityserver",
            "run",
            str(node.state),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
            env={**os.environ, PARENT_ENV: str(os.getpid())},
            start_new_session=True,
        )
    assert node.proc.stdout is not None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while line := await node.proc.stdout.readline():
                text = line.decode("utf-8", "replace").rstrip()
                if text.startswith("ready:"):
                    node.ready_lines.append(text)
                    break
    if not node.ready_lines:
        tail = log_path.read_text("utf-8", "replace")[-3000:]
        raise XRoadError(
            Code.INTERNAL_ERROR, f"security server {node.spec.server_id} did not start:\n{tail}"
        )
    node.drain = asyncio.create_task(_drain(node.proc.stdout, node.ready_lines))


async def _drain(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while line := await stream.readline():
        if len(lines) < 50:
            lines.append(line.decode("utf-8", "replace").rstrip())


async def stop_server(node: Node) -> None:
    proc = node.proc
    if proc is None or proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 20)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        await proc.wait()


async def make_keys(node: Node, session: aiohttp.ClientSession, ca_url: str) -> None:
    """An authentication and a signing key on the node's signer, certified by the test CA."""
    from crossroad.crypto.algorithms import SHA1
    from crossroad.crypto.certs import cert_der
    from crossroad.signer.client import SignerClient
    from crossroad.trust.client import request_certificate

    server, owner = node.spec.server_id, node.spec.server_id.owner
    hashes = []
    assert node.signer_socket is not None
    async with SignerClient(node.signer_socket) as signer:
        for usage in ("auth", "sign"):
            member = owner if usage == "sign" else None
            key = await signer.generate_key(usage=usage, label=f"demo {usage}", member=member)
            csr = await signer.generate_csr(
                key["id"],
                usage,
                member=member,
                server=server,
                profile="fivrk",
                org_name=node.spec.org_name,
            )
            cert = await request_certificate(
                session, ca_url, csr["pem"].encode(), usage, member=member, server=server
            )
            await signer.import_cert(cert, member=member)
            hashes.append(SHA1.digest(cert_der(cert)).hex())
            if usage == "auth":
                node.auth_pem = cert.public_bytes(Encoding.PEM).decode()
    node.cert_hashes = tuple(hashes)


async def add_clients(node: Node, api: Api) -> None:
    """The node's clients, reachable over plain HTTP, sent for registration."""
    for client in node.spec.clients:
        body = {
            "member_class": client.member_class,
            "member_code": client.member_code,
            "subsystem_code": client.subsystem_code,
            "connection_type": "HTTP",
        }
        await api("POST", "/clients", {"client": body})
        await api("PUT", f"/clients/{encoded(client)}/register")


async def wait_ready(node: Node, api: Api, timeout: float = 20) -> None:
    """Until the node's signer has OCSP responses for its certificates and its clients are
    registered (the global configuration lists them)."""
    from crossroad.signer.client import SignerClient

    async def registered() -> bool:
        for client in node.spec.clients:
            found = await api("GET", f"/clients/{encoded(client)}")
            if found.get("status") != "REGISTERED":
                node.hangup()
                await asyncio.sleep(0.5)
                return False
        return True

    assert node.signer_socket is not None
    async with SignerClient(node.signer_socket) as signer:

        async def ocsp() -> bool:
            responses = await signer.ocsp_responses(list(node.cert_hashes))
            if all(r is not None for r in responses):
                return True
            await signer.refresh_ocsp()
            return False

        await until(f"OCSP responses on {node.spec.server_id}", ocsp, timeout)
    await until(f"clients of {node.spec.server_id} registered", registered, timeout)
