"""HTTP clients of the trust services: certificate requests, OCSP (§10.3) and time-stamps (§9.2).

The protocol work (request bytes, response checks) is in the core (:mod:`crossroad.crypto.ocsp`,
:mod:`crossroad.crypto.tsp`); this module only moves bytes, with the headers and timeouts
X-Road uses (OCSP: POST ``application/ocsp-request``; TSA: POST
``application/timestamp-query``, connect 20 s / read 60 s).
"""

from __future__ import annotations

import aiohttp
from cryptography import x509

from crossroad.crypto import ocsp, tsp
from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId

OCSP_TIMEOUT = aiohttp.ClientTimeout(sock_connect=20, sock_read=30)
TSA_TIMEOUT = aiohttp.ClientTimeout(sock_connect=20, sock_read=60)


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: bytes,
    content_type: str,
    accept: str,
    timeout: aiohttp.ClientTimeout,
    what: str,
) -> bytes:
    try:
        async with session.post(
            url,
            data=body,
            headers={"Content-Type": content_type, "Accept": accept},
            timeout=timeout,
        ) as resp:
            data = await resp.read()
            if resp.status != 200:
                text = data[:200].decode("utf-8", "replace")
                raise XRoadError(Code.HTTP_ERROR, f"{what} at {url} answered {resp.status}: {text}")
            return data
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise XRoadError(Code.NETWORK_ERROR, f"{what} at {url} unreachable: {exc}") from exc


async def request_certificate(
    session: aiohttp.ClientSession,
    ca_url: str,
    csr_pem: bytes,
    kind: str,
    *,
    member: ClientId | None = None,
    server: SecurityServerId | None = None,
) -> x509.Certificate:
    """Have the test CA turn a CSR into a ``sign`` or ``auth`` certificate."""
    params = {"type": kind}
    if member is not None:
        params["member"] = str(member)
    if server is not None:
        params["server"] = str(server)
    query = "&".join(f"{k}={v}" for k, v in params.items())
    pem = await _post(
        session,
        f"{ca_url.rstrip('/')}/sign?{query}",
        csr_pem,
        "application/pkcs10",
        "application/x-pem-file",
        OCSP_TIMEOUT,
        "Certificate authority",
    )
    return x509.load_pem_x509_certificate(pem)


async def fetch_ocsp(
    session: aiohttp.ClientSession, url: str, cert: x509.Certificate, issuer: x509.Certificate
) -> bytes:
    """The responder's DER OCSPResponse for ``cert`` (not yet verified: the caller does that)."""
    return await _post(
        session,
        url,
        ocsp.build_request(cert, issuer),
        "application/ocsp-request",
        "application/ocsp-response",
        OCSP_TIMEOUT,
        "OCSP responder",
    )


async def fetch_timestamp(
    session: aiohttp.ClientSession, url: str, data: bytes, digest: DigestAlgorithm = SHA512
) -> bytes:
    """A DER TimeStampToken over ``data``, checked against the request (imprint, status)."""
    request = tsp.build_request(data, digest)
    response = await _post(
        session,
        url,
        request,
        "application/timestamp-query",
        "application/timestamp-reply",
        TSA_TIMEOUT,
        "Time-stamping authority",
    )
    return tsp.token_from_response(response, request)
