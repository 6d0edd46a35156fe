"""Message-log fixtures: signed SOAP and REST messages of a test instance ``EE``, the real trust
services (their TSA stamps), and a global configuration naming both."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from crossroad.crypto import keys, xades
from crossroad.crypto.algorithms import SHA512, SHA512_WITH_RSA
from crossroad.crypto.certs import cert_der
from crossroad.crypto.profiles import KNOWN_PROFILES
from crossroad.globalconf.model import (
    ApprovedCAInfo,
    ApprovedTSAInfo,
    CaInfo,
    GlobalSettings,
    ManagementService,
    MemberClass,
    OcspInfo,
    PrivateParameters,
    SharedParameters,
)
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId
from crossroad.messagelog.manager import MessageLog
from crossroad.messagelog.records import MessageRecord, Side, new_record
from crossroad.messagelog.settings import LogSettings
from crossroad.messagelog.store import MessageLogStore
from crossroad.storage.engine import create_engine
from crossroad.testing.pki import Issued, TestPKI
from crossroad.testing.services import trust_services_thread
from crossroad.trust.service import TrustServices

EJBCA = next(p for p in KNOWN_PROFILES if "Ejbca" in p)
CLIENT = ClientId("EE", "COM", "111", "client")
PROVIDER = ClientId("EE", "GOV", "222", "svc")
OTHER = ClientId("EE", "COM", "333", "other")
DEAD_TSA = "http://127.0.0.1:9/"  # the discard port: nothing answers


def soap(
    query_id: str,
    *,
    response: bool = False,
    client: ClientId = CLIENT,
    body: str = "<ns:n>1</ns:n>",
) -> bytes:
    name = "getThingResponse" if response else "getThing"
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:id="http://x-road.eu/xsd/identifiers" xmlns:xroad="http://x-road.eu/xsd/xroad.xsd">
  <SOAP-ENV:Header>
    <xroad:client id:objectType="SUBSYSTEM">
      <id:xRoadInstance>{client.instance}</id:xRoadInstance>
      <id:memberClass>{client.member_class}</id:memberClass>
      <id:memberCode>{client.member_code}</id:memberCode>
      <id:subsystemCode>{client.subsystem_code}</id:subsystemCode>
    </xroad:client>
    <xroad:service id:objectType="SERVICE">
      <id:xRoadInstance>EE</id:xRoadInstance><id:memberClass>GOV</id:memberClass>
      <id:memberCode>222</id:memberCode><id:subsystemCode>svc</id:subsystemCode>
      <id:serviceCode>getThing</id:serviceCode>
    </xroad:service>
    <xroad:id>{query_id}</xroad:id><xroad:protocolVersion>4.0</xroad:protocolVersion>
  </SOAP-ENV:Header>
  <SOAP-ENV:Body><ns:{name} xmlns:ns="urn:x">{body}</ns:{name}></SOAP-ENV:Body>
</SOAP-ENV:Envelope>""".encode()


def rest_request(query_id: str, client: ClientId = CLIENT) -> bytes:
    return (
        "POST\r\n/r1/EE/GOV/222/svc/things/v1/items?x=1\r\n"
        "Content-Type:application/json\r\nAccept:application/json\r\n"
        f"x-road-client:{'/'.join(client.parts())}\r\nx-road-id:{query_id}\r\n"
        "x-road-request-id:f00d\r\n"
    ).encode()


def rest_response(query_id: str, client: ClientId = CLIENT) -> bytes:
    return (
        "200\r\nOK\r\nContent-Type:application/json\r\n"
        f"x-road-id:{query_id}\r\nx-road-client:{'/'.join(client.parts())}\r\n"
        "x-road-service:EE/GOV/222/svc/things\r\nx-road-request-id:f00d\r\n"
        "x-road-request-hash:AAAA\r\n"
    ).encode()


@dataclass
class Signers:
    """Signs messages as EE/COM/111 (client) or EE/GOV/222 (provider) with OCSP of now."""

    pki: TestPKI
    client: Issued
    provider: Issued

    def sign(
        self, parts_list: Sequence[Sequence[xades.MessagePart]], who: Issued
    ) -> list[xades.SignedMessage]:
        now = dt.datetime.now(dt.UTC)
        return xades.sign_batch(
            parts_list,
            signing_cert=who.cert,
            ocsp_responses=[self.pki.ocsp_for(who.cert, now - dt.timedelta(seconds=30))],
            sign=lambda data: keys.sign(who.key, SHA512_WITH_RSA, data),
            signing_time=now,
        )

    def signed(
        self, message: bytes, attachments: Sequence[bytes] = (), *, response: bool = False
    ) -> xades.SignedMessage:
        parts = [xades.MessagePart("/message.xml", SHA512, data=message)]
        parts += [
            xades.MessagePart(f"/attachment{i}", SHA512, data=a)
            for i, a in enumerate(attachments, 1)
        ]
        return self.sign([parts], self.provider if response else self.client)[0]


@pytest.fixture(scope="session")
def signers(pki: TestPKI) -> Signers:
    return Signers(pki, pki.sign_cert("EE", "COM", "111"), pki.sign_cert("EE", "GOV", "222"))


def make_record(
    signers: Signers,
    *,
    query_id: str | None = None,
    response: bool = False,
    rest: bool = False,
    side: Side = Side.CLIENT,
    attachments: Sequence[bytes] = (),
    client: ClientId = CLIENT,
    at: dt.datetime | None = None,
    **kw: Any,
) -> MessageRecord:
    query_id = query_id or f"q-{uuid.uuid4()}"
    if rest:
        message = rest_response(query_id, client) if response else rest_request(query_id, client)
    else:
        message = soap(query_id, response=response, client=client)
    signed = signers.signed(message, attachments, response=response)
    return new_record(
        side,
        response,
        message,
        signed.signature_xml,
        rest=rest,
        at=at or dt.datetime.now(dt.UTC),
        hash_chain_result=signed.hash_chain_result,
        hash_chain=signed.hash_chain,
        **kw,
    )


# --------------------------------------------------------------------------- trust services


@pytest.fixture(scope="session")
def trust_services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrustServices]:
    """The real CA, OCSP responder and TSA, in a thread with their own event loop."""
    with trust_services_thread(tmp_path_factory.mktemp("trust")) as services:
        yield services


def globalconf(
    pki: TestPKI,
    tsas: Sequence[tuple[str, bytes]],
    *,
    interval: int = 60,
    instance: str = "EE",
) -> GlobalConfSnapshot:
    ca = ApprovedCAInfo(
        name="Test CA",
        top_ca=CaInfo(
            cert_der(pki.ca.cert), (OcspInfo("http://ocsp.test", cert_der(pki.ocsp.cert)),)
        ),
        certificate_profile_info=EJBCA,
    )
    shared = SharedParameters(
        instance_identifier=instance,
        global_settings=GlobalSettings(3600, (MemberClass("COM", "c"), MemberClass("GOV", "g"))),
        approved_cas=(ca,),
        approved_tsas=tuple(
            ApprovedTSAInfo(f"TSA {i}", url, cert) for i, (url, cert) in enumerate(tsas)
        ),
    )
    management = ManagementService("http://127.0.0.1:1/", CLIENT)
    private = PrivateParameters(instance, management, interval)
    when = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    return GlobalConfSnapshot.build(shared, private, shared_expires=when, private_expires=when)


@dataclass
class Conf:
    """A switchable global configuration (the TSA goes down and comes back)."""

    pki: TestPKI
    services: TrustServices
    current: GlobalConfSnapshot | None = None
    up: bool = True
    history: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.set(True)

    def set(self, up: bool) -> None:
        url = self.services.tsa_url if up else DEAD_TSA
        self.current = globalconf(self.pki, [(url, cert_der(self.services.tsa_cert))])
        self.up = up

    def __call__(self) -> GlobalConfSnapshot | None:
        return self.current


@pytest.fixture
def conf(pki: TestPKI, trust_services: TrustServices) -> Conf:
    return Conf(pki, trust_services)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'messagelog.db'}"


@pytest.fixture
def settings(tmp_path: Path, sqlite_url: str) -> LogSettings:
    return LogSettings(database_url=sqlite_url, archive_dir=tmp_path / "archive", status_refresh=0)


@pytest.fixture
def store(sqlite_url: str) -> Iterator[MessageLogStore]:
    engine = create_engine(sqlite_url)
    yield MessageLogStore(engine)
    engine.dispose()


@pytest.fixture
def mlog(store: MessageLogStore, settings: LogSettings, conf: Conf) -> MessageLog:
    # The time-stamper's HTTP session belongs to the test's event loop: tests close it there.
    return MessageLog(store, settings, conf)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@contextlib.contextmanager
def noop() -> Iterator[None]:
    yield


Factory = Callable[..., MessageRecord]


def write_globalconf(directory: Path, snapshot: GlobalConfSnapshot) -> None:
    """Store ``snapshot``'s own instance as a configuration client would (V2 files)."""
    from crossroad.globalconf.privateparams import render_private_parameters
    from crossroad.globalconf.sharedparams import render_shared_parameters
    from crossroad.globalconf.store import ConfigurationStore, PartMetadata

    assert snapshot.private is not None
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    generation = ConfigurationStore(directory).begin(snapshot.instance)
    for name, content_id, data in (
        (
            "shared-params.xml",
            "SHARED-PARAMETERS",
            render_shared_parameters(snapshot.own_shared, 2),
        ),
        (
            "private-params.xml",
            "PRIVATE-PARAMETERS",
            render_private_parameters(snapshot.private, 2),
        ),
    ):
        meta = PartMetadata(content_id, snapshot.instance, expires, 2)
        generation.write(snapshot.instance, name, data, meta)
    generation.commit()
