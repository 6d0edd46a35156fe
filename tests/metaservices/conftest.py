"""Shared values: a provider's server configuration, a global configuration with groups, SOAP
request builders and the official service-metainfo schema."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from crossroad.globalconf.model import (
    GlobalGroup,
    GlobalSettings,
    Member,
    MemberClass,
    SharedParameters,
    Subsystem,
)
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId, GlobalGroupId, LocalGroupId, ServiceId
from crossroad.serverconf.model import (
    AccessRight,
    Client,
    ClientStatus,
    DescriptionType,
    Endpoint,
    GroupMember,
    LocalGroup,
    ServerConf,
    Service,
    ServiceDescription,
)
from crossroad.wire.soap import SoapMessage

EE = "EE"
PROVIDER = ClientId(EE, "GOV", "1", "prov")
MEMBER_PROVIDER = ClientId(EE, "GOV", "1")
CONSUMER_MEMBER = ClientId(EE, "COM", "2")
CONSUMER = CONSUMER_MEMBER.subsystem("cons")
IN_LOCAL = ClientId(EE, "COM", "3", "loc")
IN_GLOBAL = ClientId(EE, "COM", "4", "glob")
STRANGER = ClientId(EE, "COM", "5", "x")
GROUP = GlobalGroupId(EE, "partners")
FI = "FI"

_SCHEMAS = Path("schemas/src/common/common-domain/src/main/resources")

WSDL = b"""<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/" xmlns:xrd="http://x-road.eu/xsd/xroad.xsd"
    xmlns:tns="http://example.org/t" name="t" targetNamespace="http://example.org/t">
  <wsdl:portType name="pt"><wsdl:operation name="getRandom"/></wsdl:portType>
  <wsdl:binding name="b" type="tns:pt">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    <wsdl:operation name="getRandom"><xrd:version>v1</xrd:version></wsdl:operation>
  </wsdl:binding>
  <wsdl:service name="s"><wsdl:port name="p" binding="tns:b">
    <soap:address location="http://internal.example:8080/secret"/>
  </wsdl:port></wsdl:service>
</wsdl:definitions>
"""

OPENAPI_YAML = b"""openapi: 3.0.0
info:
  title: Pets
  version: "1"
servers:
  - url: http://internal.example:8080/v1
paths:
  /pets:
    get:
      responses:
        "200":
          description: ok
"""


def _conf() -> ServerConf:
    wsdl = ServiceDescription(
        1,
        PROVIDER,
        DescriptionType.WSDL,
        "http://is/wsdl",
        (Service("getRandom", "v1", url="http://is/soap", id=1),),
        disabled=False,
        content=WSDL,
    )
    wsdl2 = ServiceDescription(
        2,
        PROVIDER,
        DescriptionType.WSDL,
        "http://is/wsdl2",
        (
            Service("helloService", "v1", id=2),
            Service("helloService", "v2", id=3),
            Service("bye", id=4),
        ),
        disabled=True,
        content=None,
    )
    openapi = ServiceDescription(
        3,
        PROVIDER,
        DescriptionType.OPENAPI3,
        "http://is/openapi.yaml",
        (Service("pets", url="http://is/pets", id=5),),
        disabled=False,
        content=OPENAPI_YAML,
    )
    rest = ServiceDescription(
        4, PROVIDER, DescriptionType.REST, "http://is/api", (Service("api", id=6),), disabled=False
    )
    endpoints = (
        Endpoint(1, "getRandom", generated=True),
        Endpoint(2, "helloService", generated=True),
        Endpoint(3, "bye", generated=True),
        Endpoint(4, "pets", generated=True),
        Endpoint(5, "pets", "GET", "/pets", True),
        Endpoint(6, "pets", "GET", "/pets/*", True),
        Endpoint(7, "pets", "POST", "/pets", True),
        Endpoint(8, "api", generated=True),
        Endpoint(9, "api", "GET", "/files/**"),
    )
    rights = (
        AccessRight(CONSUMER_MEMBER, 1),  # a MEMBER right: not for its subsystems
        AccessRight(CONSUMER, 2),
        AccessRight(LocalGroupId("grp"), 3),
        AccessRight(GROUP, 1),
        AccessRight(CONSUMER, 6),
        AccessRight(CONSUMER, 8),
        AccessRight(LocalGroupId("grp"), 5),
        AccessRight(GROUP, 9),
    )
    provider = Client(
        PROVIDER,
        ClientStatus.REGISTERED,
        descriptions=(wsdl, wsdl2, openapi, rest),
        endpoints=endpoints,
        access_rights=rights,
        local_groups=(LocalGroup(1, "grp", "Group", (GroupMember(IN_LOCAL),)),),
    )
    return ServerConf(
        MEMBER_PROVIDER, "ss1", (Client(MEMBER_PROVIDER, ClientStatus.REGISTERED), provider)
    )


def _shared(
    instance: str, members: tuple[Member, ...], groups: tuple[GlobalGroup, ...] = ()
) -> SharedParameters:
    classes = tuple({m.member_class.code: m.member_class for m in members}.values())
    return SharedParameters(
        instance_identifier=instance,
        global_settings=GlobalSettings(600, classes),
        members=members,
        global_groups=groups,
    )


def _globalconf() -> GlobalConfSnapshot:
    gov, com = MemberClass("GOV", "Government"), MemberClass("COM", "Companies")
    members = (
        Member(gov, "1", "Provider Agency", (Subsystem("prov", "Provider system"),)),
        Member(com, "2", "Consumer Ltd", (Subsystem("cons"),)),
        Member(com, "3", "Local Ltd", (Subsystem("loc", "Local"),)),
        Member(com, "4", "Global Ltd", (Subsystem("glob", "Glob"),)),
        Member(com, "5", "Ströngér & <Co>"),
    )
    groups = (GlobalGroup("partners", "Partners", (IN_GLOBAL,)),)
    federated = _shared(FI, (Member(com, "9", "Suomi Oy", (Subsystem("s"),)),))
    return GlobalConfSnapshot.build(_shared(EE, members, groups), None, federated=(federated,))


@pytest.fixture(scope="session")
def serverconf() -> ServerConf:
    return _conf()


@pytest.fixture(scope="session")
def globalconf() -> GlobalConfSnapshot:
    return _globalconf()


def soap_bytes(
    client: ClientId,
    service: ServiceId,
    body: str | None = None,
    *,
    extra_headers: str = "",
    prefix: str = "xroad",
) -> bytes:
    """A SOAP 4.0 request; ``body`` defaults to an empty ``<prefix:serviceCode/>``."""
    ident = "id"

    def ident_xml(tag: str, object_type: str, parts: list[tuple[str, str | None]]) -> str:
        inner = "".join(f"<{ident}:{n}>{v}</{ident}:{n}>" for n, v in parts if v is not None)
        return f'<{prefix}:{tag} {ident}:objectType="{object_type}">{inner}</{prefix}:{tag}>'

    c = client
    client_xml = ident_xml(
        "client",
        "SUBSYSTEM" if c.subsystem_code else "MEMBER",
        [
            ("xRoadInstance", c.instance),
            ("memberClass", c.member_class),
            ("memberCode", c.member_code),
            ("subsystemCode", c.subsystem_code),
        ],
    )
    s = service.client
    service_xml = ident_xml(
        "service",
        "SERVICE",
        [
            ("xRoadInstance", s.instance),
            ("memberClass", s.member_class),
            ("memberCode", s.member_code),
            ("subsystemCode", s.subsystem_code),
            ("serviceCode", service.service_code),
            ("serviceVersion", service.service_version),
        ],
    )
    if body is None:
        body = f"<{prefix}:{service.service_code}/>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"'
        f' xmlns:{prefix}="http://x-road.eu/xsd/xroad.xsd"'
        f' xmlns:{ident}="http://x-road.eu/xsd/identifiers">\n'
        f"<SOAP-ENV:Header>\n{client_xml}\n{service_xml}\n"
        f"<{prefix}:id>q-1</{prefix}:id>\n<{prefix}:userId>EE123</{prefix}:userId>\n"
        f"<{prefix}:issue>ISS</{prefix}:issue>\n"
        f"<{prefix}:protocolVersion>4.0</{prefix}:protocolVersion>{extra_headers}\n"
        f"</SOAP-ENV:Header>\n<SOAP-ENV:Body>{body}</SOAP-ENV:Body>\n</SOAP-ENV:Envelope>\n"
    ).encode()


def soap_request(
    client: ClientId, service: ServiceId, body: str | None = None, **kwargs: str
) -> SoapMessage:
    return SoapMessage.parse(soap_bytes(client, service, body, **kwargs))


class _Resolver(etree.Resolver):
    def __init__(self, vectors: Path) -> None:
        super().__init__()
        self.vectors = vectors

    def resolve(self, system_url, public_id, context):  # type: ignore[no-untyped-def,override]
        if system_url.endswith("identifiers.xsd"):
            path = str(self.vectors / _SCHEMAS / "identifiers.xsd")
            return self.resolve_filename(path, context)  # type: ignore[attr-defined]
        return None


@pytest.fixture(scope="session")
def metainfo_schema(vectors: Path) -> etree.XMLSchema:
    """The official ``service-metainfo.xsd`` (clientList, listMethodsResponse, ...)."""
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_Resolver(vectors))
    return etree.XMLSchema(etree.parse(str(vectors / _SCHEMAS / "service-metainfo.xsd"), parser))


@pytest.fixture(scope="session")
def validate(metainfo_schema: etree.XMLSchema) -> Callable[[etree._Element], None]:
    def check(element: etree._Element) -> None:
        doc = etree.fromstring(etree.tostring(element))
        if not metainfo_schema.validate(doc):
            raise AssertionError(str(metainfo_schema.error_log))

    return check
