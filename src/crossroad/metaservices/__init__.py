"""Service metadata: the logic that answers the metaservices (protocols.md §7.1–7.3).

Sans-I/O: values in (a parsed request, the server configuration, the global configuration
snapshot, description bytes), response bytes out, or an :class:`~crossroad.errors.XRoadError`
with the NIIS fault code.  The proxies own the sockets and decide when to call these.

* :mod:`~crossroad.metaservices.listclients` — ``GET /listClients`` of the consumer security
  server (XML ``xroad:clientList`` or JSON), from the global configuration;
* :mod:`~crossroad.metaservices.soap` — ``listMethods``, ``allowedMethods`` and ``getWsdl``,
  answered by the provider security server without an access check (PR-META);
* :mod:`~crossroad.metaservices.rest` — REST ``listMethods``, ``allowedMethods`` and
  ``getOpenAPI`` (PR-MREST).
"""

from __future__ import annotations

from crossroad.metaservices.listclients import (
    ClientListResponse,
    accepts_json,
    client_list,
    instance_from_query,
    list_clients,
)
from crossroad.metaservices.rest import (
    REST_META_SERVICES,
    RestMetaResponse,
    handle_rest_meta,
    is_rest_meta_service,
    rest_meta_response,
)
from crossroad.metaservices.soap import (
    ALLOWED_METHODS,
    GET_OPENAPI,
    GET_WSDL,
    LIST_METHODS,
    SOAP_META_SERVICES,
    MetaAttachment,
    MetaResponse,
    WsdlRequest,
    handle_soap_meta,
    is_meta_service,
)

__all__ = [
    "ALLOWED_METHODS",
    "GET_OPENAPI",
    "GET_WSDL",
    "LIST_METHODS",
    "REST_META_SERVICES",
    "SOAP_META_SERVICES",
    "ClientListResponse",
    "MetaAttachment",
    "MetaResponse",
    "RestMetaResponse",
    "WsdlRequest",
    "accepts_json",
    "client_list",
    "handle_rest_meta",
    "handle_soap_meta",
    "instance_from_query",
    "is_meta_service",
    "is_rest_meta_service",
    "list_clients",
    "rest_meta_response",
]
