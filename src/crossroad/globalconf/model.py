"""The global configuration as values: shared parameters V2–V6, private parameters, anchors.

protocols.md §5.3 (anchor), §5.4 (private parameters), §5.5 (shared parameters).  One model
covers every version: fields a version lacks are ``None`` or empty.  Certificates are kept as
the bytes the configuration carries (base64-decoded ``<cert>`` text; usually DER, sometimes a PEM
text, see ``globalconf_good2_v3``), so parse→render preserves them; :mod:`.sharedparams` turns
them into ``cryptography`` objects when it builds a trust policy.

Element names follow the XSD; the XML codec lives in :mod:`.sharedparams` and
:mod:`.privateparams`.  The lookups that a security server needs (members, servers, addresses,
groups, OCSP responders by cost type) are methods of :class:`SharedParameters`, and so is the
:class:`~crossroad.crypto.trust.TrustPolicy` it implies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import lru_cache

from cryptography import x509

from crossroad.crypto.certs import load_certificate
from crossroad.crypto.trust import (
    ApprovedCA,
    ApprovedTSA,
    IntermediateCA,
    OcspResponder,
    TrustPolicy,
)
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, GlobalGroupId, SecurityServerId, ServiceId

#: Versions of the shared-parameters schema this module reads and writes.
SHARED_VERSIONS = (2, 3, 4, 5, 6)
#: Versions of the private-parameters schema.
PRIVATE_VERSIONS = (2, 3)


class CostType(StrEnum):
    """V6 ``costType`` of an OCSP responder or TSA."""

    FREE = "FREE"
    PAID = "PAID"
    UNDEFINED = "UNDEFINED"


class CsrFormat(StrEnum):
    """V6 ``defaultCsrFormat`` of an approved CA."""

    PEM = "PEM"
    DER = "DER"


class OcspPreference(StrEnum):
    """How OCSP responders are ordered by cost type (the security server's
    ``ocsp-cost-type`` preference).  Responders without a cost type count as UNDEFINED and come
    last in the *_FIRST orderings; NONE keeps the configuration's order."""

    NONE = "NONE"
    ONLY_FREE = "ONLY_FREE"
    ONLY_PAID = "ONLY_PAID"
    FREE_FIRST = "FREE_FIRST"
    PAID_FIRST = "PAID_FIRST"


# --- shared parameters ------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigurationSource:
    """V3+ ``source``: a central server node and its configuration signing certificates."""

    address: str
    internal_verification_certs: tuple[bytes, ...] = ()
    external_verification_certs: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class OcspInfo:
    url: str
    cert: bytes | None = None
    cost_type: CostType | None = None  # V6

    @property
    def effective_cost_type(self) -> CostType:
        return self.cost_type or CostType.UNDEFINED


@dataclass(frozen=True)
class CaInfo:
    """``topCA`` / ``intermediateCA``: a CA certificate and its OCSP responders."""

    cert: bytes
    ocsp: tuple[OcspInfo, ...] = ()


@dataclass(frozen=True)
class AcmeServer:
    """V3+ ``acmeServer``; the profile ids are V4+."""

    directory_url: str
    ip_address: str | None = None
    authentication_certificate_profile_id: str | None = None
    signing_certificate_profile_id: str | None = None


@dataclass(frozen=True)
class ApprovedCAInfo:
    name: str
    top_ca: CaInfo
    certificate_profile_info: str
    intermediate_cas: tuple[CaInfo, ...] = ()
    authentication_only: bool | None = None
    default_csr_format: CsrFormat | None = None  # V6
    acme_server: AcmeServer | None = None  # V3+

    def ca_infos(self) -> tuple[CaInfo, ...]:
        return (self.top_ca, *self.intermediate_cas)


@dataclass(frozen=True)
class ApprovedTSAInfo:
    name: str
    url: str
    cert: bytes
    cost_type: CostType | None = None  # V6


@dataclass(frozen=True)
class MemberClass:
    code: str
    description: str


@dataclass(frozen=True)
class Subsystem:
    subsystem_code: str
    subsystem_name: str | None = None  # V5+


@dataclass(frozen=True)
class Member:
    member_class: MemberClass
    member_code: str
    name: str
    subsystems: tuple[Subsystem, ...] = ()

    def client_id(self, instance: str) -> ClientId:
        return ClientId(instance, self.member_class.code, self.member_code)


@dataclass(frozen=True)
class MaintenanceMode:
    """V5+ ``inMaintenanceMode``: presence alone means the server is in maintenance."""

    message: str | None = None


@dataclass(frozen=True)
class SecurityServer:
    """A registered security server.  ``clients`` are the registered (enabled) clients; the owner
    is implicitly a client too (§5.5)."""

    owner: ClientId
    server_code: str
    address: str | None = None
    auth_cert_hashes: tuple[bytes, ...] = ()  # SHA-1 in V2, SHA-256 in V3+
    clients: tuple[ClientId, ...] = ()
    maintenance: MaintenanceMode | None = None  # V5+

    @property
    def id(self) -> SecurityServerId:
        return SecurityServerId(self.owner, self.server_code)

    def serves(self, client: ClientId) -> bool:
        return client == self.owner or client in self.clients


@dataclass(frozen=True)
class GlobalGroup:
    group_code: str
    description: str
    members: tuple[ClientId, ...] = ()


@dataclass(frozen=True)
class CentralService:
    """Kept for round-trips; 7.x central servers no longer emit central services."""

    service_code: str
    implementing_service: ServiceId | None = None


@dataclass(frozen=True)
class GlobalSettings:
    ocsp_freshness_seconds: int
    member_classes: tuple[MemberClass, ...] = ()


@dataclass(frozen=True)
class SharedParameters:
    """The shared parameters of one instance (any version V2–V6).

    ``extensions`` holds the serialized XML of unknown top-level elements (the V3+ ``any``
    extension point), kept so that a newer central server's additions survive a round-trip.
    """

    instance_identifier: str
    global_settings: GlobalSettings
    sources: tuple[ConfigurationSource, ...] = ()
    approved_cas: tuple[ApprovedCAInfo, ...] = ()
    approved_tsas: tuple[ApprovedTSAInfo, ...] = ()
    members: tuple[Member, ...] = ()
    security_servers: tuple[SecurityServer, ...] = ()
    global_groups: tuple[GlobalGroup, ...] = ()
    central_services: tuple[CentralService, ...] = ()
    extensions: tuple[bytes, ...] = ()
    _clients: frozenset[ClientId] = field(
        default=frozenset(), init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "_clients", frozenset(self.clients()))

    # -- codec (implemented in .sharedparams) --

    @classmethod
    def parse(cls, data: bytes) -> SharedParameters:
        """Parse shared-params.xml of any version; ``malformed_globalconf`` on bad input."""
        from crossroad.globalconf.sharedparams import parse_shared_parameters

        return parse_shared_parameters(data)

    def render(self, version: int) -> bytes:
        """Serialize for schema version ``version`` (2..6), dropping what it cannot carry."""
        from crossroad.globalconf.sharedparams import render_shared_parameters

        return render_shared_parameters(self, version)

    def trust_policy(self, nextupdate: bool = True) -> TrustPolicy:
        """The crypto core's view: approved CAs, OCSP responders, TSAs, OCSP freshness."""
        return build_trust_policy(self, nextupdate)

    @property
    def instance(self) -> str:
        return self.instance_identifier

    def min_version(self) -> int:
        """The lowest schema version that can carry every feature used here."""
        cas = self.approved_cas
        ocsp = [o for ca in cas for info in ca.ca_infos() for o in info.ocsp]
        if (
            any(o.cost_type is not None for o in ocsp)
            or any(t.cost_type is not None for t in self.approved_tsas)
            or any(ca.default_csr_format is not None for ca in cas)
        ):
            return 6
        if any(s.subsystem_name is not None for m in self.members for s in m.subsystems) or any(
            s.maintenance is not None for s in self.security_servers
        ):
            return 5
        acme = [ca.acme_server for ca in cas if ca.acme_server is not None]
        if any(
            a.authentication_certificate_profile_id is not None
            or a.signing_certificate_profile_id is not None
            for a in acme
        ):
            return 4
        if self.sources or acme or self.extensions:
            return 3
        return 2

    # -- members and clients --

    def clients(self) -> Iterator[ClientId]:
        """Every member and subsystem, in configuration order (member, then its subsystems)."""
        for member in self.members:
            member_id = member.client_id(self.instance_identifier)
            yield member_id
            for sub in member.subsystems:
                yield member_id.subsystem(sub.subsystem_code)

    def has_client(self, client: ClientId) -> bool:
        return client in self._clients

    def member(self, client: ClientId) -> Member | None:
        """The member entry of ``client`` (or of the member owning the subsystem ``client``)."""
        if client.instance != self.instance_identifier:
            return None
        for member in self.members:
            if (
                member.member_class.code == client.member_class
                and member.member_code == client.member_code
            ):
                return member
        return None

    def member_name(self, client: ClientId) -> str | None:
        member = self.member(client)
        return member.name if member else None

    def subsystem(self, client: ClientId) -> Subsystem | None:
        member = self.member(client)
        if member is None or client.subsystem_code is None:
            return None
        return next(
            (s for s in member.subsystems if s.subsystem_code == client.subsystem_code), None
        )

    def member_classes(self) -> tuple[str, ...]:
        return tuple(mc.code for mc in self.global_settings.member_classes)

    # -- security servers --

    def security_server(self, server: SecurityServerId) -> SecurityServer | None:
        return next((s for s in self.security_servers if s.id == server), None)

    def security_server_ids(self) -> tuple[SecurityServerId, ...]:
        return tuple(s.id for s in self.security_servers)

    def servers_of(self, client: ClientId) -> tuple[SecurityServer, ...]:
        """Security servers where ``client`` is registered (owners count as clients)."""
        return tuple(s for s in self.security_servers if s.serves(client))

    def provider_addresses(self, client: ClientId) -> tuple[str, ...]:
        """Addresses of the servers that serve ``client``, without duplicates, in config order."""
        return _unique(s.address for s in self.servers_of(client) if s.address)

    def known_addresses(self) -> tuple[str, ...]:
        return _unique(s.address for s in self.security_servers if s.address)

    def server_by_auth_cert_hash(self, digest: bytes) -> SecurityServer | None:
        return next((s for s in self.security_servers if digest in s.auth_cert_hashes), None)

    def is_in_maintenance(self, server: SecurityServerId) -> bool:
        found = self.security_server(server)
        return found is not None and found.maintenance is not None

    # -- global groups --

    def global_group(self, group: GlobalGroupId | str) -> GlobalGroup | None:
        if isinstance(group, GlobalGroupId):
            if group.instance != self.instance_identifier:
                return None
            group = group.group_code
        return next((g for g in self.global_groups if g.group_code == group), None)

    def global_group_ids(self) -> tuple[GlobalGroupId, ...]:
        return tuple(
            GlobalGroupId(self.instance_identifier, g.group_code) for g in self.global_groups
        )

    def is_in_global_group(self, client: ClientId, group: GlobalGroupId | str) -> bool:
        """Exact membership: a member's subsystem is not in a group that lists the member."""
        found = self.global_group(group)
        return found is not None and client in found.members

    # -- certification and time-stamping services --

    def approved_ca(self, name: str) -> ApprovedCAInfo | None:
        return next((ca for ca in self.approved_cas if ca.name == name), None)

    def approved_tsa(self, name: str) -> ApprovedTSAInfo | None:
        return next((t for t in self.approved_tsas if t.name == name), None)

    def ocsp_responders_for_cert(
        self, cert: x509.Certificate, preference: OcspPreference = OcspPreference.NONE
    ) -> tuple[OcspInfo, ...]:
        """OCSP responders of the approved CA (top or intermediate) that issued ``cert``."""
        info = find_ca_info(self, cert.issuer)
        return order_ocsp(info.ocsp, preference) if info else ()

    def ocsp_responders_for_ca(
        self, ca_cert: x509.Certificate, preference: OcspPreference = OcspPreference.NONE
    ) -> tuple[OcspInfo, ...]:
        """OCSP responders listed for the approved CA certificate ``ca_cert`` itself."""
        info = find_ca_info(self, ca_cert.subject)
        return order_ocsp(info.ocsp, preference) if info else ()

    def ocsp_cost_type(self, url: str) -> CostType | None:
        """The cost type declared for the OCSP responder at ``url`` (first declaration wins)."""
        for ca in self.approved_cas:
            for info in ca.ca_infos():
                for ocsp in info.ocsp:
                    if ocsp.url == url:
                        return ocsp.effective_cost_type
        return None


_RANKS = {
    OcspPreference.FREE_FIRST: {CostType.FREE: 0, CostType.PAID: 1, CostType.UNDEFINED: 2},
    OcspPreference.PAID_FIRST: {CostType.PAID: 0, CostType.FREE: 1, CostType.UNDEFINED: 2},
}


def order_ocsp(
    responders: tuple[OcspInfo, ...] | list[OcspInfo], preference: OcspPreference
) -> tuple[OcspInfo, ...]:
    """Order or filter OCSP responders by cost type (stable within a cost type)."""
    if preference is OcspPreference.ONLY_FREE:
        return tuple(r for r in responders if r.effective_cost_type is CostType.FREE)
    if preference is OcspPreference.ONLY_PAID:
        return tuple(r for r in responders if r.effective_cost_type is CostType.PAID)
    if preference in _RANKS:
        ranks = _RANKS[preference]
        return tuple(sorted(responders, key=lambda r: ranks[r.effective_cost_type]))
    return tuple(responders)


def _unique(values: Iterator[str] | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


# --- trust policy and certificate lookups ---------------------------------------------------------


@lru_cache(maxsize=512)
def _cert(data: bytes) -> x509.Certificate:
    return load_certificate(data)


def _load(data: bytes, where: str) -> x509.Certificate:
    try:
        return _cert(data)
    except XRoadError as exc:
        raise XRoadError(Code.MALFORMED_GLOBALCONF, f"{where}: {exc.detail}") from exc


def _responders(info: CaInfo, where: str) -> tuple[OcspResponder, ...]:
    return tuple(
        OcspResponder(
            url=o.url,
            cert=_load(o.cert, f"{where} OCSP {o.url}") if o.cert is not None else None,
            cost_type=o.cost_type.value if o.cost_type is not None else None,
        )
        for o in info.ocsp
    )


def build_trust_policy(params: SharedParameters, nextupdate: bool = True) -> TrustPolicy:
    cas = []
    for ca in params.approved_cas:
        where = f"approvedCA {ca.name!r}"
        cas.append(
            ApprovedCA(
                name=ca.name,
                top_ca=_load(ca.top_ca.cert, where),
                certificate_profile=ca.certificate_profile_info,
                intermediates=tuple(
                    IntermediateCA(_load(i.cert, where), _responders(i, where))
                    for i in ca.intermediate_cas
                ),
                ocsp=_responders(ca.top_ca, where),
                authentication_only=bool(ca.authentication_only),
            )
        )
    tsas = tuple(
        ApprovedTSA(
            name=t.name,
            url=t.url,
            cert=_load(t.cert, f"approvedTSA {t.name!r}"),
            cost_type=t.cost_type.value if t.cost_type is not None else None,
        )
        for t in params.approved_tsas
    )
    return TrustPolicy(
        instance=params.instance_identifier,
        cas=tuple(cas),
        tsas=tsas,
        ocsp_freshness_seconds=params.global_settings.ocsp_freshness_seconds,
        verify_ocsp_next_update=nextupdate,
    )


def find_ca_info(params: SharedParameters, subject: x509.Name) -> CaInfo | None:
    """The top or intermediate CA entry whose certificate subject is ``subject``."""
    wanted = subject.public_bytes()
    for ca in params.approved_cas:
        for info in ca.ca_infos():
            try:
                cert = _cert(info.cert)
            except XRoadError:
                continue  # an unreadable CA cannot be the issuer we look for
            if cert.subject.public_bytes() == wanted:
                return info
    return None


# --- private parameters and anchors --------------------------------------------------------------


@dataclass(frozen=True)
class AnchorSource:
    """``source`` of an anchor: a download URL and its verification certificates (raw bytes;
    they are only public-key containers, §5.3)."""

    download_url: str
    verification_certs: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class ConfigurationAnchor:
    instance_identifier: str
    sources: tuple[AnchorSource, ...]
    generated_at: dt.datetime | None = None


@dataclass(frozen=True)
class ManagementService:
    auth_cert_reg_service_address: str
    management_request_service_provider_id: ClientId
    auth_cert_reg_service_cert: bytes | None = None


@dataclass(frozen=True)
class PrivateParameters:
    """private-params.xml (V2/V3; V3 only adds the ``any`` extension point)."""

    instance_identifier: str
    management_service: ManagementService
    time_stamping_interval_seconds: int
    configuration_anchors: tuple[ConfigurationAnchor, ...] = ()
    extensions: tuple[bytes, ...] = ()

    @property
    def instance(self) -> str:
        return self.instance_identifier
