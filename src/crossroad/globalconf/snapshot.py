"""An immutable, indexed view of one downloaded global configuration (protocols.md §5.2–5.7).

:class:`GlobalConfSnapshot` holds the own instance's shared and private parameters, the
federated instances' shared parameters, the optional parts (§5.6) and the expiry of each, and
answers what a security server asks on every message in constant time: the addresses of the
servers that serve a client, the server an authentication certificate belongs to, whether a
client is registered on a server, the approved CA and OCSP responders of a certificate (ordered by
cost type), TSA certificates, global group membership, member names, and the intervals and
freshness limits.  The indexes are built once, when the snapshot is made; a new configuration is
a new snapshot, swapped in whole.

It also derives the download locations that V3+ ``source`` elements offer (NIIS
``SharedParametersConfigurationLocations``, §5.1): :func:`locations`.

Sans-I/O: built from values (or from an already loaded
:class:`~crossroad.globalconf.directory.ConfigurationDirectory`); validity is judged at a time the
caller passes in.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cryptography import x509

from crossroad.crypto.algorithms import SHA1, SHA256
from crossroad.crypto.certs import cert_der
from crossroad.crypto.trust import TrustPolicy
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import (
    ApprovedCAInfo,
    ApprovedTSAInfo,
    CaInfo,
    MaintenanceMode,
    ManagementService,
    Member,
    OcspInfo,
    OcspPreference,
    PrivateParameters,
    SecurityServer,
    SharedParameters,
    build_trust_policy,
    order_ocsp,
)
from crossroad.globalconf.privateparams import (
    FETCHINTERVAL_DEFAULT,
    parse_fetch_interval,
    parse_monitoring_params,
    parse_next_update,
)
from crossroad.globalconf.sharedparams import bulk_build
from crossroad.identifiers import ClientId, GlobalGroupId, SecurityServerId

if TYPE_CHECKING:
    from crossroad.globalconf.directory import ConfigurationDirectory

__all__ = ["ConfigurationLocation", "GlobalConfSnapshot", "configuration_path", "locations"]

#: Cost types order OCSP responders only from this shared-parameters version on (NIIS
#: ``GLOBAL_CONF_VERSION_WITH_COST_TYPE``); older configurations keep their own order.
COST_TYPE_VERSION = 6


@dataclass(frozen=True)
class _CaEntry:
    """An approved CA certificate (top or intermediate) and where it came from."""

    instance: str
    approved_ca: ApprovedCAInfo
    info: CaInfo
    cert: x509.Certificate
    ordered_ocsp: Mapping[OcspPreference, tuple[OcspInfo, ...]]


# Index keys are plain tuples: a ClientId's fields (instance, class, code, subsystem or None),
# a server's owner fields plus its code.  Tuples hash and compare in C, which keeps the index
# build and every lookup several times faster than hashing the identifier dataclasses.
_ClientKey = tuple[str, str, str, str | None]
_ServerKey = tuple[str, str, str, str]


def _ckey(c: ClientId) -> _ClientKey:
    return (c.instance, c.member_class, c.member_code, c.subsystem_code)


def _skey(s: SecurityServerId) -> _ServerKey:
    o = s.owner
    return (o.instance, o.member_class, o.member_code, s.server_code)


@dataclass(frozen=True)
class _Index:
    """The lookup tables; built once per snapshot."""

    # client -> (servers it is registered on, their addresses without duplicates)
    clients: Mapping[_ClientKey, tuple[tuple[SecurityServerId, ...], tuple[str, ...]]]
    servers: Mapping[_ServerKey, SecurityServer]
    server_clients: Mapping[_ServerKey, frozenset[_ClientKey]]
    by_auth_hash: Mapping[bytes, SecurityServerId]
    maintenance_by_address: Mapping[tuple[str, str], MaintenanceMode]
    members: Mapping[_ClientKey, Member]
    subsystem_names: Mapping[_ClientKey, str | None]
    groups: Mapping[tuple[str, str], frozenset[_ClientKey]]
    group_descriptions: Mapping[tuple[str, str], str]
    ca_by_subject: Mapping[bytes, _CaEntry]
    tsa_certs: Mapping[str, tuple[x509.Certificate, ...]]
    policies: Mapping[str, TrustPolicy]


@dataclass(frozen=True)
class GlobalConfSnapshot:
    """One configuration, indexed.  Build with :meth:`build` or :meth:`from_directory`.

    ``shared`` maps instance identifiers to shared parameters (own instance first); ``expires``
    maps ``(instance, content identifier)`` to the expiry of that part (absent: no expiry known).
    """

    instance: str
    shared: Mapping[str, SharedParameters]
    private: PrivateParameters | None
    expires: Mapping[tuple[str, str], dt.datetime]
    version: int | None = None
    ocsp_fetch_interval: int = FETCHINTERVAL_DEFAULT
    verify_next_update: bool = True
    monitoring_client: ClientId | None = None
    optional_parts: Mapping[str, bytes] = field(default_factory=dict)
    _index: _Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        with bulk_build():
            index = _build_index(self.shared, self.version, self.verify_next_update)
        object.__setattr__(self, "_index", index)

    # -- construction --

    @classmethod
    def build(
        cls,
        shared: SharedParameters,
        private: PrivateParameters | None,
        *,
        federated: Iterable[SharedParameters] = (),
        shared_expires: dt.datetime | None = None,
        private_expires: dt.datetime | None = None,
        federated_expires: Mapping[str, dt.datetime] | None = None,
        version: int | None = None,
        optional_parts: Mapping[str, bytes] | None = None,
    ) -> GlobalConfSnapshot:
        """A snapshot of the own instance ``shared``/``private`` plus federated instances.

        ``optional_parts`` maps content identifiers (``FETCHINTERVAL``, ``NEXTUPDATE``,
        ``MONITORING``, or any other, kept unread) to file bytes; a malformed known part gives
        ``malformed_optional_parts_conf``.
        """
        own = shared.instance_identifier
        if private is not None and private.instance_identifier != own:
            raise XRoadError(
                Code.MALFORMED_GLOBALCONF,
                f"Private parameters of {private.instance_identifier!r} with shared parameters"
                f" of {own!r}",
            )
        instances = {own: shared}
        for params in federated:
            instances.setdefault(params.instance_identifier, params)
        expires: dict[tuple[str, str], dt.datetime] = {}
        if shared_expires is not None:
            expires[(own, "SHARED-PARAMETERS")] = shared_expires
        if private_expires is not None:
            expires[(own, "PRIVATE-PARAMETERS")] = private_expires
        for name, when in (federated_expires or {}).items():
            expires[(name, "SHARED-PARAMETERS")] = when
        parts = dict(optional_parts or {})
        fetch = parts.get("FETCHINTERVAL")
        nextupdate = parts.get("NEXTUPDATE")
        monitoring = parts.get("MONITORING")
        return cls(
            instance=own,
            shared=instances,
            private=private,
            expires=expires,
            version=version,
            ocsp_fetch_interval=(
                parse_fetch_interval(fetch) if fetch is not None else FETCHINTERVAL_DEFAULT
            ),
            verify_next_update=parse_next_update(nextupdate) if nextupdate is not None else True,
            monitoring_client=(
                parse_monitoring_params(monitoring) if monitoring is not None else None
            ),
            optional_parts=parts,
        )

    @classmethod
    def from_directory(cls, directory: ConfigurationDirectory) -> GlobalConfSnapshot:
        """The snapshot of a loaded configuration directory (its values, no file access).

        Instances are keyed by directory name, as NIIS looks them up.
        """
        own = directory.files_of(directory.instance)
        if own is None or own.shared is None:
            raise XRoadError(
                Code.MALFORMED_GLOBALCONF,
                f"No shared parameters for own instance {directory.instance!r}",
            )
        instances = {directory.instance: own.shared}
        expires: dict[tuple[str, str], dt.datetime] = {}
        for name in (directory.instance, *directory.instances()):
            files = directory.files_of(name)
            if files is None or files.shared is None:
                continue
            instances.setdefault(name, files.shared)
            for meta, part in (
                (files.shared_metadata, "SHARED-PARAMETERS"),
                (files.private_metadata, "PRIVATE-PARAMETERS"),
            ):
                if meta is not None and meta.expiration_date is not None:
                    expires[(name, part)] = meta.expiration_date
        return cls(
            instance=directory.instance,
            shared=instances,
            private=own.private,
            expires=expires,
            version=directory.shared_version(),
            verify_next_update=True if own.verify_next_update is None else own.verify_next_update,
        )

    # -- validity (§5.2) --

    def expires_at(self, instance: str | None = None) -> dt.datetime | None:
        """The earliest expiry of ``instance``'s parameters (own instance by default)."""
        name = instance or self.instance
        found = [when for (inst, _), when in self.expires.items() if inst == name]
        return min(found) if found else None

    def check_valid(self, at: dt.datetime) -> None:
        """``global_conf_outdated`` unless the own instance's shared and private parameters are
        present and not expired at ``at``."""
        if self.private is None:
            raise XRoadError(
                Code.GLOBAL_CONF_OUTDATED,
                f"No private parameters for own instance {self.instance}",
            )
        expires = self.expires_at()
        if expires is not None and at > expires:
            raise XRoadError(
                Code.GLOBAL_CONF_OUTDATED, f"Global configuration expired at {expires.isoformat()}"
            )

    def is_valid(self, at: dt.datetime) -> bool:
        try:
            self.check_valid(at)
        except XRoadError:
            return False
        return True

    def instances(self, at: dt.datetime | None = None) -> tuple[str, ...]:
        """The own instance, then federated ones; with ``at``, expired federated ones are left
        out (NIIS ignores them, the own instance stays)."""
        return tuple(
            name
            for name in self.shared
            if at is None
            or name == self.instance
            or (exp := self.expires_at(name)) is None
            or at <= exp
        )

    # -- own-instance settings --

    @property
    def own_shared(self) -> SharedParameters:
        return self.shared[self.instance]

    @property
    def ocsp_freshness_seconds(self) -> int:
        return self.own_shared.global_settings.ocsp_freshness_seconds

    @property
    def timestamping_interval(self) -> int:
        return self._own_private().time_stamping_interval_seconds

    @property
    def management_service(self) -> ManagementService:
        return self._own_private().management_service

    def _own_private(self) -> PrivateParameters:
        if self.private is None:
            raise XRoadError(
                Code.GLOBAL_CONF_OUTDATED, f"No private parameters for instance {self.instance}"
            )
        return self.private

    def trust_policy(self, instance: str | None = None) -> TrustPolicy:
        """The crypto core's view of ``instance`` (own by default), built with the snapshot."""
        name = instance or self.instance
        policy = self._index.policies.get(name)
        if policy is None:
            raise XRoadError(Code.MALFORMED_GLOBALCONF, f"Unknown instance {name!r}")
        return policy

    # -- members, subsystems, groups --

    def has_client(self, client: ClientId) -> bool:
        """Whether ``client`` is a registered member or subsystem."""
        key = _ckey(client)
        if client.subsystem_code is None:
            return key in self._index.members
        return key in self._index.subsystem_names

    def member_name(self, client: ClientId) -> str | None:
        """The name of the member ``client`` is (or whose subsystem it is)."""
        member = self._index.members.get(
            (client.instance, client.member_class, client.member_code, None)
        )
        return member.name if member is not None else None

    def subsystem_name(self, client: ClientId) -> str | None:
        return self._index.subsystem_names.get(_ckey(client))

    def members(self, instance: str | None = None) -> tuple[Member, ...]:
        return self.shared[instance or self.instance].members

    def is_in_global_group(self, client: ClientId, group: GlobalGroupId) -> bool:
        """Exact membership: a member's subsystem is not in a group listing the member."""
        found = self._index.groups.get((group.instance, group.group_code))
        return found is not None and _ckey(client) in found

    def global_group_description(self, group: GlobalGroupId) -> str | None:
        return self._index.group_descriptions.get((group.instance, group.group_code))

    # -- security servers --

    def provider_addresses(
        self, client: ClientId, *, include_maintenance: bool = False
    ) -> tuple[str, ...]:
        """Addresses of the servers where ``client`` is registered (owners count), in
        configuration order; servers in maintenance mode are left out unless asked for."""
        entry = self._index.clients.get(_ckey(client))
        if entry is None:
            return ()
        found = entry[1]
        if include_maintenance or not self._index.maintenance_by_address:
            return found
        return tuple(
            a for a in found if (client.instance, a) not in self._index.maintenance_by_address
        )

    def servers_of(self, client: ClientId) -> tuple[SecurityServerId, ...]:
        entry = self._index.clients.get(_ckey(client))
        return entry[0] if entry is not None else ()

    def security_server(self, server: SecurityServerId) -> SecurityServer | None:
        return self._index.servers.get(_skey(server))

    def security_server_address(self, server: SecurityServerId) -> str | None:
        found = self._index.servers.get(_skey(server))
        return found.address if found is not None else None

    def is_client_registered(self, client: ClientId, server: SecurityServerId) -> bool:
        """Whether ``client`` is a client (or the owner) of ``server``."""
        found = self._index.server_clients.get(_skey(server))
        return found is not None and _ckey(client) in found

    def maintenance(self, server: SecurityServerId) -> MaintenanceMode | None:
        found = self._index.servers.get(_skey(server))
        return found.maintenance if found is not None else None

    def maintenance_at_address(self, instance: str, address: str) -> MaintenanceMode | None:
        return self._index.maintenance_by_address.get((instance, address))

    def server_by_auth_cert_hash(self, digest: bytes) -> SecurityServerId | None:
        """The server whose ``authCertHash`` is ``digest`` (SHA-256 in V3+, SHA-1 in V2)."""
        return self._index.by_auth_hash.get(digest)

    def server_by_auth_cert(self, cert: x509.Certificate) -> SecurityServerId | None:
        der = cert_der(cert)
        return self._index.by_auth_hash.get(SHA256.digest(der)) or self._index.by_auth_hash.get(
            SHA1.digest(der)
        )

    def known_addresses(self) -> frozenset[str]:
        return frozenset(
            s.address for s in self._index.servers.values() if s.address and s.address.strip()
        )

    # -- certification and time-stamping services --

    def _ca_of(self, cert: x509.Certificate) -> _CaEntry | None:
        return self._index.ca_by_subject.get(cert.issuer.public_bytes())

    def approved_ca(self, cert: x509.Certificate) -> ApprovedCAInfo | None:
        """The approved CA whose top or intermediate certificate issued ``cert``."""
        entry = self._ca_of(cert)
        return entry.approved_ca if entry is not None else None

    def issuer_cert(self, cert: x509.Certificate) -> x509.Certificate | None:
        """The approved CA certificate that issued ``cert`` (by issuer name)."""
        entry = self._ca_of(cert)
        return entry.cert if entry is not None else None

    def ocsp_responders(
        self, cert: x509.Certificate, preference: OcspPreference = OcspPreference.NONE
    ) -> tuple[OcspInfo, ...]:
        """The OCSP responders for ``cert`` (those of its issuing approved CA), ordered or
        filtered by cost type from V6 on."""
        entry = self._ca_of(cert)
        return entry.ordered_ocsp[preference] if entry is not None else ()

    def ocsp_responders_for_ca(
        self, ca_cert: x509.Certificate, preference: OcspPreference = OcspPreference.NONE
    ) -> tuple[OcspInfo, ...]:
        entry = self._index.ca_by_subject.get(ca_cert.subject.public_bytes())
        return entry.ordered_ocsp[preference] if entry is not None else ()

    def approved_tsas(self, instance: str | None = None) -> tuple[ApprovedTSAInfo, ...]:
        return self.shared[instance or self.instance].approved_tsas

    def tsa_certs(self, instance: str | None = None) -> tuple[x509.Certificate, ...]:
        """Approved TSA certificates of ``instance``, or of every instance."""
        if instance is not None:
            return self._index.tsa_certs.get(instance, ())
        return tuple(c for certs in self._index.tsa_certs.values() for c in certs)


# --- index building ----------------------------------------------------------------------------


def _build_index(
    shared: Mapping[str, SharedParameters], version: int | None, nextupdate: bool
) -> _Index:
    per_client: dict[_ClientKey, list[SecurityServer]] = {}
    server_clients: dict[_ServerKey, frozenset[_ClientKey]] = {}
    servers: dict[_ServerKey, SecurityServer] = {}
    server_ids: dict[int, SecurityServerId] = {}
    by_hash: dict[bytes, SecurityServerId] = {}
    maintenance: dict[tuple[str, str], MaintenanceMode] = {}
    members: dict[_ClientKey, Member] = {}
    subsystems: dict[_ClientKey, str | None] = {}
    groups: dict[tuple[str, str], frozenset[_ClientKey]] = {}
    descriptions: dict[tuple[str, str], str] = {}
    cas: dict[bytes, _CaEntry] = {}
    tsas: dict[str, tuple[x509.Certificate, ...]] = {}
    policies: dict[str, TrustPolicy] = {}
    by_cost = version is None or version >= COST_TYPE_VERSION
    for name, params in shared.items():
        instance = params.instance_identifier
        for member in params.members:
            cls, code = member.member_class.code, member.member_code
            members.setdefault((instance, cls, code, None), member)
            for sub in member.subsystems:
                subsystems.setdefault((instance, cls, code, sub.subsystem_code), sub.subsystem_name)
        for server in params.security_servers:
            server_id = server.id
            key = _skey(server_id)
            if key in servers:
                continue  # a duplicate entry: the first one counts
            servers[key] = server
            server_ids[id(server)] = server_id
            keys = [_ckey(c) for c in (server.owner, *server.clients)]
            server_clients[key] = frozenset(keys)
            for client_key in keys:
                found = per_client.get(client_key)
                if found is None:
                    per_client[client_key] = [server]
                elif found[-1] is not server:
                    found.append(server)
            for digest in server.auth_cert_hashes:
                by_hash.setdefault(digest, server_id)
            if server.maintenance is not None and server.address:
                maintenance[(instance, server.address)] = server.maintenance
        for group in params.global_groups:
            group_key = (instance, group.group_code)
            groups.setdefault(group_key, frozenset(_ckey(c) for c in group.members))
            descriptions.setdefault(group_key, group.description)
        policy = policies[name] = build_trust_policy(params, nextupdate)
        for approved, ca in zip(params.approved_cas, policy.cas, strict=True):
            for info, cert in zip(approved.ca_infos(), ca.ca_certs(), strict=True):
                cas.setdefault(
                    cert.subject.public_bytes(),
                    _CaEntry(name, approved, info, cert, _orderings(info.ocsp, by_cost)),
                )
        tsas[name] = tuple(t.cert for t in policy.tsas)
    return _Index(
        clients={k: _client_entry(v, server_ids) for k, v in per_client.items()},
        servers=servers,
        server_clients=server_clients,
        by_auth_hash=by_hash,
        maintenance_by_address=maintenance,
        members=members,
        subsystem_names=subsystems,
        groups=groups,
        group_descriptions=descriptions,
        ca_by_subject=cas,
        tsa_certs=tsas,
        policies=policies,
    )


def _client_entry(
    found: list[SecurityServer], server_ids: Mapping[int, SecurityServerId]
) -> tuple[tuple[SecurityServerId, ...], tuple[str, ...]]:
    if len(found) == 1:  # the common case, kept cheap
        server = found[0]
        address = server.address
        return (server_ids[id(server)],), ((address,) if address and address.strip() else ())
    unique = list({id(s): s for s in found}.values())  # (hashing a server hashes its clients)
    addresses = dict.fromkeys(s.address for s in unique if s.address and s.address.strip())
    return tuple(server_ids[id(s)] for s in unique), tuple(addresses)


def _orderings(
    responders: Sequence[OcspInfo], by_cost: bool
) -> Mapping[OcspPreference, tuple[OcspInfo, ...]]:
    usable = tuple(r for r in responders if r.url.strip())
    return {
        pref: order_ocsp(usable, pref if by_cost else OcspPreference.NONE)
        for pref in OcspPreference
    }


# --- download locations (SharedParametersConfigurationLocations) ----------------------------------

_CONF_PATTERN = re.compile(r"http://[^/]*/")


@dataclass(frozen=True)
class ConfigurationLocation:
    """A URL a signed directory can be downloaded from, and the certificates that verify it."""

    instance: str
    download_url: str
    verification_certs: tuple[bytes, ...] = ()


def configuration_path(download_urls: str | Sequence[str]) -> str:
    """The directory part of the first plain-``http`` URL (``internalconf``, ``PROXY/conf``);
    ``conf_download.invalid_download_url_format`` when there is none."""
    urls = [download_urls] if isinstance(download_urls, str) else list(download_urls)
    first = next((u for u in urls if u.startswith("http") and not u.startswith("https")), None)
    found = _CONF_PATTERN.search(first) if first is not None else None
    if first is None or found is None:
        raise XRoadError(
            Code.INVALID_DOWNLOAD_URL_FORMAT, f"No usable http download URL in {urls!r}"
        )
    return first[found.end() :]


def locations(
    download_urls: str | Sequence[str], shared: SharedParameters | None
) -> tuple[ConfigurationLocation, ...]:
    """The locations a V3+ ``source`` list offers for the directory at ``download_urls``:
    ``https://{address}/{path}`` for every source, then the same over ``http``.  An
    ``internalconf`` path takes the internal verification certificates, ``externalconf`` the
    external ones, anything else (a configuration proxy) both.  Empty when the URLs have no
    usable form or the parameters have no sources (V2)."""
    if shared is None:
        return ()
    try:
        path = configuration_path(download_urls)
    except XRoadError:
        return ()
    found = []
    for source in shared.sources:
        if path == "internalconf":
            certs = source.internal_verification_certs
        elif path == "externalconf":
            certs = source.external_verification_certs
        else:
            certs = source.internal_verification_certs + source.external_verification_certs
        url = f"https://{source.address}/{path}"
        found.append(ConfigurationLocation(shared.instance_identifier, url, certs))
    plain = [
        ConfigurationLocation(loc.instance, "http" + loc.download_url[5:], loc.verification_certs)
        for loc in found
    ]
    return (*found, *plain)
