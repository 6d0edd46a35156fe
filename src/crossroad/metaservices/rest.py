"""REST metaservices answered by the provider security server (protocols.md §7.3, PR-MREST).

``GET /r1/{INSTANCE}/{CLASS}/{MEMBER}/{SUBSYSTEM}/listMethods``, ``.../allowedMethods`` and
``.../getOpenAPI?serviceCode=X`` travel like any REST request; the provider's server proxy
answers them itself, without an access check (:func:`is_rest_meta_service`: GET only — other
methods are ordinary service calls).  As NIIS ``RestMetadataServiceHandlerImpl``:

* ``listMethods`` → ``application/json`` ``{"service": [...]}`` (CODE≠SPEC §12.5 item 17: the
  key is ``service``), one entry per REST or OpenAPI service of the provider, in the shape of
  ``XRoadRestServiceDetailsType`` as Jackson writes it in snake case: the service identifier
  without version, ``object_type: "SERVICE"``, ``service_type`` ``REST``|``OPENAPI`` and
  ``endpoint_list`` (the service's endpoints except the base endpoint; always present);
* ``allowedMethods`` → the same for the services the client holds any access right to, each
  listing the endpoints one of its rights covers;
* ``getOpenAPI`` → the OpenAPI description with server URLs anonymised, JSON or YAML as the
  source.  The service code is the last ``serviceCode`` query parameter (name compared
  case-insensitively); missing or empty is ``invalid_request``; a service that does not exist
  or is not ``OPENAPI3`` is ``internal_error``, as NIIS reports it.

The response carries status ``200 OK``; :func:`rest_meta_response` builds the header set NIIS
sends (the request's headers, filtered, then the X-Road headers, then ``content-type``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote_plus

from crossroad.errors import Code, XRoadError
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId, ServiceId
from crossroad.metaservices.soap import ALLOWED_METHODS, GET_OPENAPI, LIST_METHODS
from crossroad.serverconf.access import RestServiceInfo, allowed_rest_services, rest_services
from crossroad.serverconf.descriptions import anonymise_openapi, openapi_format
from crossroad.serverconf.model import DescriptionType, ServerConf, ServiceEntry
from crossroad.wire.rest import RestRequest, RestResponse

REST_META_SERVICES: Final = frozenset({LIST_METHODS, ALLOWED_METHODS, GET_OPENAPI})
QUERY_PARAM_SERVICE_CODE: Final = "serviceCode"
JSON: Final = "application/json"
YAML: Final = "application/x-yaml"
HEADER_CONTENT_TYPE: Final = "content-type"
# Apache HttpClient's URLEncodedUtils splits query strings at both separators.
_QUERY_SEPARATORS = re.compile(r"[&;]")
_MAX_QUERY_FIELDS = 1000


def is_rest_meta_service(service_code: str, method: str = "GET") -> bool:
    """Whether a REST request is a metaservice call the provider's server answers itself."""
    return method == "GET" and service_code in REST_META_SERVICES


@dataclass(frozen=True)
class RestMetaResponse:
    """A REST metaservice answer: ``200 OK`` with this content type and body."""

    content_type: str
    body: bytes
    status: int = 200
    reason: str = "OK"


# ---------------------------------------------------------------------------------------------
# listMethods / allowedMethods


def service_details_json(info: RestServiceInfo) -> dict[str, Any]:
    """One ``XRoadRestServiceDetailsType`` entry (keys in the order PR-MREST shows them)."""
    service = info.service
    out: dict[str, Any] = {
        "member_class": service.client.member_class,
        "member_code": service.client.member_code,
        "object_type": "SERVICE",
        "service_code": service.service_code,
        "service_type": info.service_type,
    }
    if service.client.subsystem_code is not None:
        out["subsystem_code"] = service.client.subsystem_code
    out["xroad_instance"] = service.instance
    out["endpoint_list"] = [{"method": m, "path": p} for m, p in info.endpoints]
    return out


def service_list_json(services: tuple[RestServiceInfo, ...]) -> bytes:
    """``{"service": [...]}`` as compact UTF-8 JSON."""
    doc = {"service": [service_details_json(s) for s in services]}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def list_methods(serverconf: ServerConf, provider: ClientId) -> RestMetaResponse:
    """REST ``listMethods`` of ``provider``."""
    return RestMetaResponse(JSON, service_list_json(rest_services(serverconf, provider)))


def allowed_methods(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot, client: ClientId, provider: ClientId
) -> RestMetaResponse:
    """REST ``allowedMethods``: what ``client`` may call of ``provider``'s REST services."""
    services = allowed_rest_services(serverconf, globalconf.is_in_global_group, client, provider)
    return RestMetaResponse(JSON, service_list_json(services))


# ---------------------------------------------------------------------------------------------
# getOpenAPI


def openapi_service_code(query: str | None) -> str:
    """The ``serviceCode`` query parameter (``invalid_request`` when missing or empty)."""
    found: str | None = None
    if query:
        fields = [f for f in _QUERY_SEPARATORS.split(query) if f]
        if len(fields) > _MAX_QUERY_FIELDS:
            raise XRoadError(Code.INVALID_REQUEST, "Too many query parameters")
        for field in fields:
            name, sep, value = field.partition("=")
            if unquote_plus(name, errors="replace").lower() == QUERY_PARAM_SERVICE_CODE.lower():
                found = unquote_plus(value, errors="replace") if sep else None
    if not found:
        raise XRoadError(Code.INVALID_REQUEST, "Missing serviceCode in message body")
    return found


def openapi_service(serverconf: ServerConf, provider: ClientId, query: str | None) -> ServiceEntry:
    """The OpenAPI service ``getOpenAPI?<query>`` asks for.

    The proxy fetches ``entry.description.url`` with ``entry.service.ssl_authentication``
    (or uses the stored ``entry.description.content``) and passes the bytes on.
    """
    wanted = ServiceId(provider, openapi_service_code(query))
    entry = serverconf.service(wanted)
    if entry is None:
        raise XRoadError(Code.INTERNAL_ERROR, f"Service not found: {wanted}")
    if entry.type is not DescriptionType.OPENAPI3:
        raise XRoadError(Code.INTERNAL_ERROR, f"Invalid service type: {entry.type}")
    return entry


def get_openapi(
    entry: ServiceEntry, data: bytes, content_type: str | None = None
) -> RestMetaResponse:
    """The anonymised description of ``entry``.

    ``content_type`` is the one the description was served with: it decides JSON or YAML
    (then the URL's ``.json`` suffix, then the content) and is passed on; without it the
    answer says ``application/json`` or ``application/x-yaml``.
    """
    fmt = openapi_format(data, entry.description.url, content_type)
    body = anonymise_openapi(bytes(data), fmt)
    return RestMetaResponse(content_type or (JSON if fmt == "json" else YAML), body)


# ---------------------------------------------------------------------------------------------
# Dispatch and response headers


def handle_rest_meta(
    request: RestRequest,
    serverconf: ServerConf,
    globalconf: GlobalConfSnapshot,
    *,
    openapi: bytes | None = None,
    openapi_content_type: str | None = None,
) -> RestMetaResponse:
    """Answer a REST metaservice request (``is_rest_meta_service(code, method)``).

    For ``getOpenAPI``, ``openapi`` is the description as just fetched (with the content type
    it came with); without it the content stored in the server configuration is served
    (``internal_error`` when there is none).
    """
    code = request.service.service_code
    provider = request.service.client
    if not is_rest_meta_service(code, request.method):
        raise XRoadError(Code.UNKNOWN_SERVICE, f"Unknown metaservice: {request.method} {code}")
    if code == LIST_METHODS:
        return list_methods(serverconf, provider)
    if code == ALLOWED_METHODS:
        return allowed_methods(serverconf, globalconf, request.client, provider)
    entry = openapi_service(serverconf, provider, request.query)
    data = openapi if openapi is not None else entry.description.content
    if data is None:
        raise XRoadError(
            Code.INTERNAL_ERROR, f"No OpenAPI description stored for {entry.id}; fetch it first"
        )
    return get_openapi(entry, data, openapi_content_type if openapi is not None else None)


def rest_meta_response(
    request: RestRequest, request_hash: bytes, meta: RestMetaResponse
) -> RestResponse:
    """The transported response header part, as NIIS builds it for a metaservice: the
    request's headers (minus the skip list and X-Road bookkeeping headers), the X-Road
    response headers, then ``content-type``.  A ``content-type`` the request carried is
    dropped so that the answer has exactly one."""
    echoed = [(n, v) for n, v in request.headers if n.lower() != HEADER_CONTENT_TYPE]
    response = RestResponse.build(
        status=meta.status,
        reason=meta.reason,
        headers=echoed,
        request=request,
        request_hash=request_hash,
    )
    return dataclasses.replace(
        response, headers=(*response.headers, (HEADER_CONTENT_TYPE, meta.content_type))
    )
