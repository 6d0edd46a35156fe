"""The server proxy's REST pipeline (protocols.md §4.10, §3.2, §4.5, §7.3).

:func:`process` is the provider side of one REST exchange: receive and check
(:mod:`crossroad.proxy.server`), the endpoint access checks (skipped by the REST
metaservices), the signature of the client's member, the call to the provider information
system (the request's method, the service's URL with the service path and the raw query
appended, every header of the transported header part, the body), then the response header
part (the service's headers, filtered, plus ``x-road-*`` and ``x-road-request-hash``) and
body, signed and streamed back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from crossroad.crypto.algorithms import SHA512
from crossroad.crypto.hashchain import MESSAGE, attachment_name
from crossroad.crypto.xades import MessagePart, SignedMessage
from crossroad.errors import PREFIX_SERVER_PROXY, XRoadError
from crossroad.metaservices import handle_rest_meta, is_rest_meta_service, rest_meta_response
from crossroad.proxy.context import LoggedMessage, ProxyContext, Snapshot
from crossroad.proxy.server import (
    Incoming,
    check_peer,
    check_target,
    connection_headers,
    peer_chain,
    receive,
    service_failed,
    to_fault,
    transport_boundary,
    verify_signature,
)
from crossroad.proxy.upstream import Spool, network_failure, service_tls
from crossroad.serverconf.access import check_service_access
from crossroad.serverconf.model import ServiceEntry
from crossroad.wire.faults import soap_fault
from crossroad.wire.rest import RestRequest, RestResponse, provider_url, rest_request_hash_bytes
from crossroad.wire.swa import SoapPart
from crossroad.wire.transport import RestPart
from crossroad.wire.transport_encoder import HEADER_HASH_ALGORITHM, TransportEncoder


async def process(request: web.Request, ctx: ProxyContext, snap: Snapshot) -> web.StreamResponse:
    chain = peer_chain(request)

    def on_message(part: SoapPart | RestPart, ocsp: tuple[bytes, ...]) -> None:
        if not isinstance(part, RestPart) or not isinstance(part.message, RestRequest):
            return  # reported by the completeness check below
        rest = part.message
        check_target(snap, rest.service.client, rest.security_server)
        check_peer(ctx, snap, chain, ocsp, rest.client)

    incoming = await receive(request, ctx, on_message)
    body: Spool | None = None
    try:
        message = incoming.message
        message.check(rest=True)
        assert message.rest is not None
        rest = message.rest.message
        if not isinstance(rest, RestRequest):
            raise XRoadError("invalid_message", "Expected a REST request")
        meta = is_rest_meta_service(rest.service.service_code, rest.method)
        entry = None if meta else check_access(snap, rest)
        await verify_signature(ctx, snap, message, rest.client)
        await log_request(ctx, incoming)
        request_hash = rest_request_hash_bytes(message.rest.raw, body_sha512(ctx, incoming))
        if entry is None:
            meta_answer = handle_rest_meta(rest, snap.serverconf, snap.globalconf)
            answer = rest_meta_response(rest, request_hash, meta_answer)
            body = Spool(ctx.settings.spool_memory, ctx.settings.temp_dir)
            body.begin()
            body.write(meta_answer.body)
            body.end()
            body_digest = (
                ctx.settings.hash_algorithm.digest(meta_answer.body) if meta_answer.body else None
            )
        else:
            answer, body, body_digest = await call_service(ctx, entry, incoming, rest, request_hash)
        return await respond(request, ctx, incoming, rest, answer, body, body_digest)
    finally:
        incoming.spool.close()
        if body is not None:
            body.close()


def check_access(snap: Snapshot, rest: RestRequest) -> ServiceEntry:
    return check_service_access(
        snap.serverconf,
        snap.globalconf.is_in_global_group,
        rest.client,
        rest.service,
        method=rest.method,
        path=rest.service_path or "/",
        rest=True,
    )


async def log_request(ctx: ProxyContext, incoming: Incoming) -> None:
    message = incoming.message
    assert message.rest is not None
    assert message.signature is not None
    has_body = message.rest_body is not None and len(incoming.spool) > 0
    digests = (message.rest_body.digest,) if message.rest_body is not None else ()
    await ctx.on_logged(
        LoggedMessage(
            "server",
            "request",
            incoming.request_id,
            True,
            message.rest.raw,
            message.signature,
            message.hash_chain_result,
            message.hash_chain,
            digests,
            incoming.spool.segments(ctx.settings.chunk_size) if has_body else (),
        )
    )


def body_sha512(ctx: ProxyContext, incoming: Incoming) -> bytes | None:
    """SHA-512 of the request body (for ``x-road-request-hash``, always SHA-512)."""
    end = incoming.message.rest_body
    if end is None:
        return None
    if incoming.message.digest == SHA512:
        return end.digest
    hasher = SHA512.hasher()
    hasher.update(incoming.spool.read_all(0))
    return hasher.digest()


# --------------------------------------------------------------------------- the service


async def _body(ctx: ProxyContext, spool: Spool) -> AsyncIterator[bytes]:
    async for chunk in spool.read(0, ctx.settings.chunk_size):
        yield chunk


async def call_service(
    ctx: ProxyContext,
    entry: ServiceEntry,
    incoming: Incoming,
    rest: RestRequest,
    request_hash: bytes,
) -> tuple[RestResponse, Spool, bytes | None]:
    url = provider_url(entry.service.url or "", rest.service_path, rest.query)
    headers = list(rest.headers)
    has_body = incoming.message.rest_body is not None
    if has_body:
        headers.append(("Content-Length", str(incoming.spool.size(0))))
    try:
        response = await ctx.upstream.call_service(
            rest.method,
            url if entry.service.url else None,
            headers=headers,
            body=_body(ctx, incoming.spool) if has_body else None,
            timeout=float(entry.service.timeout),
            service=service_tls(ctx, entry),
        )
    except XRoadError as err:
        raise service_failed(err) from err
    spool = Spool(ctx.settings.spool_memory, ctx.settings.temp_dir)
    hasher = ctx.settings.hash_algorithm.hasher()
    try:
        spool.begin()
        try:
            async for chunk in response.content.iter_chunked(ctx.settings.chunk_size):
                hasher.update(chunk)
                spool.write(chunk)
        except Exception as exc:
            raise service_failed(network_failure(exc, "the service")) from exc
        spool.end()
        raw_headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in response.raw_headers]
        answer = RestResponse.build(
            status=response.status,
            reason=response.reason or "",
            headers=raw_headers,
            request=rest,
            request_hash=request_hash,
        )
    except BaseException:
        spool.close()
        raise
    finally:
        response.release()
    return answer, spool, hasher.digest() if spool.size(0) else None


# --------------------------------------------------------------------------- the response


async def respond(
    request: web.Request,
    ctx: ProxyContext,
    incoming: Incoming,
    rest: RestRequest,
    answer: RestResponse,
    body: Spool,
    body_digest: bytes | None,
) -> web.StreamResponse:
    digest = ctx.settings.hash_algorithm
    head = answer.header_part()
    parts = [MessagePart(MESSAGE, digest, data=head)]
    if body_digest is not None:
        parts.append(MessagePart(attachment_name(1), digest, digest_value=body_digest))
    signed = await ctx.sign(rest.service.client, parts)
    await ctx.on_logged(
        LoggedMessage(
            "server",
            "response",
            incoming.request_id,
            True,
            head,
            signed.signature_xml,
            signed.hash_chain_result,
            signed.hash_chain,
            (body_digest,) if body_digest is not None else (),
            body.segments(ctx.settings.chunk_size) if body_digest is not None else (),
        )
    )
    return await stream_response(request, ctx, head, body, signed)


async def stream_response(
    request: web.Request, ctx: ProxyContext, head: bytes, body: Spool, signed: SignedMessage
) -> web.StreamResponse:
    encoder = TransportEncoder(transport_boundary(), hash_algorithm=ctx.settings.hash_algorithm)
    headers = {
        "Content-Type": encoder.content_type,
        HEADER_HASH_ALGORITHM: ctx.settings.hash_algorithm.name,
        **connection_headers(ctx),
    }
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    try:
        await response.write(encoder.rest_response(head))
        if body.size(0):
            await response.write(encoder.rest_body())
            async for chunk in body.read(0, ctx.settings.chunk_size):
                await response.write(encoder.write(chunk))
        encoder.signing_parts()
        await response.write(
            encoder.signature(signed.signature_xml, signed.hash_chain_result, signed.hash_chain)
        )
    except Exception as exc:  # streaming began: the last part says what went wrong
        await response.write(encoder.fault(soap_fault(to_fault(exc, PREFIX_SERVER_PROXY))))
    await response.write(encoder.close())
    await response.write_eof()
    return response
