"""The server proxy (5500): what a provider security server does with a peer's request (§4.10).

Owns the handler of the SS-facing listener and the steps the SOAP (:mod:`.server_soap`) and
REST (:mod:`.server_rest`) pipelines share, in the normative order of protocols.md §4.10 (NIIS
``ServerProxyHandler`` / ``Server*MessageProcessor``), which decides the fault a peer sees:

1. :func:`check_prelude` — POST only (``invalid_http_method``), our own global configuration
   valid (``global_conf_outdated``), ``x-proxy-version`` at least the configured minimum
   (``client_proxy_version_not_supported``);
2. :func:`receive` — the transport message is decoded while it streams in (attachments and
   REST bodies hashed on the way and spooled), and as soon as its message part is read:
   :func:`check_target` (the ``securityServer`` header names us: ``invalid_security_server``;
   the provider is a registered client here: ``unknown_member``) and :func:`check_peer` (the
   client's TLS certificate with the request's OCSP parts: ``ssl_authentication_failed``);
   decoding failures are ``service_failed.*``; then the missing parts (``missing_soap``,
   ``missing_rest``, ``missing_signature``);
3. the pipeline's access checks (metaservices skip them), then :func:`verify_request` — the
   signature of the client's member over the whole message, on the event loop when the
   message is small, else in the verification pool (``signature_verification.*``);
4. the call to the provider information system, ``requestHash``, signing, the response.

Every fault leaves with the ``server.serverproxy.`` prefix (added once, in :func:`handle`);
a fault before the response started is a plain ``text/xml`` SOAP fault, one after it started
is the last part of the transport message.  Faults of the provider information system travel
back as they are.
"""

from __future__ import annotations

import logging
import re
import secrets
import string
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from aiohttp import web
from cryptography import x509

from crossroad.crypto import xades
from crossroad.crypto.xades import SignatureInfo
from crossroad.errors import PREFIX_SERVER_PROXY, Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.proxy import authtrust, tls
from crossroad.proxy.context import ProxyContext, Snapshot
from crossroad.proxy.upstream import Spool
from crossroad.serverconf.access import check_provider
from crossroad.wire.faults import SOAP_FAULT_CONTENT_TYPE, soap_fault
from crossroad.wire.swa import AttachmentData, AttachmentEnd, AttachmentStart, SoapPart
from crossroad.wire.transport import (
    OcspPart,
    RestBodyData,
    RestBodyEnd,
    RestBodyStart,
    RestPart,
    TransportDecoder,
    TransportMessage,
)
from crossroad.wire.transport_encoder import (
    HEADER_HASH_ALGORITHM,
    HEADER_MESSAGE_TYPE,
    HEADER_ORIGINAL_CONTENT_TYPE,
    HEADER_ORIGINAL_SOAP_ACTION,
    HEADER_PROXY_VERSION,
    HEADER_REQUEST_ID,
    MESSAGE_TYPE_REST,
)

log = logging.getLogger(__name__)

SERVICE_FAILED = Code.SERVICE_FAILED


def service_failed(err: XRoadError) -> XRoadError:
    return err.with_prefix(SERVICE_FAILED)


# --------------------------------------------------------------------------- step 1


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def check_prelude(request: web.Request, ctx: ProxyContext, snap: Snapshot) -> None:
    if request.method != "POST":
        raise XRoadError(Code.INVALID_HTTP_METHOD, "Must use POST request method instead of GET")
    snap.globalconf.check_valid(snap.at)
    minimum = ctx.settings.min_client_version
    if minimum:
        version = request.headers.get(HEADER_PROXY_VERSION, "")
        if not version or _version(version) < _version(minimum):
            raise XRoadError(
                Code.CLIENT_PROXY_VERSION_NOT_SUPPORTED,
                f"The version of the client's security server ({version or 'unknown'}) is not"
                f" supported; the minimum is {minimum}",
            )


# --------------------------------------------------------------------------- step 2


def check_target(snap: Snapshot, provider: ClientId, target: SecurityServerId | None) -> None:
    """NIIS ``verifySecurityServer`` then ``verifyClientStatus``."""
    own = snap.server_id
    if target is not None and target != own:
        raise XRoadError(
            Code.INVALID_SECURITY_SERVER,
            f"Invalid security server identifier '{target}' expected '{own}'",
        )
    check_provider(snap.serverconf, provider)


def check_peer(
    ctx: ProxyContext,
    snap: Snapshot,
    chain: tuple[x509.Certificate, ...],
    ocsp: tuple[bytes, ...],
    client: ClientId,
) -> None:
    """The client's TLS certificate, with the request's OCSP parts, must authenticate a
    server on which ``client`` is registered (``ssl_authentication_failed``)."""
    if not ctx.settings.ssl_enabled:
        return
    authtrust.verify_client_cert(snap.globalconf, chain, ocsp, client, snap.at)


@dataclass
class Incoming:
    """A received transport request: its summary, spooled bodies and HTTP headers."""

    message: TransportMessage
    spool: Spool
    attachments: list[AttachmentStart] = field(default_factory=list)
    request_id: str = ""
    original_content_type: str | None = None
    original_soap_action: str | None = None


OnMessage = Callable[[SoapPart | RestPart, tuple[bytes, ...]], None]


def peer_chain(request: web.Request) -> tuple[x509.Certificate, ...]:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    return tls.peer_chain(ssl_object) if ssl_object is not None else ()


async def receive(request: web.Request, ctx: ProxyContext, on_message: OnMessage) -> Incoming:
    """Decode the transport message as it streams in; ``on_message`` runs the checks of the
    message part the moment it is read (before the bodies)."""
    try:
        decoder = TransportDecoder(
            request.headers.get("Content-Type"),
            hash_algorithm=request.headers.get(HEADER_HASH_ALGORITHM),
            fault_allowed=False,
        )
    except XRoadError as err:
        raise service_failed(err) from err
    spool = Spool(ctx.settings.spool_memory, ctx.settings.temp_dir)
    incoming = Incoming(
        TransportMessage(decoder.message.digest),
        spool,
        request_id=request.headers.get(HEADER_REQUEST_ID) or str(uuid.uuid4()),
        original_content_type=request.headers.get(HEADER_ORIGINAL_CONTENT_TYPE),
        original_soap_action=request.headers.get(HEADER_ORIGINAL_SOAP_ACTION),
    )
    ocsp: list[bytes] = []
    try:
        async for chunk in request.content.iter_chunked(ctx.settings.chunk_size):
            try:
                events = decoder.feed(chunk)
            except XRoadError as err:
                raise service_failed(err) from err
            _handle(events, incoming, ocsp, on_message)
        try:
            events = decoder.close()
        except XRoadError as err:
            raise service_failed(err) from err
        _handle(events, incoming, ocsp, on_message)
    except BaseException:
        spool.close()
        raise
    incoming.message = decoder.message
    return incoming


def _handle(
    events: Sequence[object], incoming: Incoming, ocsp: list[bytes], on_message: OnMessage
) -> None:
    spool = incoming.spool
    for event in events:
        if isinstance(event, AttachmentData | RestBodyData):
            spool.write(event.data)
        elif isinstance(event, AttachmentStart):
            spool.begin()
            incoming.attachments.append(event)
        elif isinstance(event, RestBodyStart):
            spool.begin()
        elif isinstance(event, AttachmentEnd | RestBodyEnd):
            spool.end()
        elif isinstance(event, OcspPart):
            ocsp.append(event.der)
        elif isinstance(event, SoapPart | RestPart):
            on_message(event, tuple(ocsp))


# --------------------------------------------------------------------------- step 3


def _verify(snap: Snapshot, message: TransportMessage, client: ClientId) -> SignatureInfo:
    assert message.signature is not None
    return xades.verify_signature(
        message.signature,
        signer=client,
        trust=snap.globalconf.trust_policy(client.instance),
        at=snap.at,
        resolve=message.resolve,
        hash_chain=message.hash_chain,
        hash_chain_result=message.hash_chain_result,
        part_digests=message.part_digests(),
    )


#: A message whose signature, hash chain and message part together stay under this many bytes
#: is verified on the event loop: that takes a fraction of a millisecond (certificate paths and
#: OCSP responses seen before cost next to nothing), less than the two thread switches and GIL
#: hand-overs of the verification pool.  Bigger ones go to the pool, so that a large message
#: does not stall the other exchanges.
INLINE_VERIFY_BYTES = 32 * 1024


def _inline(message: TransportMessage) -> bool:
    size = sum(
        len(b or b"") for b in (message.signature, message.hash_chain, message.hash_chain_result)
    )
    return size + len(message.message_bytes or b"") <= INLINE_VERIFY_BYTES


async def verify_signature(
    ctx: ProxyContext, snap: Snapshot, message: TransportMessage, signer: ClientId
) -> SignatureInfo:
    """The message signature of ``signer``'s member (``signature_verification.*``): small
    messages on the event loop, others in the verification pool."""
    try:
        if _inline(message):
            return _verify(snap, message, signer)
        return await ctx.in_thread(_verify, snap, message, signer)
    except XRoadError as err:
        raise err.with_prefix(Code.SIGNATURE_VERIFICATION) from err


# --------------------------------------------------------------------------- faults


def to_fault(err: BaseException, prefix: str) -> XRoadError:
    """The error as it leaves a proxy: coded, with the side's prefix added once."""
    if not isinstance(err, XRoadError):
        log.exception("unexpected failure", exc_info=err)
        err = XRoadError(Code.INTERNAL_ERROR, f"{type(err).__name__}: {err}")
    if err.code.startswith(("server.", "client.")):
        return err
    return err.with_prefix(prefix)


def fault_response(err: XRoadError) -> web.Response:
    """An early fault: HTTP 200, ``text/xml`` (§2.5, §4.3)."""
    return web.Response(
        status=200,
        body=soap_fault(err, str(uuid.uuid4())),
        headers={"Content-Type": SOAP_FAULT_CONTENT_TYPE},
    )


def raw_fault_response(raw: bytes, content_type: str = SOAP_FAULT_CONTENT_TYPE) -> web.Response:
    """A fault of the provider information system, passed back as it is."""
    return web.Response(status=200, body=raw, headers={"Content-Type": content_type})


def transport_boundary() -> str:
    """A top-level boundary as NIIS draws them: ``xtop`` and 30 random letters."""
    return "xtop" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(30))


def connection_headers(ctx: ProxyContext) -> dict[str, str]:
    return {} if ctx.settings.pooled_connections else {"Connection": "close"}


async def handle(request: web.Request, ctx: ProxyContext) -> web.StreamResponse:
    """The server proxy's one handler: prelude, then the SOAP or the REST pipeline."""
    from crossroad.proxy import server_rest, server_soap

    snap = ctx.snapshot()
    try:
        check_prelude(request, ctx, snap)
        if request.headers.get(HEADER_MESSAGE_TYPE) == MESSAGE_TYPE_REST:
            return await server_rest.process(request, ctx, snap)
        return await server_soap.process(request, ctx, snap)
    except Exception as exc:  # every failure becomes a fault for the peer
        err = to_fault(exc, PREFIX_SERVER_PROXY)
        log.info("server proxy fault %s: %s", err.code, err.detail)
        return fault_response(err)
