"""The demo instance: a complete X-Road instance on one machine, registered through the real
workflows, with one REST and one SOAP exchange (``crossroad demo``).

What it brings up (embedded SQLite, nothing else installed):

* the trust services (test CA, OCSP responder, TSA) and the sample providers
  (:mod:`crossroad.demo.providers`) on 127.0.0.1, ephemeral ports, in this process;
* a central server (``central init`` + ``run``: distribution and management API) in this
  process, with a management API key;
* three security servers, each ``crossroad security-server run`` in its own processes (signer,
  proxy workers), on loopback addresses of their own (127.0.0.2-4 by default; every X-Road
  port is then the standard one, as peers dial it): the central server's management security
  server (owner ``GOV/1000``), the consumer's (``COM/1111``, client subsystem ``CLIENT``) and the
  provider's (``COM/2222``, subsystem ``PROVIDER`` with the REST and SOAP services).

How it is registered, in order: the CA, its OCSP responder and the TSA, members and subsystems
through the central server's management API; each security server is initialised with the
anchor downloaded from that API; its signer generates an authentication and a signing key,
makes CSRs, the test CA certifies them, the certificates are imported; the servers, their
authentication certificates and their clients are registered through the central server's
management API — NIIS does that with the management requests ``authCertReg`` and
``clientReg``, which are not built yet, and the output says so; clients, service descriptions
(fetched from the providers by the security server) and access rights through each security
server's management API.  The servers then download the new global configuration (a SIGHUP
asks them to do it now), their clients become registered, the signers fetch OCSP responses,
and the exchanges run: REST ``GET /pets/1`` and SOAP ``getRandom`` (both allowed), and SOAP
``getSecret``, which the access rights deny.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId

INSTANCE = "DEV"
FIVRK = "ee.ria.xroad.common.certificateprofile.impl.FiVRKCertificateProfileInfoProvider"
OPERATOR = ClientId(INSTANCE, "GOV", "1000")
MANAGEMENT = ClientId(INSTANCE, "GOV", "1000", "MANAGEMENT")
CONSUMER_ORG = ClientId(INSTANCE, "COM", "1111")
CLIENT = ClientId(INSTANCE, "COM", "1111", "CLIENT")
PROVIDER_ORG = ClientId(INSTANCE, "COM", "2222")
PROVIDER = ClientId(INSTANCE, "COM", "2222", "PROVIDER")
REST_CODE = "petstore"
PIN = "demo-pin-1234"  # the demo's software tokens (kept in each state directory)
NOT_BUILT = (
    "registered through the central server's management API: the management requests "
    "authCertReg and clientReg are not built yet"
)
Say = Callable[[str], None]


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
    """One running security server of the demo."""

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


@dataclass
class Instance:
    directory: Path
    trust: Any = None
    providers: Any = None
    central_api: str = ""
    central_distribution: str = ""
    central_key: str = ""
    anchor: Path | None = None
    nodes: dict[str, Node] = field(default_factory=dict)
    results: dict[str, str] = field(default_factory=dict)
    samples: dict[str, Path] = field(default_factory=dict)


def pick_addresses(base: str | None) -> tuple[str, str, str]:
    """Three loopback addresses: ``base`` and the two after it, or three random ones."""
    if base is None:
        a, b = random.randint(1, 254), random.randint(1, 254)  # noqa: S311 - not a secret
        base = f"127.{a}.{b}.2"
    parts = base.split(".")
    if len(parts) != 4 or parts[0] != "127" or not all(p.isdigit() for p in parts):
        raise XRoadError(Code.INVALID_REQUEST, f"{base!r} is not a 127.x.y.z loopback address")
    last = int(parts[3])
    if not 1 < last < 253:
        raise XRoadError(Code.INVALID_REQUEST, f"{base}: the last number must be 2..252")
    prefix = ".".join(parts[:3])
    return (base, f"{prefix}.{last + 1}", f"{prefix}.{last + 2}")


def specs(addresses: tuple[str, str, str], workers: int) -> dict[str, ServerSpec]:
    return {
        "management": ServerSpec(
            "management",
            SecurityServerId(OPERATOR, "SS0"),
            "Demo operator",
            (MANAGEMENT,),
            addresses[0],
            1,
        ),
        "consumer": ServerSpec(
            "consumer",
            SecurityServerId(CONSUMER_ORG, "SS1"),
            "Demo consumer",
            (CLIENT,),
            addresses[1],
            workers,
        ),
        "provider": ServerSpec(
            "provider",
            SecurityServerId(PROVIDER_ORG, "SS2"),
            "Demo provider",
            (PROVIDER,),
            addresses[2],
            workers,
        ),
    }


def soap_request(service: str, body: str = "", query_id: str | None = None) -> bytes:
    """An X-Road SOAP 4.0 request of ``CLIENT`` for ``PROVIDER``'s ``service`` (version v1)."""
    qid = query_id or f"demo-{secrets.token_hex(8)}"

    def ident(kind: str, c: ClientId, extra: str = "") -> str:
        return (
            f'<xrd:{kind} id:objectType="{"SERVICE" if extra else "SUBSYSTEM"}">'
            f"<id:xRoadInstance>{c.instance}</id:xRoadInstance>"
            f"<id:memberClass>{c.member_class}</id:memberClass>"
            f"<id:memberCode>{c.member_code}</id:memberCode>"
            f"<id:subsystemCode>{c.subsystem_code}</id:subsystemCode>{extra}</xrd:{kind}>"
        )

    service_xml = (
        f"<id:serviceCode>{service}</id:serviceCode><id:serviceVersion>v1</id:serviceVersion>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers" '
        'xmlns:ns1="http://demo.crossroad.example/producer">'
        f"<SOAP-ENV:Header>{ident('client', CLIENT)}{ident('service', PROVIDER, service_xml)}"
        f"<xrd:id>{qid}</xrd:id><xrd:protocolVersion>4.0</xrd:protocolVersion></SOAP-ENV:Header>"
        f"<SOAP-ENV:Body><ns1:{service}>{body}</ns1:{service}></SOAP-ENV:Body></SOAP-ENV:Envelope>\n"
    ).encode()


def rest_path(path: str) -> str:
    return f"/r1/{PROVIDER.to_header()}/{REST_CODE}{path}"


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


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def check_free(address: str) -> None:
    for port in (8080, 8443, 5500, 5577, 4000):
        try:
            with socket.create_server((address, port)):
                pass
        except OSError as exc:
            raise XRoadError(
                Code.NETWORK_ERROR,
                f"{address}:{port} is taken ({exc.strerror}); another demo running? "
                "Stop it, or give --address-base 127.0.1.2",
            ) from exc


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


@contextlib.asynccontextmanager
async def start_instance(
    directory: Path, *, say: Say = print, address_base: str | None = "127.0.0.2", workers: int = 2
) -> AsyncIterator[Instance]:
    """Bring the whole instance up under ``directory/instance`` (wiped first); stop it on exit."""
    from crossroad.demo.providers import start_providers
    from crossroad.trust.service import start_trust_services

    root = directory.resolve() / "instance"
    if root.exists():
        shutil.rmtree(root)
    (root / "logs").mkdir(parents=True)
    addresses = pick_addresses(address_base)
    for address in addresses:
        check_free(address)
    inst = Instance(root)
    nodes = {k: Node(s, root / k) for k, s in specs(addresses, workers).items()}
    inst.nodes = nodes
    central_stop = asyncio.Event()
    central_task: asyncio.Task[Any] | None = None
    async with (
        start_trust_services(root / "trust", instance=INSTANCE) as trust,
        start_providers() as providers,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session,
    ):
        inst.trust, inst.providers = trust, providers
        say(f"trust services: CA {trust.ca_url}  OCSP {trust.ocsp_url}  TSA {trust.tsa_url}")
        say(f"providers: REST {providers.rest_base}  SOAP {providers.soap_url}")
        try:
            central_task = await _central(inst, central_stop, say)
            await _register_services(inst, session, say)
            await asyncio.gather(*(_init_server(inst, n) for n in nodes.values()))
            await asyncio.gather(*(_run_server(inst, n) for n in nodes.values()))
            say(
                "security servers running: "
                + ", ".join(f"{n.spec.server_id} on {n.spec.address}" for n in nodes.values())
            )
            await asyncio.gather(*(_keys(inst, session, n) for n in nodes.values()))
            await _register_servers(inst, session, say)
            await _configure_servers(inst, session, say)
            await _publish(inst, say)
            await asyncio.gather(*(_ready(inst, session, n) for n in nodes.values()))
            _write_samples(inst)
            yield inst
        finally:
            await asyncio.gather(*(_stop_server(n) for n in nodes.values()))
            central_stop.set()
            if central_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(central_task, 15)


# -- central server ------------------------------------------------------------------------


async def _central(inst: Instance, stop: asyncio.Event, say: Say) -> asyncio.Task[Any]:
    from crossroad.central import server as central
    from crossroad.central.registry_records import Role

    cs = inst.directory / "central"
    dist_port, api_port = free_port(), free_port()

    def init() -> str:
        central.initialize(
            cs,
            instance=INSTANCE,
            address="127.0.0.1",
            distribution_port=dist_port,
            api_port=api_port,
            management_provider=MANAGEMENT,
            management_name="Demo operator",
        )
        with central.CentralState.open(cs, actor="demo") as state:
            return state.registry.create_api_key("demo", list(Role))[1]

    inst.central_key = await asyncio.to_thread(init)
    ready = asyncio.Event()

    def on_ready(running: Any) -> None:
        inst.central_distribution, inst.central_api = running.distribution_url, running.api_url
        ready.set()

    task = asyncio.create_task(central.run(cs, stop=stop, on_ready=on_ready))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, timeout=30, return_when="FIRST_COMPLETED")
    waiter.cancel()
    if task.done():
        task.result()
    if not ready.is_set():
        raise XRoadError(Code.INTERNAL_ERROR, "the central server did not start within 30 s")
    async with aiohttp.ClientSession() as session:
        api = _central_api(inst, session)

        async def answers() -> bool:
            return bool(await api("GET", "/system/version"))

        await until("the central server's management API answers", answers, 30)
    say(f"central server: distribution {inst.central_distribution}  API {inst.central_api}api/v1")
    return task


async def _generate(inst: Instance) -> None:
    from crossroad.central import server as central

    def once() -> None:
        with central.CentralState.open(inst.directory / "central", actor="demo") as state:
            status = central.generate_once(state)
            if not status.success:
                raise XRoadError(status.error_code or Code.INTERNAL_ERROR, status.error or "")

    await asyncio.to_thread(once)


def _central_api(inst: Instance, session: aiohttp.ClientSession) -> Api:
    return Api(session, inst.central_api + "api/v1", inst.central_key)


async def _register_services(inst: Instance, session: aiohttp.ClientSession, say: Say) -> None:
    api, t = _central_api(inst, session), inst.trust

    def pem(cert: Any) -> str:
        return str(cert.public_bytes(Encoding.PEM).decode())

    ca = await api(
        "POST",
        "/certification-services",
        {
            "certificate": pem(t.ca_cert),
            "certificate_profile_info": FIVRK,
            "tls_auth": False,
            "name": "Demo CA",
        },
    )
    await api(
        "POST",
        f"/certification-services/{ca['id']}/ocsp-responders",
        {"url": t.ocsp_url, "certificate": pem(t.ocsp_cert)},
    )
    await api(
        "POST",
        "/timestamping-services",
        {"url": t.tsa_url, "certificate": pem(t.tsa_cert), "name": "Demo TSA"},
    )
    for org, name in ((CONSUMER_ORG, "Demo consumer"), (PROVIDER_ORG, "Demo provider")):
        await api(
            "POST",
            "/members",
            {
                "member_name": name,
                "member_id": {"member_class": org.member_class, "member_code": org.member_code},
            },
        )
    for sub in (CLIENT, PROVIDER):
        await api(
            "POST",
            "/subsystems",
            {
                "subsystem_id": {
                    "member_class": sub.member_class,
                    "member_code": sub.member_code,
                    "subsystem_code": sub.subsystem_code,
                }
            },
        )
    await _generate(inst)
    async with session.get(
        inst.central_api + "api/v1/configuration-sources/internal/anchor/download",
        headers=api.headers,
    ) as resp:
        resp.raise_for_status()
        inst.anchor = inst.directory / "anchor.xml"
        inst.anchor.write_bytes(await resp.read())
    say(
        "central server API: approved the demo CA (with its OCSP responder) and TSA; members "
        f"{CONSUMER_ORG}, {PROVIDER_ORG}; subsystems {CLIENT}, {PROVIDER}"
    )


# -- security servers ----------------------------------------------------------------------


async def _init_server(inst: Instance, node: Node) -> None:
    from crossroad.securityserver.settings import SecurityServerSettings
    from crossroad.securityserver.state import initialize
    from crossroad.serverconf.store import Role, ServerConfStore
    from crossroad.storage.engine import create_engine

    assert inst.anchor is not None
    anchor = inst.anchor.read_bytes()
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


async def _run_server(inst: Instance, node: Node) -> None:
    from crossroad.securityserver.launch import PARENT_ENV

    log = (inst.directory / "logs" / f"{node.spec.name}.log").open("wb")
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
    log.close()
    assert node.proc.stdout is not None
    try:
        async with asyncio.timeout(60):
            while line := await node.proc.stdout.readline():
                text = line.decode("utf-8", "replace").rstrip()
                if text.startswith("ready:"):
                    node.ready_lines.append(text)
                    break
    except TimeoutError:
        pass
    if not node.ready_lines:
        tail = (inst.directory / "logs" / f"{node.spec.name}.log").read_text("utf-8", "replace")
        raise XRoadError(
            Code.INTERNAL_ERROR,
            f"security server {node.spec.server_id} did not start:\n{tail[-3000:]}",
        )
    node.drain = asyncio.create_task(_drain(node.proc.stdout, node.ready_lines))


async def _drain(stream: asyncio.StreamReader, lines: list[str]) -> None:
    while line := await stream.readline():
        if len(lines) < 50:
            lines.append(line.decode("utf-8", "replace").rstrip())


async def _stop_server(node: Node) -> None:
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


async def _keys(inst: Instance, session: aiohttp.ClientSession, node: Node) -> None:
    """Authentication and signing keys on the server's signer, certified by the test CA."""
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
                session, inst.trust.ca_url, csr["pem"].encode(), usage, member=member, server=server
            )
            await signer.import_cert(cert, member=member)
            hashes.append(SHA1.digest(cert_der(cert)).hex())
            if usage == "auth":
                node.auth_pem = cert.public_bytes(Encoding.PEM).decode()
    node.cert_hashes = tuple(hashes)


async def _register_servers(inst: Instance, session: aiohttp.ClientSession, say: Say) -> None:
    api = _central_api(inst, session)
    for node in inst.nodes.values():
        sid = node.spec.server_id
        encoded = ":".join(sid.parts())
        await api(
            "POST",
            "/security-servers",
            {
                "server_address": node.spec.address,
                "server_id": {
                    "member_class": sid.owner.member_class,
                    "member_code": sid.owner.member_code,
                    "server_code": sid.server_code,
                },
            },
        )
        await api(
            "POST",
            f"/security-servers/{encoded}/authentication-certificates",
            {"certificate": node.auth_pem},
        )
        for client in node.spec.clients:
            await api(
                "POST",
                f"/security-servers/{encoded}/clients",
                {"client_id": ":".join(client.parts())},
            )
    say(f"security servers, authentication certificates and clients {NOT_BUILT}")


def _client_path(client: ClientId) -> str:
    return ":".join(client.parts())


async def _configure_servers(inst: Instance, session: aiohttp.ClientSession, say: Say) -> None:
    """Clients, descriptions and access rights through each server's management API."""
    for node in inst.nodes.values():
        api = Api(session, node.admin_url, node.api_key)
        for client in node.spec.clients:
            await api(
                "POST",
                "/clients",
                {
                    "client": {
                        "member_class": client.member_class,
                        "member_code": client.member_code,
                        "subsystem_code": client.subsystem_code,
                        "connection_type": "HTTP",
                    }
                },
            )
            await api("PUT", f"/clients/{_client_path(client)}/register")
    provider = Api(session, inst.nodes["provider"].admin_url, inst.nodes["provider"].api_key)
    p = _client_path(PROVIDER)
    for body in (
        {"url": inst.providers.wsdl_url, "type": "WSDL"},
        {"url": inst.providers.openapi_url, "type": "OPENAPI3", "rest_service_code": REST_CODE},
    ):
        added = await provider("POST", f"/clients/{p}/service-descriptions", body)
        await provider("PUT", f"/service-descriptions/{added['id']}/enable")
    grant = {"items": [{"id": _client_path(CLIENT), "service_client_type": "SUBSYSTEM"}]}
    for service in (REST_CODE, "getRandom.v1", "echo.v1"):  # not getSecret.v1
        await provider("POST", f"/services/{p}:{service}/service-clients", grant)
    say(
        f"security server APIs: clients added with connection type HTTP; {PROVIDER} described by "
        f"a WSDL and an OpenAPI 3 document; {CLIENT} may call {REST_CODE}, getRandom and echo "
        "(not getSecret)"
    )


async def _publish(inst: Instance, say: Say) -> None:
    await _generate(inst)
    for node in inst.nodes.values():
        if node.proc is not None and node.proc.returncode is None:
            node.proc.send_signal(signal.SIGHUP)  # download the new global configuration now
    say("central server: global configuration generated; security servers asked to download it")


async def _ready(inst: Instance, session: aiohttp.ClientSession, node: Node) -> None:
    """Until the server's clients are registered and its signer has OCSP responses."""
    from crossroad.signer.client import SignerClient

    api = Api(session, node.admin_url, node.api_key)

    async def registered() -> bool:
        for client in node.spec.clients:
            found = await api("GET", f"/clients/{_client_path(client)}")
            if found.get("status") != "REGISTERED":
                if node.proc is not None and node.proc.returncode is None:
                    node.proc.send_signal(signal.SIGHUP)
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

        await until(f"OCSP responses on {node.spec.server_id}", ocsp, 20)
    await until(f"clients of {node.spec.server_id} registered", registered, 20)


def _write_samples(inst: Instance) -> None:
    for name in ("getRandom", "getSecret"):
        path = inst.directory / f"{name}.xml"
        path.write_bytes(soap_request(name))
        inst.samples[name] = path


# -- the exchanges -------------------------------------------------------------------------


async def _retrying(what: str, call: Callable[[], Awaitable[str]], timeout: float = 20) -> str:
    """The first good outcome of ``call`` within ``timeout`` (the servers may still be taking
    in the configuration), else the last failure."""
    deadline = time.monotonic() + timeout
    outcome = "not tried"
    while time.monotonic() < deadline:
        try:
            outcome = await call()
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = f"failed: {what}: {exc!r}"
        if outcome == "ok":
            return outcome
        await asyncio.sleep(0.5)
    return outcome


async def exchanges(inst: Instance, say: Say) -> dict[str, str]:
    """The REST and SOAP exchanges and the denied one; ``{"rest": "ok", ...}``."""
    consumer = inst.nodes["consumer"].client_url
    direct_url = inst.providers.rest_base + "/pets/1"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.get(direct_url) as resp:
            direct = await resp.read()

        async def rest() -> str:
            headers = {"X-Road-Client": CLIENT.to_header()}
            async with session.get(consumer + rest_path("/pets/1"), headers=headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    return f"failed: HTTP {resp.status} {resp.headers.get('X-Road-Error')}"
                if body != direct:
                    return f"failed: body differs from the provider's: {body[:100]!r}"
                say(f"REST  GET {rest_path('/pets/1')} -> {resp.status} {body.decode()}")
                return "ok"

        async def soap(service: str, denied: bool) -> str:
            headers = {"Content-Type": "text/xml; charset=UTF-8"}
            async with session.post(consumer, data=soap_request(service), headers=headers) as r:
                text = (await r.read()).decode("utf-8", "replace")
            fault = _between(text, "<faultcode>", "</faultcode>")
            if denied:
                if "accessdenied" in fault.replace("_", "").lower():
                    say(f"SOAP  {service} -> denied as it must be: {fault}")
                    return "ok"
                why = _between(text, "<faultstring>", "</faultstring>")
                return f"failed: expected access_denied, got {fault} {why}" if fault else text[:200]
            if r.status == 200 and not fault and f"{service}Response" in text:
                start = text.find("<ns1:data>")
                data = text[start + 10 : text.find("</ns1:data>")] if start >= 0 else "?"
                say(f"SOAP  {service} -> {r.status}, data {data}")
                return "ok"
            return f"failed: HTTP {r.status} {fault or text[:200]!r}"

        results = {"rest": await _retrying("REST exchange", rest)}
        results["soap"] = await _retrying("SOAP exchange", lambda: soap("getRandom", False))
        results["denied"] = await _retrying("denied exchange", lambda: soap("getSecret", True), 5)
    inst.results.update(results)
    return results


def _between(text: str, start: str, end: str) -> str:
    i = text.find(start)
    j = text.find(end, i + len(start))
    return text[i + len(start) : j] if i >= 0 and j >= 0 else ""


def describe(inst: Instance) -> list[str]:
    """What to show the user: URLs, identifiers and ready-to-paste commands."""
    c, p, m = inst.nodes["consumer"], inst.nodes["provider"], inst.nodes["management"]
    lines = [
        f"instance {INSTANCE}; state and logs in {inst.directory}",
        f"  central server     distribution {inst.central_distribution}   "
        f"management API {inst.central_api}api/v1   (API key {inst.central_key})",
        f"  management server  {m.spec.server_id} at {m.spec.address}  (client {MANAGEMENT})",
        f"  consumer server    {c.spec.server_id} at {c.spec.address}  (client {CLIENT})",
        f"  provider server    {p.spec.server_id} at {p.spec.address}  (client {PROVIDER})",
        f"  security server management APIs at http://<address>:4000/api/v1 "
        f"(consumer's API key {c.api_key})",
        f"  trust services     CA {inst.trust.ca_url}  OCSP {inst.trust.ocsp_url}  "
        f"TSA {inst.trust.tsa_url}",
        f"  providers          REST {inst.providers.rest_base} (OpenAPI "
        f"{inst.providers.openapi_url})  SOAP {inst.providers.soap_url} "
        f"(WSDL {inst.providers.wsdl_url})",
        f"  note: servers, authentication certificates and clients were {NOT_BUILT}",
        "",
        "Try (through the consumer's security server):",
        f"  curl -H 'X-Road-Client: {CLIENT.to_header()}' {c.client_url}{rest_path('/pets')}",
        f"  curl -H 'X-Road-Client: {CLIENT.to_header()}' {c.client_url}{rest_path('/pets/2')}",
        f"  curl -H 'Content-Type: text/xml' --data-binary @{inst.samples['getRandom']} "
        f"{c.client_url}/",
        f"  curl -H 'Content-Type: text/xml' --data-binary @{inst.samples['getSecret']} "
        f"{c.client_url}/    # denied by access rights",
        f"  curl -H 'X-Road-Client: {CLIENT.to_header()}' "
        f"{c.client_url}/r1/{PROVIDER.to_header()}/listMethods",
        f"  curl -H 'Accept: application/json' {c.client_url}/listClients",
        f"  curl -H 'Authorization: X-Road-ApiKey token={p.api_key}' {p.admin_url}/clients",
    ]
    return lines
