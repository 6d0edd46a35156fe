"""A complete two-server X-Road world on 127.0.0.1, in one background event loop.

* the real trust services (CA, OCSP responder, TSA) for instance ``EE``;
* per security server a real signer (keys made and certified through the CA over HTTP, OCSP
  fetched by the signer) served on a unix socket and reached with
  :class:`~crossroad.signer.client.SignerClient`, a server configuration, an internal TLS
  certificate, a :class:`~crossroad.proxy.context.ProxyContext` and the listeners of
  :func:`~crossroad.proxy.app.start_proxies`.  Keys are on the software token, or on PKCS#11
  tokens (SoftHSM2: :class:`Pkcs11Tokens`); the server configurations are in SQLite files, or
  in the databases a ``database_url`` function names (PostgreSQL);
* one global configuration registering both servers (the consumer ``ss1`` on 127.0.0.1 and
  the provider ``ss2`` on 127.0.0.2: the same SS-facing port on two loopback addresses, as
  peers dial ``https://<address>:5500``);
* the sample REST and SOAP providers of :mod:`tests.proxy.providers`.

Tests reach in with :meth:`World.run` (a coroutine in the world's loop), swap snapshots of a
node's context to stage a scenario, and always put them back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from crossroad.crypto.algorithms import SHA256
from crossroad.crypto.certs import cert_der
from crossroad.crypto.profiles import KNOWN_PROFILES
from crossroad.crypto.trust import ApprovedCA, OcspResponder, TrustPolicy
from crossroad.globalconf.model import (
    ApprovedCAInfo,
    CaInfo,
    GlobalGroup,
    GlobalSettings,
    ManagementService,
    Member,
    MemberClass,
    OcspInfo,
    PrivateParameters,
    SecurityServer,
    SharedParameters,
    Subsystem,
)
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId, GlobalGroupId, LocalGroupId, SecurityServerId
from crossroad.proxy.app import start_proxies
from crossroad.proxy.context import ProxyContext, ProxySettings
from crossroad.serverconf.model import ClientStatus, ConnectionType
from crossroad.serverconf.store import ServerConfStore
from crossroad.signer.client import SignerClient
from crossroad.signer.csr import csr_pem
from crossroad.signer.manager import Signer, SignerSettings, init_state
from crossroad.signer.service import serve
from crossroad.storage.engine import create_engine
from crossroad.trust.client import request_certificate
from crossroad.trust.service import TrustServices, start_trust_services

from . import providers

T = TypeVar("T")

EE = "EE"
PIN = "1234-secret"
FIVRK = next(p for p in KNOWN_PROFILES if "FiVRK" in p)

CONSUMER = ClientId(EE, "BUSINESS", "consumer")
OTHER = ClientId(EE, "BUSINESS", "other")  # a second member on the consumer's server
PRODUCER = ClientId(EE, "BUSINESS", "producer")
STRANGER = ClientId(EE, "GOV", "stranger")  # a member on no server
CLIENT = CONSUMER.subsystem("client")  # the usual caller: has every right
PLAIN = CONSUMER.subsystem("plain")  # no rights at all
LOCAL = CONSUMER.subsystem("local")  # in the provider's local group
GLOBAL = CONSUMER.subsystem("global")  # in the global group
SSLAUTH = CONSUMER.subsystem("sslauth")
SSLNOAUTH = CONSUMER.subsystem("sslnoauth")
UNREGISTERED = CONSUMER.subsystem("saved")  # on the consumer's server, not registered
REST_PROVIDER = PRODUCER.subsystem("rest")
GROUP = GlobalGroupId(EE, "partners")
SS1 = SecurityServerId(CONSUMER, "ss1")
SS2 = SecurityServerId(PRODUCER, "ss2")
ADDRESS1, ADDRESS2 = "127.0.0.1", "127.0.0.2"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def self_signed(cn: str) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Pkcs11Tokens:
    """Where the two signers keep their keys instead of the software token: a PKCS#11 module
    and the labels of two initialized tokens (user PIN :data:`PIN`), ss1's then ss2's."""

    module: str
    labels: tuple[str, str]


@dataclass
class Node:
    """One security server of the world."""

    server: SecurityServerId
    address: str
    signer: Signer
    signer_client: SignerClient
    store: ServerConfStore
    ctx: ProxyContext
    auth_cert: x509.Certificate
    sign_certs: dict[ClientId, x509.Certificate] = field(default_factory=dict)
    client_port: int = 0
    client_tls_port: int = 0
    token_id: str = "0"  # the signer token holding its signing keys

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def tls_url(self) -> str:
        return f"https://127.0.0.1:{self.client_tls_port}"


@dataclass
class World:
    loop: asyncio.AbstractEventLoop
    root: Path
    services: TrustServices
    globalconf: GlobalConfSnapshot
    consumer: Node
    provider: Node
    server_port: int
    ocsp_port: int
    rest_base: str
    soap_url: str
    wsdl: bytes
    internal_cert: x509.Certificate
    is_cert: x509.Certificate
    is_key: rsa.RSAPrivateKey
    soap_calls: list[bytes] = field(default_factory=list)
    soap_canned: list[tuple[str, bytes]] = field(default_factory=list)
    provider_internal_cert: x509.Certificate | None = None  # ss2's internal TLS certificate
    token: str = "software"  # or "pkcs11"
    database: str = "sqlite"  # or "postgresql"

    def run(self, coro: Coroutine[Any, Any, T] | Awaitable[T], timeout: float = 120) -> T:
        future = asyncio.run_coroutine_threadsafe(_wrap(coro), self.loop)
        return future.result(timeout)

    @contextlib.contextmanager
    def swapped(
        self,
        node: Node,
        *,
        globalconf: GlobalConfSnapshot | None = None,
        serverconf: Any = None,
    ) -> Iterator[None]:
        """Stage a scenario: ``node`` works on other snapshots inside the block."""
        ctx = node.ctx
        old_g, old_s = ctx.globalconf, ctx.serverconf

        async def apply(g: GlobalConfSnapshot, s: Any) -> None:
            ctx.update_globalconf(g)
            ctx.update_serverconf(s)

        self.run(apply(globalconf or old_g, serverconf or old_s))
        try:
            yield
        finally:
            self.run(apply(old_g, old_s))


async def _wrap(coro: Awaitable[T]) -> T:
    return await coro


# --------------------------------------------------------------------------- building


def trust_policy(services: TrustServices) -> TrustPolicy:
    ca = ApprovedCA(
        name="Test CA",
        top_ca=services.ca_cert,
        certificate_profile=FIVRK,
        ocsp=(OcspResponder(services.ocsp_url, services.ocsp_cert),),
    )
    return TrustPolicy(instance=EE, cas=(ca,), ocsp_freshness_seconds=3600)


async def certify(
    signer: Signer,
    services: TrustServices,
    session: aiohttp.ClientSession,
    key_id: str,
    usage: str,
    server: SecurityServerId,
    member: ClientId | None = None,
) -> x509.Certificate:
    record = await signer.generate_csr(
        key_id,
        usage,  # type: ignore[arg-type]
        member=member,
        server=server,
        profile="fivrk",
    )
    cert = await request_certificate(session, services.ca_url, csr_pem(record.der), usage)
    await signer.import_cert(cert.public_bytes(Encoding.PEM))
    return cert


async def make_signer(
    root: Path,
    services: TrustServices,
    server: SecurityServerId,
    members: tuple[ClientId, ...],
    hsm: tuple[str, str] | None = None,
) -> tuple[Signer, x509.Certificate, dict[ClientId, x509.Certificate]]:
    """A started signer with an authentication key and a signing key per member, certified.
    The signing keys are on the software token, or on the PKCS#11 token ``hsm`` = (module
    path, token label); the authentication key is always on the software token (as in NIIS:
    the proxies' TLS needs it, see docs/decisions/0002-tls-keys.md)."""
    state = root / f"signer-{server.server_code}"
    init_state(state, PIN, pkcs11_modules=[("hsm", hsm[0])] if hsm else ())
    policy = trust_policy(services)
    signer = Signer(
        state, trust=lambda: policy, settings=SignerSettings(ocsp_interval=3600, ocsp_retry=0.05)
    )
    await signer.start()
    await signer.login("0", PIN)
    token = signer.token(hsm[1] if hsm else "0").id
    if hsm:
        await signer.login(token, PIN)
    async with aiohttp.ClientSession() as session:
        auth_key = await signer.generate_key("0", "rsa2048", usage="auth")
        auth = await certify(signer, services, session, auth_key.id, "auth", server)
        signs = {}
        for member in members:
            key = await signer.generate_key(token, "rsa2048", member=member)
            signs[member] = await certify(
                signer, services, session, key.id, "sign", SecurityServerId(member, "ss"), member
            )
    deadline = asyncio.get_running_loop().time() + 30
    for cert in (auth, *signs.values()):
        while signer.ocsp.cached(cert) is None:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError("the signer did not fetch OCSP responses in time")
            await asyncio.sleep(0.02)
    return signer, auth, signs


def shared_parameters(
    services: TrustServices, auth1: x509.Certificate, auth2: x509.Certificate
) -> SharedParameters:
    business, gov = MemberClass("BUSINESS", "Businesses"), MemberClass("GOV", "Government")
    ca = ApprovedCAInfo(
        name="Test CA",
        top_ca=CaInfo(
            cert_der(services.ca_cert),
            (OcspInfo(services.ocsp_url, cert_der(services.ocsp_cert)),),
        ),
        certificate_profile_info=FIVRK,
    )
    consumer_subs = ("client", "plain", "local", "global", "sslauth", "sslnoauth", "saved")
    members = (
        Member(business, "consumer", "Consumer Ltd", tuple(Subsystem(s) for s in consumer_subs)),
        Member(business, "producer", "Producer Ltd", (Subsystem("rest", "REST provider"),)),
        Member(business, "other", "Other Ltd"),
        Member(gov, "stranger", "Stranger Agency"),
    )
    servers = (
        SecurityServer(
            CONSUMER,
            "ss1",
            ADDRESS1,
            (SHA256.digest(cert_der(auth1)),),
            (OTHER, *(CONSUMER.subsystem(s) for s in consumer_subs if s != "saved")),
        ),
        SecurityServer(
            PRODUCER, "ss2", ADDRESS2, (SHA256.digest(cert_der(auth2)),), (REST_PROVIDER,)
        ),
    )
    return SharedParameters(
        instance_identifier=EE,
        global_settings=GlobalSettings(3600, (business, gov)),
        approved_cas=(ca,),
        members=members,
        security_servers=servers,
        global_groups=(GlobalGroup("partners", "Partners", (GLOBAL,)),),
    )


def globalconf_of(
    shared: SharedParameters, *, expires: dt.datetime | None = None
) -> GlobalConfSnapshot:
    private = PrivateParameters(EE, ManagementService("http://127.0.0.1:1/", STRANGER), 60)
    when = expires or dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    return GlobalConfSnapshot.build(
        shared, private, shared_expires=when, private_expires=when, version=5
    )


def consumer_conf(root: Path, is_cert: x509.Certificate, url: str | None = None) -> ServerConfStore:
    store = ServerConfStore(create_engine(url or f"sqlite:///{root / 'ss1.db'}"))
    store.initialize(CONSUMER, "ss1")
    store.set_client_status(CONSUMER, ClientStatus.REGISTERED)
    store.set_connection_type(CONSUMER, ConnectionType.NOSSL)
    for sub in (CLIENT, PLAIN, LOCAL, GLOBAL):
        store.add_client(sub, status=ClientStatus.REGISTERED, connection_type=ConnectionType.NOSSL)
    store.add_client(OTHER, status=ClientStatus.REGISTERED, connection_type=ConnectionType.NOSSL)
    store.add_client(
        SSLAUTH, status=ClientStatus.REGISTERED, connection_type=ConnectionType.SSLAUTH
    )
    store.add_is_cert(SSLAUTH, cert_der(is_cert))
    store.add_client(
        SSLNOAUTH, status=ClientStatus.REGISTERED, connection_type=ConnectionType.SSLNOAUTH
    )
    store.add_client(UNREGISTERED, status=ClientStatus.SAVED, connection_type=ConnectionType.NOSSL)
    return store


def provider_conf(
    root: Path, soap_url: str, wsdl: bytes, rest_base: str, url: str | None = None
) -> ServerConfStore:
    store = ServerConfStore(create_engine(url or f"sqlite:///{root / 'ss2.db'}"))
    store.initialize(PRODUCER, "ss2")
    store.set_client_status(PRODUCER, ClientStatus.REGISTERED)
    store.add_client(
        REST_PROVIDER, status=ClientStatus.REGISTERED, connection_type=ConnectionType.NOSSL
    )
    store.add_wsdl(PRODUCER, soap_url.replace("/soap", "/wsdl"), wsdl, enabled=True)
    for code in providers.OPERATIONS:
        store.add_access_rights(PRODUCER, code, [CLIENT, CONSUMER, SSLAUTH, SSLNOAUTH, OTHER])
    group = store.add_local_group(PRODUCER, "friends", "Friends")
    store.add_local_group_members(group, [LOCAL])
    store.add_access_rights(PRODUCER, "getState", [GLOBAL, LocalGroupId("friends")])
    store.add_openapi(
        REST_PROVIDER,
        f"{rest_base}/openapi.json",
        providers.openapi(rest_base),
        "petstore",
        enabled=True,
    )
    store.add_access_rights(REST_PROVIDER, "petstore", [CLIENT, SSLAUTH])
    # Endpoint-level rights: GLOBAL may only GET /pets/*, LOCAL (a local group) GET /pets.
    endpoints = {
        (e.method, e.path): e.id for e in store.snapshot().endpoints(REST_PROVIDER, "petstore")
    }
    rgroup = store.add_local_group(REST_PROVIDER, "readers", "Readers")
    store.add_local_group_members(rgroup, [LOCAL])
    store.add_access_rights(
        REST_PROVIDER, None, [GLOBAL], endpoint_id=endpoints[("GET", "/pets/*")]
    )
    store.add_access_rights(
        REST_PROVIDER, None, [LocalGroupId("readers")], endpoint_id=endpoints[("GET", "/pets")]
    )
    return store


async def _serve(app: web.Application, host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    server = getattr(site, "_server", None)
    port = int(server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    return runner, port


async def build(
    root: Path,
    stack: contextlib.AsyncExitStack,
    getstate: bytes | None,
    hsm: Pkcs11Tokens | None = None,
    database_url: Callable[[str], str] | None = None,
) -> World:
    loop = asyncio.get_running_loop()
    services = await stack.enter_async_context(start_trust_services(root / "trust", instance=EE))
    hsm1, hsm2 = ((hsm.module, label) for label in hsm.labels) if hsm else (None, None)
    signer1, auth1, signs1 = await make_signer(root, services, SS1, (CONSUMER, OTHER), hsm1)
    signer2, auth2, signs2 = await make_signer(root, services, SS2, (PRODUCER,), hsm2)
    for signer in (signer1, signer2):
        stack.push_async_callback(signer.close)

    wsdl_box = [b""]
    calls: list[bytes] = []
    canned: list[tuple[str, bytes]] = []
    soap = providers.soap_app(getstate, wsdl_box, calls, canned)
    rest_runner, rest_port = await _serve(providers.rest_app())
    soap_runner, soap_port = await _serve(soap)
    stack.push_async_callback(rest_runner.cleanup)
    stack.push_async_callback(soap_runner.cleanup)
    rest_base = f"http://127.0.0.1:{rest_port}/v1"
    soap_url = f"http://127.0.0.1:{soap_port}/soap"
    wsdl = providers.wsdl(soap_url)
    wsdl_box[0] = wsdl

    internal_cert, internal_key = self_signed("ss1-internal")
    internal2_cert, internal2_key = self_signed("ss2-internal")
    is_cert, is_key = self_signed("information-system")
    url1, url2 = (database_url(n) if database_url else None for n in ("ss1", "ss2"))
    store1 = consumer_conf(root, is_cert, url1)
    store2 = provider_conf(root, soap_url, wsdl, rest_base, url2)
    for store in (store1, store2):
        stack.callback(store.engine.dispose)
    globalconf = globalconf_of(shared_parameters(services, auth1, auth2))

    server_port, ocsp_port = free_port(), free_port()
    settings = ProxySettings(server_port=server_port, ocsp_port=ocsp_port, spool_memory=64 * 1024)
    nodes = []
    internal1 = ((internal_cert,), key_pem(internal_key))
    internal2 = ((internal2_cert,), key_pem(internal2_key))
    for server, address, signer, auth, signs, store, internal in (
        (SS1, ADDRESS1, signer1, auth1, signs1, store1, internal1),
        (SS2, ADDRESS2, signer2, auth2, signs2, store2, internal2),
    ):
        socket_path = root / f"{server.server_code}.sock"
        await stack.enter_async_context(serve(signer, socket_path))
        client = SignerClient(socket_path)
        stack.push_async_callback(client.close)
        ctx = ProxyContext(
            globalconf=globalconf,
            serverconf=store.snapshot(),
            signer=client,
            settings=settings,
            internal_tls=internal,
        )
        stack.push_async_callback(ctx.close)
        running = await stack.enter_async_context(
            start_proxies(
                ctx,
                client_host="127.0.0.1",
                client_port=0,
                client_tls_port=0 if server == SS1 else None,  # the consumer's IS-facing HTTPS
                server_host=address,
                server_port=server_port,
                ocsp_port=ocsp_port,
            )
        )
        node = Node(server, address, signer, client, store, ctx, auth, signs)
        node.client_port = running.client_port or 0
        node.client_tls_port = running.client_tls_port or 0
        node.token_id = next(k.token_id for k in signer.conf.keys if k.usage == "sign")
        nodes.append(node)
    return World(
        loop,
        root,
        services,
        globalconf,
        nodes[0],
        nodes[1],
        server_port,
        ocsp_port,
        rest_base,
        soap_url,
        wsdl,
        internal_cert,
        is_cert,
        is_key,
        calls,
        canned,
        internal2_cert,
        "pkcs11" if hsm else "software",
        "postgresql" if url1 and url1.startswith("postgresql") else "sqlite",
    )


@contextlib.contextmanager
def running_world(
    root: Path,
    getstate: bytes | None = None,
    *,
    hsm: Pkcs11Tokens | None = None,
    database_url: Callable[[str], str] | None = None,
) -> Iterator[World]:
    """Build the world in a thread of its own; tear it down at the end.

    ``hsm``: both signers keep their keys on these PKCS#11 tokens (the module must see them
    when first loaded in this process); ``database_url``: the URL of the server configuration
    database of ``"ss1"`` and ``"ss2"`` (default: SQLite files under ``root``)."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = stop
        try:
            async with contextlib.AsyncExitStack() as stack:
                box["world"] = await build(root, stack, getstate, hsm, database_url)
                ready.set()
                await stop.wait()
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(120):
        raise RuntimeError("the world did not start in time")
    if "error" in box:
        raise box["error"]
    try:
        yield box["world"]
    finally:
        loop.call_soon_threadsafe(box["stop"].set)
        thread.join(30)
        loop.close()


# --------------------------------------------------------------------------- messages


def _ident(tag: str, object_type: str, parts: list[tuple[str, str | None]]) -> str:
    inner = "".join(f"<id:{n}>{v}</id:{n}>" for n, v in parts if v is not None)
    return f'<xrd:{tag} id:objectType="{object_type}">{inner}</xrd:{tag}>'


def soap_request(
    client: ClientId = CLIENT,
    service_code: str = "echo",
    *,
    provider: ClientId = PRODUCER,
    body: str | None = None,
    query_id: str = "q-1",
    extra_headers: str = "",
    protocol_version: str = "4.0",
) -> bytes:
    """A SOAP 4.0 request of ``client`` for ``provider``'s ``service_code``."""
    c, p = client, provider
    client_xml = _ident(
        "client",
        "SUBSYSTEM" if c.subsystem_code else "MEMBER",
        [
            ("xRoadInstance", c.instance),
            ("memberClass", c.member_class),
            ("memberCode", c.member_code),
            ("subsystemCode", c.subsystem_code),
        ],
    )
    service_xml = _ident(
        "service",
        "SERVICE",
        [
            ("xRoadInstance", p.instance),
            ("memberClass", p.member_class),
            ("memberCode", p.member_code),
            ("subsystemCode", p.subsystem_code),
            ("serviceCode", service_code),
        ],
    )
    if body is None:
        body = f'<tns:{service_code} xmlns:tns="{providers.TNS}"><tns:text>hello</tns:text>' + (
            f"</tns:{service_code}>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers">'
        f"\n<SOAP-ENV:Header>\n{client_xml}\n{service_xml}\n<xrd:id>{query_id}</xrd:id>\n"
        f"<xrd:userId>EE12345678901</xrd:userId>\n"
        f"<xrd:protocolVersion>{protocol_version}</xrd:protocolVersion>{extra_headers}\n"
        f"</SOAP-ENV:Header>\n<SOAP-ENV:Body>{body}</SOAP-ENV:Body>\n</SOAP-ENV:Envelope>\n"
    ).encode()


def rest_path(
    service: str = "petstore", path: str = "/pets", provider: ClientId = REST_PROVIDER
) -> str:
    return "/r1/" + "/".join(provider.parts()) + f"/{service}{path}"


def rest_client(client: ClientId) -> str:
    return "/".join(client.parts())
