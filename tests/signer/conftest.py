"""Signer fixtures: SoftHSM2 tokens, the real trust services, signers on temporary state."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.clock import SYSTEM, Clock
from crossroad.crypto import xades
from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.crypto.profiles import KNOWN_PROFILES
from crossroad.crypto.trust import ApprovedCA, OcspResponder, TrustPolicy
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.signer.csr import csr_pem
from crossroad.signer.manager import Signer, SignerSettings, init_state
from crossroad.signer.ocsp import TrustSource
from crossroad.testing.services import trust_services_thread
from crossroad.trust.client import request_certificate
from crossroad.trust.service import TrustServices

PIN = "1234-secret"
SO_PIN = "5678-so"
FIVRK = next(p for p in KNOWN_PROFILES if "FiVRK" in p)
MEMBER = ClientId("DEV", "COM", "1234")
SERVER = SecurityServerId(MEMBER, "ss1")
SOFTHSM_LIBS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)
TOKEN_POOL = 16


@dataclass
class SoftHsm:
    """A SoftHSM2 token directory made for this test session, with a pool of fresh tokens.

    The PKCS#11 library reads its configuration and token list when first loaded in a
    process, so every token this test run uses is created up front; tests take one each.
    """

    conf: Path
    lib: str
    labels: list[str]
    used: int = 0

    def take(self) -> str:
        if self.used >= len(self.labels):
            raise RuntimeError("SoftHSM token pool exhausted: raise TOKEN_POOL")
        self.used += 1
        return self.labels[self.used - 1]

    def env(self) -> dict[str, str]:
        return {**os.environ, "SOFTHSM2_CONF": str(self.conf)}


def _softhsm_lib() -> str | None:
    return next((p for p in SOFTHSM_LIBS if Path(p).is_file()), None)


@pytest.fixture(scope="session")
def softhsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoftHsm]:
    lib = _softhsm_lib()
    if shutil.which("softhsm2-util") is None or lib is None:
        if os.environ.get("CI"):
            pytest.fail("softhsm2 is not installed; CI must install it (apt-get install softhsm2)")
        pytest.skip("softhsm2 is not installed (apt-get install softhsm2) - PKCS#11 tests skipped")
    base = tmp_path_factory.mktemp("softhsm")
    (base / "tokens").mkdir()
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    labels = [f"crossroad-{i}" for i in range(TOKEN_POOL)]
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    for label in labels:
        pins = ["--pin", PIN, "--so-pin", SO_PIN]
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, *pins],
            check=True,
            capture_output=True,
            env=env,
        )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    yield SoftHsm(conf, lib, labels)
    if previous is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = previous


@pytest.fixture(scope="session")
def trust_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrustServices]:
    """The real CA, OCSP responder and TSA on ephemeral ports, in a thread of their own."""
    with trust_services_thread(tmp_path_factory.mktemp("trust")) as services:
        yield services


def policy_of(services: TrustServices, *, freshness: int = 3600) -> TrustPolicy:
    ca = ApprovedCA(
        name="Test CA",
        top_ca=services.ca_cert,
        certificate_profile=FIVRK,
        ocsp=(OcspResponder(services.ocsp_url, services.ocsp_cert),),
    )
    return TrustPolicy(instance="DEV", cas=(ca,), ocsp_freshness_seconds=freshness)


@pytest.fixture
def trust(trust_services: TrustServices) -> TrustPolicy:
    return policy_of(trust_services)


@contextlib.asynccontextmanager
async def running_signer(
    state: Path,
    *,
    trust: TrustSource = lambda: None,
    modules: Sequence[tuple[str, str]] = (),
    settings: SignerSettings | None = None,
    clock: Clock = SYSTEM,
) -> AsyncIterator[Signer]:
    """A started signer on a fresh state directory (software token PIN: ``PIN``)."""
    if not (state / "keyconf.json").exists():
        init_state(state, PIN, pkcs11_modules=modules)
    signer = Signer(state, trust=trust, settings=settings, clock=clock)
    await signer.start()
    try:
        yield signer
    finally:
        await signer.close()


async def certify(
    signer: Signer,
    services: TrustServices,
    key_id: str,
    usage: str = "sign",
    *,
    member: ClientId = MEMBER,
) -> x509.Certificate:
    """CSR through the signer, certificate from the real CA over HTTP, imported back."""
    record = await signer.generate_csr(
        key_id,
        usage,  # type: ignore[arg-type]
        member=member if usage == "sign" else None,
        server=SecurityServerId(member, "ss1"),
        profile="fivrk",
    )
    async with aiohttp.ClientSession() as session:
        cert = await request_certificate(session, services.ca_url, csr_pem(record.der), usage)
    await signer.import_cert(cert.public_bytes(Encoding.PEM))
    return cert


def message_parts(
    n: int, attachments: int = 0, digest: DigestAlgorithm = SHA512
) -> tuple[list[xades.MessagePart], dict[str, bytes]]:
    """The parts of message ``n`` (digests only, as the proxies send them) and its raw bytes."""
    files = {"/message.xml": f"<Envelope><n>{n}</n></Envelope>".encode()}
    for i in range(1, attachments + 1):
        files[f"/attachment{i}"] = f"attachment {n}.{i}".encode() * 50
    parts = [
        xades.MessagePart(name, digest, digest_value=digest.digest(data))
        for name, data in files.items()
    ]
    return parts, files


def verify_signed(
    signed: xades.SignedMessage,
    files: dict[str, bytes],
    trust: TrustPolicy,
    member: ClientId = MEMBER,
    at: dt.datetime | None = None,
) -> xades.SignatureInfo:
    """Verify a signature the signer returned, in either shape."""
    digests: dict[str, bytes | None] | None = None
    if signed.hash_chain_result is not None:
        digests = {name: SHA512.digest(data) for name, data in files.items()}
    return xades.verify_signature(
        signed.signature_xml,
        signer=member,
        trust=trust,
        at=at or SYSTEM.now(),
        resolve=files.get,
        hash_chain=signed.hash_chain,
        hash_chain_result=signed.hash_chain_result,
        part_digests=digests,
    )
