"""The resources of the management API (see :mod:`crossroad.serverconf.api`): NIIS's names,
mapped onto :class:`ServerConfStore` changes."""

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from cryptography.hazmat.primitives.serialization import Encoding
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import Response

from crossroad.crypto.certs import load_certificate
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId
from crossroad.serverconf.api_json import (
    CONNECTION_IN,
    AccessRights,
    ClientAdd,
    ConnectionTypeWrapper,
    DisabledNotice,
    EndpointIn,
    InitialServerConf,
    LocalGroupAdd,
    LocalGroupDescription,
    Members,
    ServiceClients,
    ServiceDescriptionAdd,
    ServiceDescriptionUpdate,
    ServiceUpdate,
    cert_json,
    client_json,
    decode_client,
    decode_subject,
    description_json,
    encode_client,
    endpoint_json,
    find_service,
    group_json,
    iso_time,
    service_client_json,
    service_json,
)
from crossroad.serverconf.model import (
    AccessRight,
    Client,
    ConnectionType,
    DescriptionType,
    Endpoint,
    LocalGroup,
    ServerConf,
    ServiceDescription,
    ServiceEntry,
    Subject,
)
from crossroad.serverconf.store import ApiKeyRecord, Role, ServerConfStore

if TYPE_CHECKING:
    from crossroad.serverconf.api import Auth


# ---------------------------------------------------------------------------------------------
# Routes


def add_routes(
    app: FastAPI,
    prefix: str,
    store: ServerConfStore,
    auth: "Auth",
    fetch: Callable[[str], bytes],
) -> None:
    router = APIRouter(prefix=prefix)
    Reader = Annotated[ApiKeyRecord, Depends(auth.require())]
    Services = Annotated[ApiKeyRecord, Depends(auth.require(Role.SERVICE_ADMINISTRATOR))]
    Registrar = Annotated[ApiKeyRecord, Depends(auth.require(Role.REGISTRATION_OFFICER))]
    Admin = Annotated[ApiKeyRecord, Depends(auth.require(Role.SYSTEM_ADMINISTRATOR))]

    def conf() -> ServerConf:
        return store.snapshot()

    def client_of(text: str) -> Client:
        cid = decode_client(text)
        client = conf().client(cid)
        if client is None:
            raise XRoadError(Code.CLIENT_NOT_FOUND, f"Client {text} not found")
        return client

    def description_of(description_id: int) -> ServiceDescription:
        description = conf().description(description_id)
        if description is None:
            raise XRoadError(
                Code.SERVICE_DESCRIPTION_NOT_FOUND,
                f"Service description {description_id} not found",
            )
        return description

    def endpoint_of(endpoint_id: int) -> tuple[ClientId, Endpoint]:
        found = conf().endpoint(endpoint_id)
        if found is None:
            raise XRoadError(Code.ENDPOINT_NOT_FOUND, f"Endpoint {endpoint_id} not found")
        return found

    def group_of(group_id: int) -> tuple[ClientId, LocalGroup]:
        found = conf().local_group_by_id(group_id)
        if found is None:
            raise XRoadError(Code.LOCAL_GROUP_NOT_FOUND, f"Local group {group_id} not found")
        return found

    # -- initialization --

    @router.get("/initialization/status", tags=["initialization"])
    def init_status(_: Reader) -> dict[str, Any]:
        server_id = store.server_id()
        return {
            "is_server_code_initialized": server_id is not None,
            "is_server_owner_initialized": server_id is not None,
            "security_server_id": None if server_id is None else str(server_id),
        }

    @router.post("/initialization", tags=["initialization"], status_code=201)
    def initialize(_: Admin, body: InitialServerConf) -> Response:
        owner = ClientId(body.instance_identifier, body.owner_member_class, body.owner_member_code)
        store.initialize(owner, body.security_server_code)
        return Response(status_code=201)

    # -- clients --

    @router.get("/clients", tags=["clients"])
    def find_clients(
        _: Reader,
        instance: str | None = None,
        member_class: str | None = None,
        member_code: str | None = None,
        subsystem_code: str | None = None,
        show_members: bool = True,
    ) -> list[dict[str, Any]]:
        snap = conf()
        out = []
        for client in snap.clients:
            cid = client.id
            if not show_members and cid.subsystem_code is None:
                continue
            if any(
                want is not None and want.lower() not in (have or "").lower()
                for want, have in (
                    (instance, cid.instance),
                    (member_class, cid.member_class),
                    (member_code, cid.member_code),
                    (subsystem_code, cid.subsystem_code),
                )
            ):
                continue
            out.append(client_json(snap, client))
        return out

    @router.post("/clients", tags=["clients"], status_code=201)
    def add_client(_: Registrar, body: ClientAdd) -> dict[str, Any]:
        server_id = store.require_server_id()
        c = body.client
        cid = ClientId(
            c.instance_id or server_id.instance, c.member_class, c.member_code, c.subsystem_code
        )
        ct = CONNECTION_IN[c.connection_type] if c.connection_type else ConnectionType.SSLAUTH
        store.add_client(cid, connection_type=ct)
        return client_json(conf(), client_of(encode_client(cid)))

    @router.get("/clients/{client_id}", tags=["clients"])
    def get_client(_: Reader, client_id: str) -> dict[str, Any]:
        return client_json(conf(), client_of(client_id))

    @router.patch("/clients/{client_id}", tags=["clients"])
    def update_client(_: Services, client_id: str, body: ConnectionTypeWrapper) -> dict[str, Any]:
        client = client_of(client_id)
        store.set_connection_type(client.id, CONNECTION_IN[body.connection_type])
        return client_json(conf(), client_of(client_id))

    @router.delete("/clients/{client_id}", tags=["clients"], status_code=204)
    def delete_client(_: Registrar, client_id: str) -> Response:
        store.delete_client(client_of(client_id).id)
        return Response(status_code=204)

    @router.put("/clients/{client_id}/register", tags=["clients"], status_code=204)
    def register_client(_: Registrar, client_id: str) -> Response:
        store.register_client(client_of(client_id).id)
        return Response(status_code=204)

    @router.put("/clients/{client_id}/unregister", tags=["clients"], status_code=204)
    def unregister_client(_: Registrar, client_id: str) -> Response:
        store.unregister_client(client_of(client_id).id)
        return Response(status_code=204)

    # -- IS TLS certificates --

    @router.get("/clients/{client_id}/tls-certificates", tags=["clients"])
    def list_certs(_: Reader, client_id: str) -> list[dict[str, Any]]:
        return [cert_json(der) for der in client_of(client_id).is_certs]

    @router.post("/clients/{client_id}/tls-certificates", tags=["clients"], status_code=201)
    async def add_cert(_: Services, client_id: str, request: Request) -> dict[str, Any]:
        client = client_of(client_id)
        data = await request.body()
        try:
            der = load_certificate(data).public_bytes(Encoding.DER)
        except XRoadError as exc:
            raise XRoadError(Code.INVALID_CERTIFICATE, exc.detail) from None
        store.add_is_cert(client.id, der)
        return cert_json(der)

    def _cert(client: Client, cert_hash: str) -> bytes:
        wanted = cert_hash.lower().replace(":", "")
        for der in client.is_certs:
            if wanted in (hashlib.sha1(der).hexdigest(), hashlib.sha256(der).hexdigest()):
                return der
        raise XRoadError(Code.CERTIFICATE_NOT_FOUND, f"Certificate {cert_hash} not found")

    @router.get("/clients/{client_id}/tls-certificates/{cert_hash}", tags=["clients"])
    def get_cert(_: Reader, client_id: str, cert_hash: str) -> dict[str, Any]:
        return cert_json(_cert(client_of(client_id), cert_hash))

    @router.delete(
        "/clients/{client_id}/tls-certificates/{cert_hash}", tags=["clients"], status_code=204
    )
    def delete_cert(_: Services, client_id: str, cert_hash: str) -> Response:
        client = client_of(client_id)
        der = _cert(client, cert_hash)
        store.remove_is_cert(client.id, hashlib.sha256(der).hexdigest())
        return Response(status_code=204)

    # -- service descriptions --

    @router.get("/clients/{client_id}/service-descriptions", tags=["clients"])
    def list_descriptions(_: Reader, client_id: str) -> list[dict[str, Any]]:
        snap, client = conf(), client_of(client_id)
        return [description_json(snap, d) for d in client.descriptions]

    @router.post("/clients/{client_id}/service-descriptions", tags=["clients"], status_code=201)
    def add_description(_: Services, client_id: str, body: ServiceDescriptionAdd) -> dict[str, Any]:
        cid = client_of(client_id).id
        dtype = DescriptionType(body.type)
        if dtype is not DescriptionType.WSDL and not body.rest_service_code:
            raise XRoadError(Code.MISSING_PARAMETER, "Missing rest_service_code")
        if dtype is DescriptionType.WSDL:
            did = store.add_wsdl(cid, body.url, fetch(body.url))
        elif dtype is DescriptionType.OPENAPI3:
            did = store.add_openapi(cid, body.url, fetch(body.url), str(body.rest_service_code))
        else:
            did = store.add_rest(cid, body.url, str(body.rest_service_code))
        return description_json(conf(), description_of(did))

    @router.get("/service-descriptions/{description_id}", tags=["service-descriptions"])
    def get_description(_: Reader, description_id: int) -> dict[str, Any]:
        return description_json(conf(), description_of(description_id))

    @router.patch("/service-descriptions/{description_id}", tags=["service-descriptions"])
    def update_description(
        _: Services, description_id: int, body: ServiceDescriptionUpdate
    ) -> dict[str, Any]:
        description = description_of(description_id)
        url = body.url if body.url and body.url != description.url else None
        if description.type is DescriptionType.WSDL:
            if url is not None:
                store.refresh_description(description_id, fetch(url), url=url)
        else:
            store.update_rest_description(
                description_id, url=url, service_code=body.new_rest_service_code
            )
            if url is not None and description.type is DescriptionType.OPENAPI3:
                store.refresh_description(description_id, fetch(url))
        return description_json(conf(), description_of(description_id))

    @router.delete(
        "/service-descriptions/{description_id}", tags=["service-descriptions"], status_code=204
    )
    def delete_description(_: Services, description_id: int) -> Response:
        description_of(description_id)
        store.delete_description(description_id)
        return Response(status_code=204)

    @router.put(
        "/service-descriptions/{description_id}/enable",
        tags=["service-descriptions"],
        status_code=204,
    )
    def enable_description(_: Services, description_id: int) -> Response:
        store.enable_description(description_id)
        return Response(status_code=204)

    @router.put(
        "/service-descriptions/{description_id}/disable",
        tags=["service-descriptions"],
        status_code=204,
    )
    def disable_description(
        _: Services, description_id: int, body: DisabledNotice | None = None
    ) -> Response:
        store.disable_description(description_id, body.disabled_notice if body else None)
        return Response(status_code=204)

    @router.put("/service-descriptions/{description_id}/refresh", tags=["service-descriptions"])
    def refresh_description(_: Services, description_id: int) -> dict[str, Any]:
        description = description_of(description_id)
        content = None if description.type is DescriptionType.REST else fetch(description.url)
        store.refresh_description(description_id, content)
        return description_json(conf(), description_of(description_id))

    @router.get("/service-descriptions/{description_id}/services", tags=["service-descriptions"])
    def description_services(_: Reader, description_id: int) -> list[dict[str, Any]]:
        snap = conf()
        return description_json(snap, description_of(description_id))["services"]  # type: ignore[no-any-return]

    # -- services, endpoints and their service clients --

    @router.get("/services/{service_id}", tags=["services"])
    def get_service(_: Reader, service_id: str) -> dict[str, Any]:
        snap = conf()
        return service_json(snap, find_service(snap, service_id))

    @router.patch("/services/{service_id}", tags=["services"])
    def update_service(_: Services, service_id: str, body: ServiceUpdate) -> dict[str, Any]:
        entry = find_service(conf(), service_id)
        store.update_service(
            entry.id,
            url=body.url,
            timeout=body.timeout,
            ssl_authentication=body.ssl_auth,
            url_all=body.url_all,
            timeout_all=body.timeout_all,
            ssl_auth_all=body.ssl_auth_all,
        )
        snap = conf()
        return service_json(snap, find_service(snap, service_id))

    @router.post("/services/{service_id}/endpoints", tags=["services"], status_code=201)
    def add_endpoint(_: Services, service_id: str, body: EndpointIn) -> dict[str, Any]:
        entry = find_service(conf(), service_id)
        eid = store.add_endpoint(entry.provider, entry.service.service_code, body.method, body.path)
        return endpoint_json(endpoint_of(eid)[1])

    def _clients_of(provider: ClientId, code: str, endpoint_id: int) -> list[dict[str, Any]]:
        snap = conf()
        return [
            service_client_json(snap, provider, r)
            for r, e in snap.acl(provider, code).all
            if e.id == endpoint_id
        ]

    def _base(entry: ServiceEntry) -> Endpoint:
        for e in conf().endpoints(entry.provider, entry.service.service_code):
            if e.is_base:
                return e
        raise XRoadError(Code.ENDPOINT_NOT_FOUND, f"{entry.id} has no base endpoint")

    def _subjects(owner: ClientId, body: ServiceClients) -> list[Subject]:
        snap = conf()
        return [decode_subject(snap, owner, i.id, i.service_client_type) for i in body.items]

    @router.get("/services/{service_id}/service-clients", tags=["services"])
    def service_clients(_: Reader, service_id: str) -> list[dict[str, Any]]:
        entry = find_service(conf(), service_id)
        return _clients_of(entry.provider, entry.service.service_code, _base(entry).id)

    @router.post("/services/{service_id}/service-clients", tags=["services"], status_code=201)
    def add_service_clients(
        _: Services, service_id: str, body: ServiceClients
    ) -> list[dict[str, Any]]:
        entry = find_service(conf(), service_id)
        code = entry.service.service_code
        store.add_access_rights(entry.provider, code, _subjects(entry.provider, body))
        return _clients_of(entry.provider, code, _base(entry).id)

    @router.post(
        "/services/{service_id}/service-clients/delete", tags=["services"], status_code=204
    )
    def delete_service_clients(_: Services, service_id: str, body: ServiceClients) -> Response:
        entry = find_service(conf(), service_id)
        subjects = _subjects(entry.provider, body)
        store.remove_access_rights(entry.provider, entry.service.service_code, subjects)
        return Response(status_code=204)

    @router.get("/endpoints/{endpoint_id}", tags=["endpoints"])
    def get_endpoint(_: Reader, endpoint_id: int) -> dict[str, Any]:
        return endpoint_json(endpoint_of(endpoint_id)[1])

    @router.patch("/endpoints/{endpoint_id}", tags=["endpoints"])
    def update_endpoint(_: Services, endpoint_id: int, body: EndpointIn) -> dict[str, Any]:
        store.update_endpoint(endpoint_id, body.method, body.path)
        return endpoint_json(endpoint_of(endpoint_id)[1])

    @router.delete("/endpoints/{endpoint_id}", tags=["endpoints"], status_code=204)
    def delete_endpoint(_: Services, endpoint_id: int) -> Response:
        store.delete_endpoint(endpoint_id)
        return Response(status_code=204)

    @router.get("/endpoints/{endpoint_id}/service-clients", tags=["endpoints"])
    def endpoint_clients(_: Reader, endpoint_id: int) -> list[dict[str, Any]]:
        owner, endpoint = endpoint_of(endpoint_id)
        return _clients_of(owner, endpoint.service_code, endpoint_id)

    @router.post("/endpoints/{endpoint_id}/service-clients", tags=["endpoints"], status_code=201)
    def add_endpoint_clients(
        _: Services, endpoint_id: int, body: ServiceClients
    ) -> list[dict[str, Any]]:
        owner, endpoint = endpoint_of(endpoint_id)
        store.add_access_rights(owner, None, _subjects(owner, body), endpoint_id=endpoint_id)
        return _clients_of(owner, endpoint.service_code, endpoint_id)

    @router.post(
        "/endpoints/{endpoint_id}/service-clients/delete", tags=["endpoints"], status_code=204
    )
    def delete_endpoint_clients(_: Services, endpoint_id: int, body: ServiceClients) -> Response:
        owner, _endpoint = endpoint_of(endpoint_id)
        store.remove_access_rights(owner, None, _subjects(owner, body), endpoint_id=endpoint_id)
        return Response(status_code=204)

    # -- a client's service clients and their access rights (base endpoints) --

    @router.get("/clients/{client_id}/service-clients", tags=["clients"])
    def client_service_clients(_: Reader, client_id: str) -> list[dict[str, Any]]:
        snap, client = conf(), client_of(client_id)
        first: dict[Subject, AccessRight] = {}
        for right in sorted(client.access_rights, key=lambda r: str(r.rights_given_at)):
            first.setdefault(right.subject, right)
        return [service_client_json(snap, client.id, r) for r in first.values()]

    def _rights_of(client: Client, subject: Subject) -> list[dict[str, Any]]:
        snap = conf()
        out = []
        for right in client.access_rights:
            found = snap.endpoint(right.endpoint_id)
            if right.subject != subject or found is None or not found[1].is_base:
                continue
            code = found[1].service_code
            titles = [e.service.title for e in snap.services_with_code(client.id, code)]
            out.append(
                {
                    "service_code": code,
                    "service_title": next((x for x in titles if x), None),
                    "rights_given_at": iso_time(right.rights_given_at),
                }
            )
        return out

    path = "/clients/{client_id}/service-clients/{sc_id}/access-rights"

    @router.get(path, tags=["clients"])
    def subject_rights(_: Reader, client_id: str, sc_id: str) -> list[dict[str, Any]]:
        client = client_of(client_id)
        subject = decode_subject(conf(), client.id, sc_id, None)
        rights = _rights_of(client, subject)
        if not rights:
            raise XRoadError(Code.SERVICE_CLIENT_NOT_FOUND, f"No service client {sc_id}")
        return rights

    @router.post(path, tags=["clients"], status_code=201)
    def add_subject_rights(
        _: Services, client_id: str, sc_id: str, body: AccessRights
    ) -> list[dict[str, Any]]:
        client = client_of(client_id)
        subject = decode_subject(conf(), client.id, sc_id, None)
        for item in body.items:
            store.add_access_rights(client.id, item.service_code, [subject])
        return _rights_of(client_of(client_id), subject)

    @router.post(path + "/delete", tags=["clients"], status_code=204)
    def delete_subject_rights(
        _: Services, client_id: str, sc_id: str, body: AccessRights
    ) -> Response:
        client = client_of(client_id)
        subject = decode_subject(conf(), client.id, sc_id, None)
        for item in body.items:
            store.remove_access_rights(client.id, item.service_code, [subject])
        return Response(status_code=204)

    # -- local groups --

    @router.get("/clients/{client_id}/local-groups", tags=["clients"])
    def list_groups(_: Reader, client_id: str) -> list[dict[str, Any]]:
        client = client_of(client_id)
        return [group_json(client.id, g) for g in client.local_groups]

    @router.post("/clients/{client_id}/local-groups", tags=["clients"], status_code=201)
    def add_group(_: Services, client_id: str, body: LocalGroupAdd) -> dict[str, Any]:
        client = client_of(client_id)
        gid = store.add_local_group(client.id, body.code, body.description)
        return group_json(*group_of(gid))

    @router.get("/local-groups/{group_id}", tags=["local-groups"])
    def get_group(_: Reader, group_id: int) -> dict[str, Any]:
        return group_json(*group_of(group_id))

    @router.patch("/local-groups/{group_id}", tags=["local-groups"])
    def update_group(_: Services, group_id: int, body: LocalGroupDescription) -> dict[str, Any]:
        store.update_local_group(group_id, body.description)
        return group_json(*group_of(group_id))

    @router.delete("/local-groups/{group_id}", tags=["local-groups"], status_code=204)
    def delete_group(_: Services, group_id: int) -> Response:
        store.delete_local_group(group_id)
        return Response(status_code=204)

    @router.post("/local-groups/{group_id}/members", tags=["local-groups"], status_code=201)
    def add_members(_: Services, group_id: int, body: Members) -> dict[str, Any]:
        store.add_local_group_members(group_id, [decode_client(m) for m in body.items])
        return {"items": body.items}

    @router.post("/local-groups/{group_id}/members/delete", tags=["local-groups"], status_code=204)
    def delete_members(_: Services, group_id: int, body: Members) -> Response:
        store.remove_local_group_members(group_id, [decode_client(m) for m in body.items])
        return Response(status_code=204)

    app.include_router(router)
