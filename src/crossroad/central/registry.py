"""The central server registry: every registry table, every change (with history), and the
read model configuration generation starts from (protocols.md §5.4, §5.5, §11.1).

:class:`Registry` combines one part per noun — members (:mod:`.registry_members`), security
servers (:mod:`.registry_servers`), global groups (:mod:`.registry_groups`), certification and
time-stamping services (:mod:`.registry_services`), system parameters, management service,
API keys and history (:mod:`.registry_system`), configuration sources, signing keys, optional
parts and trusted anchors (:mod:`.registry_conf`) — and builds :meth:`Registry.shared_parameters`
and :meth:`Registry.private_parameters` from one consistent read.

Invalid input, duplicates and unknown references are coded :class:`XRoadError`s (NIIS's
central server codes, ``errors.Code``).  ``actor`` is who the history rows name (``cli:<user>``,
``api:<key name>``).
"""

from __future__ import annotations

from crossroad.central.registry_base import RegistryBase
from crossroad.central.registry_conf import ConfMixin
from crossroad.central.registry_groups import GroupsMixin
from crossroad.central.registry_members import MembersMixin
from crossroad.central.registry_records import (
    ApiKeyRecord,
    ApprovedCaRecord,
    ApprovedTsaRecord,
    AuthCertRecord,
    CaCertRecord,
    ConfigurationPartRecord,
    ConfigurationSourceRecord,
    GlobalGroupRecord,
    HistoryRecord,
    MemberRecord,
    OcspResponderRecord,
    Role,
    SecurityServerRecord,
    ServerClientRecord,
    SigningKeyRecord,
    SourceType,
    SubsystemRecord,
    TrustedAnchorRecord,
)
from crossroad.central.registry_servers import ServersMixin
from crossroad.central.registry_services import ServicesMixin
from crossroad.central.registry_system import SystemMixin
from crossroad.crypto.algorithms import SHA256, DigestAlgorithm
from crossroad.globalconf.model import (
    GlobalGroup,
    GlobalSettings,
    MaintenanceMode,
    Member,
    PrivateParameters,
    SecurityServer,
    SharedParameters,
    Subsystem,
)
from crossroad.globalconf.privateparams import parse_anchor

__all__ = [
    "ApiKeyRecord",
    "ApprovedCaRecord",
    "ApprovedTsaRecord",
    "AuthCertRecord",
    "CaCertRecord",
    "ConfigurationPartRecord",
    "ConfigurationSourceRecord",
    "GlobalGroupRecord",
    "HistoryRecord",
    "MemberRecord",
    "OcspResponderRecord",
    "Registry",
    "Role",
    "SecurityServerRecord",
    "ServerClientRecord",
    "SigningKeyRecord",
    "SourceType",
    "SubsystemRecord",
    "TrustedAnchorRecord",
]


class Registry(
    MembersMixin,
    ServersMixin,
    GroupsMixin,
    ServicesMixin,
    SystemMixin,
    ConfMixin,
    RegistryBase,
):
    """The registry of one central server on ``engine`` (migrated with
    :func:`crossroad.storage.engine.migrate`), acting as ``actor``."""

    def shared_parameters(self, *, auth_cert_hash: DigestAlgorithm = SHA256) -> SharedParameters:
        """The shared parameters, without ``sources`` (the distribution side adds those).

        ``auth_cert_hash``: SHA-256 for V3+, SHA-1 for V2 (§5.5).  Only enabled clients are
        listed; the owners group is there as kept from the server owners.
        """
        with self._read() as conn:
            instance = self._instance(conn)
            params = self._parameters(conn)
            classes = self._member_classes(conn)
            by_code = {mc.code: mc for mc in classes}
            members = tuple(
                Member(
                    member_class=by_code[record.id.member_class],
                    member_code=record.id.member_code,
                    name=record.name,
                    subsystems=tuple(
                        Subsystem(str(s.id.subsystem_code), s.name) for s in record.subsystems
                    ),
                )
                for record in self._member_records(conn)
            )
            servers = tuple(
                SecurityServer(
                    owner=record.id.owner,
                    server_code=record.id.server_code,
                    address=record.address,
                    auth_cert_hashes=tuple(
                        auth_cert_hash.digest(a.cert) for a in record.auth_certs
                    ),
                    clients=tuple(c.client for c in record.clients if c.enabled),
                    maintenance=MaintenanceMode(record.maintenance_message)
                    if record.in_maintenance
                    else None,
                )
                for record in self._server_records(conn)
            )
            groups = tuple(
                GlobalGroup(g.code, g.description, g.members) for g in self._group_records(conn)
            )
            cas = tuple(ca.info() for ca in self._ca_records(conn))
            tsas = tuple(tsa.info() for tsa in self._tsa_records(conn))
        return SharedParameters(
            instance_identifier=instance,
            global_settings=GlobalSettings(int(params["ocspFreshnessSeconds"]), classes),
            approved_cas=cas,
            approved_tsas=tsas,
            members=members,
            security_servers=servers,
            global_groups=groups,
        )

    def private_parameters(self) -> PrivateParameters:
        """The private parameters: management service, time-stamping interval, and the
        federation partners' anchors (§5.4, §5.7)."""
        with self._read() as conn:
            instance = self._instance(conn)
            params = self._parameters(conn)
        return PrivateParameters(
            instance_identifier=instance,
            management_service=self._management_service(params),
            time_stamping_interval_seconds=int(params["timeStampingIntervalSeconds"]),
            configuration_anchors=tuple(
                parse_anchor(a.anchor_file) for a in self.trusted_anchors()
            ),
        )
