"""The security server configuration as one immutable, indexed value (protocols.md §10.5).

:class:`ServerConf` is what the proxy consults on every message: the owner and server code, the
clients (members and subsystems) with their status and information-system connection settings,
and per client its service descriptions, services, endpoints, access rights and local groups.
The shape follows NIIS's serverconf tables: endpoints and access rights belong to the client
that owns the service and are keyed by the service *code* (not by the service row), so access
rights survive a refresh of the description as long as the service code stays.

Every lookup the proxy needs on the data path is a dictionary access built once in
``__post_init__``; the store rebuilds a new value after each change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeAlias

from crossroad.identifiers import ClientId, GlobalGroupId, LocalGroupId, SecurityServerId, ServiceId


class ClientStatus(StrEnum):
    """Client states as NIIS stores them (``client.clientstatus``)."""

    SAVED = "saved"
    REGISTRATION_IN_PROGRESS = "registration in progress"
    REGISTERED = "registered"
    DELETION_IN_PROGRESS = "deletion in progress"
    GLOBAL_ERROR = "global error"
    DISABLED = "disabled"
    DISABLING_IN_PROGRESS = "disabling in progress"
    ENABLING_IN_PROGRESS = "enabling in progress"


class ConnectionType(StrEnum):
    """How an information system may connect to the client proxy (§10.6, ``isauthentication``)."""

    NOSSL = "NOSSL"
    SSLNOAUTH = "SSLNOAUTH"
    SSLAUTH = "SSLAUTH"


class DescriptionType(StrEnum):
    """Service description types (``DescriptionType``)."""

    WSDL = "WSDL"
    OPENAPI3 = "OPENAPI3"
    REST = "REST"

    @property
    def is_rest(self) -> bool:
        return self is not DescriptionType.WSDL


#: The base endpoint every service has: any method, any path.  SOAP access rights use it.
ANY_METHOD = "*"
ANY_PATH = "**"
#: Methods an endpoint may name besides ``*`` (PR-REST).
HTTP_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE")
#: Timeout of the call to the provider information system, as the NIIS UI sets it (§12.1).
DEFAULT_TIMEOUT = 60
#: Notice of a newly added (disabled) service description, as NIIS sets it.
DEFAULT_DISABLED_NOTICE = "Out of order"
#: Codes of the metaservices and monitoring services: never registered as normal services.
RESERVED_SERVICE_CODES = frozenset(
    {
        "listClients",
        "listMethods",
        "allowedMethods",
        "getWsdl",
        "getOpenAPI",
        "getSecurityServerMetrics",
        "getSecurityServerOperationalData",
        "getSecurityServerHealthData",
    }
)

#: Who an access right is given to.
Subject: TypeAlias = ClientId | GlobalGroupId | LocalGroupId


@dataclass(frozen=True)
class Service:
    """One service of a description: code, optional version, and how to reach the provider IS."""

    service_code: str
    version: str | None = None
    title: str | None = None
    url: str | None = None
    timeout: int = DEFAULT_TIMEOUT
    #: Verify the provider IS's TLS certificate against the client's IS certificates.
    ssl_authentication: bool = True
    id: int = 0

    @property
    def full_code(self) -> str:
        """``code`` or ``code.version``, as NIIS shows and addresses services."""
        return self.service_code if self.version is None else f"{self.service_code}.{self.version}"


@dataclass(frozen=True)
class ServiceDescription:
    """A WSDL, an OpenAPI 3 description or a plain REST base URL, and the services it defines."""

    id: int
    client: ClientId
    type: DescriptionType
    url: str
    services: tuple[Service, ...] = ()
    disabled: bool = True
    disabled_notice: str | None = DEFAULT_DISABLED_NOTICE
    refreshed_at: dt.datetime | None = None
    #: The description document as last read (WSDL or OpenAPI bytes); ``None`` for REST.
    content: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Endpoint:
    """An ACL target of a client: service code, method (or ``*``) and path glob (or ``**``)."""

    id: int
    service_code: str
    method: str = ANY_METHOD
    path: str = ANY_PATH
    generated: bool = False

    @property
    def is_base(self) -> bool:
        return self.method == ANY_METHOD and self.path == ANY_PATH


@dataclass(frozen=True)
class AccessRight:
    """``subject`` may call ``endpoint_id`` of the client that holds this right."""

    subject: Subject
    endpoint_id: int
    rights_given_at: dt.datetime | None = None


@dataclass(frozen=True)
class GroupMember:
    id: ClientId
    added_at: dt.datetime | None = None


@dataclass(frozen=True)
class LocalGroup:
    """A group of clients defined by one client on this server (subject ``LOCALGROUP:code``)."""

    id: int
    code: str
    description: str
    members: tuple[GroupMember, ...] = ()
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class Client:
    """A member or subsystem of this server and everything it owns here."""

    id: ClientId
    status: ClientStatus = ClientStatus.SAVED
    connection_type: ConnectionType = ConnectionType.SSLAUTH
    #: Registered information-system TLS certificates (DER).
    is_certs: tuple[bytes, ...] = field(default=(), repr=False)
    descriptions: tuple[ServiceDescription, ...] = ()
    endpoints: tuple[Endpoint, ...] = ()
    access_rights: tuple[AccessRight, ...] = ()
    local_groups: tuple[LocalGroup, ...] = ()

    @property
    def is_registered(self) -> bool:
        return self.status is ClientStatus.REGISTERED


@dataclass(frozen=True)
class ServiceEntry:
    """A service together with its description and provider (what a lookup returns)."""

    provider: ClientId
    service: Service
    description: ServiceDescription

    @property
    def id(self) -> ServiceId:
        return ServiceId(self.provider, self.service.service_code, self.service.version)

    @property
    def type(self) -> DescriptionType:
        return self.description.type


@dataclass(frozen=True)
class AclEntries:
    """The access rights of one (provider, service code), split for constant-time checks."""

    #: Exact member or subsystem subjects → the endpoints they were given.
    direct: dict[ClientId, tuple[Endpoint, ...]]
    #: Group subjects: few per service, tested one by one.
    global_groups: tuple[tuple[GlobalGroupId, tuple[Endpoint, ...]], ...]
    local_groups: tuple[tuple[LocalGroupId, tuple[Endpoint, ...]], ...]
    all: tuple[tuple[AccessRight, Endpoint], ...]


_EMPTY_ACL = AclEntries({}, (), (), ())
_ServiceKey: TypeAlias = tuple[ClientId, str, str | None]
_CodeKey: TypeAlias = tuple[ClientId, str]


@dataclass(frozen=True)
class _Index:
    clients: dict[ClientId, Client]
    services: dict[_ServiceKey, ServiceEntry]
    services_by_code: dict[_CodeKey, tuple[ServiceEntry, ...]]
    services_of: dict[ClientId, tuple[ServiceEntry, ...]]
    descriptions: dict[int, ServiceDescription]
    endpoints: dict[_CodeKey, tuple[Endpoint, ...]]
    endpoint_by_id: dict[int, tuple[ClientId, Endpoint]]
    acl: dict[_CodeKey, AclEntries]
    local_groups: dict[_CodeKey, LocalGroup]
    local_group_by_id: dict[int, tuple[ClientId, LocalGroup]]
    local_members: dict[_CodeKey, frozenset[ClientId]]
    is_certs: dict[ClientId, frozenset[bytes]]


def _group(
    pairs: Iterable[tuple[_CodeKey, ServiceEntry]],
) -> dict[_CodeKey, tuple[ServiceEntry, ...]]:
    out: dict[_CodeKey, list[ServiceEntry]] = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return {k: tuple(v) for k, v in out.items()}


def _acl_entries(rights: list[tuple[AccessRight, Endpoint]]) -> AclEntries:
    direct: dict[ClientId, list[Endpoint]] = {}
    global_groups: dict[GlobalGroupId, list[Endpoint]] = {}
    local_groups: dict[LocalGroupId, list[Endpoint]] = {}
    for right, endpoint in rights:
        subject = right.subject
        if isinstance(subject, ClientId):
            direct.setdefault(subject, []).append(endpoint)
        elif isinstance(subject, GlobalGroupId):
            global_groups.setdefault(subject, []).append(endpoint)
        else:
            local_groups.setdefault(subject, []).append(endpoint)
    return AclEntries(
        {k: tuple(v) for k, v in direct.items()},
        tuple((k, tuple(v)) for k, v in global_groups.items()),
        tuple((k, tuple(v)) for k, v in local_groups.items()),
        tuple(rights),
    )


def _build_index(clients: tuple[Client, ...]) -> _Index:
    by_id: dict[ClientId, Client] = {}
    services: dict[_ServiceKey, ServiceEntry] = {}
    entries: list[tuple[_CodeKey, ServiceEntry]] = []
    descriptions: dict[int, ServiceDescription] = {}
    endpoints: dict[_CodeKey, list[Endpoint]] = {}
    endpoint_by_id: dict[int, tuple[ClientId, Endpoint]] = {}
    rights: dict[_CodeKey, list[tuple[AccessRight, Endpoint]]] = {}
    local_groups: dict[_CodeKey, LocalGroup] = {}
    local_group_by_id: dict[int, tuple[ClientId, LocalGroup]] = {}
    for client in clients:
        cid = client.id
        by_id[cid] = client
        for description in client.descriptions:
            descriptions[description.id] = description
            for service in description.services:
                entry = ServiceEntry(cid, service, description)
                services[(cid, service.service_code, service.version)] = entry
                entries.append(((cid, service.service_code), entry))
        for endpoint in client.endpoints:
            endpoints.setdefault((cid, endpoint.service_code), []).append(endpoint)
            endpoint_by_id[endpoint.id] = (cid, endpoint)
        for right in client.access_rights:
            found = endpoint_by_id.get(right.endpoint_id)
            if found is None or found[0] != cid:
                continue  # a dangling right grants nothing
            rights.setdefault((cid, found[1].service_code), []).append((right, found[1]))
        for group in client.local_groups:
            local_groups[(cid, group.code)] = group
            local_group_by_id[group.id] = (cid, group)
    services_of: dict[ClientId, list[ServiceEntry]] = {}
    for (cid, _code), entry in entries:
        services_of.setdefault(cid, []).append(entry)
    return _Index(
        clients=by_id,
        services=services,
        services_by_code=_group(entries),
        services_of={k: tuple(v) for k, v in services_of.items()},
        descriptions=descriptions,
        endpoints={k: tuple(v) for k, v in endpoints.items()},
        endpoint_by_id=endpoint_by_id,
        acl={k: _acl_entries(v) for k, v in rights.items()},
        local_groups=local_groups,
        local_group_by_id=local_group_by_id,
        local_members={k: frozenset(m.id for m in g.members) for k, g in local_groups.items()},
        is_certs={c.id: frozenset(c.is_certs) for c in clients},
    )


@dataclass(frozen=True)
class ServerConf:
    """One consistent view of this security server's configuration."""

    owner: ClientId | None = None
    server_code: str | None = None
    clients: tuple[Client, ...] = ()
    #: Changes counter of the store this snapshot was read from (0 for hand-built values).
    generation: int = 0
    _index: _Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", _build_index(self.clients))

    # -- the server --

    @property
    def server_id(self) -> SecurityServerId | None:
        if self.owner is None or self.server_code is None:
            return None
        return SecurityServerId(self.owner, self.server_code)

    @property
    def is_initialized(self) -> bool:
        return self.server_id is not None

    # -- clients --

    def client(self, client_id: ClientId) -> Client | None:
        return self._index.clients.get(client_id)

    def is_registered(self, client_id: ClientId) -> bool:
        client = self._index.clients.get(client_id)
        return client is not None and client.is_registered

    def is_certs(self, client_id: ClientId) -> frozenset[bytes]:
        """The client's registered information-system TLS certificates (DER)."""
        return self._index.is_certs.get(client_id, frozenset())

    # -- services and descriptions --

    def service(self, service_id: ServiceId) -> ServiceEntry | None:
        """The service with exactly this provider, code and version (NIIS matches all three)."""
        return self._index.services.get(
            (service_id.client, service_id.service_code, service_id.service_version)
        )

    def services_with_code(self, provider: ClientId, service_code: str) -> tuple[ServiceEntry, ...]:
        """Every version of ``service_code`` the provider has."""
        return self._index.services_by_code.get((provider, service_code), ())

    def services_of(
        self, provider: ClientId, types: Iterable[DescriptionType] | None = None
    ) -> tuple[ServiceEntry, ...]:
        entries = self._index.services_of.get(provider, ())
        if types is None:
            return entries
        wanted = frozenset(types)
        return tuple(e for e in entries if e.type in wanted)

    def description(self, description_id: int) -> ServiceDescription | None:
        return self._index.descriptions.get(description_id)

    # -- endpoints and access rights --

    def endpoints(self, provider: ClientId, service_code: str) -> tuple[Endpoint, ...]:
        return self._index.endpoints.get((provider, service_code), ())

    def endpoint(self, endpoint_id: int) -> tuple[ClientId, Endpoint] | None:
        return self._index.endpoint_by_id.get(endpoint_id)

    def acl(self, provider: ClientId, service_code: str) -> AclEntries:
        return self._index.acl.get((provider, service_code), _EMPTY_ACL)

    # -- local groups --

    def local_group(self, owner: ClientId, group_code: str) -> LocalGroup | None:
        return self._index.local_groups.get((owner, group_code))

    def local_group_by_id(self, group_id: int) -> tuple[ClientId, LocalGroup] | None:
        return self._index.local_group_by_id.get(group_id)

    def in_local_group(self, owner: ClientId, group_code: str, client_id: ClientId) -> bool:
        return client_id in self._index.local_members.get((owner, group_code), frozenset())
