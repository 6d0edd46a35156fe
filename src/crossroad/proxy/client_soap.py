"""The client proxy's SOAP pipeline (protocols.md §2, §4.3–4.6, §4.9).

:func:`process` is the consumer side of one SOAP exchange, as named steps over one snapshot:
the global configuration is valid; the information system's request is read (plain SOAP,
SwA or MTOM; attachments hashed and spooled; every fault here is ``client.*``); the client
is checked; the provider's servers are looked up; the request is signed as the client's
member and sent with the OCSP responses of our authentication chain; the response is
decoded, its signature (the provider's member), ``requestHash`` and header consistency
verified; only then is it released to the information system, rebuilt as the provider
information system sent it (``x-original-content-type``).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from crossroad.crypto.hashchain import MESSAGE, attachment_name
from crossroad.crypto.xades import MessagePart, SignedMessage
from crossroad.errors import PREFIX_CLIENT, PREFIX_CLIENT_PROXY, Code, XRoadError
from crossroad.proxy.client import (
    Received,
    check_client,
    exchange,
    new_request_id,
    provider_addresses,
    verify_response,
)
from crossroad.proxy.context import LoggedMessage, ProxyContext, Snapshot
from crossroad.proxy.server import to_fault, transport_boundary
from crossroad.proxy.upstream import Spool
from crossroad.wire.faults import SOAP_FAULT_HEADERS, soap_fault
from crossroad.wire.soap import SoapMessage, validate_soap_action
from crossroad.wire.soap_response import check_response
from crossroad.wire.swa import (
    AttachmentData,
    AttachmentEnd,
    AttachmentStart,
    SoapPackageDecoder,
    SoapPackageEncoder,
    SoapPart,
)
from crossroad.wire.transport_encoder import (
    HEADER_HASH_ALGORITHM,
    HEADER_ORIGINAL_CONTENT_TYPE,
    HEADER_ORIGINAL_SOAP_ACTION,
    HEADER_PROXY_VERSION,
    HEADER_REQUEST_ID,
    TransportEncoder,
)


class ClientFault(XRoadError):
    """A fault caused by what the information system sent (``client.*``)."""


@dataclass
class IsRequest:
    """The information system's request, read whole; attachments spooled."""

    soap: SoapMessage
    part: SoapPart
    content_type: str
    soap_action: str | None
    spool: Spool
    attachments: list[AttachmentStart] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)


def fault_response(err: XRoadError) -> web.Response:
    """A SOAP fault to the information system: HTTP 200, ``text/xml`` (§2.5)."""
    return web.Response(
        status=200, body=soap_fault(err, str(uuid.uuid4())), headers=dict(SOAP_FAULT_HEADERS)
    )


async def handle(request: web.Request, ctx: ProxyContext, snap: Snapshot) -> web.StreamResponse:
    try:
        return await process(request, ctx, snap)
    except ClientFault as exc:
        return fault_response(XRoadError(exc.code, exc.detail).with_prefix(PREFIX_CLIENT))
    except Exception as exc:  # every failure becomes a fault for the information system
        return fault_response(to_fault(exc, PREFIX_CLIENT_PROXY))


async def process(request: web.Request, ctx: ProxyContext, snap: Snapshot) -> web.StreamResponse:
    snap.globalconf.check_valid(snap.at)
    if request.method != "POST":
        raise ClientFault(Code.INVALID_HTTP_METHOD, "Must use POST request method")
    ctx.check_logging()
    incoming = await read_request(request, ctx)
    received: Received | None = None
    try:
        soap = incoming.soap
        check_client(ctx, snap, soap.client, request)
        provider = soap.service.client
        addresses = provider_addresses(snap, provider, soap.security_server)
        signed = await sign_request(ctx, incoming)
        request_id = new_request_id()
        await ctx.on_logged(
            LoggedMessage(
                "client",
                "request",
                request_id,
                False,
                soap.raw,
                signed.signature_xml,
                signed.hash_chain_result,
                signed.hash_chain,
                tuple(incoming.digests),
                incoming.spool.segments(ctx.settings.chunk_size),
            )
        )
        ocsp = await ctx.own_ocsp()
        encoder_boundary = transport_boundary()
        headers = [
            ("Content-Type", TransportEncoder(encoder_boundary).content_type),
            (HEADER_HASH_ALGORITHM, ctx.settings.hash_algorithm.name),
            (HEADER_PROXY_VERSION, ctx.settings.proxy_version),
            (HEADER_ORIGINAL_CONTENT_TYPE, incoming.content_type),
            (HEADER_REQUEST_ID, request_id),
        ]
        if incoming.soap_action is not None:
            headers.append((HEADER_ORIGINAL_SOAP_ACTION, incoming.soap_action))

        def body() -> AsyncIterator[bytes]:
            return transport_body(ctx, incoming, signed, ocsp, encoder_boundary)

        received = await exchange(ctx, snap, provider, addresses, headers, body)
        message = received.message
        if message.fault is not None:
            # The provider side's fault (its server's or its information system's): as is.
            return web.Response(
                status=200, body=message.fault.to_bytes(), headers=dict(SOAP_FAULT_HEADERS)
            )
        try:
            message.check(rest=False)
        except XRoadError as err:
            raise err.with_prefix(Code.SERVICE_FAILED) from err
        assert message.soap is not None
        response = message.soap.message
        if not isinstance(response, SoapMessage):
            raise XRoadError(f"{Code.SERVICE_FAILED}.{Code.INVALID_MESSAGE}", "No SOAP response")
        await verify_response(ctx, snap, message, provider)
        check_response(soap, response)
        assert message.signature is not None
        await ctx.on_logged(
            LoggedMessage(
                "client",
                "response",
                request_id,
                False,
                response.raw,
                message.signature,
                message.hash_chain_result,
                message.hash_chain,
                tuple(a.digest for a in message.attachments),
                received.spool.segments(ctx.settings.chunk_size),
            )
        )
        return await release(request, ctx, received, response)
    finally:
        incoming.spool.close()
        if received is not None:
            received.spool.close()


# --------------------------------------------------------------------------- the IS request


async def read_request(request: web.Request, ctx: ProxyContext) -> IsRequest:
    """Read and check the information system's SOAP package (``client.*`` faults); the SOAP
    part must arrive within ``soap_read_timeout``."""
    content_type = request.headers.get("Content-Type")
    try:
        action = validate_soap_action(request.headers.get("SOAPAction"))
        decoder = SoapPackageDecoder(content_type, digest=ctx.settings.hash_algorithm)
    except XRoadError as err:
        raise ClientFault(err.code, err.detail) from err
    spool = Spool(ctx.settings.spool_memory, ctx.settings.temp_dir)
    starts: list[AttachmentStart] = []
    digests: list[bytes] = []
    part: SoapPart | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.settings.soap_read_timeout
    try:
        while True:
            if part is None:
                remaining = deadline - loop.time()
                try:
                    chunk = await asyncio.wait_for(request.content.readany(), max(remaining, 0))
                except TimeoutError as exc:
                    raise XRoadError(
                        Code.INTERNAL_ERROR, "Reading SOAP from request timed out"
                    ) from exc
            else:
                chunk = await request.content.readany()
            try:
                events = decoder.close() if not chunk else decoder.feed(chunk)
            except XRoadError as err:
                raise ClientFault(err.code, err.detail) from err
            for event in events:
                if isinstance(event, AttachmentData):
                    spool.write(event.data)
                elif isinstance(event, AttachmentStart):
                    spool.begin()
                    starts.append(event)
                elif isinstance(event, AttachmentEnd):
                    spool.end()
                    digests.append(event.digest)
                elif isinstance(event, SoapPart):
                    part = event
            if not chunk:
                break
    except BaseException:
        spool.close()
        raise
    assert part is not None
    if not isinstance(part.message, SoapMessage):
        spool.close()
        raise ClientFault(Code.INVALID_MESSAGE, "The request is a SOAP fault")
    return IsRequest(part.message, part, content_type or "", action, spool, starts, digests)


async def sign_request(ctx: ProxyContext, incoming: IsRequest) -> SignedMessage:
    digest = ctx.settings.hash_algorithm
    parts = [MessagePart(MESSAGE, digest, data=incoming.soap.raw)]
    parts += [
        MessagePart(attachment_name(i), digest, digest_value=d)
        for i, d in enumerate(incoming.digests, start=1)
    ]
    return await ctx.sign(incoming.soap.client, parts)


async def transport_body(
    ctx: ProxyContext,
    incoming: IsRequest,
    signed: SignedMessage,
    ocsp: tuple[bytes, ...],
    boundary: str,
) -> AsyncIterator[bytes]:
    """The transport message of the request, part by part (§4.4)."""
    encoder = TransportEncoder(boundary, hash_algorithm=ctx.settings.hash_algorithm)
    for der in ocsp:
        yield encoder.ocsp(der)
    yield encoder.soap(incoming.soap, incoming.part.content_type, incoming.part.headers)
    for i, att in enumerate(incoming.attachments):
        yield encoder.attachment(att.content_type, att.headers)
        async for chunk in incoming.spool.read(i, ctx.settings.chunk_size):
            yield encoder.write(chunk)
    encoder.signing_parts()
    yield encoder.signature(signed.signature_xml, signed.hash_chain_result, signed.hash_chain)
    yield encoder.close()


# --------------------------------------------------------------------------- the response


async def release(
    request: web.Request, ctx: ProxyContext, received: Received, response: SoapMessage
) -> web.StreamResponse:
    """The verified response to the information system, as its provider sent it."""
    message = received.message
    assert message.soap is not None
    package = SoapPackageEncoder(received.original_content_type or message.soap.content_type)
    if not package.is_multipart and not received.attachments:
        return web.Response(
            status=200, body=response.raw, headers={"Content-Type": package.content_type}
        )
    out = web.StreamResponse(status=200, headers={"Content-Type": package.content_type})
    await out.prepare(request)
    await out.write(package.soap(response.raw, message.soap.content_type, message.soap.headers))
    for i, att in enumerate(received.attachments):
        await out.write(package.attachment(att.content_type, att.headers))
        async for chunk in received.spool.read(i, ctx.settings.chunk_size):
            await out.write(chunk)
    await out.write(package.close())
    await out.write_eof()
    return out
