"""The client proxy's REST pipeline (protocols.md §3, §4.3–4.6, §7.3).

:func:`process` is the consumer side of one REST exchange: the global configuration is
valid; the request line and headers become the transported header part (hop-by-hop headers
dropped, ``x-road-request-id`` and a generated ``x-road-id`` added), the body is hashed and
spooled; the client is checked and the provider's servers looked up; the request is signed,
sent and its response verified (signature, ``x-road-request-hash``, the ``x-road-*`` headers);
then status, reason, headers and body are relayed.  Errors are REST error bodies with
``X-Road-Error`` (§3.3): 500 for ``server.*`` codes, 400 otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

from aiohttp import web
from multidict import CIMultiDict

from crossroad.crypto.algorithms import SHA512
from crossroad.crypto.hashchain import MESSAGE, attachment_name
from crossroad.crypto.xades import MessagePart, SignedMessage
from crossroad.errors import PREFIX_CLIENT_PROXY, Code, XRoadError
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
from crossroad.wire.faults import rest_error_response
from crossroad.wire.rest import RestRequest, RestResponse, check_rest_response
from crossroad.wire.transport_encoder import (
    HEADER_HASH_ALGORITHM,
    HEADER_MESSAGE_TYPE,
    HEADER_PROXY_VERSION,
    HEADER_REQUEST_ID,
    MESSAGE_TYPE_REST,
    TransportEncoder,
)


def error_response(request: web.Request, err: XRoadError) -> web.Response:
    status, headers, body = rest_error_response(
        err, request.headers.getall("Accept", []), str(uuid.uuid4())
    )
    return web.Response(status=status, body=body, headers=CIMultiDict(headers))


async def handle(request: web.Request, ctx: ProxyContext, snap: Snapshot) -> web.StreamResponse:
    try:
        return await process(request, ctx, snap)
    except Exception as exc:  # every failure becomes an error body for the information system
        return error_response(request, to_fault(exc, PREFIX_CLIENT_PROXY))


class _Body:
    """The request body, spooled, with its digests (``x-hash-algorithm`` and SHA-512)."""

    def __init__(self, ctx: ProxyContext) -> None:
        self.spool = Spool(ctx.settings.spool_memory, ctx.settings.temp_dir)
        self.hasher = ctx.settings.hash_algorithm.hasher()
        self.sha512 = SHA512.hasher() if ctx.settings.hash_algorithm != SHA512 else None
        self.size = 0

    async def read(self, request: web.Request, chunk_size: int) -> None:
        self.spool.begin()
        async for chunk in request.content.iter_chunked(chunk_size):
            self.spool.write(chunk)
            self.hasher.update(chunk)
            if self.sha512 is not None:
                self.sha512.update(chunk)
            self.size += len(chunk)
        self.spool.end()

    @property
    def digest(self) -> bytes | None:
        return self.hasher.digest() if self.size else None

    @property
    def digest_sha512(self) -> bytes | None:
        if not self.size:
            return None
        return (self.sha512 or self.hasher).digest()


async def process(request: web.Request, ctx: ProxyContext, snap: Snapshot) -> web.StreamResponse:
    snap.globalconf.check_valid(snap.at)
    ctx.check_logging()
    rest = parse_request(request, snap)
    body = _Body(ctx)
    received: Received | None = None
    try:
        await body.read(request, ctx.settings.chunk_size)
        check_client(ctx, snap, rest.client, request)
        provider = rest.service.client
        addresses = provider_addresses(snap, provider, rest.security_server)
        head = rest.header_part()
        signed = await sign_request(ctx, rest, head, body)
        assert rest.request_id is not None
        await ctx.on_logged(
            LoggedMessage(
                "client",
                "request",
                rest.request_id,
                True,
                head,
                signed.signature_xml,
                signed.hash_chain_result,
                signed.hash_chain,
                (body.digest,) if body.digest is not None else (),
                body.spool.segments(ctx.settings.chunk_size) if body.size else (),
            )
        )
        ocsp = await ctx.own_ocsp()
        boundary = transport_boundary()
        assert rest.request_id is not None
        headers = [
            ("Content-Type", TransportEncoder(boundary).content_type),
            (HEADER_HASH_ALGORITHM, ctx.settings.hash_algorithm.name),
            (HEADER_PROXY_VERSION, ctx.settings.proxy_version),
            (HEADER_REQUEST_ID, rest.request_id),
            (HEADER_MESSAGE_TYPE, MESSAGE_TYPE_REST),
        ]

        def factory() -> AsyncIterator[bytes]:
            return transport_body(ctx, head, body, signed, ocsp, boundary)

        received = await exchange(ctx, snap, provider, addresses, headers, factory)
        message = received.message
        if message.fault is not None:
            raise message.fault.to_error()  # the provider side's fault, with its own code
        try:
            message.check(rest=True)
        except XRoadError as err:
            raise err.with_prefix(Code.SERVICE_FAILED) from err
        assert message.rest is not None
        response = message.rest.message
        if not isinstance(response, RestResponse):
            raise XRoadError(f"{Code.SERVICE_FAILED}.{Code.INVALID_MESSAGE}", "No REST response")
        await verify_response(ctx, snap, message, provider)
        check_rest_response(rest, response, body.digest_sha512)
        assert message.signature is not None
        has_body = message.rest_body is not None and len(received.spool) > 0
        await ctx.on_logged(
            LoggedMessage(
                "client",
                "response",
                rest.request_id,
                True,
                message.rest.raw,
                message.signature,
                message.hash_chain_result,
                message.hash_chain,
                (message.rest_body.digest,) if message.rest_body is not None else (),
                received.spool.segments(ctx.settings.chunk_size) if has_body else (),
            )
        )
        return await release(request, ctx, received, response)
    finally:
        body.spool.close()
        if received is not None:
            received.spool.close()


def parse_request(request: web.Request, snap: Snapshot) -> RestRequest:
    path, sep, query = request.raw_path.partition("?")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.raw_headers]
    return RestRequest.from_http(
        request.method,
        path,
        query if sep else None,
        headers,
        request_id=new_request_id(),
        instance=snap.globalconf.instance,
        query_uuid=str(uuid.uuid4()),
    )


async def sign_request(
    ctx: ProxyContext, rest: RestRequest, head: bytes, body: _Body
) -> SignedMessage:
    digest = ctx.settings.hash_algorithm
    parts = [MessagePart(MESSAGE, digest, data=head)]
    if body.digest is not None:
        parts.append(MessagePart(attachment_name(1), digest, digest_value=body.digest))
    return await ctx.sign(rest.client, parts)


async def transport_body(
    ctx: ProxyContext,
    head: bytes,
    body: _Body,
    signed: SignedMessage,
    ocsp: tuple[bytes, ...],
    boundary: str,
) -> AsyncIterator[bytes]:
    encoder = TransportEncoder(boundary, hash_algorithm=ctx.settings.hash_algorithm)
    for der in ocsp:
        yield encoder.ocsp(der)
    yield encoder.rest_request(head)
    if body.size:
        yield encoder.rest_body()
        async for chunk in body.spool.read(0, ctx.settings.chunk_size):
            yield encoder.write(chunk)
    encoder.signing_parts()
    yield encoder.signature(signed.signature_xml, signed.hash_chain_result, signed.hash_chain)
    yield encoder.close()


async def release(
    request: web.Request, ctx: ProxyContext, received: Received, response: RestResponse
) -> web.StreamResponse:
    """Status, reason, headers and body of the provider information system."""
    has_body = received.message.rest_body is not None and len(received.spool) > 0
    out = web.StreamResponse(
        status=response.status,
        reason=response.reason or None,
        headers=CIMultiDict(response.headers),
    )
    size = received.spool.size(0) if has_body else 0
    out.content_length = size
    await out.prepare(request)
    if has_body:
        async for chunk in received.spool.read(0, ctx.settings.chunk_size):
            await out.write(chunk)
    await out.write_eof()
    return out
