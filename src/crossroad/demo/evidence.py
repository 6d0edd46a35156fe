"""The evidence demo: trust services, two signed and time-stamped messages, their verification.

What it does, all on 127.0.0.1 over real HTTP:

1. starts the test CA, OCSP responder and TSA (state kept under ``DIR/trust``);
2. generates signing keys for two members and has the CA certify them (FiVRK profile);
3. fetches and verifies OCSP responses for both certificates;
4. signs a SOAP request of the client (simple signature shape) and a REST response of the
   provider with a JSON body (hash-chain shape), exactly as security servers sign them (§4.6);
5. time-stamps both signatures in one batch at the TSA (§9.2) and seals each message into an
   ASiC-E container (§9.3);
6. writes a global configuration directory that trusts this CA and TSA, and a log archive with
   ``linkinginfo`` holding both containers (§9.5);
7. verifies every container and the archive, and returns the reports.
"""

from __future__ import annotations

import base64
import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from crossroad.clock import SYSTEM, Clock
from crossroad.crypto import archive, keys, ocsp, tsp, xades
from crossroad.crypto.algorithms import SHA512, SHA512_WITH_RSA
from crossroad.crypto.hashchain import attachment_name
from crossroad.evidence import verifier
from crossroad.evidence.report import ArchiveVerification, Report
from crossroad.evidence.stamping import SignedRecord, seal, stamp_input
from crossroad.globalconf.model import (
    ApprovedCAInfo,
    ApprovedTSAInfo,
    CaInfo,
    GlobalSettings,
    Member,
    MemberClass,
    OcspInfo,
    SharedParameters,
    Subsystem,
)
from crossroad.identifiers import ClientId, SecurityServerId, ServiceId
from crossroad.trust import client
from crossroad.trust.service import TrustServices, start_trust_services

INSTANCE = "DEV"
FIVRK = "ee.ria.xroad.common.certificateprofile.impl.FiVRKCertificateProfileInfoProvider"
CLIENT = ClientId(INSTANCE, "COM", "4321", "TestClient")
PROVIDER = ClientId(INSTANCE, "COM", "1234", "TestService")
CLIENT_SERVER = SecurityServerId(CLIENT.member_id(), "SS1")
PROVIDER_SERVER = SecurityServerId(PROVIDER.member_id(), "SS0")
SOAP_SERVICE = ServiceId(PROVIDER, "getRandom", "v1")
REST_SERVICE = ServiceId(PROVIDER, "pets")


@dataclass(frozen=True)
class DemoResult:
    directory: Path
    globalconf: Path
    containers: tuple[tuple[Path, Report], ...]
    archive: tuple[Path, ArchiveVerification]
    trust: TrustServices
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(r.valid for _, r in self.containers) and self.archive[1].valid


@dataclass(frozen=True)
class _Signer:
    member: ClientId
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    ocsp: bytes

    def sign(self, data: bytes) -> bytes:
        return keys.sign(self.key, SHA512_WITH_RSA, data)


def soap_request(query_id: str) -> bytes:
    """A SOAP 4.0 request of the demo client, as its information system sends it (§2.2)."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xroad="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers"
    xmlns:ns1="http://test.x-road.global/producer">
  <SOAP-ENV:Header>
    <xroad:client id:objectType="SUBSYSTEM"><id:xRoadInstance>{CLIENT.instance}</id:xRoadInstance
      ><id:memberClass>{CLIENT.member_class}</id:memberClass><id:memberCode>{CLIENT.member_code}</id:memberCode
      ><id:subsystemCode>{CLIENT.subsystem_code}</id:subsystemCode></xroad:client>
    <xroad:service id:objectType="SERVICE"><id:xRoadInstance>{PROVIDER.instance}</id:xRoadInstance
      ><id:memberClass>{PROVIDER.member_class}</id:memberClass><id:memberCode>{PROVIDER.member_code}</id:memberCode
      ><id:subsystemCode>{PROVIDER.subsystem_code}</id:subsystemCode><id:serviceCode>getRandom</id:serviceCode
      ><id:serviceVersion>v1</id:serviceVersion></xroad:service>
    <xroad:id>{query_id}</xroad:id>
    <xroad:protocolVersion>4.0</xroad:protocolVersion>
  </SOAP-ENV:Header>
  <SOAP-ENV:Body><ns1:getRandom/></SOAP-ENV:Body>
</SOAP-ENV:Envelope>
""".encode()


def rest_response(query_id: str, request_id: str, body: bytes) -> bytes:
    """The REST response header part a provider's security server signs (§4.5)."""
    lines = [
        "200",
        "OK",
        "Content-Type:application/json",
        f"x-road-id:{query_id}",
        f"x-road-client:{CLIENT.to_header()}",
        f"x-road-service:{REST_SERVICE.to_path()}",
        f"x-road-request-id:{request_id}",
        f"x-road-request-hash:{base64.b64encode(SHA512.digest(body)).decode()}",
    ]
    return "".join(line + "\r\n" for line in lines).encode()


async def _certify(
    session: aiohttp.ClientSession, trust: TrustServices, member: ClientId, server: SecurityServerId
) -> _Signer:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, member.member_code)]))
        .sign(key, hashes.SHA256())
    )
    cert = await client.request_certificate(
        session,
        trust.ca_url,
        csr.public_bytes(serialization.Encoding.PEM),
        "sign",
        member=member,
        server=server,
    )
    response = await client.fetch_ocsp(session, trust.ocsp_url, cert, trust.ca_cert)
    return _Signer(member, key, cert, response)


def shared_parameters(trust: TrustServices) -> SharedParameters:
    """Shared parameters that approve the demo CA (with its OCSP responder) and TSA."""
    der = serialization.Encoding.DER
    com = MemberClass("COM", "Commercial")
    return SharedParameters(
        instance_identifier=INSTANCE,
        global_settings=GlobalSettings(ocsp_freshness_seconds=3600, member_classes=(com,)),
        approved_cas=(
            ApprovedCAInfo(
                name="Demo CA",
                top_ca=CaInfo(
                    trust.ca_cert.public_bytes(der),
                    (OcspInfo(trust.ocsp_url, trust.ocsp_cert.public_bytes(der)),),
                ),
                certificate_profile_info=FIVRK,
                authentication_only=False,
            ),
        ),
        approved_tsas=(
            ApprovedTSAInfo("Demo TSA", trust.tsa_url, trust.tsa_cert.public_bytes(der)),
        ),
        members=(
            Member(com, "1234", "Demo provider", (Subsystem("TestService"),)),
            Member(com, "4321", "Demo client", (Subsystem("TestClient"),)),
        ),
    )


def write_globalconf(path: Path, params: SharedParameters) -> None:
    """The on-disk layout the NIIS configuration client writes (V2 shared parameters)."""
    (path / INSTANCE).mkdir(parents=True, exist_ok=True)
    (path / "instance-identifier").write_text(INSTANCE)
    (path / INSTANCE / "shared-params.xml").write_bytes(params.render(2))


async def run(directory: Path, clock: Clock = SYSTEM) -> DemoResult:
    """Run the evidence demo under ``directory``; the trust services stop when it returns."""
    directory.mkdir(parents=True, exist_ok=True)
    evidence_dir = directory / "evidence"
    # Each run starts a new archive chain; the PKI under trust/ is kept between runs.
    if evidence_dir.exists():
        shutil.rmtree(evidence_dir)
    evidence_dir.mkdir()
    async with (
        start_trust_services(directory / "trust", instance=INSTANCE, clock=clock) as trust,
        aiohttp.ClientSession() as session,
    ):
        consumer = await _certify(session, trust, CLIENT.member_id(), CLIENT_SERVER)
        provider = await _certify(session, trust, PROVIDER.member_id(), PROVIDER_SERVER)
        params = shared_parameters(trust)
        policy = params.trust_policy()
        now = clock.now()
        for s in (consumer, provider):
            ocsp.verify_response(s.ocsp, s.cert, trust.ca_cert, policy, now)

        query_id = f"{INSTANCE}-{uuid.uuid4()}"
        request_id = str(uuid.uuid4())
        request = soap_request(query_id)
        body = json.dumps({"id": 1124, "name": "Rex", "status": "available"}).encode()
        response = rest_response(query_id, request_id, body)

        # The client signs its request alone: simple shape (one part, /message.xml).
        [soap_sig] = xades.sign_batch(
            [[xades.MessagePart("/message.xml", SHA512, data=request)]],
            signing_cert=consumer.cert,
            ocsp_responses=[consumer.ocsp],
            sign=consumer.sign,
            signing_time=now,
        )
        # The provider's response has a body: hash-chain shape (/message.xml + /attachment1).
        [rest_sig] = xades.sign_batch(
            [
                [
                    xades.MessagePart("/message.xml", SHA512, data=response),
                    xades.MessagePart(attachment_name(1), SHA512, data=body),
                ]
            ],
            signing_cert=provider.cert,
            ocsp_responses=[provider.ocsp],
            sign=provider.sign,
            signing_time=now,
        )
        records = [
            SignedRecord(request, soap_sig.signature_xml),
            SignedRecord(
                response,
                rest_sig.signature_xml,
                attachments=(body,),
                sig_hash_chain_result=rest_sig.hash_chain_result,
                sig_hash_chain=rest_sig.hash_chain,
            ),
        ]
        # Both records wait for the same time-stamping round: one batch token (§9.2).
        stamp = stamp_input(records)
        token = await client.fetch_timestamp(session, trust.tsa_url, stamp.data)
        # As a security server does before storing it: the token carries the approved TSA cert.
        token = tsp.add_certificate(token, trust.tsa_cert)
        containers = seal(records, stamp, token)

        globalconf = directory / "globalconf"
        write_globalconf(globalconf, params)
        results = []
        named = []
        for role, container in zip(("request", "response"), containers, strict=True):
            data = container.render()
            path = evidence_dir / f"{query_id}-{role}.asice"
            path.write_bytes(data)
            named.append((path.name, data))
            results.append((path, verifier.verify_container(data, policy, name=path.name)))
        archive_bytes, _, archive_name = archive.build_archive(
            named, None, start=now, end=clock.now()
        )
        archive_path = evidence_dir / archive_name
        archive_path.write_bytes(archive_bytes)
        archive_report = verifier.verify_archive(
            archive_bytes, policy, name=archive_name, previous_digest=""
        )
        return DemoResult(
            directory=directory,
            globalconf=globalconf,
            containers=tuple(results),
            archive=(archive_path, archive_report),
            trust=trust,
        )
