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

This module owns the instance and its registration at the central server; each security
server's steps are in :mod:`crossroad.demo.servers`, the exchanges and what the user is told
in :mod:`crossroad.demo.exchanges`.  ``STATE/instance/instance.json`` says where everything is.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import shutil
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.demo.servers import (
    Api,
    Node,
    ServerSpec,
    add_clients,
    encoded,
    init_server,
    make_keys,
    run_server,
    stop_server,
    until,
    wait_ready,
)
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
NOT_BUILT = (
    "registered through the central server's management API: the management requests "
    "authCertReg and clientReg are not built yet"
)
Say = Callable[[str], None]


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
    #: The ``x-road-id`` of the REST exchange (its evidence is downloaded by that id).
    rest_query_id: str | None = None


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


@contextlib.asynccontextmanager
async def start_instance(
    directory: Path,
    *,
    say: Say = print,
    address_base: str | None = "127.0.0.2",
    workers: int = 2,
    message_log: str | None = None,
) -> AsyncIterator[Instance]:
    """Bring the whole instance up under ``directory/instance`` (wiped first); stop it on exit.
    ``message_log``: a ``message-log.toml`` for every security server (default: defaults)."""
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
            assert inst.anchor is not None
            anchor = inst.anchor.read_bytes()
            await asyncio.gather(*(init_server(n, anchor) for n in nodes.values()))
            if message_log is not None:
                for node in nodes.values():
                    (node.state / "message-log.toml").write_text(message_log, encoding="utf-8")
            await asyncio.gather(
                *(run_server(n, root / "logs" / f"{k}.log") for k, n in nodes.items())
            )
            say(
                "security servers running: "
                + ", ".join(f"{n.spec.server_id} on {n.spec.address}" for n in nodes.values())
            )
            await asyncio.gather(*(make_keys(n, session, trust.ca_url) for n in nodes.values()))
            await _register_servers(inst, session, say)
            await _configure_servers(inst, session, say)
            await _publish(inst, say)
            await asyncio.gather(
                *(wait_ready(n, Api(session, n.admin_url, n.api_key)) for n in nodes.values())
            )
            _write_info(inst)
            yield inst
        finally:
            await asyncio.gather(*(stop_server(n) for n in nodes.values()))
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


# -- registration --------------------------------------------------------------------------


async def _register_servers(inst: Instance, session: aiohttp.ClientSession, say: Say) -> None:
    api = _central_api(inst, session)
    for node in inst.nodes.values():
        sid = node.spec.server_id
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
            f"/security-servers/{encoded(sid)}/authentication-certificates",
            {"certificate": node.auth_pem},
        )
        for client in node.spec.clients:
            await api(
                "POST",
                f"/security-servers/{encoded(sid)}/clients",
                {"client_id": encoded(client)},
            )
    say(f"security servers, authentication certificates and clients {NOT_BUILT}")


async def _configure_servers(inst: Instance, session: aiohttp.ClientSession, say: Say) -> None:
    """Clients, descriptions and access rights through each server's management API."""
    for node in inst.nodes.values():
        await add_clients(node, Api(session, node.admin_url, node.api_key))
    node = inst.nodes["provider"]
    provider, p = Api(session, node.admin_url, node.api_key), encoded(PROVIDER)
    for body in (
        {"url": inst.providers.wsdl_url, "type": "WSDL"},
        {"url": inst.providers.openapi_url, "type": "OPENAPI3", "rest_service_code": REST_CODE},
    ):
        added = await provider("POST", f"/clients/{p}/service-descriptions", body)
        await provider("PUT", f"/service-descriptions/{added['id']}/enable")
    grant = {"items": [{"id": encoded(CLIENT), "service_client_type": "SUBSYSTEM"}]}
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
        node.hangup()  # download the new global configuration now
    say("central server: global configuration generated; security servers asked to download it")


def _write_info(inst: Instance) -> None:
    """``instance.json``: where everything is, for tools (bench/exchange.py) and people."""
    info = {
        "central_api": inst.central_api + "api/v1",
        "central_distribution": inst.central_distribution,
        "rest_base": inst.providers.rest_base,
        "soap_url": inst.providers.soap_url,
        "servers": {
            name: {
                "server_id": str(node.spec.server_id),
                "address": node.spec.address,
                "client_url": node.client_url,
                "admin_url": node.admin_url,
                "state": str(node.state),
                "pid": node.proc.pid if node.proc is not None else None,
            }
            for name, node in inst.nodes.items()
        },
    }
    (inst.directory / "instance.json").write_text(json.dumps(info, indent=2) + "\n")
