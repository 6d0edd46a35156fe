"""Batch signing and OCSP for own certificates, against the real trust services over HTTP.

Certificates come from the running test CA, OCSP responses from the running responder;
signatures are verified with :func:`crossroad.crypto.xades.verify_signature` under a trust
policy naming that CA.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509

from crossroad.clock import SYSTEM
from crossroad.crypto import ocsp
from crossroad.crypto.algorithms import SHA256
from crossroad.crypto.certs import cert_hash_hex
from crossroad.crypto.trust import TrustPolicy
from crossroad.errors import Code, XRoadError
from crossroad.signer.client import SignerClient
from crossroad.signer.manager import Signer, SignerSettings
from crossroad.signer.service import serve
from crossroad.testing.clock import FrozenClock
from crossroad.trust.service import TrustServices

from .conftest import MEMBER, PIN, SoftHsm, certify, message_parts, running_signer, verify_signed

pytestmark = pytest.mark.integration

QUIET = SignerSettings(ocsp_interval=3600, ocsp_retry=0.05)


async def eventually(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def ready_member(
    signer: Signer,
    services: TrustServices,
    *,
    token: str = "0",
    spec: str = "rsa2048",
) -> x509.Certificate:
    """Log in, generate the member's signing key, certify it, wait for its OCSP response."""
    await signer.login(token, PIN)
    token_id = signer.token(token).id
    key = await signer.generate_key(token_id, spec, member=MEMBER)
    cert = await certify(signer, services, key.id)
    await eventually(lambda: signer.ocsp.cached(cert) is not None)
    return cert


async def sign_concurrently(
    signer: Signer, socket: Path, count: int
) -> list[tuple[object, dict[str, bytes]]]:
    """``count`` requests at once through the real unix-socket protocol."""
    requests = [message_parts(n, attachments=n % 3) for n in range(count)]
    async with serve(signer, socket), SignerClient(socket) as client:
        results = await asyncio.gather(
            *(client.sign(MEMBER.subsystem("client"), parts) for parts, _ in requests)
        )
    return [(signed, files) for signed, (_, files) in zip(results, requests, strict=True)]


def test_batch_signing_over_the_socket(
    tmp_path: Path, trust_services: TrustServices, trust: TrustPolicy
) -> None:
    async def main() -> None:
        async with running_signer(tmp_path / "s", trust=lambda: trust, settings=QUIET) as signer:
            await ready_member(signer, trust_services)
            token = signer.tokens["0"]
            before = token.sign_operations
            signed = await sign_concurrently(signer, tmp_path / "signer.sock", 100)
            operations = token.sign_operations - before
            stats = signer.batch_stats()
        # One private-key operation covers every request that waited on the key.
        assert stats["signed"] == 100
        assert stats["batches"] == operations
        # How many requests share an operation depends on arrival timing over the socket; the
        # batching rule itself is pinned down deterministically in test_batch.py.
        assert operations <= 100
        shapes = set()
        for result, files in signed:
            info = verify_signed(result, files, trust)  # type: ignore[arg-type]
            assert info.signer == MEMBER
            shapes.add(result.hash_chain_result is None)  # type: ignore[attr-defined]
        assert False in shapes  # batches use the hash-chain shape

    asyncio.run(main())


def test_single_request_gets_the_simple_shape(
    tmp_path: Path, trust_services: TrustServices, trust: TrustPolicy
) -> None:
    async def main() -> None:
        async with running_signer(tmp_path / "s", trust=lambda: trust, settings=QUIET) as signer:
            await ready_member(signer, trust_services, spec="ec-p256")
            parts, files = message_parts(7)
            simple = await signer.sign(MEMBER, parts)
            assert (simple.hash_chain_result, simple.hash_chain) == (None, None)
            assert b"#ecdsa-sha512" in simple.signature_xml
            verify_signed(simple, files, trust)
            parts, files = message_parts(8, attachments=2)
            chained = await signer.sign(MEMBER, parts)
            assert chained.hash_chain_result is not None
            verify_signed(chained, files, trust)

    asyncio.run(main())


def test_batch_signing_on_softhsm(
    tmp_path: Path, trust_services: TrustServices, trust: TrustPolicy, softhsm: SoftHsm
) -> None:
    async def main() -> None:
        async with running_signer(
            tmp_path / "s",
            trust=lambda: trust,
            settings=SignerSettings(ocsp_interval=3600, ocsp_retry=0.05, rsa_pss=True),
            modules=[("softhsm", softhsm.lib)],
        ) as signer:
            label = softhsm.take()
            await ready_member(signer, trust_services, token=label)
            token = signer.token(label)
            before = token.sign_operations
            signed = await sign_concurrently(signer, tmp_path / "signer.sock", 40)
            operations = token.sign_operations - before
        assert operations <= 40  # timing-dependent; see test_batch.py for the rule itself
        for result, files in signed:
            assert b"sha512-rsa-MGF1" in result.signature_xml  # type: ignore[attr-defined]
            verify_signed(result, files, trust)  # type: ignore[arg-type]

    asyncio.run(main())


def test_signing_errors(tmp_path: Path, trust_services: TrustServices, trust: TrustPolicy) -> None:
    async def main() -> None:
        async with running_signer(tmp_path / "s", trust=lambda: trust, settings=QUIET) as signer:
            parts, _ = message_parts(1)
            with pytest.raises(XRoadError) as err:
                await signer.sign(MEMBER, parts)
            assert err.value.code == Code.UNKNOWN_MEMBER
            await ready_member(signer, trust_services)
            await signer.logout("0")
            with pytest.raises(XRoadError) as err:
                await signer.sign(MEMBER, parts)
            assert err.value.code == Code.TOKEN_NOT_ACTIVE
            await signer.login("0", PIN)
            with pytest.raises(XRoadError) as err:  # digests made with another algorithm
                await signer.sign(MEMBER, message_parts(1, digest=SHA256)[0])
            assert err.value.code == Code.CANNOT_CREATE_SIGNATURE
            cert = signer.signing_cert(MEMBER)
            await signer.set_cert_active(cert.id, False)
            with pytest.raises(XRoadError) as err:
                await signer.sign(MEMBER, parts)
            assert err.value.code == Code.CERT_NOT_FOUND

    asyncio.run(main())


async def revoke(services: TrustServices, cert: x509.Certificate) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{services.ca_url}revoke", data=str(cert.serial_number)) as resp,
    ):
        assert resp.status == 200, await resp.text()


def test_ocsp_fetched_cached_and_revocation_honoured(
    tmp_path: Path, trust_services: TrustServices, trust: TrustPolicy
) -> None:
    state = tmp_path / "s"

    async def main() -> None:
        async with running_signer(state, trust=lambda: trust, settings=QUIET) as signer:
            cert = await ready_member(signer, trust_services)
            digest = cert_hash_hex(cert)
            der = signer.ocsp.response(cert)
            status = ocsp.verify_response(der, cert, trust_services.ca_cert, trust, SYSTEM.now())
            assert status.good
            assert (state / "ocsp" / f"{digest}.der").read_bytes() == der
            assert signer.ocsp_responses([digest, "00" * 20]) == [der, None]
            assert signer.ocsp.tracked() == (digest,)
            fetches = signer.ocsp.fetches

        # A restarted signer serves the saved response at once, before any fetch.
        async with running_signer(state, trust=lambda: trust, settings=QUIET) as signer:
            assert signer.ocsp_responses([digest]) == [der]
            await signer.login("0", PIN)
            await revoke(trust_services, cert)
            revoked = await signer.ocsp.refresh(cert)
            assert revoked.status == ocsp.REVOKED
            assert signer.ocsp_responses([digest]) == [None]
            with pytest.raises(XRoadError) as err:
                signer.ocsp.response(cert)
            assert err.value.code == Code.CERT_VALIDATION
            assert ocsp.REVOKED in err.value.detail
            with pytest.raises(XRoadError) as err:
                await signer.sign(MEMBER, message_parts(1)[0])
            assert err.value.code == Code.CERT_VALIDATION
            assert signer.status()["certs"][0]["ocsp"]["status"] == ocsp.REVOKED
        assert fetches >= 1

    asyncio.run(main())


def test_ocsp_freshness_and_retry(
    tmp_path: Path, trust_services: TrustServices, trust: TrustPolicy
) -> None:
    clock = FrozenClock(SYSTEM.now())
    policy: list[TrustPolicy | None] = [None]  # no global configuration yet
    settings = SignerSettings(
        ocsp_interval=3600,
        ocsp_retry=0.05,
        ocsp_responder_urls=("http://127.0.0.1:9/unreachable",),  # tried first, fails
    )

    async def main() -> None:
        async with running_signer(
            tmp_path / "s", trust=lambda: policy[0], settings=settings, clock=clock
        ) as signer:
            await signer.login("0", PIN)
            key = await signer.generate_key("0", "ec-p256", member=MEMBER)
            policy[0] = trust  # importing needs the policy to find the member
            cert = await certify(signer, trust_services, key.id)
            policy[0] = None
            await asyncio.sleep(0.2)  # a few retries without a trust policy
            assert signer.ocsp.cached(cert) is None
            assert "trust policy" in signer.status()["certs"][0]["ocsp"]["error"]
            policy[0] = trust  # the configuration arrives: the next retry succeeds
            await eventually(lambda: signer.ocsp.cached(cert) is not None)
            assert signer.ocsp.response(cert)
            clock.advance(trust.ocsp_freshness_seconds + 1)
            with pytest.raises(XRoadError) as err:
                signer.ocsp.response(cert)
            assert "no longer fresh" in err.value.detail
            assert signer.ocsp_responses([cert_hash_hex(cert)]) == [None]

    asyncio.run(main())
