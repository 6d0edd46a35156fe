"""Management API routes: initialization, system parameters and address, the management service,
optional configuration parts, federation trusted anchors, API keys and the change history
(§5.4, §5.6, §5.7, §11.1).  Signing keys and source anchors are the distribution side's
(``crossroad.central.api_conf``)."""

from __future__ import annotations

import base64
import binascii
import hashlib

from fastapi import APIRouter, Body, Depends, Query, Response

from crossroad.central.api_auth import ADMINISTRATION, SECURITY, requires
from crossroad.central.api_models import (
    ApiKey,
    ApiKeyCreate,
    ApiKeyCreated,
    CentralServerAddress,
    ConfigurationPart,
    ConfigurationPartUpload,
    HistoryEntry,
    Initialization,
    InitializationStatus,
    ManagementServicesChange,
    ManagementServicesConfiguration,
    ParameterValue,
    TrustedAnchor,
    decode_client,
)
from crossroad.central.registry import ConfigurationPartRecord, Registry, TrustedAnchorRecord
from crossroad.central.registry_system import (
    AUTH_CERT_REG_CERT,
    AUTH_CERT_REG_URL,
    MANAGEMENT_SERVICE_PROVIDER,
)
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId

router = APIRouter()
_read = requires()
_admin = requires(*ADMINISTRATION)
_security = requires(*SECURITY)


def _part(record: ConfigurationPartRecord) -> ConfigurationPart:
    return ConfigurationPart(
        content_identifier=record.content_identifier,
        file_name=record.file_name,
        file_updated_at=record.updated_at,
        size=len(record.data),
        hash=hashlib.sha256(record.data).hexdigest(),
    )


def _anchor(record: TrustedAnchorRecord) -> TrustedAnchor:
    return TrustedAnchor(
        instance_identifier=record.instance_identifier,
        hash=record.hash,
        generated_at=record.generated_at,
        created_at=record.created_at,
    )


# --- initialization and system -----------------------------------------------------------------


@router.get("/initialization/status", tags=["initialization"])
def initialization_status(reg: Registry = Depends(_read)) -> InitializationStatus:
    params = reg.parameters()
    instance = params.get("instanceIdentifier")
    return InitializationStatus(
        instance_identifier=instance,
        central_server_address=params.get("centralServerAddress"),
        initialized=bool(instance),
    )


@router.post("/initialization", tags=["initialization"])
def initialize(body: Initialization, reg: Registry = Depends(_admin)) -> InitializationStatus:
    reg.initialize(body.instance_identifier, body.central_server_address)
    return initialization_status(reg)


@router.get("/system/parameters", tags=["system"])
def list_parameters(reg: Registry = Depends(_read)) -> dict[str, str]:
    return reg.parameters()


@router.put("/system/parameters/{key}", tags=["system"])
def set_parameter(
    key: str, body: ParameterValue, reg: Registry = Depends(_admin)
) -> dict[str, str]:
    reg.set_parameter(key, body.value)
    return reg.parameters()


@router.get("/system/server-address", tags=["system"])
def server_address(reg: Registry = Depends(_read)) -> CentralServerAddress:
    address = reg.parameter("centralServerAddress")
    if not address:
        raise XRoadError(
            Code.CENTRAL_SERVER_ADDRESS_NOT_SET, "The central server address is not set"
        )
    return CentralServerAddress(central_server_address=address)


@router.put("/system/server-address", tags=["system"])
def set_server_address(
    body: CentralServerAddress, reg: Registry = Depends(_admin)
) -> CentralServerAddress:
    reg.set_parameter("centralServerAddress", body.central_server_address)
    return server_address(reg)


@router.get("/system/version", tags=["system"])
def version() -> dict[str, str]:
    from crossroad import XROAD_VERSION, __version__

    return {"info": f"crossroad {__version__} central server (X-Road {XROAD_VERSION})"}


# --- management service ------------------------------------------------------------------------


def _management(reg: Registry) -> ManagementServicesConfiguration:
    params = reg.parameters()
    provider = params.get(MANAGEMENT_SERVICE_PROVIDER)
    name = None
    encoded = None
    if provider:
        client = ClientId.parse(provider)
        encoded = ":".join(client.parts())
        try:
            member = reg.member(client)
            name = member.name
        except XRoadError:
            name = None
    return ManagementServicesConfiguration(
        service_provider_id=encoded,
        service_provider_name=name,
        services_address=params.get(AUTH_CERT_REG_URL),
        security_server_owners_global_group_code=params["securityServerOwnersGroup"],
        has_certificate=bool(params.get(AUTH_CERT_REG_CERT)),
    )


@router.get("/management-services-configuration", tags=["management-services"])
def management_services(reg: Registry = Depends(_read)) -> ManagementServicesConfiguration:
    return _management(reg)


@router.patch("/management-services-configuration", tags=["management-services"])
def change_management_services(
    body: ManagementServicesChange, reg: Registry = Depends(_admin)
) -> ManagementServicesConfiguration:
    reg.set_management_service(
        decode_client(body.service_provider_id) if body.service_provider_id else None,
        auth_cert_reg_url=body.services_address,
        auth_cert_reg_cert=body.certificate.encode("ascii", "replace")
        if body.certificate
        else None,
    )
    return _management(reg)


# --- optional configuration parts --------------------------------------------------------------


@router.get("/configuration-parts", tags=["configuration-parts"])
def list_parts(reg: Registry = Depends(_read)) -> list[ConfigurationPart]:
    return [_part(p) for p in reg.configuration_parts()]


@router.put("/configuration-parts/{content_identifier}", tags=["configuration-parts"])
def upload_part(
    content_identifier: str, body: ConfigurationPartUpload, reg: Registry = Depends(_admin)
) -> ConfigurationPart:
    try:
        data = base64.b64decode(body.data, validate=True)
    except (binascii.Error, ValueError):
        raise XRoadError(Code.INVALID_REQUEST, "data must be base64") from None
    return _part(reg.set_configuration_part(content_identifier, data, body.file_name))


@router.delete(
    "/configuration-parts/{content_identifier}", status_code=204, tags=["configuration-parts"]
)
def delete_part(content_identifier: str, reg: Registry = Depends(_admin)) -> Response:
    reg.delete_configuration_part(content_identifier)
    return Response(status_code=204)


# --- trusted anchors ---------------------------------------------------------------------------


@router.get("/trusted-anchors", tags=["trusted-anchors"])
def list_anchors(reg: Registry = Depends(_read)) -> list[TrustedAnchor]:
    return [_anchor(a) for a in reg.trusted_anchors()]


@router.post("/trusted-anchors", status_code=201, tags=["trusted-anchors"])
def upload_anchor(
    anchor: bytes = Body(..., media_type="application/xml", description="the anchor file"),
    reg: Registry = Depends(_security),
) -> TrustedAnchor:
    return _anchor(reg.add_trusted_anchor(anchor))


@router.get("/trusted-anchors/{hash}/download", tags=["trusted-anchors"])
def download_anchor(hash: str, reg: Registry = Depends(_read)) -> Response:
    wanted = hash.replace(":", "").upper()
    for anchor in reg.trusted_anchors():
        if anchor.hash.replace(":", "") == wanted:
            return Response(anchor.anchor_file, media_type="application/xml")
    raise XRoadError(Code.TRUSTED_ANCHOR_NOT_FOUND, f"No trusted anchor {hash}")


@router.delete("/trusted-anchors/{hash}", status_code=204, tags=["trusted-anchors"])
def delete_anchor(hash: str, reg: Registry = Depends(_security)) -> Response:
    reg.delete_trusted_anchor(hash)
    return Response(status_code=204)


# --- API keys and history ----------------------------------------------------------------------


@router.get("/api-keys", tags=["api-keys"])
def list_api_keys(reg: Registry = Depends(_admin)) -> list[ApiKey]:
    return [ApiKey.of(k) for k in reg.api_keys()]


@router.post("/api-keys", status_code=201, tags=["api-keys"])
def create_api_key(body: ApiKeyCreate, reg: Registry = Depends(_admin)) -> ApiKeyCreated:
    record, secret = reg.create_api_key(body.name, body.roles)
    return ApiKeyCreated(**ApiKey.of(record).model_dump(), key=secret)


@router.delete("/api-keys/{key_id}", status_code=204, tags=["api-keys"])
def revoke_api_key(key_id: int, reg: Registry = Depends(_admin)) -> Response:
    reg.revoke_api_key(key_id)
    return Response(status_code=204)


@router.get("/history", tags=["history"])
def history(
    limit: int = Query(100, ge=1, le=10_000),
    table: str | None = Query(None, description="only changes of this table"),
    reg: Registry = Depends(_read),
) -> list[HistoryEntry]:
    return [HistoryEntry.of(h) for h in reg.history(limit, table=table)]
