"""The server proxy's SOAP pipeline (protocols.md §4.10, §2.3–2.4, §7.2).

:func:`process` is the provider side of one SOAP exchange, as named steps over one snapshot:
receive and check (:mod:`crossroad.proxy.server`), the access checks of the service (skipped
by metaservices), the signature of the client's member, the call to the provider information
system (SOAPAction carried over, SwA/MTOM rebuilt with the original boundary), the
``requestHash`` inserted into its response, the response signed and streamed back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from crossroad.crypto.hashchain import MESSAGE, attachment_name
from crossroad.crypto.xades import MessagePart, SignedMessage
from crossroad.errors import PREFIX_SERVER_PROXY, Code, XRoadError
from crossroad.metaservices import handle_soap_meta, is_meta_service
from crossroad.proxy.context import LoggedMessage, ProxyContext, Snapshot
from crossroad.proxy.server import (
    Incoming,
    check_peer,
    check_target,
    connection_headers,
    peer_chain,
    raw_fault_response,
    receive,
    service_failed,
    to_fault,
    transport_boundary,
    verify_signature,
)
from crossroad.proxy.upstream import Spool, network_failure, service_tls
from crossroad.serverconf.access import check_service_access
from crossroad.serverconf.model import ServiceEntry
from crossroad.wire.faults import SoapFault, soap_fault
from crossroad.wire.mime import HeaderField
from crossroad.wire.soap import SoapMessage, validate_soap_action
from crossroad.wire.soap_response import insert_request_hash, request_hash
from crossroad.wire.swa import (
    AttachmentData,
    AttachmentEnd,
    AttachmentStart,
    SoapPackageDecoder,
    SoapPackageEncoder,
    SoapPart,
)
from crossroad.wire.transport import RestPart
from crossroad.wire.transport_encoder import (
    HEADER_HASH_ALGORITHM,
    HEADER_ORIGINAL_CONTENT_TYPE,
    TransportEncoder,
)


@dataclass
class ServiceAnswer:
    """What the provider information system (or a metaservice) answered."""

    soap: SoapMessage | SoapFault
    soap_content_type: str  # of the SOAP part
    package_content_type: str  # of the whole entity (x-original-content-type)
    soap_headers: tuple[HeaderField, ...] = ()
    attachments: list[AttachmentStart] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    spool: Spool | None = None


async def process(request: web.Request, ctx: ProxyContext, snap: Snapshot) -> web.StreamResponse:
    chain = peer_chain(request)

    def on_message(part: SoapPart | RestPart, ocsp: tuple[bytes, ...]) -> None:
        if not isinstance(part, SoapPart) or not isinstance(part.message, SoapMessage):
            return  # a REST part or a fault: reported by the completeness check below
        soap = part.message
        check_target(snap, soap.service.client, soap.security_server)
        check_peer(ctx, snap, chain, ocsp, soap.client)

    incoming = await receive(request, ctx, on_message)
    answer: ServiceAnswer | None = None
    try:
        incoming.message.check(rest=False)
        assert incoming.message.soap is not None
        soap = incoming.message.soap.message
        assert isinstance(soap, SoapMessage)
        meta = is_meta_service(soap.service.service_code)
        entry = None if meta else check_access(snap, soap)
        await verify_signature(ctx, snap, incoming.message, soap.client)
        await log_request(ctx, incoming, soap)
        if entry is None:
            answer = answer_meta(ctx, snap, soap)
        else:
            answer = await call_service(ctx, entry, incoming, soap)
        if isinstance(answer.soap, SoapFault):
            return raw_fault_response(answer.soap.to_bytes())
        return await respond(request, ctx, incoming, soap, answer)
    finally:
        incoming.spool.close()
        if answer is not None and answer.spool is not None:
            answer.spool.close()


def check_access(snap: Snapshot, soap: SoapMessage) -> ServiceEntry:
    return check_service_access(
        snap.serverconf, snap.globalconf.is_in_global_group, soap.client, soap.service, rest=False
    )


async def log_request(ctx: ProxyContext, incoming: Incoming, soap: SoapMessage) -> None:
    message = incoming.message
    assert message.signature is not None
    await ctx.on_logged(
        LoggedMessage(
            "server",
            "request",
            incoming.request_id,
            False,
            soap.raw,
            message.signature,
            message.hash_chain_result,
            message.hash_chain,
            tuple(a.digest for a in message.attachments),
            incoming.spool.segments(ctx.settings.chunk_size),
        )
    )


# --------------------------------------------------------------------------- the service


def answer_meta(ctx: ProxyContext, snap: Snapshot, soap: SoapMessage) -> ServiceAnswer:
    meta = handle_soap_meta(soap, snap.serverconf, snap.globalconf, soap.client)
    answer = ServiceAnswer(
        SoapMessage.parse(meta.soap, meta.soap_content_type),
        meta.soap_content_type,
        meta.content_type,
    )
    if meta.attachments:
        spool = answer.spool = Spool(ctx.settings.spool_memory, ctx.settings.temp_dir)
        digest = ctx.settings.hash_algorithm
        for i, att in enumerate(meta.attachments, start=1):
            spool.begin()
            spool.write(att.data)
            spool.end()
            answer.attachments.append(AttachmentStart(i, att.content_type, att.headers))
            answer.digests.append(digest.digest(att.data))
    return answer


async def _request_body(
    ctx: ProxyContext, incoming: Incoming, soap: SoapMessage
) -> AsyncIterator[bytes]:
    encoder = SoapPackageEncoder(incoming.original_content_type)
    assert incoming.message.soap is not None
    part = incoming.message.soap
    yield encoder.soap(soap.raw, part.content_type, part.headers)
    for i, att in enumerate(incoming.attachments):
        yield encoder.attachment(att.content_type, att.headers)
        async for chunk in incoming.spool.read(i, ctx.settings.chunk_size):
            yield chunk
    tail = encoder.close()
    if tail:
        yield tail


async def call_service(
    ctx: ProxyContext, entry: ServiceEntry, incoming: Incoming, soap: SoapMessage
) -> ServiceAnswer:
    """POST the request to the service's URL and decode its answer (``service_failed.*``)."""
    package = SoapPackageEncoder(incoming.original_content_type)
    headers = [("Content-Type", package.content_type)]
    action = validate_soap_action(incoming.original_soap_action)
    if action is not None:
        headers.append(("SOAPAction", action))
    if not package.is_multipart and not incoming.attachments:
        body: object = soap.raw
    else:
        body = _request_body(ctx, incoming, soap)
    try:
        response = await ctx.upstream.call_service(
            "POST",
            entry.service.url,
            headers=headers,
            body=body,  # type: ignore[arg-type]
            timeout=float(entry.service.timeout),
            service=service_tls(ctx, entry),
        )
    except XRoadError as err:
        raise service_failed(err) from err
    try:
        return await read_answer(ctx, response.headers.get("Content-Type"), response)
    finally:
        response.release()


async def read_answer(
    ctx: ProxyContext, content_type: str | None, response: object
) -> ServiceAnswer:
    """Decode the service's SOAP package, spooling attachments (``service_failed.*``)."""
    spool = Spool(ctx.settings.spool_memory, ctx.settings.temp_dir)
    answer: ServiceAnswer | None = None
    try:
        decoder = SoapPackageDecoder(
            content_type, digest=ctx.settings.hash_algorithm, missing_soap_code=Code.INVALID_MESSAGE
        )
        starts: list[AttachmentStart] = []
        digests: list[bytes] = []
        part: SoapPart | None = None
        content = response.content  # type: ignore[attr-defined]
        try:
            async for chunk in content.iter_chunked(ctx.settings.chunk_size):
                for event in decoder.feed(chunk):
                    part = _spool_event(event, spool, starts, digests) or part
        except (OSError, TimeoutError) as exc:
            raise network_failure(exc, "the service") from exc
        except Exception as exc:
            if isinstance(exc, XRoadError):
                raise
            raise network_failure(exc, "the service") from exc
        for event in decoder.close():
            part = _spool_event(event, spool, starts, digests) or part
        assert part is not None
        answer = ServiceAnswer(
            part.message,
            part.content_type,
            content_type or part.content_type,
            part.headers,
            starts,
            digests,
            spool,
        )
        return answer
    except XRoadError as err:
        raise service_failed(err) from err
    finally:
        if answer is None:
            spool.close()


def _spool_event(
    event: object, spool: Spool, starts: list[AttachmentStart], digests: list[bytes]
) -> SoapPart | None:
    if isinstance(event, AttachmentData):
        spool.write(event.data)
    elif isinstance(event, AttachmentStart):
        spool.begin()
        starts.append(event)
    elif isinstance(event, AttachmentEnd):
        spool.end()
        digests.append(event.digest)
    elif isinstance(event, SoapPart):
        return event
    return None


# --------------------------------------------------------------------------- the response


async def respond(
    request: web.Request,
    ctx: ProxyContext,
    incoming: Incoming,
    soap: SoapMessage,
    answer: ServiceAnswer,
) -> web.StreamResponse:
    """requestHash, signature, and the transport message streamed back."""
    assert isinstance(answer.soap, SoapMessage)
    try:
        value = request_hash(soap.raw)
        response_soap = insert_request_hash(
            answer.soap.raw, value, answer.soap_content_type, parsed=answer.soap
        )
    except XRoadError as err:
        raise service_failed(err) from err
    digest = ctx.settings.hash_algorithm
    parts = [MessagePart(MESSAGE, digest, data=response_soap)]
    parts += [
        MessagePart(attachment_name(i), digest, digest_value=d)
        for i, d in enumerate(answer.digests, start=1)
    ]
    signed = await ctx.sign(soap.service.client, parts)
    await ctx.on_logged(
        LoggedMessage(
            "server",
            "response",
            incoming.request_id,
            False,
            response_soap,
            signed.signature_xml,
            signed.hash_chain_result,
            signed.hash_chain,
            tuple(answer.digests),
            answer.spool.segments(ctx.settings.chunk_size) if answer.spool is not None else (),
        )
    )
    return await stream_response(request, ctx, answer, response_soap, signed)


async def stream_response(
    request: web.Request,
    ctx: ProxyContext,
    answer: ServiceAnswer,
    response_soap: bytes,
    signed: SignedMessage,
) -> web.StreamResponse:
    encoder = TransportEncoder(transport_boundary(), hash_algorithm=ctx.settings.hash_algorithm)
    headers = {
        "Content-Type": encoder.content_type,
        HEADER_HASH_ALGORITHM: ctx.settings.hash_algorithm.name,
        HEADER_ORIGINAL_CONTENT_TYPE: answer.package_content_type,
        **connection_headers(ctx),
    }
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    try:
        await response.write(
            encoder.soap(response_soap, answer.soap_content_type, answer.soap_headers)
        )
        for i, att in enumerate(answer.attachments):
            await response.write(encoder.attachment(att.content_type, att.headers))
            assert answer.spool is not None
            async for chunk in answer.spool.read(i, ctx.settings.chunk_size):
                await response.write(encoder.write(chunk))
        encoder.signing_parts()
        await response.write(
            encoder.signature(signed.signature_xml, signed.hash_chain_result, signed.hash_chain)
        )
    except Exception as exc:  # streaming began: the last part says what went wrong
        err = to_fault(exc, PREFIX_SERVER_PROXY)
        await response.write(encoder.fault(soap_fault(err)))
    await response.write(encoder.close())
    await response.write_eof()
    return response
