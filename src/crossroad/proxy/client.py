"""The client proxy (8080 HTTP, 8443 HTTPS): what a consumer security server does for its
information systems (protocols.md §2, §3, §4.1, §4.9, §7.1, §10.6, §12.3–12.4).

Owns the handler of the IS-facing listeners, which routes ``GET /listClients`` to the
metaservice, ``GET /asic`` and ``GET /verificationconf`` to the signed-document download of the
message log (``ProxyContext.signed_documents``, §9.4), ``/rN/...`` to the REST pipeline
(:mod:`.client_rest`) and everything else to the SOAP pipeline (:mod:`.client_soap`), and the
steps both pipelines share:

* :func:`check_client` — the client is a registered client of this server (``unknown_member``)
  and connected as its IS connection type demands (NOSSL / SSLNOAUTH / SSLAUTH with its
  registered IS certificates; ``ssl_authentication_failed``);
* :func:`provider_addresses` — where the service provider is served (global configuration,
  targeting by ``securityServer`` / ``X-Road-Security-Server``, maintenance mode):
  ``unknown_member``, ``invalid_security_server``, ``maintenance_mode``;
* :func:`exchange` — the transport message to a provider server over mutual TLS, the
  provider server's authentication certificate checked (``service_failed.ssl_authentication_
  failed``), its response decoded and spooled (``service_failed.*``);
* :func:`verify_response` — the provider member's signature (``signature_verification.*``).

Nothing reaches the information system before the whole response has been verified.  Faults
carry ``client.`` when the information system sent something wrong, ``server.clientproxy.``
otherwise; faults of the provider side pass through with their own codes.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from cryptography import x509

from crossroad.crypto.certs import cert_der
from crossroad.crypto.xades import SignatureInfo
from crossroad.errors import PREFIX_CLIENT_PROXY, Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.metaservices import list_clients
from crossroad.proxy import tls
from crossroad.proxy.context import ProxyContext, Snapshot
from crossroad.proxy.server import service_failed, to_fault, verify_signature
from crossroad.proxy.upstream import Spool, network_failure
from crossroad.serverconf.model import ConnectionType
from crossroad.wire.swa import AttachmentData, AttachmentEnd, AttachmentStart
from crossroad.wire.transport import (
    RestBodyData,
    RestBodyEnd,
    RestBodyStart,
    TransportDecoder,
    TransportMessage,
)
from crossroad.wire.transport_encoder import HEADER_HASH_ALGORITHM, HEADER_ORIGINAL_CONTENT_TYPE

log = logging.getLogger(__name__)

_REST_PATH = re.compile(r"^/r[^/]*/")
LIST_CLIENTS_PATH = "/listClients"
#: The message log's signed-document download (UG-SIGDOC), when the message log is on.
SIGNED_DOCUMENT_PATHS = ("/asic", "/verificationconf")


# --------------------------------------------------------------------------- the client


def is_peer_chain(request: web.Request) -> tuple[x509.Certificate, ...]:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return tls.peer_chain(ssl_object) if ssl_object is not None else ()


def is_secure(request: web.Request) -> bool:
    transport = request.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


def check_client(ctx: ProxyContext, snap: Snapshot, client: ClientId, request: web.Request) -> None:
    """NIIS ``verifyClientStatus`` then ``verifyClientAuthentication``."""
    registered = snap.serverconf.client(client)
    if registered is None or not registered.is_registered:
        raise XRoadError(Code.UNKNOWN_MEMBER, f"Client '{client}' not found")
    kind = registered.connection_type
    if kind is ConnectionType.NOSSL:
        return
    if not is_secure(request):
        raise XRoadError(
            Code.SSL_AUTHENTICATION_FAILED,
            f"Client ({client}) specifies HTTPS but did not supply TLS certificate",
        )
    if kind is ConnectionType.SSLNOAUTH:
        return
    chain = is_peer_chain(request)
    if not chain:
        raise XRoadError(
            Code.SSL_AUTHENTICATION_FAILED,
            f"Client ({client}) specifies HTTPS but did not supply TLS certificate",
        )
    der = cert_der(chain[0])
    if der in ctx.internal_certs():
        return  # the security server's own internal certificate is always accepted
    if der not in snap.serverconf.is_certs(client):
        raise XRoadError(
            Code.SSL_AUTHENTICATION_FAILED,
            f"Client ({client}) TLS certificate does not match any IS certificates",
        )


# --------------------------------------------------------------------------- the provider


def provider_addresses(
    snap: Snapshot, provider: ClientId, target: SecurityServerId | None
) -> tuple[str, ...]:
    """The provider servers' addresses to try (§4.1, §12.3–12.4)."""
    gc = snap.globalconf
    if target is not None:
        address = gc.security_server_address(target)
        if address is None or target not in gc.servers_of(provider):
            raise XRoadError(
                Code.INVALID_SECURITY_SERVER,
                f"Invalid security server identifier '{target}': it does not serve {provider}",
            )
        maintenance = gc.maintenance(target)
        if maintenance is not None:
            raise XRoadError(
                Code.MAINTENANCE_MODE,
                f"Security server {target} is in maintenance mode: {maintenance.message or ''}",
            )
        return (address,)
    found = gc.provider_addresses(provider)
    if found:
        return found
    everywhere = gc.provider_addresses(provider, include_maintenance=True)
    if everywhere:
        notes = [
            m.message or ""
            for a in everywhere
            if (m := gc.maintenance_at_address(provider.instance, a)) is not None
        ]
        raise XRoadError(
            Code.MAINTENANCE_MODE,
            f"All security servers of {provider} are in maintenance mode: {'; '.join(notes)}",
        )
    raise XRoadError(
        Code.UNKNOWN_MEMBER, f'Could not find addresses for service provider "{provider}"'
    )


# --------------------------------------------------------------------------- the exchange


@dataclass
class Received:
    """A provider server's response, decoded; bodies spooled."""

    message: TransportMessage
    spool: Spool
    attachments: list[AttachmentStart] = field(default_factory=list)
    original_content_type: str | None = None


async def exchange(
    ctx: ProxyContext,
    snap: Snapshot,
    provider: ClientId,
    addresses: Sequence[str],
    headers: Sequence[tuple[str, str]],
    body: Callable[[], AsyncIterable[bytes]],
) -> Received:
    """Send the transport message, check who answered, decode the answer."""
    ssl_ctx = None
    if ctx.settings.ssl_enabled:
        await ctx.auth_material()
        ssl_ctx = ctx.client_ssl

    async def check(chain: tuple[x509.Certificate, ...], address: str) -> None:
        try:
            await ctx.verify_provider(snap, chain, provider, address)
        except XRoadError as err:
            if ssl_ctx is not None:
                tls.forget_session(ssl_ctx, address)
            raise service_failed(err) from err

    peer = await ctx.upstream.post_to_peer(
        addresses, ssl_ctx=ssl_ctx, headers=headers, body=body, check=check
    )
    try:
        response = peer.response
        try:
            decoder = TransportDecoder(
                response.headers.get("Content-Type"),
                hash_algorithm=response.headers.get(HEADER_HASH_ALGORITHM)
                or ctx.settings.hash_algorithm,
                fault_allowed=True,
            )
        except XRoadError as err:
            raise service_failed(err) from err
        received = Received(
            decoder.message,
            Spool(ctx.settings.spool_memory, ctx.settings.temp_dir),
            original_content_type=response.headers.get(HEADER_ORIGINAL_CONTENT_TYPE),
        )
        try:
            try:
                async for chunk in response.content.iter_chunked(ctx.settings.chunk_size):
                    _spool(decoder.feed(chunk), received)
                _spool(decoder.close(), received)
            except XRoadError as err:
                raise service_failed(err) from err
            except Exception as exc:
                raise service_failed(network_failure(exc, peer.address)) from exc
        except BaseException:
            received.spool.close()
            raise
        received.message = decoder.message
        return received
    finally:
        peer.release()


def _spool(events: Sequence[object], received: Received) -> None:
    spool = received.spool
    for event in events:
        if isinstance(event, AttachmentData | RestBodyData):
            spool.write(event.data)
        elif isinstance(event, AttachmentStart):
            spool.begin()
            received.attachments.append(event)
        elif isinstance(event, RestBodyStart):
            spool.begin()
        elif isinstance(event, AttachmentEnd | RestBodyEnd):
            spool.end()


async def verify_response(
    ctx: ProxyContext, snap: Snapshot, message: TransportMessage, provider: ClientId
) -> SignatureInfo:
    """The response must be signed by the service provider's member."""
    return await verify_signature(ctx, snap, message, provider)


# --------------------------------------------------------------------------- the handler


def new_request_id() -> str:
    return str(uuid.uuid4())


async def list_clients_response(request: web.Request, snap: Snapshot) -> web.Response:
    answer = list_clients(
        snap.globalconf,
        query=request.query_string or None,
        accept=request.headers.getall("Accept", []),
        at=snap.at,
    )
    return web.Response(status=200, body=answer.body, headers={"Content-Type": answer.content_type})


async def handle(request: web.Request, ctx: ProxyContext) -> web.StreamResponse:
    """The client proxy's one handler."""
    from crossroad.proxy import client_rest, client_soap

    snap = ctx.snapshot()
    path = request.raw_path.partition("?")[0]
    if _REST_PATH.match(path):
        return await client_rest.handle(request, ctx, snap)
    if path in SIGNED_DOCUMENT_PATHS and request.method == "GET":
        documents = getattr(ctx, "signed_documents", None)
        if documents is not None:
            return await documents(request)  # type: ignore[no-any-return]
    if path == LIST_CLIENTS_PATH and request.method == "GET":
        try:
            return await list_clients_response(request, snap)
        except Exception as exc:
            return client_soap.fault_response(to_fault(exc, PREFIX_CLIENT_PROXY))
    return await client_soap.handle(request, ctx, snap)
