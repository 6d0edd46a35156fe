"""Shared values: a small hand-built server configuration (no database)."""

from __future__ import annotations

import pytest

from crossroad.identifiers import ClientId, GlobalGroupId, LocalGroupId
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

OWNER = ClientId("EE", "GOV", "1")
PROVIDER = OWNER.subsystem("prov")
UNREGISTERED = OWNER.subsystem("saved")
CONSUMER_MEMBER = ClientId("EE", "COM", "2")
CONSUMER = CONSUMER_MEMBER.subsystem("cons")
IN_LOCAL = ClientId("EE", "COM", "3", "loc")
IN_GLOBAL = ClientId("EE", "COM", "4", "glob")
STRANGER = ClientId("EE", "COM", "5", "x")
OWNERS = GlobalGroupId("EE", "owners")


def membership(client: ClientId, group: GlobalGroupId) -> bool:
    return group == OWNERS and client == IN_GLOBAL


@pytest.fixture(scope="session")
def conf() -> ServerConf:
    """PROVIDER offers SOAP getRandom/v1 (member + subsystem rights), helloService/v1 in a
    disabled WSDL, REST ``pets`` (OpenAPI) with endpoint rights, and plain REST ``api``."""
    wsdl = ServiceDescription(
        1,
        PROVIDER,
        DescriptionType.WSDL,
        "http://h/wsdl",
        (Service("getRandom", "v1", url="http://is/soap", id=1),),
        disabled=False,
    )
    disabled = ServiceDescription(
        2,
        PROVIDER,
        DescriptionType.WSDL,
        "http://h/wsdl2",
        (Service("helloService", "v1", id=2),),
        disabled=True,
        disabled_notice="Down for maintenance",
    )
    openapi = ServiceDescription(
        3,
        PROVIDER,
        DescriptionType.OPENAPI3,
        "http://h/openapi.yaml",
        (Service("pets", url="http://is/pets", id=3),),
        disabled=False,
    )
    rest = ServiceDescription(
        4, PROVIDER, DescriptionType.REST, "http://is/api", (Service("api", id=4),), disabled=False
    )
    endpoints = (
        Endpoint(1, "getRandom", generated=True),
        Endpoint(2, "helloService", generated=True),
        Endpoint(3, "pets", generated=True),
        Endpoint(4, "pets", "GET", "/pets", True),
        Endpoint(5, "pets", "GET", "/pets/*", True),
        Endpoint(6, "pets", "POST", "/pets", True),
        Endpoint(7, "pets", "*", "/admin/**"),
        Endpoint(8, "api", generated=True),
        Endpoint(9, "api", "get", "/files/*.txt"),
    )
    rights = (
        AccessRight(CONSUMER_MEMBER, 1),  # a MEMBER right: not for its subsystems
        AccessRight(CONSUMER, 1),
        AccessRight(CONSUMER, 2),
        AccessRight(LocalGroupId("grp"), 5),
        AccessRight(OWNERS, 7),
        AccessRight(CONSUMER, 4),
        AccessRight(CONSUMER, 9),
        AccessRight(OWNERS, 8),
        AccessRight(LocalGroupId("grp"), 1),
    )
    group = LocalGroup(1, "grp", "A group", (GroupMember(IN_LOCAL),))
    provider = Client(
        PROVIDER,
        ClientStatus.REGISTERED,
        descriptions=(wsdl, disabled, openapi, rest),
        endpoints=endpoints,
        access_rights=rights,
        local_groups=(group,),
    )
    saved = Client(
        UNREGISTERED,
        ClientStatus.SAVED,
        descriptions=(
            ServiceDescription(
                5, UNREGISTERED, DescriptionType.REST, "http://x", (Service("api", id=5),), False
            ),
        ),
        endpoints=(Endpoint(10, "api"),),
        access_rights=(AccessRight(CONSUMER, 10),),
    )
    return ServerConf(OWNER, "ss1", (Client(OWNER, ClientStatus.REGISTERED), provider, saved))
