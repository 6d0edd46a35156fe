"""Evidence made end to end with our own parts: test PKI, XAdES signer, TSA core, hash chains."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from crossroad.crypto import hashchain, keys, tsp, xades
from crossroad.crypto.algorithms import SHA512, SHA512_WITH_RSA
from crossroad.crypto.asic import AsicContainer
from crossroad.crypto.profiles import KNOWN_PROFILES
from crossroad.crypto.trust import ApprovedCA, ApprovedTSA, OcspResponder, TrustPolicy
from crossroad.testing.pki import Issued, TestPKI
from crossroad.trust.tsa import TimeStampAuthority

GEN_TIME = dt.datetime(2025, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
OCSP_TIME = GEN_TIME - dt.timedelta(minutes=5)
SIGNING_TIME = GEN_TIME - dt.timedelta(minutes=1)
EJBCA = next(p for p in KNOWN_PROFILES if "Ejbca" in p)


def soap(
    client: tuple[str, str, str], body: str = "getThing", service_member: str = "222"
) -> bytes:
    inst, cls, code = client
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:id="http://x-road.eu/xsd/identifiers" xmlns:xroad="http://x-road.eu/xsd/xroad.xsd">
  <SOAP-ENV:Header>
    <xroad:client id:objectType="SUBSYSTEM">
      <id:xRoadInstance>{inst}</id:xRoadInstance><id:memberClass>{cls}</id:memberClass>
      <id:memberCode>{code}</id:memberCode><id:subsystemCode>client</id:subsystemCode>
    </xroad:client>
    <xroad:service id:objectType="SERVICE">
      <id:xRoadInstance>EE</id:xRoadInstance><id:memberClass>GOV</id:memberClass>
      <id:memberCode>{service_member}</id:memberCode><id:subsystemCode>svc</id:subsystemCode>
      <id:serviceCode>getThing</id:serviceCode>
    </xroad:service>
    <xroad:id>4f1c</xroad:id><xroad:protocolVersion>4.0</xroad:protocolVersion>
  </SOAP-ENV:Header>
  <SOAP-ENV:Body><ns:{body} xmlns:ns="urn:x"><ns:n>1</ns:n></ns:{body}></SOAP-ENV:Body>
</SOAP-ENV:Envelope>""".encode()


REST_RESPONSE = (
    b"200\r\nOK\r\nContent-Type:application/json\r\nx-road-id:EE-1\r\n"
    b"x-road-client:EE/COM/111/client\r\nx-road-service:EE/GOV/222/svc/things\r\n"
    b"x-road-request-hash:AAAA\r\n"
)


@dataclass
class Factory:
    """Makes signed, time-stamped containers for one member (EE/COM/111) of a test instance."""

    pki: TestPKI
    signer: Issued
    provider: Issued
    tsa: TimeStampAuthority
    serial: list[int] = field(default_factory=lambda: [1])

    @property
    def trust(self) -> TrustPolicy:
        ca = ApprovedCA(
            name="Test CA",
            top_ca=self.pki.ca.cert,
            certificate_profile=EJBCA,
            ocsp=(OcspResponder("http://ocsp.test", self.pki.ocsp.cert),),
        )
        tsa = ApprovedTSA("Test TSA", "http://tsa.test", self.pki.tsa.cert)
        return TrustPolicy(instance="EE", cas=(ca,), tsas=(tsa,), ocsp_freshness_seconds=3600)

    def stamp(self, data: bytes, gen_time: dt.datetime = GEN_TIME) -> bytes:
        request = tsp.build_request(data, SHA512)
        self.serial[0] += 1
        response = self.tsa.respond(request, gen_time=gen_time, serial=self.serial[0])
        return tsp.token_from_response(response, request)

    def sign(
        self,
        requests: Sequence[Sequence[xades.MessagePart]],
        who: Issued | None = None,
        ocsp_time: dt.datetime = OCSP_TIME,
    ) -> list[xades.SignedMessage]:
        who = who or self.signer
        return xades.sign_batch(
            requests,
            signing_cert=who.cert,
            ocsp_responses=[self.pki.ocsp_for(who.cert, ocsp_time)],
            sign=lambda data: keys.sign(who.key, SHA512_WITH_RSA, data),  # type: ignore[arg-type]
            signing_time=SIGNING_TIME,
        )

    def container(
        self,
        message: bytes,
        attachments: Sequence[bytes] = (),
        *,
        batch_signature: bool = False,
        batch_timestamp: bool = False,
        who: Issued | None = None,
        ocsp_time: dt.datetime = OCSP_TIME,
        gen_time: dt.datetime = GEN_TIME,
    ) -> bytes:
        """A container for ``message``: hash-chain signature when it has attachments or
        ``batch_signature``; single or batch time-stamp."""
        parts = [xades.MessagePart("/message.xml", SHA512, data=message)]
        parts += [
            xades.MessagePart(f"/attachment{i}", SHA512, data=a)
            for i, a in enumerate(attachments, 1)
        ]
        requests = [parts]
        if batch_signature:  # signed together with another request: hash-chain shape
            other = soap(("EE", "COM", "111"), body="other")
            requests.append([xades.MessagePart("/message.xml", SHA512, data=other)])
        signed = self.sign(requests, who, ocsp_time)[0]
        sig_chain = (
            (signed.hash_chain_result, signed.hash_chain)
            if signed.hash_chain_result is not None and signed.hash_chain is not None
            else None
        )
        if not batch_timestamp:
            token = self.stamp(xades.signature_value(signed.signature_xml), gen_time)
            signature = xades.add_timestamp(signed.signature_xml, token)
            return AsicContainer.build(
                message, signature, attachments=attachments, sig_hash_chain=sig_chain
            ).render()
        # Batch time-stamp: a chain over this record's and another record's signature hash.
        inputs = [
            [("/META-INF/signatures.xml", SHA512.digest(signed.signature_xml))],
            [("/META-INF/signatures.xml", SHA512.digest(b"<another signature/>"))],
        ]
        result, chains = hashchain.build(inputs, SHA512, chain_uri="/ts-hashchain.xml")
        token = self.stamp(result, gen_time)
        return AsicContainer.build(
            message,
            signed.signature_xml,
            attachments=attachments,
            sig_hash_chain=sig_chain,
            ts_hash_chain=(result, chains[0]),
            timestamp=token,
        ).render()


@pytest.fixture(scope="session")
def factory(pki: TestPKI) -> Factory:
    return Factory(
        pki=pki,
        signer=pki.sign_cert("EE", "COM", "111"),
        provider=pki.sign_cert("EE", "GOV", "222"),
        tsa=TimeStampAuthority(key=pki.tsa.key, cert=pki.tsa.cert),  # type: ignore[arg-type]
    )
