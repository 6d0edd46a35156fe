"""proxy.ocsp_service and proxy.ocsp_cache: the OCSP download service on a real socket, its
client, and the consumer's cache of peers' responses (protocols.md §4.2, §10.3)."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import MultiDict

from crossroad.crypto.algorithms import SHA1, SHA256
from crossroad.crypto.certs import cert_der
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import (
    ApprovedCAInfo,
    CaInfo,
    GlobalSettings,
    ManagementService,
    OcspInfo,
    PrivateParameters,
    SharedParameters,
)
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId
from crossroad.proxy import ocsp_service
from crossroad.proxy.ocsp_cache import PeerOcspCache
from crossroad.proxy.ocsp_service import (
    MAX_CERTS,
    CertQuery,
    fetch_peer_ocsp,
    parse_query,
    parse_response,
    render_response,
    start_ocsp_service,
)
from crossroad.testing import pki as testing_pki
from crossroad.testing.pki import Issued

AT = dt.datetime(2025, 6, 1, 12, tzinfo=dt.UTC)
EJBCA = "ee.ria.xroad.common.certificateprofile.impl.EjbcaCertificateProfileInfoProvider"
OCSP_CT = 'multipart/related; type="application/ocsp-response"; charset=UTF-8; boundary='


def sync(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Any]:
    """Run an async test on a fresh event loop."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(fn(*args, **kwargs))  # type: ignore[arg-type]

    return run


def sha1(cert: x509.Certificate) -> str:
    return SHA1.digest(cert_der(cert)).hex()


def sha256(cert: x509.Certificate) -> str:
    return SHA256.digest(cert_der(cert)).hex()


@pytest.fixture(scope="module")
def certs(pki: testing_pki.TestPKI) -> list[Issued]:
    return [pki.auth_cert("EE", f"ss{i}") for i in range(3)]


@pytest.fixture(scope="module")
def snapshot(pki: testing_pki.TestPKI) -> GlobalConfSnapshot:
    shared = SharedParameters(
        instance_identifier="EE",
        global_settings=GlobalSettings(3600),
        approved_cas=(
            ApprovedCAInfo(
                "Test CA",
                CaInfo(cert_der(pki.ca.cert), (OcspInfo("http://ocsp", cert_der(pki.ocsp.cert)),)),
                EJBCA,
            ),
        ),
    )
    private = PrivateParameters("EE", ManagementService("http://cs/", ClientId("EE", "A", "b")), 6)
    return GlobalConfSnapshot.build(shared, private, version=6)


class Signerlike:
    """A provider that knows responses by SHA-1 only, as the signer does; records calls."""

    def __init__(self, responses: dict[str, bytes], *, by_sha256: bool = False) -> None:
        self.responses = responses
        self.by_sha256 = by_sha256
        self.calls: list[list[str]] = []

    def __call__(self, hashes: Sequence[str]) -> list[bytes | None]:
        self.calls.append(list(hashes))
        return [self.responses.get(h) for h in hashes]


def _responses(pki: testing_pki.TestPKI, issued: Sequence[Issued], *, both: bool = False) -> dict:
    out = {}
    for i in issued:
        der = pki.ocsp_for(i.cert, AT)
        out[sha1(i.cert)] = der
        if both:
            out[sha256(i.cert)] = der
    return out


@asynccontextmanager
async def service(provider: ocsp_service.OcspProvider) -> AsyncIterator[str]:
    runner, port = await start_ocsp_service(provider, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_server(handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port
    finally:
        await runner.cleanup()


# --- the service ---------------------------------------------------------------------------------


@sync
async def test_get_answers_one_part_per_cert_in_order(
    pki: testing_pki.TestPKI, certs: list[Issued]
) -> None:
    provider = Signerlike(_responses(pki, certs, both=True))
    query = [("cert", sha1(i.cert)) for i in certs] + [("cert_hash", sha256(i.cert)) for i in certs]
    async with (
        service(provider) as url,
        aiohttp.ClientSession() as session,
        session.get(url + "/", params=query) as resp,
    ):
        assert resp.status == 200
        content_type = resp.headers["Content-Type"]
        body = await resp.read()
    assert content_type.startswith(OCSP_CT)
    parts = parse_response(content_type, body)
    assert parts == [provider.responses[sha1(i.cert)] for i in certs]
    assert provider.calls == [[sha256(i.cert) for i in certs]]  # SHA-256 preferred


@sync
async def test_sha256_falls_back_to_the_paired_sha1(
    pki: testing_pki.TestPKI, certs: list[Issued]
) -> None:
    provider = Signerlike(_responses(pki, certs))  # knows SHA-1 only
    query = [("cert", sha1(i.cert)) for i in certs] + [("cert_hash", sha256(i.cert)) for i in certs]
    async with (
        service(provider) as url,
        aiohttp.ClientSession() as session,
        session.get(url, params=query) as resp,
    ):
        assert resp.status == 200
        parts = parse_response(resp.headers["Content-Type"], await resp.read())
    assert len(parts) == 3
    assert provider.calls[1] == [sha1(i.cert) for i in certs]


@pytest.mark.parametrize("param", ["cert", "cert_hash"])
@sync
async def test_one_list_alone(pki: testing_pki.TestPKI, certs: list[Issued], param: str) -> None:
    provider = Signerlike(_responses(pki, certs, both=True))
    digest = sha1 if param == "cert" else sha256
    query = [(param, digest(certs[1].cert))]
    async with (
        service(provider) as url,
        aiohttp.ClientSession() as session,
        session.get(url + "/any/path", params=query) as resp,
    ):
        assert resp.status == 200
        parts = parse_response(resp.headers["Content-Type"], await resp.read())
    assert parts == [provider.responses[sha1(certs[1].cert)]]


@sync
async def test_head_is_a_health_check_and_other_methods_are_refused() -> None:
    async with service(Signerlike({})) as url, aiohttp.ClientSession() as session:
        async with session.head(url) as resp:
            assert resp.status == 200
        async with session.post(url, data=b"x") as resp:
            assert resp.status == 405
            assert "Invalid request method: POST" in await resp.text()


@sync
async def test_unknown_cert_is_500_text(pki: testing_pki.TestPKI, certs: list[Issued]) -> None:
    provider = Signerlike(_responses(pki, certs[:1]))
    async with service(provider) as url, aiohttp.ClientSession() as session:
        query = [("cert", sha1(certs[0].cert)), ("cert", sha1(certs[1].cert))]
        async with session.get(url, params=query) as resp:
            assert resp.status == 500
            assert resp.content_type == "text/plain"
            text = await resp.text()
    assert "Could not find OCSP response for certificate " + sha1(certs[1].cert) in text


BAD_QUERIES = [
    "",
    "?cert=",
    "?cert=zz" + "0" * 38,
    "?cert=" + "0" * 39,
    "?cert_hash=" + "0" * 40,
    "?cert=" + "&cert=".join(["0" * 40] * (MAX_CERTS + 1)),
    "?foo=bar",
    "?cert=%00%ff" + "0" * 36,
    "?cert=" + "é" * 40,
]


@sync
async def test_malformed_queries_are_400_text() -> None:
    async with service(Signerlike({})) as url, aiohttp.ClientSession() as session:
        for query in BAD_QUERIES:
            async with session.get(url + "/" + query) as resp:
                text = await resp.text()
                assert resp.status == 400, (query, text)
                assert text.startswith(f"{Code.INVALID_REQUEST}: ")
                assert "Traceback" not in text


@sync
async def test_provider_failures_are_500_text(certs: list[Issued]) -> None:
    def unreachable(hashes: Sequence[str]) -> list[bytes | None]:
        raise XRoadError("signer.network_error", "The signer is unreachable")

    def buggy(hashes: Sequence[str]) -> list[bytes | None]:
        raise RuntimeError("secret internals")

    def short(hashes: Sequence[str]) -> list[bytes | None]:
        return []

    async def slow_but_fine(hashes: Sequence[str]) -> list[bytes | None]:
        await asyncio.sleep(0)
        return [b"der"] * len(hashes)

    query = [("cert", sha1(certs[0].cert))]
    async with aiohttp.ClientSession() as session:
        for provider, expected in (
            (unreachable, "signer.network_error: The signer is unreachable"),
            (buggy, f"{Code.INTERNAL_ERROR}: Error getting OCSP responses"),
            (short, f"{Code.INTERNAL_ERROR}: OCSP provider answered 0 responses"),
        ):
            async with service(provider) as url, session.get(url, params=query) as resp:
                text = await resp.text()
                assert resp.status == 500
                assert text.startswith(expected)
                assert "secret" not in text
        async with service(slow_but_fine) as url, session.get(url, params=query) as resp:
            assert resp.status == 200


def test_render_and_parse_round_trip() -> None:
    ders = [b"\x30\x03\x0a\x01\x00", b"", b"--not a boundary\r\n\r\n"]
    content_type, body = render_response(ders, boundary="b0undary")
    assert content_type == OCSP_CT + "b0undary"
    assert body.startswith(b"--b0undary\r\ncontent-type: application/ocsp-response\r\n\r\n")
    assert body.endswith(b"\r\n--b0undary--\r\n")
    assert parse_response(content_type, body) == ders


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["cert", "cert_hash", "other"]),
            st.one_of(
                st.text(max_size=70),
                st.binary(min_size=20, max_size=32).map(bytes.hex),
            ),
        ),
        max_size=40,
    )
)
def test_parse_query_never_crashes(pairs: list[tuple[str, str]]) -> None:
    try:
        queries = parse_query(MultiDict(pairs))
    except XRoadError as err:
        assert err.code == Code.INVALID_REQUEST  # noqa: PT017
        return
    assert 1 <= len(queries) <= MAX_CERTS
    for q in queries:
        assert isinstance(q, CertQuery)
        assert len(q.preferred) in (40, 64)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.text(max_size=80),
        st.sampled_from([OCSP_CT + "b", "multipart/related", "multipart/mixed; boundary=b"]),
    ),
    st.binary(max_size=300),
)
def test_parse_response_never_crashes(content_type: str | None, body: bytes) -> None:
    try:
        parts = parse_response(content_type, body)
    except XRoadError as err:
        assert err.code in (Code.INVALID_CONTENT_TYPE, Code.MIME_PARSING_FAILED)  # noqa: PT017
        return
    assert all(isinstance(p, bytes) for p in parts)


# --- the client ----------------------------------------------------------------------------------


@sync
async def test_fetch_peer_ocsp_round_trip(pki: testing_pki.TestPKI, certs: list[Issued]) -> None:
    seen: list[MultiDict[str]] = []
    responses = _responses(pki, certs, both=True)

    def provider(hashes: Sequence[str]) -> list[bytes | None]:
        return [responses.get(h) for h in hashes]

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(MultiDict(request.query))
        assert request.headers["Accept"] == "multipart/related"
        queries = parse_query(request.query)
        content_type, body = render_response(await ocsp_service.lookup(provider, queries))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async with raw_server(handler) as port, aiohttp.ClientSession() as session:
        got = await fetch_peer_ocsp(session, "127.0.0.1", [i.cert for i in certs], port=port)
        assert got == [responses[sha1(i.cert)] for i in certs]
        assert await fetch_peer_ocsp(session, "127.0.0.1", [], port=port) == []
    assert seen[0].getall("cert") == [sha1(i.cert) for i in certs]
    assert seen[0].getall("cert_hash") == [sha256(i.cert) for i in certs]
    assert len(seen) == 1


async def _fetch_error(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    certs: Sequence[x509.Certificate],
    **kw: Any,
) -> XRoadError:
    async with raw_server(handler) as port, aiohttp.ClientSession() as session:
        with pytest.raises(XRoadError) as info:
            await fetch_peer_ocsp(session, "127.0.0.1", certs, port=port, **kw)
    return info.value


@sync
async def test_fetch_errors_are_coded(certs: list[Issued]) -> None:
    two = [certs[0].cert, certs[1].cert]

    async def one_part(request: web.Request) -> web.StreamResponse:
        content_type, body = render_response([b"x"])
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def error(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500, text="Could not find OCSP response for certificate x")

    async def plain(request: web.Request) -> web.StreamResponse:
        return web.Response(text="hello")

    async def no_boundary(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x", headers={"Content-Type": "multipart/related"})

    async def broken(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=b"--b\r\nno colon here\r\n\r\nx\r\n--b--\r\n",
            headers={"Content-Type": "multipart/related; boundary=b"},
        )

    async def huge(request: web.Request) -> web.StreamResponse:
        return web.Response(
            body=b"0" * (ocsp_service.MAX_RESPONSE_BYTES + 1),
            headers={"Content-Type": "multipart/related; boundary=b"},
        )

    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.6)
        return web.Response(text="late")

    err = await _fetch_error(one_part, two)
    assert err.code == Code.INTERNAL_ERROR
    assert "(expected 2, but got 1)" in err.detail
    err = await _fetch_error(error, two)
    assert err.code == Code.HTTP_ERROR
    assert "HTTP 500: Could not find OCSP response" in err.detail
    assert (await _fetch_error(plain, two)).code == Code.INVALID_CONTENT_TYPE
    assert (await _fetch_error(no_boundary, two)).code == Code.INVALID_CONTENT_TYPE
    assert (await _fetch_error(broken, two)).code == Code.MIME_PARSING_FAILED
    assert (await _fetch_error(huge, two)).code == Code.INTERNAL_ERROR
    err = await _fetch_error(slow, two, read_timeout=0.2)
    assert err.code == Code.NETWORK_ERROR
    assert "did not answer in time" in err.detail


@sync
async def test_fetch_from_nowhere(certs: list[Issued]) -> None:
    async def nothing(request: web.Request) -> web.StreamResponse:
        return web.Response()

    async with raw_server(nothing) as port:
        pass  # the port is free again
    async with aiohttp.ClientSession() as session:
        with pytest.raises(XRoadError) as info:
            await fetch_peer_ocsp(session, "127.0.0.1", [certs[0].cert], port=port)
        assert info.value.code == Code.NETWORK_ERROR
        with pytest.raises(XRoadError) as info:
            await fetch_peer_ocsp(session, "bad host name/", [certs[0].cert])
        assert info.value.code == Code.NETWORK_ERROR


# --- the consumer's cache ------------------------------------------------------------------------


class Downloads:
    """A fetcher serving prepared responses (SHA-1 keyed); records every download."""

    def __init__(self, responses: dict[str, bytes], delay: float = 0) -> None:
        self.responses = responses
        self.delay = delay
        self.calls: list[list[str]] = []
        self.fail: XRoadError | None = None

    async def __call__(self, address: str, certs: Sequence[x509.Certificate]) -> list[bytes]:
        self.calls.append([sha1(c) for c in certs])
        await asyncio.sleep(self.delay)
        if self.fail is not None:
            raise self.fail
        return [self.responses[sha1(c)] for c in certs]


def _subjects(pki: testing_pki.TestPKI, *issued: Issued) -> list:
    return [(i.cert, pki.ca.cert) for i in issued]


@sync
async def test_cache_downloads_once_until_stale(
    pki: testing_pki.TestPKI, certs: list[Issued], snapshot: GlobalConfSnapshot
) -> None:
    fetch = Downloads(_responses(pki, certs))
    cache = PeerOcspCache(fetch)
    subjects = _subjects(pki, *certs[:2])
    first = await cache.responses(subjects, "a", snapshot, AT)
    assert first == [fetch.responses[sha1(i.cert)] for i in certs[:2]]
    assert await cache.responses(subjects, "a", snapshot, AT + dt.timedelta(seconds=3600)) == first
    assert len(fetch.calls) == 1
    # Only the missing one is asked for.
    await cache.responses(_subjects(pki, *certs), "a", snapshot, AT)
    assert fetch.calls[1] == [sha1(certs[2].cert)]
    # Stale under the instance's freshness: downloaded again.
    await cache.responses(subjects, "a", snapshot, AT + dt.timedelta(seconds=3601))
    assert len(fetch.calls) == 3
    assert len(cache) == 1  # the stale ones were dropped, the third one is left
    assert cache.downloads == 3


@sync
async def test_cache_keeps_only_what_verifies(
    pki: testing_pki.TestPKI, certs: list[Issued], snapshot: GlobalConfSnapshot
) -> None:
    wrong = pki.ocsp_for(certs[1].cert, AT)  # a response about another certificate
    revoked = pki.ocsp_for(certs[1].cert, AT, revoked_at=AT - dt.timedelta(days=1))
    future_stale = pki.ocsp_for(certs[2].cert, AT, next_update=AT + dt.timedelta(seconds=5))
    fetch = Downloads(
        {sha1(certs[0].cert): wrong, sha1(certs[1].cert): revoked, sha1(certs[2].cert): b"junk"}
    )
    cache = PeerOcspCache(fetch)
    got = await cache.responses(_subjects(pki, *certs), "a", snapshot, AT)
    assert got == [wrong, revoked, b"junk"]  # handed on, so verification names the cause
    trust = snapshot.trust_policy()
    assert cache.get(certs[0].cert, trust, AT) is None
    assert cache.get(certs[1].cert, trust, AT) == revoked  # an answer, if not a good one
    assert cache.get(certs[2].cert, trust, AT) is None
    assert cache.store(certs[2].cert, pki.ca.cert, future_stale, trust, AT)
    assert cache.get(certs[2].cert, trust, AT + dt.timedelta(seconds=6)) is None  # nextUpdate
    cache.clear()
    assert len(cache) == 0


@sync
async def test_cache_shares_one_download(
    pki: testing_pki.TestPKI, certs: list[Issued], snapshot: GlobalConfSnapshot
) -> None:
    fetch = Downloads(_responses(pki, certs), delay=0.05)
    cache = PeerOcspCache(fetch)
    subjects = _subjects(pki, certs[0], certs[0])
    results = await asyncio.gather(
        *(cache.responses(subjects, "a", snapshot, AT) for _ in range(5))
    )
    assert len(fetch.calls) == 1
    assert all(r == results[0] for r in results)


@sync
async def test_cache_download_failures(
    pki: testing_pki.TestPKI, certs: list[Issued], snapshot: GlobalConfSnapshot
) -> None:
    fetch = Downloads(_responses(pki, certs), delay=0.05)
    fetch.fail = XRoadError(Code.NETWORK_ERROR, "down")
    cache = PeerOcspCache(fetch)
    subjects = _subjects(pki, certs[0])
    results = await asyncio.gather(
        *(cache.responses(subjects, "a", snapshot, AT) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(r, XRoadError) and r.code == Code.NETWORK_ERROR for r in results)
    assert len(cache) == 0
    fetch.fail = None
    await cache.responses(subjects, "a", snapshot, AT)
    assert len(fetch.calls) == 2
    # The consumer's check reports the cause under ssl_authentication_failed.
    fetch.fail = XRoadError(Code.NETWORK_ERROR, "down")
    with pytest.raises(XRoadError) as info:
        await cache.verify_provider(snapshot, (certs[1].cert,), ClientId("EE", "A", "b"), "a", AT)
    assert info.value.code == f"{Code.SSL_AUTHENTICATION_FAILED}.{Code.NETWORK_ERROR}"

    async def short(address: str, wanted: Sequence[x509.Certificate]) -> list[bytes]:
        return []

    with pytest.raises(XRoadError) as info:
        await PeerOcspCache(short).responses(subjects, "a", snapshot, AT)
    assert info.value.code == Code.INTERNAL_ERROR


@sync
async def test_cache_is_bounded(
    pki: testing_pki.TestPKI, certs: list[Issued], snapshot: GlobalConfSnapshot
) -> None:
    cache = PeerOcspCache(Downloads(_responses(pki, certs)), max_entries=2)
    await cache.responses(_subjects(pki, *certs), "a", snapshot, AT)
    assert len(cache) == 2
    assert cache.get(certs[0].cert, snapshot.trust_policy(), AT) is None


@sync
async def test_cache_downloads_from_the_service(
    pki: testing_pki.TestPKI, certs: list[Issued], snapshot: GlobalConfSnapshot
) -> None:
    provider = Signerlike(_responses(pki, certs))
    runner, port = await start_ocsp_service(provider, "127.0.0.1", 0)
    cache = PeerOcspCache(port=port)
    try:
        got = await cache.responses(_subjects(pki, *certs), "127.0.0.1", snapshot, AT)
        assert got == [provider.responses[sha1(i.cert)] for i in certs]
        assert len(cache) == 3
    finally:
        await cache.close()
        await runner.cleanup()
