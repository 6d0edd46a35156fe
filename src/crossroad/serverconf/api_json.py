"""Identifier encodings, JSON shapes and request bodies of the management API, as NIIS's
security server admin API spells them (see :mod:`crossroad.serverconf.api`)."""

import hashlib
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from crossroad.crypto.certs import load_certificate
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, GlobalGroupId, LocalGroupId
from crossroad.serverconf.model import (
    AccessRight,
    Client,
    ConnectionType,
    Endpoint,
    LocalGroup,
    ServerConf,
    ServiceDescription,
    ServiceEntry,
    Subject,
)

if TYPE_CHECKING:
    pass

CONNECTION = {
    ConnectionType.NOSSL: "HTTP",
    ConnectionType.SSLNOAUTH: "HTTPS_NO_AUTH",
    ConnectionType.SSLAUTH: "HTTPS",
}
CONNECTION_IN = {v: k for k, v in CONNECTION.items()}


# ---------------------------------------------------------------------------------------------
# Identifier encodings (NIIS: colon-separated)


def decode_client(text: str) -> ClientId:
    parts = text.split(":")
    if len(parts) not in (3, 4) or not all(parts):
        raise XRoadError(Code.INVALID_CLIENT_IDENTIFIER, f"Invalid client id {text!r}")
    return ClientId(*parts).validate()


def encode_client(client: ClientId) -> str:
    return ":".join(client.parts())


def encode_subject(conf: ServerConf, owner: ClientId, subject: Subject) -> str:
    if isinstance(subject, ClientId):
        return encode_client(subject)
    if isinstance(subject, GlobalGroupId):
        return f"{subject.instance}:{subject.group_code}"
    group = conf.local_group(owner, subject.group_code)
    return str(group.id) if group is not None else subject.group_code


def decode_subject(conf: ServerConf, owner: ClientId, text: str, kind: str | None) -> Subject:
    kind = (kind or "").upper() or None
    if kind == "LOCALGROUP" or (kind is None and text.isdigit()):
        found = conf.local_group_by_id(int(text)) if text.isdigit() else None
        if found is None or found[0] != owner:
            raise XRoadError(Code.LOCAL_GROUP_NOT_FOUND, f"Local group {text} not found")
        return LocalGroupId(found[1].code)
    parts = text.split(":")
    if kind == "GLOBALGROUP" or (kind is None and len(parts) == 2):
        if len(parts) != 2 or not all(parts):
            raise XRoadError(Code.INVALID_SERVICE_CLIENT_ID, f"Invalid global group id {text!r}")
        return GlobalGroupId(*parts).validate()
    try:
        return decode_client(text)
    except XRoadError:
        raise XRoadError(
            Code.INVALID_SERVICE_CLIENT_ID, f"Invalid service client {text!r}"
        ) from None


def find_service(conf: ServerConf, text: str) -> ServiceEntry:
    client_text, sep, full_code = text.rpartition(":")
    if not sep:
        raise XRoadError(Code.INVALID_SERVICE_IDENTIFIER, f"Invalid service id {text!r}")
    client = decode_client(client_text)
    for entry in conf.services_of(client):
        if entry.service.full_code == full_code:
            return entry
    raise XRoadError(Code.SERVICE_NOT_FOUND, f"Service {text} not found")


# ---------------------------------------------------------------------------------------------
# JSON shapes


def iso_time(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def client_json(conf: ServerConf, client: Client) -> dict[str, Any]:
    cid = client.id
    out: dict[str, Any] = {
        "id": encode_client(cid),
        "instance_id": cid.instance,
        "member_class": cid.member_class,
        "member_code": cid.member_code,
        "owner": conf.owner == cid,
        "connection_type": CONNECTION[client.connection_type],
        "status": client.status.value.upper().replace(" ", "_"),
    }
    if cid.subsystem_code is not None:
        out["subsystem_code"] = cid.subsystem_code
    return out


def endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": str(endpoint.id),
        "service_code": endpoint.service_code,
        "method": endpoint.method,
        "path": endpoint.path,
        "generated": endpoint.generated,
    }


def service_json(conf: ServerConf, entry: ServiceEntry) -> dict[str, Any]:
    service = entry.service
    acl = conf.acl(entry.provider, service.service_code)
    return {
        "id": f"{encode_client(entry.provider)}:{service.full_code}",
        "full_service_code": service.full_code,
        "service_code": service.service_code,
        "title": service.title,
        "timeout": service.timeout,
        "ssl_auth": service.ssl_authentication,
        "url": service.url,
        "subjects_count": len({r.subject for r, _e in acl.all}),
        "endpoints": [
            endpoint_json(e) for e in conf.endpoints(entry.provider, service.service_code)
        ],
    }


def description_json(conf: ServerConf, description: ServiceDescription) -> dict[str, Any]:
    entries = [
        e for e in conf.services_of(description.client) if e.description.id == description.id
    ]
    return {
        "id": str(description.id),
        "url": description.url,
        "type": description.type.value,
        "disabled": description.disabled,
        "disabled_notice": description.disabled_notice or "",
        "refreshed_at": iso_time(description.refreshed_at),
        "services": [service_json(conf, e) for e in entries],
        "client_id": encode_client(description.client),
    }


def group_json(owner: ClientId, group: LocalGroup) -> dict[str, Any]:
    return {
        "id": str(group.id),
        "code": group.code,
        "description": group.description,
        "member_count": len(group.members),
        "updated_at": iso_time(group.updated_at),
        "members": [
            {
                "id": encode_client(m.id),
                "member_name": m.id.member_code,
                "created_at": iso_time(m.added_at),
            }
            for m in group.members
        ],
    }


def service_client_json(conf: ServerConf, owner: ClientId, right: AccessRight) -> dict[str, Any]:
    subject = right.subject
    out: dict[str, Any] = {
        "id": encode_subject(conf, owner, subject),
        "service_client_type": subject.object_type.value,
        "rights_given_at": iso_time(right.rights_given_at),
    }
    if isinstance(subject, LocalGroupId):
        out["local_group_code"] = subject.group_code
        group = conf.local_group(owner, subject.group_code)
        out["name"] = group.description if group is not None else subject.group_code
    return out


def cert_json(der: bytes) -> dict[str, Any]:
    cert = load_certificate(der)

    def cn(name: Any) -> str:
        attrs = [a.value for a in name if a.oid.dotted_string == "2.5.4.3"]
        return str(attrs[0]) if attrs else ""

    return {
        "hash": hashlib.sha1(der).hexdigest().upper(),
        "sha256": hashlib.sha256(der).hexdigest(),
        "subject_distinguished_name": cert.subject.rfc4514_string(),
        "subject_common_name": cn(cert.subject),
        "issuer_distinguished_name": cert.issuer.rfc4514_string(),
        "issuer_common_name": cn(cert.issuer),
        "serial": str(cert.serial_number),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


# ---------------------------------------------------------------------------------------------
# Request bodies


class ClientIn(BaseModel):
    member_class: str
    member_code: str
    subsystem_code: str | None = None
    instance_id: str | None = None
    connection_type: Literal["HTTP", "HTTPS", "HTTPS_NO_AUTH"] | None = None


class ClientAdd(BaseModel):
    client: ClientIn
    ignore_warnings: bool = False


class ConnectionTypeWrapper(BaseModel):
    connection_type: Literal["HTTP", "HTTPS", "HTTPS_NO_AUTH"]


class ServiceDescriptionAdd(BaseModel):
    url: str = Field(min_length=1, max_length=2048)
    type: Literal["WSDL", "OPENAPI3", "REST"]
    rest_service_code: str | None = None
    ignore_warnings: bool = False


class ServiceDescriptionUpdate(BaseModel):
    url: str | None = None
    type: Literal["WSDL", "OPENAPI3", "REST"] | None = None
    rest_service_code: str | None = None
    new_rest_service_code: str | None = None
    ignore_warnings: bool = False


class DisabledNotice(BaseModel):
    disabled_notice: str | None = None


class ServiceUpdate(BaseModel):
    url: str | None = None
    timeout: int | None = Field(default=None, ge=0, le=1000)
    ssl_auth: bool | None = None
    url_all: bool = False
    timeout_all: bool = False
    ssl_auth_all: bool = False
    ignore_warnings: bool = False


class EndpointIn(BaseModel):
    method: str
    path: str
    service_code: str | None = None


class ServiceClientIn(BaseModel):
    id: str
    service_client_type: str | None = None


class ServiceClients(BaseModel):
    items: list[ServiceClientIn] = []


class AccessRightIn(BaseModel):
    service_code: str


class AccessRights(BaseModel):
    items: list[AccessRightIn] = []


class LocalGroupAdd(BaseModel):
    code: str = Field(min_length=1, max_length=255)
    description: str = Field(min_length=1, max_length=255)


class LocalGroupDescription(BaseModel):
    description: str = Field(min_length=1, max_length=255)


class Members(BaseModel):
    items: list[str] = []


class InitialServerConf(BaseModel):
    owner_member_class: str
    owner_member_code: str
    security_server_code: str
    instance_identifier: str
