"""Management API routes: security servers, their authentication certificates, clients and
maintenance mode (§11.1), under NIIS's ``/security-servers`` resources.  What NIIS does through
management requests (registration, client registration, maintenance) the administrator does here
directly."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from crossroad.central.api_auth import REGISTRATION, requires
from crossroad.central.api_models import (
    AuthenticationCertificate,
    CertificateFile,
    ClientIdModel,
    MaintenanceMode,
    SecurityServer,
    SecurityServerAdd,
    SecurityServerAddress,
    ServerClient,
    ServerClientAdd,
    ServerClientState,
    decode_client,
    decode_server,
)
from crossroad.central.registry import Registry
from crossroad.identifiers import ClientId, SecurityServerId

router = APIRouter(tags=["security-servers"])
_read = requires()
_write = requires(*REGISTRATION)


@router.get("/security-servers")
def list_servers(reg: Registry = Depends(_read)) -> list[SecurityServer]:
    return [SecurityServer.of(s) for s in reg.security_servers()]


@router.post("/security-servers", status_code=201)
def add_server(body: SecurityServerAdd, reg: Registry = Depends(_write)) -> SecurityServer:
    sid = body.server_id
    owner = ClientId(reg.instance_identifier(), sid.member_class, sid.member_code)
    return SecurityServer.of(
        reg.add_security_server(SecurityServerId(owner, sid.server_code), body.server_address)
    )


@router.get("/security-servers/{server_id}")
def get_server(server_id: str, reg: Registry = Depends(_read)) -> SecurityServer:
    return SecurityServer.of(reg.security_server(decode_server(server_id)))


@router.patch("/security-servers/{server_id}")
def set_address(
    server_id: str, body: SecurityServerAddress, reg: Registry = Depends(_write)
) -> SecurityServer:
    server = decode_server(server_id)
    reg.set_server_address(server, body.server_address)
    return SecurityServer.of(reg.security_server(server))


@router.delete("/security-servers/{server_id}", status_code=204)
def delete_server(server_id: str, reg: Registry = Depends(_write)) -> Response:
    reg.delete_security_server(decode_server(server_id))
    return Response(status_code=204)


@router.put("/security-servers/{server_id}/maintenance-mode")
def set_maintenance(
    server_id: str, body: MaintenanceMode, reg: Registry = Depends(_write)
) -> SecurityServer:
    server = decode_server(server_id)
    reg.set_maintenance_mode(server, body.in_maintenance_mode, body.message)
    return SecurityServer.of(reg.security_server(server))


@router.get("/security-servers/{server_id}/authentication-certificates")
def list_auth_certs(
    server_id: str, reg: Registry = Depends(_read)
) -> list[AuthenticationCertificate]:
    record = reg.security_server(decode_server(server_id))
    return [AuthenticationCertificate.of(c) for c in record.auth_certs]


@router.post("/security-servers/{server_id}/authentication-certificates", status_code=201)
def add_auth_cert(
    server_id: str, body: CertificateFile, reg: Registry = Depends(_write)
) -> AuthenticationCertificate:
    return AuthenticationCertificate.of(reg.add_auth_cert(decode_server(server_id), body.data()))


@router.delete(
    "/security-servers/{server_id}/authentication-certificates/{certificate_id}", status_code=204
)
def delete_auth_cert(
    server_id: str, certificate_id: str, reg: Registry = Depends(_write)
) -> Response:
    """``certificate_id``: the id, or the SHA-256 hex hash of the certificate."""
    ref: int | str = int(certificate_id) if certificate_id.isdigit() else certificate_id
    reg.delete_auth_cert(decode_server(server_id), ref)
    return Response(status_code=204)


@router.get("/security-servers/{server_id}/clients")
def list_clients(server_id: str, reg: Registry = Depends(_read)) -> list[ServerClient]:
    record = reg.security_server(decode_server(server_id))
    return [
        ServerClient(client_id=ClientIdModel.of(c.client), enabled=c.enabled)
        for c in record.clients
    ]


@router.post("/security-servers/{server_id}/clients", status_code=201)
def add_client(
    server_id: str, body: ServerClientAdd, reg: Registry = Depends(_write)
) -> ServerClient:
    added = reg.add_server_client(
        decode_server(server_id), decode_client(body.client_id), enabled=body.enabled
    )
    return ServerClient(client_id=ClientIdModel.of(added.client), enabled=added.enabled)


@router.patch("/security-servers/{server_id}/clients/{client_id}")
def set_client_state(
    server_id: str, client_id: str, body: ServerClientState, reg: Registry = Depends(_write)
) -> ServerClient:
    client = decode_client(client_id)
    reg.set_server_client_enabled(decode_server(server_id), client, body.enabled)
    return ServerClient(client_id=ClientIdModel.of(client), enabled=body.enabled)


@router.delete("/security-servers/{server_id}/clients/{client_id}", status_code=204)
def delete_client(server_id: str, client_id: str, reg: Registry = Depends(_write)) -> Response:
    reg.delete_server_client(decode_server(server_id), decode_client(client_id))
    return Response(status_code=204)
