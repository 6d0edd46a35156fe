"""The JSON shapes of the central server management API (pydantic models for its OpenAPI
description) and the identifier encoding it uses (protocols.md §1, §11.1).

Resource and field names follow NIIS's central server admin API where it has them
(``member_id``, ``member_name``, ``server_address``, ``tls_auth``, ``cost_type``, …), so that
operators' automation carries over.  Identifiers in paths and request bodies use NIIS's encoded
form: components joined by ``:`` (``EE:GOV:1234``, ``EE:GOV:1234:sub``, server ``EE:GOV:1234:ss1``),
which is unambiguous because ``:`` is never part of a component (§1.2).  Certificates travel as
strings: PEM or base64 of the DER.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any, Literal

from pydantic import BaseModel, Field

from crossroad.central.registry import (
    ApiKeyRecord,
    ApprovedCaRecord,
    ApprovedTsaRecord,
    AuthCertRecord,
    CaCertRecord,
    HistoryRecord,
    OcspResponderRecord,
    Role,
    SecurityServerRecord,
)
from crossroad.crypto.certs import load_certificate
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import CostType, CsrFormat
from crossroad.identifiers import ClientId, SecurityServerId

# --- identifiers -------------------------------------------------------------------------------


def _split(text: str, counts: tuple[int, ...], code: str, what: str) -> list[str]:
    parts = text.strip().split(":")
    if len(parts) not in counts or not all(parts):
        raise XRoadError(
            code, f"Invalid {what} {text!r}: expected {' or '.join(map(str, counts))} parts"
        )
    return parts


def decode_client(text: str) -> ClientId:
    """``INSTANCE:CLASS:CODE[:SUBSYSTEM]``."""
    return ClientId(*_split(text, (3, 4), Code.INVALID_CLIENT_IDENTIFIER, "client id"))


def decode_member(text: str) -> ClientId:
    return ClientId(*_split(text, (3,), Code.INVALID_CLIENT_IDENTIFIER, "member id"))


def decode_subsystem(text: str) -> ClientId:
    return ClientId(*_split(text, (4,), Code.INVALID_CLIENT_IDENTIFIER, "subsystem id"))


def decode_server(text: str) -> SecurityServerId:
    parts = _split(text, (4,), Code.INVALID_SECURITY_SERVER, "security server id")
    return SecurityServerId(ClientId(*parts[:3]), parts[3])


def encode(value: ClientId | SecurityServerId) -> str:
    return ":".join(value.parts())


class ClientIdModel(BaseModel):
    instance_id: str
    type: Literal["MEMBER", "SUBSYSTEM"]
    member_class: str
    member_code: str
    subsystem_code: str | None = None
    encoded_id: str

    @classmethod
    def of(cls, client: ClientId) -> ClientIdModel:
        return cls(
            instance_id=client.instance,
            type="SUBSYSTEM" if client.is_subsystem else "MEMBER",
            member_class=client.member_class,
            member_code=client.member_code,
            subsystem_code=client.subsystem_code,
            encoded_id=encode(client),
        )


class SecurityServerIdModel(BaseModel):
    instance_id: str
    type: Literal["SERVER"] = "SERVER"
    member_class: str
    member_code: str
    server_code: str
    encoded_id: str

    @classmethod
    def of(cls, server: SecurityServerId) -> SecurityServerIdModel:
        return cls(
            instance_id=server.instance,
            member_class=server.owner.member_class,
            member_code=server.owner.member_code,
            server_code=server.server_code,
            encoded_id=encode(server),
        )


class NewMemberId(BaseModel):
    member_class: str = Field(min_length=1, max_length=255)
    member_code: str = Field(min_length=1, max_length=255)


class NewSubsystemId(NewMemberId):
    subsystem_code: str = Field(min_length=1, max_length=255)


class NewServerId(NewMemberId):
    server_code: str = Field(min_length=1, max_length=255)


# --- members and subsystems --------------------------------------------------------------------


class MemberClassModel(BaseModel):
    code: str = Field(min_length=1, max_length=255)
    description: str = Field(min_length=1, max_length=255)


class MemberClassDescription(BaseModel):
    description: str = Field(min_length=1, max_length=255)


class Client(BaseModel):
    client_id: ClientIdModel
    member_name: str | None = None
    subsystem_name: str | None = None


class MemberAdd(BaseModel):
    member_name: str = Field(min_length=1, max_length=255)
    member_id: NewMemberId


class MemberName(BaseModel):
    member_name: str = Field(min_length=1, max_length=255)


class SubsystemAdd(BaseModel):
    subsystem_name: str | None = Field(default=None, max_length=255)
    subsystem_id: NewSubsystemId


class SubsystemName(BaseModel):
    subsystem_name: str | None = Field(default=None, max_length=255)


# --- security servers --------------------------------------------------------------------------


class SecurityServer(BaseModel):
    server_id: SecurityServerIdModel
    server_address: str | None = None
    owner_name: str
    in_maintenance_mode: bool
    maintenance_mode_message: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @classmethod
    def of(cls, record: SecurityServerRecord) -> SecurityServer:
        return cls(
            server_id=SecurityServerIdModel.of(record.id),
            server_address=record.address,
            owner_name=record.owner_name,
            in_maintenance_mode=record.in_maintenance,
            maintenance_mode_message=record.maintenance_message,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class SecurityServerAdd(BaseModel):
    server_id: NewServerId
    server_address: str | None = Field(default=None, max_length=255)


class SecurityServerAddress(BaseModel):
    server_address: str | None = Field(default=None, max_length=255)


class MaintenanceMode(BaseModel):
    in_maintenance_mode: bool
    message: str | None = Field(default=None, max_length=1024)


class CertificateFile(BaseModel):
    certificate: str = Field(min_length=1, description="PEM, or base64 of the DER")

    def data(self) -> bytes:
        return self.certificate.encode("ascii", "replace")


class CertificateDetails(BaseModel):
    subject_distinguished_name: str
    issuer_distinguished_name: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    hash: str = Field(description="SHA-256 of the DER, hex")
    encoded: str = Field(description="base64 of the DER")

    @classmethod
    def of(cls, der: bytes) -> CertificateDetails:
        cert = load_certificate(der)
        return cls(
            subject_distinguished_name=cert.subject.rfc4514_string(),
            issuer_distinguished_name=cert.issuer.rfc4514_string(),
            serial=format(cert.serial_number, "X"),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            hash=hashlib.sha256(der).hexdigest(),
            encoded=base64.b64encode(der).decode("ascii"),
        )


class AuthenticationCertificate(BaseModel):
    id: int
    hash: str
    certificate: CertificateDetails
    created_at: dt.datetime | None = None

    @classmethod
    def of(cls, record: AuthCertRecord) -> AuthenticationCertificate:
        return cls(
            id=record.id,
            hash=record.hash,
            certificate=CertificateDetails.of(record.cert),
            created_at=record.created_at,
        )


class ServerClient(BaseModel):
    client_id: ClientIdModel
    enabled: bool


class ServerClientAdd(BaseModel):
    client_id: str = Field(min_length=1, max_length=1023, examples=["EE:GOV:1234:sub"])
    enabled: bool = True


class ServerClientState(BaseModel):
    enabled: bool


# --- global groups -----------------------------------------------------------------------------


class GlobalGroupCodeAndDescription(BaseModel):
    code: str = Field(min_length=1, max_length=255)
    description: str = Field(min_length=1, max_length=255)


class GlobalGroupDescription(BaseModel):
    description: str = Field(min_length=1, max_length=255)


class GlobalGroup(GlobalGroupCodeAndDescription):
    member_count: int
    owners_group: bool = False
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


class GroupMember(BaseModel):
    client_id: ClientIdModel


class Members(BaseModel):
    items: list[str] = Field(examples=[["EE:GOV:1234", "EE:GOV:1234:sub"]])


# --- certification and time-stamping services --------------------------------------------------


class CertificationServiceSettings(BaseModel):
    certificate_profile_info: str | None = None
    tls_auth: bool | None = Field(default=None, description="authentication only (NIIS tls_auth)")
    default_csr_format: CsrFormat | None = None
    acme_server_directory_url: str | None = None
    acme_server_ip_address: str | None = None
    authentication_certificate_profile_id: str | None = None
    signing_certificate_profile_id: str | None = None


class CertificationServiceAdd(CertificationServiceSettings):
    certificate: str = Field(min_length=1, description="PEM, or base64 of the DER")
    certificate_profile_info: str = Field(min_length=1)
    name: str | None = None


class OcspResponder(BaseModel):
    id: int
    url: str
    cost_type: CostType | None = None
    has_certificate: bool
    certificate: CertificateDetails | None = None

    @classmethod
    def of(cls, record: OcspResponderRecord) -> OcspResponder:
        return cls(
            id=record.id,
            url=record.url,
            cost_type=record.cost_type,
            has_certificate=record.cert is not None,
            certificate=CertificateDetails.of(record.cert) if record.cert else None,
        )


class OcspResponderAdd(BaseModel):
    url: str = Field(min_length=1, max_length=1024)
    cost_type: CostType = CostType.UNDEFINED
    certificate: str | None = None


class OcspResponderChange(BaseModel):
    url: str | None = None
    cost_type: CostType | None = None
    certificate: str | None = None


class CertificateAuthority(BaseModel):
    id: int
    ca_certificate: CertificateDetails
    ocsp_responders: list[OcspResponder] = []

    @classmethod
    def of(cls, record: CaCertRecord) -> CertificateAuthority:
        return cls(
            id=record.id,
            ca_certificate=CertificateDetails.of(record.cert),
            ocsp_responders=[OcspResponder.of(o) for o in record.ocsp],
        )


class ApprovedCertificationService(BaseModel):
    id: int
    name: str
    certificate_profile_info: str
    tls_auth: bool
    default_csr_format: CsrFormat | None = None
    acme_server_directory_url: str | None = None
    acme_server_ip_address: str | None = None
    authentication_certificate_profile_id: str | None = None
    signing_certificate_profile_id: str | None = None
    top_ca: CertificateAuthority
    intermediate_cas: list[CertificateAuthority] = []
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @classmethod
    def of(cls, record: ApprovedCaRecord) -> ApprovedCertificationService:
        acme = record.acme_server
        return cls(
            id=record.id,
            name=record.name,
            certificate_profile_info=record.certificate_profile_info,
            tls_auth=record.authentication_only,
            default_csr_format=record.default_csr_format,
            acme_server_directory_url=acme.directory_url if acme else None,
            acme_server_ip_address=acme.ip_address if acme else None,
            authentication_certificate_profile_id=acme.authentication_certificate_profile_id
            if acme
            else None,
            signing_certificate_profile_id=acme.signing_certificate_profile_id if acme else None,
            top_ca=CertificateAuthority.of(record.top),
            intermediate_cas=[CertificateAuthority.of(i) for i in record.intermediates],
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class TimestampingService(BaseModel):
    id: int
    name: str
    url: str
    cost_type: CostType | None = None
    timestamping_interval: int
    certificate: CertificateDetails
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @classmethod
    def of(cls, record: ApprovedTsaRecord, interval: int) -> TimestampingService:
        return cls(
            id=record.id,
            name=record.name,
            url=record.url,
            cost_type=record.cost_type,
            timestamping_interval=interval,
            certificate=CertificateDetails.of(record.cert),
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


class TimestampingServiceAdd(BaseModel):
    url: str = Field(min_length=1, max_length=1024)
    certificate: str = Field(min_length=1)
    cost_type: CostType = CostType.UNDEFINED
    name: str | None = None


class TimestampingServiceChange(BaseModel):
    url: str | None = None
    certificate: str | None = None
    cost_type: CostType | None = None
    name: str | None = None


# --- system ------------------------------------------------------------------------------------


class InitializationStatus(BaseModel):
    instance_identifier: str | None = None
    central_server_address: str | None = None
    initialized: bool


class Initialization(BaseModel):
    instance_identifier: str = Field(min_length=1, max_length=255)
    central_server_address: str | None = Field(default=None, max_length=255)


class CentralServerAddress(BaseModel):
    central_server_address: str = Field(min_length=1, max_length=255)


class ParameterValue(BaseModel):
    value: str | None = Field(default=None, description="null restores the default")


class ManagementServicesConfiguration(BaseModel):
    service_provider_id: str | None = None
    service_provider_name: str | None = None
    services_address: str | None = None
    security_server_owners_global_group_code: str
    has_certificate: bool = False


class ManagementServicesChange(BaseModel):
    service_provider_id: str | None = None
    services_address: str | None = None
    certificate: str | None = None


class ConfigurationPart(BaseModel):
    content_identifier: str
    file_name: str
    file_updated_at: dt.datetime | None = None
    size: int
    hash: str = Field(description="SHA-256 of the data, hex")


class ConfigurationPartUpload(BaseModel):
    file_name: str | None = None
    data: str = Field(description="base64 of the file")


class TrustedAnchor(BaseModel):
    instance_identifier: str
    hash: str
    generated_at: dt.datetime | None = None
    created_at: dt.datetime | None = None


class ApiKey(BaseModel):
    id: int
    name: str
    roles: list[Role]
    created_at: dt.datetime | None = None

    @classmethod
    def of(cls, record: ApiKeyRecord) -> ApiKey:
        return cls(
            id=record.id,
            name=record.name,
            roles=sorted(record.roles),
            created_at=record.created_at,
        )


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=255)
    roles: list[Role] = Field(min_length=1)


class ApiKeyCreated(ApiKey):
    key: str = Field(description="the secret, shown only once")


class HistoryEntry(BaseModel):
    id: int
    actor: str
    at: dt.datetime
    table_name: str
    operation: str
    record_id: str | None = None
    old_data: dict[str, Any] | None = None
    new_data: dict[str, Any] | None = None

    @classmethod
    def of(cls, record: HistoryRecord) -> HistoryEntry:
        return cls(**record.__dict__)


class CodeWithDetails(BaseModel):
    code: str
    metadata: list[str] = []
    validation_errors: dict[str, list[str]] | None = None


class ErrorInfo(BaseModel):
    status: int
    error: CodeWithDetails
