"""The values the central server registry hands out (protocols.md §11.1): frozen records of
members, security servers, groups, certification and time-stamping services, configuration
sources and keys, optional parts, trusted anchors, API keys and history entries.

Where the global configuration model already has the value (:class:`MemberClass`,
:class:`ManagementService`, :class:`AcmeServer`, …) the registry uses it as is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from crossroad.globalconf.model import (
    AcmeServer,
    ApprovedCAInfo,
    ApprovedTSAInfo,
    CaInfo,
    CostType,
    CsrFormat,
    OcspInfo,
)
from crossroad.identifiers import ClientId, SecurityServerId


class Role(StrEnum):
    """Roles of management API keys (NIIS's central server roles)."""

    REGISTRATION_OFFICER = "registration_officer"
    SECURITY_OFFICER = "security_officer"
    SYSTEM_ADMINISTRATOR = "system_administrator"
    OBSERVER = "observer"


class SourceType(StrEnum):
    """A configuration source: internal (own security servers) or external (federation)."""

    INTERNAL = "internal"
    EXTERNAL = "external"


@dataclass(frozen=True)
class SubsystemRecord:
    id: ClientId
    name: str | None = None


@dataclass(frozen=True)
class MemberRecord:
    id: ClientId
    name: str
    subsystems: tuple[SubsystemRecord, ...] = ()
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class AuthCertRecord:
    id: int
    cert: bytes
    hash: str  # SHA-256 of the DER, lower-case hex
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class ServerClientRecord:
    client: ClientId
    enabled: bool = True


@dataclass(frozen=True)
class SecurityServerRecord:
    id: SecurityServerId
    owner_name: str
    address: str | None = None
    in_maintenance: bool = False
    maintenance_message: str | None = None
    auth_certs: tuple[AuthCertRecord, ...] = ()
    clients: tuple[ServerClientRecord, ...] = ()
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class GlobalGroupRecord:
    code: str
    description: str
    members: tuple[ClientId, ...] = ()
    owners_group: bool = False
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class OcspResponderRecord:
    id: int
    url: str
    cert: bytes | None = None
    cost_type: CostType | None = None

    def info(self) -> OcspInfo:
        return OcspInfo(self.url, self.cert, self.cost_type)


@dataclass(frozen=True)
class CaCertRecord:
    """The top or an intermediate CA certificate of an approved CA, with its OCSP responders."""

    id: int
    cert: bytes
    ocsp: tuple[OcspResponderRecord, ...] = ()

    def info(self) -> CaInfo:
        return CaInfo(self.cert, tuple(o.info() for o in self.ocsp))


@dataclass(frozen=True)
class ApprovedCaRecord:
    id: int
    name: str
    top: CaCertRecord
    certificate_profile_info: str
    intermediates: tuple[CaCertRecord, ...] = ()
    authentication_only: bool = False
    default_csr_format: CsrFormat | None = None
    acme_server: AcmeServer | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    def info(self) -> ApprovedCAInfo:
        return ApprovedCAInfo(
            name=self.name,
            top_ca=self.top.info(),
            certificate_profile_info=self.certificate_profile_info,
            intermediate_cas=tuple(i.info() for i in self.intermediates),
            authentication_only=self.authentication_only,
            default_csr_format=self.default_csr_format,
            acme_server=self.acme_server,
        )


@dataclass(frozen=True)
class ApprovedTsaRecord:
    id: int
    name: str
    url: str
    cert: bytes
    cost_type: CostType | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    def info(self) -> ApprovedTSAInfo:
        return ApprovedTSAInfo(self.name, self.url, self.cert, self.cost_type)


@dataclass(frozen=True)
class ConfigurationSourceRecord:
    source_type: SourceType
    ha_node_name: str
    anchor_file: bytes | None = None
    anchor_file_hash: str | None = None
    anchor_generated_at: dt.datetime | None = None


@dataclass(frozen=True)
class SigningKeyRecord:
    """A configuration signing key: its certificate and where its private key lives."""

    key_id: str
    source_type: SourceType
    cert: bytes
    active: bool
    key_reference: str
    created_at: dt.datetime | None = None
    ha_node_name: str = "node_0"


@dataclass(frozen=True)
class ConfigurationPartRecord:
    content_identifier: str
    file_name: str
    data: bytes
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class TrustedAnchorRecord:
    instance_identifier: str
    hash: str  # SHA-224, upper-case hex pairs as NIIS shows it
    anchor_file: bytes
    generated_at: dt.datetime | None = None
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class ApiKeyRecord:
    id: int
    name: str
    roles: frozenset[Role]
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class HistoryRecord:
    id: int
    actor: str
    at: dt.datetime
    table_name: str
    operation: str
    record_id: str | None
    old_data: dict[str, Any] | None
    new_data: dict[str, Any] | None
