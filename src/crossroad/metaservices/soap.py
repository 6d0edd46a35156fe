"""SOAP metaservices answered by the provider security server (protocols.md §7.2, PR-META).

``listMethods``, ``allowedMethods`` and ``getWsdl`` travel like any SOAP service; the provider's
server proxy recognises them by service code (:func:`is_meta_service`) and answers them itself,
without an access check, instead of calling an information system.  As NIIS
``MetadataServiceHandlerImpl``:

* the response is the request message with the body element renamed to the service code plus
  ``Response`` (NIIS ``SoapUtils.toResponse``), so the headers are echoed as §2.2 requires;
* ``listMethods`` replaces the body with ``xroad:listMethodsResponse`` listing the provider's
  WSDL services as ``xroad:service`` identifiers (with versions); ``allowedMethods`` lists only
  those the requesting client holds an access right to (member, subsystem, global group or
  local group; any endpoint of the service counts).  Metaservice codes are never listed;
* ``getWsdl`` reads ``xroad:serviceCode`` (required, ``invalid_request`` when missing or blank)
  and ``xroad:serviceVersion`` (optional) from the request body, looks the service up with
  exactly that version (``unknown_service``; a REST service is ``service_type``), and answers
  ``multipart/related``: the renamed request as the SOAP part, then the WSDL as a ``text/xml``
  attachment with ``Content-Transfer-Encoding: binary`` and ``Content-ID: <wsdl=UUID@x-road.eu>``,
  every ``soap:address/@location`` replaced by ``http://example.org/xroad-endpoint``.

The WSDL comes from the caller: the proxy fetches the description URL (honouring the service's
TLS verification setting; :func:`wsdl_service` says which) and passes the bytes, or the
description content stored in the server configuration is used.  The request's SOAP bytes are
re-parsed with a hardened parser; anything malformed is ``invalid_soap``.
"""

from __future__ import annotations

import secrets
import string
import uuid
from dataclasses import dataclass
from typing import Any, Final

from lxml import etree

from crossroad.errors import Code, XRoadError
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import XROAD_NS, ClientId, ServiceId
from crossroad.serverconf.access import allowed_methods, list_methods
from crossroad.serverconf.descriptions import rewrite_wsdl_addresses
from crossroad.serverconf.model import DescriptionType, ServerConf, ServiceEntry
from crossroad.wire.faults import SOAP_ENV_NS
from crossroad.wire.mime import HeaderField, MultipartWriter
from crossroad.wire.soap import RESPONSE_SUFFIX, TEXT_XML_UTF8, SoapMessage

LIST_METHODS: Final = "listMethods"
ALLOWED_METHODS: Final = "allowedMethods"
GET_WSDL: Final = "getWsdl"
GET_OPENAPI: Final = "getOpenAPI"
SOAP_META_SERVICES: Final = frozenset({LIST_METHODS, ALLOWED_METHODS, GET_WSDL})

TEXT_XML: Final = "text/xml"
MULTIPART_RELATED: Final = "multipart/related"
XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_BODY = f"{{{SOAP_ENV_NS}}}Body"
_BOUNDARY_ALPHABET = string.ascii_letters


def is_meta_service(service_code: str) -> bool:
    """Whether a SOAP request for ``service_code`` is answered by the provider's server."""
    return service_code in SOAP_META_SERVICES


@dataclass(frozen=True)
class MetaAttachment:
    """One attachment of a metaservice response (the WSDL of ``getWsdl``)."""

    content_type: str
    headers: tuple[HeaderField, ...]
    data: bytes


@dataclass(frozen=True)
class MetaResponse:
    """A metaservice response, as the provider IS would have sent it.

    ``content_type``/``body`` are the whole HTTP entity (the SOAP bytes, or the multipart
    package of ``getWsdl``); ``soap``, ``soap_content_type`` and ``attachments`` are its parts,
    for a server proxy that signs and transports parts without re-parsing the package.
    """

    content_type: str
    body: bytes
    soap: bytes
    soap_content_type: str = TEXT_XML_UTF8
    attachments: tuple[MetaAttachment, ...] = ()


@dataclass(frozen=True)
class WsdlRequest:
    """The body of a ``getWsdl`` request."""

    service_code: str
    service_version: str | None = None

    def service_id(self, provider: ClientId) -> ServiceId:
        return ServiceId(provider, self.service_code, self.service_version)


# ---------------------------------------------------------------------------------------------
# Request parsing


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        remove_comments=False,
    )


def _parse_envelope(raw: bytes) -> tuple[etree._Element, etree._Element, etree._Element]:
    """The envelope, its body and the body's (first) element child."""
    try:
        root = etree.fromstring(bytes(raw), _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise XRoadError(Code.INVALID_SOAP, f"Malformed SOAP message: {exc}") from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XRoadError(Code.INVALID_SOAP, "Malformed SOAP message: DOCTYPE is not allowed")
    body = root.find(_BODY)
    if body is None:
        raise XRoadError(Code.MISSING_BODY, "Malformed SOAP message: body missing")
    for child in body:
        if isinstance(child.tag, str):
            return root, body, child
    raise XRoadError(Code.INVALID_BODY, "Malformed SOAP message: body is empty")


def _string_value(element: etree._Element) -> str:
    # What JAXB binds to an xs:string field: the character data directly inside the element.
    return (element.text or "") + "".join(c.tail or "" for c in element)


def parse_wsdl_request(request: SoapMessage | bytes) -> WsdlRequest:
    """``xroad:serviceCode`` and ``xroad:serviceVersion`` of a ``getWsdl`` body.

    As JAXB reads it: other elements are ignored, the last occurrence wins, values are not
    trimmed; a missing or blank service code is ``invalid_request``.
    """
    raw = request.raw if isinstance(request, SoapMessage) else request
    _, _, wrapper = _parse_envelope(raw)
    found: dict[str, str] = {}
    for child in wrapper:
        if not isinstance(child.tag, str):
            continue
        name = etree.QName(child)
        if name.namespace == XROAD_NS and name.localname in ("serviceCode", "serviceVersion"):
            found[name.localname] = _string_value(child)
    code = found.get("serviceCode")
    if code is None or not code.strip():
        raise XRoadError(Code.INVALID_REQUEST, "Missing serviceCode in message body")
    return WsdlRequest(code, found.get("serviceVersion"))


# ---------------------------------------------------------------------------------------------
# Response building


def _response_tree(request: SoapMessage) -> tuple[etree._Element, etree._Element, etree._Element]:
    """The request re-parsed, with its body element renamed ``<serviceCode>Response``."""
    root, body, wrapper = _parse_envelope(request.raw)
    namespace = etree.QName(wrapper).namespace
    name = request.service.service_code + RESPONSE_SUFFIX
    wrapper.tag = etree.QName(namespace, name).text if namespace else name
    return root, body, wrapper


def _serialize(root: etree._Element) -> bytes:
    return XML_DECLARATION + etree.tostring(root, encoding="UTF-8")


def method_list_soap(request: SoapMessage, services: tuple[ServiceId, ...]) -> bytes:
    """The response of ``listMethods``/``allowedMethods``: the echoed headers and
    ``xroad:<code>Response`` with one ``xroad:service`` per service."""
    code = request.service.service_code
    if code not in (LIST_METHODS, ALLOWED_METHODS):
        raise XRoadError(Code.INTERNAL_ERROR, f"{code} is not a method list service")
    root, body, wrapper = _response_tree(request)
    body.remove(wrapper)
    for child in list(body):
        body.remove(child)
    body.text = None
    # Declare the xroad namespace on the response element unless a prefix is in scope.
    nsmap: dict[str | None, str] = {} if XROAD_NS in body.nsmap.values() else {"xroad": XROAD_NS}
    out = etree.SubElement(body, f"{{{XROAD_NS}}}{code}{RESPONSE_SUFFIX}", nsmap=nsmap)  # type: ignore[arg-type]
    for service in services:
        service.to_xml(f"{{{XROAD_NS}}}service", parent=out)
    return _serialize(root)


def _simple(soap: bytes) -> MetaResponse:
    return MetaResponse(TEXT_XML_UTF8, soap, soap)


def _listable(services: tuple[ServiceId, ...]) -> tuple[ServiceId, ...]:
    # PR-META: the response never names the metainfo services.
    return tuple(s for s in services if s.service_code not in SOAP_META_SERVICES)


def list_methods_response(request: SoapMessage, serverconf: ServerConf) -> MetaResponse:
    """``listMethods``: every WSDL service of the provider named in the request's service."""
    provider = request.service.client
    return _simple(method_list_soap(request, _listable(list_methods(serverconf, provider))))


def allowed_methods_response(
    request: SoapMessage,
    serverconf: ServerConf,
    globalconf: GlobalConfSnapshot,
    client: ClientId | None = None,
) -> MetaResponse:
    """``allowedMethods``: the provider's WSDL services ``client`` (default: the request's
    client) may call."""
    provider = request.service.client
    services = allowed_methods(
        serverconf, globalconf.is_in_global_group, client or request.client, provider
    )
    return _simple(method_list_soap(request, _listable(services)))


def wsdl_service(request: SoapMessage, serverconf: ServerConf) -> ServiceEntry:
    """The service whose WSDL a ``getWsdl`` request asks for.

    The proxy fetches ``entry.description.url`` with ``entry.service.ssl_authentication``
    (or uses the stored ``entry.description.content``) and passes the bytes on.
    """
    wanted = parse_wsdl_request(request).service_id(request.service.client)
    entry = serverconf.service(wanted)
    if entry is None:
        raise XRoadError(Code.UNKNOWN_SERVICE, f"Could not find wsdl URL for service {wanted}")
    if entry.type is not DescriptionType.WSDL:
        raise XRoadError(Code.SERVICE_TYPE, "Service is a REST service and does not have a WSDL")
    return entry


def new_boundary() -> str:
    """A boundary as NIIS draws them: ``xroad`` and 30 random letters."""
    return "xroad" + "".join(secrets.choice(_BOUNDARY_ALPHABET) for _ in range(30))


def new_wsdl_content_id() -> str:
    return f"<wsdl={uuid.uuid4()}@x-road.eu>"


def get_wsdl_response(
    request: SoapMessage,
    wsdl: bytes,
    *,
    boundary: str | None = None,
    content_id: str | None = None,
) -> MetaResponse:
    """The ``getWsdl`` answer: renamed request as SOAP part, the rewritten WSDL attached.

    A WSDL that does not parse is ``internal_error`` (NIIS fails the same way while rewriting).
    """
    try:
        rewritten = rewrite_wsdl_addresses(bytes(wsdl))
    except XRoadError as exc:
        raise XRoadError(Code.INTERNAL_ERROR, f"Cannot rewrite WSDL: {exc.detail}") from None
    root, _, _ = _response_tree(request)
    soap = _serialize(root)
    attachment = MetaAttachment(
        TEXT_XML,
        (
            HeaderField("Content-Transfer-Encoding", "binary"),
            HeaderField("Content-ID", content_id or new_wsdl_content_id()),
        ),
        rewritten,
    )
    writer = MultipartWriter(boundary or new_boundary())
    body = (
        writer.start_part(TEXT_XML_UTF8)
        + soap
        + writer.start_part(attachment.content_type, attachment.headers)
        + attachment.data
        + writer.close()
    )
    content_type = (
        f'{MULTIPART_RELATED}; type="{TEXT_XML}"; charset=UTF-8; boundary={writer.boundary}'
    )
    return MetaResponse(content_type, body, soap, TEXT_XML_UTF8, (attachment,))


def handle_soap_meta(
    request: SoapMessage,
    serverconf: ServerConf,
    globalconf: GlobalConfSnapshot,
    client: ClientId | None = None,
    *,
    wsdl: bytes | None = None,
    boundary: str | None = None,
    content_id: str | None = None,
) -> MetaResponse:
    """Answer a SOAP metaservice request (``is_meta_service(request.service.service_code)``).

    ``client`` is the requesting client (default: the request's ``client`` header).  For
    ``getWsdl``, ``wsdl`` is the description as just fetched; without it the content stored
    in the server configuration is served (``internal_error`` when there is none).
    """
    code = request.service.service_code
    if code == LIST_METHODS:
        return list_methods_response(request, serverconf)
    if code == ALLOWED_METHODS:
        return allowed_methods_response(request, serverconf, globalconf, client)
    if code == GET_WSDL:
        entry = wsdl_service(request, serverconf)
        data = wsdl if wsdl is not None else entry.description.content
        if data is None:
            raise XRoadError(
                Code.INTERNAL_ERROR, f"No WSDL stored for service {entry.id}; fetch it first"
            )
        return get_wsdl_response(request, data, boundary=boundary, content_id=content_id)
    raise XRoadError(Code.UNKNOWN_SERVICE, f"Unknown metaservice: {code}")
