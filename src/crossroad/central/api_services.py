"""Management API routes: approved certification services with their intermediate CAs and OCSP
responders, and approved time-stamping services (§5.5, §11.1), under NIIS's resource names
(``/certification-services``, ``/intermediate-cas``, ``/ocsp-responders``,
``/timestamping-services``).  Certificates are JSON strings (PEM or base64 DER) rather than
NIIS's multipart uploads."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response

from crossroad.central.api_auth import ADMINISTRATION, SECURITY, requires
from crossroad.central.api_models import (
    ApprovedCertificationService,
    CertificateAuthority,
    CertificateFile,
    CertificationServiceAdd,
    CertificationServiceSettings,
    OcspResponder,
    OcspResponderAdd,
    OcspResponderChange,
    TimestampingService,
    TimestampingServiceAdd,
    TimestampingServiceChange,
)
from crossroad.central.registry import ApprovedCaRecord, Registry
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import AcmeServer

router = APIRouter()
_read = requires()
_write = requires(*ADMINISTRATION, *SECURITY)


def _acme(settings: CertificationServiceSettings) -> AcmeServer | None:
    if not settings.acme_server_directory_url:
        if settings.acme_server_ip_address or settings.authentication_certificate_profile_id:
            raise XRoadError(Code.INVALID_REQUEST, "ACME settings need acme_server_directory_url")
        return None
    return AcmeServer(
        settings.acme_server_directory_url,
        settings.acme_server_ip_address,
        settings.authentication_certificate_profile_id,
        settings.signing_certificate_profile_id,
    )


def _intermediate(record: ApprovedCaRecord, intermediate_id: int) -> CertificateAuthority:
    found = next(i for i in record.intermediates if i.id == intermediate_id)
    return CertificateAuthority.of(found)


def _ca_of_intermediate(reg: Registry, intermediate_id: int) -> ApprovedCaRecord:
    for ca in reg.approved_cas():
        if any(i.id == intermediate_id for i in ca.intermediates):
            return ca
    raise XRoadError(Code.INTERMEDIATE_CA_NOT_FOUND, f"No intermediate CA {intermediate_id}")


# --- certification services --------------------------------------------------------------------


@router.get("/certification-services", tags=["certification-services"])
def list_cas(reg: Registry = Depends(_read)) -> list[ApprovedCertificationService]:
    return [ApprovedCertificationService.of(ca) for ca in reg.approved_cas()]


@router.post("/certification-services", status_code=201, tags=["certification-services"])
def add_ca(
    body: CertificationServiceAdd, reg: Registry = Depends(_write)
) -> ApprovedCertificationService:
    record = reg.add_approved_ca(
        body.certificate.encode("ascii", "replace"),
        body.certificate_profile_info,
        name=body.name,
        authentication_only=bool(body.tls_auth),
        default_csr_format=body.default_csr_format,
        acme_server=_acme(body),
    )
    return ApprovedCertificationService.of(record)


@router.get("/certification-services/{certification_service_id}", tags=["certification-services"])
def get_ca(
    certification_service_id: int, reg: Registry = Depends(_read)
) -> ApprovedCertificationService:
    return ApprovedCertificationService.of(reg.approved_ca(certification_service_id))


@router.patch("/certification-services/{certification_service_id}", tags=["certification-services"])
def update_ca(
    certification_service_id: int,
    body: CertificationServiceSettings,
    reg: Registry = Depends(_write),
) -> ApprovedCertificationService:
    given = body.model_fields_set
    changes: dict[str, Any] = {}
    if "certificate_profile_info" in given and body.certificate_profile_info is not None:
        changes["certificate_profile_info"] = body.certificate_profile_info
    if "tls_auth" in given and body.tls_auth is not None:
        changes["authentication_only"] = body.tls_auth
    if "default_csr_format" in given:
        changes["default_csr_format"] = body.default_csr_format
    if given & {"acme_server_directory_url", "acme_server_ip_address"}:
        changes["acme_server"] = _acme(body)
    record = reg.update_approved_ca(certification_service_id, **changes)
    return ApprovedCertificationService.of(record)


@router.delete(
    "/certification-services/{certification_service_id}",
    status_code=204,
    tags=["certification-services"],
)
def delete_ca(certification_service_id: int, reg: Registry = Depends(_write)) -> Response:
    reg.delete_approved_ca(certification_service_id)
    return Response(status_code=204)


@router.get(
    "/certification-services/{certification_service_id}/intermediate-cas",
    tags=["certification-services", "intermediate-cas"],
)
def list_intermediates(
    certification_service_id: int, reg: Registry = Depends(_read)
) -> list[CertificateAuthority]:
    ca = reg.approved_ca(certification_service_id)
    return [CertificateAuthority.of(i) for i in ca.intermediates]


@router.post(
    "/certification-services/{certification_service_id}/intermediate-cas",
    status_code=201,
    tags=["certification-services", "intermediate-cas"],
)
def add_intermediate(
    certification_service_id: int, body: CertificateFile, reg: Registry = Depends(_write)
) -> CertificateAuthority:
    added = reg.add_intermediate_ca(certification_service_id, body.data())
    return CertificateAuthority.of(added)


@router.get(
    "/certification-services/{certification_service_id}/ocsp-responders",
    tags=["certification-services", "ocsp-responders"],
)
def list_ocsp(certification_service_id: int, reg: Registry = Depends(_read)) -> list[OcspResponder]:
    return [OcspResponder.of(o) for o in reg.approved_ca(certification_service_id).top.ocsp]


@router.post(
    "/certification-services/{certification_service_id}/ocsp-responders",
    status_code=201,
    tags=["certification-services", "ocsp-responders"],
)
def add_ocsp(
    certification_service_id: int, body: OcspResponderAdd, reg: Registry = Depends(_write)
) -> OcspResponder:
    cert = body.certificate.encode("ascii", "replace") if body.certificate else None
    added = reg.add_ocsp_responder(certification_service_id, body.url, cert, body.cost_type)
    return OcspResponder.of(added)


@router.get("/intermediate-cas/{intermediate_ca_id}", tags=["intermediate-cas"])
def get_intermediate(
    intermediate_ca_id: int, reg: Registry = Depends(_read)
) -> CertificateAuthority:
    return _intermediate(_ca_of_intermediate(reg, intermediate_ca_id), intermediate_ca_id)


@router.delete("/intermediate-cas/{intermediate_ca_id}", status_code=204, tags=["intermediate-cas"])
def delete_intermediate(intermediate_ca_id: int, reg: Registry = Depends(_write)) -> Response:
    reg.delete_intermediate_ca(intermediate_ca_id)
    return Response(status_code=204)


@router.get(
    "/intermediate-cas/{intermediate_ca_id}/ocsp-responders",
    tags=["intermediate-cas", "ocsp-responders"],
)
def list_intermediate_ocsp(
    intermediate_ca_id: int, reg: Registry = Depends(_read)
) -> list[OcspResponder]:
    ca = _ca_of_intermediate(reg, intermediate_ca_id)
    return _intermediate(ca, intermediate_ca_id).ocsp_responders


@router.post(
    "/intermediate-cas/{intermediate_ca_id}/ocsp-responders",
    status_code=201,
    tags=["intermediate-cas", "ocsp-responders"],
)
def add_intermediate_ocsp(
    intermediate_ca_id: int, body: OcspResponderAdd, reg: Registry = Depends(_write)
) -> OcspResponder:
    ca = _ca_of_intermediate(reg, intermediate_ca_id)
    cert = body.certificate.encode("ascii", "replace") if body.certificate else None
    added = reg.add_ocsp_responder(
        ca.id, body.url, cert, body.cost_type, intermediate_id=intermediate_ca_id
    )
    return OcspResponder.of(added)


@router.patch("/ocsp-responders/{ocsp_responder_id}", tags=["ocsp-responders"])
def update_ocsp(
    ocsp_responder_id: int, body: OcspResponderChange, reg: Registry = Depends(_write)
) -> OcspResponder:
    changes: dict[str, Any] = {}
    if body.url is not None:
        changes["url"] = body.url
    if body.cost_type is not None:
        changes["cost_type"] = body.cost_type
    if "certificate" in body.model_fields_set:
        changes["cert"] = body.certificate.encode("ascii", "replace") if body.certificate else None
    return OcspResponder.of(reg.update_ocsp_responder(ocsp_responder_id, **changes))


@router.delete("/ocsp-responders/{ocsp_responder_id}", status_code=204, tags=["ocsp-responders"])
def delete_ocsp(ocsp_responder_id: int, reg: Registry = Depends(_write)) -> Response:
    reg.delete_ocsp_responder(ocsp_responder_id)
    return Response(status_code=204)


# --- time-stamping services --------------------------------------------------------------------


def _tsa_interval(reg: Registry) -> int:
    return reg.int_parameter("timeStampingIntervalSeconds")


@router.get("/timestamping-services", tags=["timestamping-services"])
def list_tsas(reg: Registry = Depends(_read)) -> list[TimestampingService]:
    interval = _tsa_interval(reg)
    return [TimestampingService.of(t, interval) for t in reg.approved_tsas()]


@router.post("/timestamping-services", status_code=201, tags=["timestamping-services"])
def add_tsa(body: TimestampingServiceAdd, reg: Registry = Depends(_write)) -> TimestampingService:
    record = reg.add_approved_tsa(
        body.url,
        body.certificate.encode("ascii", "replace"),
        name=body.name,
        cost_type=body.cost_type,
    )
    return TimestampingService.of(record, _tsa_interval(reg))


@router.get("/timestamping-services/{timestamping_service_id}", tags=["timestamping-services"])
def get_tsa(timestamping_service_id: int, reg: Registry = Depends(_read)) -> TimestampingService:
    return TimestampingService.of(reg.approved_tsa(timestamping_service_id), _tsa_interval(reg))


@router.patch("/timestamping-services/{timestamping_service_id}", tags=["timestamping-services"])
def update_tsa(
    timestamping_service_id: int, body: TimestampingServiceChange, reg: Registry = Depends(_write)
) -> TimestampingService:
    changes: dict[str, Any] = {}
    for field in ("url", "name", "cost_type"):
        if getattr(body, field) is not None:
            changes[field] = getattr(body, field)
    if body.certificate is not None:
        changes["cert"] = body.certificate.encode("ascii", "replace")
    record = reg.update_approved_tsa(timestamping_service_id, **changes)
    return TimestampingService.of(record, _tsa_interval(reg))


@router.delete(
    "/timestamping-services/{timestamping_service_id}",
    status_code=204,
    tags=["timestamping-services"],
)
def delete_tsa(timestamping_service_id: int, reg: Registry = Depends(_write)) -> Response:
    reg.delete_approved_tsa(timestamping_service_id)
    return Response(status_code=204)
