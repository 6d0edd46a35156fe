"""Service descriptions: WSDL 1.1 → services, OpenAPI 3 → endpoints, and what the metaservices
serve from them (protocols.md §2.6, §3.4, §7.2–7.3).

WSDL (as NIIS's ``WsdlParser``): every ``wsdl:service/wsdl:port`` whose binding is SOAP 1.1 or
1.2 over HTTP contributes its binding operations; the service code is ``binding/operation/@name``,
the version the text of the operation's ``version`` extension element (``xrd:version``; NIIS
accepts any namespace), the title the ``title`` child of the port type operation's documentation,
the URL the port's ``soap:address/@location``.  ``getWsdl`` serves the WSDL with every SOAP 1.1
``soap:address/@location`` replaced.

OpenAPI 3 (as NIIS's ``OpenApiParser``): versions 3.0.x and 3.1.0; every operation of every path
becomes an endpoint with ``{param}`` segments turned into ``*``; the service URL is the first
server URL resolved against the description's URL.  ``getOpenAPI`` serves the document with each
server URL that has no ``{variables}`` reduced to its path (NIIS's ``Openapi3Anonymiser``), as
compact JSON or as YAML with quoted string values.

Parsing is hardened: no DTDs or entities in WSDL, a size limit, bounded YAML aliases, and any
malformed input ends in a coded error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import yaml
from lxml import etree

from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, ServiceId
from crossroad.serverconf.model import HTTP_METHODS

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
SOAP11_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
SOAP12_NS = "http://schemas.xmlsoap.org/wsdl/soap12/"
SOAP_HTTP_TRANSPORT = "http://schemas.xmlsoap.org/soap/http"
#: What ``getWsdl`` puts in every ``soap:address/@location`` (PR-META).
ANONYMOUS_ENDPOINT = "http://example.org/xroad-endpoint"
#: NIIS refuses larger descriptions.
MAX_DESCRIPTION_SIZE = 10 * 1024 * 1024
_MAX_YAML_ALIASES = 1000

OpenApiFormat = Literal["json", "yaml"]


# ---------------------------------------------------------------------------------------------
# WSDL


@dataclass(frozen=True)
class WsdlService:
    """One service a WSDL defines."""

    service_code: str
    version: str | None
    title: str | None
    url: str | None


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        remove_comments=False,
    )


def _parse_wsdl_tree(data: bytes) -> etree._Element:
    if len(data) > MAX_DESCRIPTION_SIZE:
        raise XRoadError(Code.INVALID_WSDL, f"WSDL is larger than {MAX_DESCRIPTION_SIZE} bytes")
    try:
        root = etree.fromstring(data, _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise XRoadError(Code.INVALID_WSDL, f"WSDL is not well-formed XML: {exc}") from None
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise XRoadError(Code.INVALID_WSDL, "WSDL must not contain a DTD")
    if root.tag != f"{{{WSDL_NS}}}definitions":
        raise XRoadError(Code.INVALID_WSDL, f"Root element {root.tag} is not wsdl:definitions")
    return root


def _local(qname: str | None) -> str:
    return (qname or "").rpartition(":")[2]


def _text(element: etree._Element | None) -> str | None:
    # NIIS takes the first child node's value, trimmed.
    if element is None or element.text is None:
        return None
    return element.text.strip()


def _first_child(element: etree._Element | None, local_name: str) -> etree._Element | None:
    if element is None:
        return None
    for child in element:
        if isinstance(child.tag, str) and etree.QName(child).localname == local_name:
            return child
    return None


def _by_name(root: etree._Element, tag: str) -> dict[str, etree._Element]:
    return {str(e.get("name")): e for e in root.findall(f"{{{WSDL_NS}}}{tag}")}


def _soap_binding_over_http(binding: etree._Element) -> bool:
    for ext in binding:
        if not isinstance(ext.tag, str):
            continue
        if ext.tag in (f"{{{SOAP11_NS}}}binding", f"{{{SOAP12_NS}}}binding"):
            return ext.get("transport") == SOAP_HTTP_TRANSPORT
    return False


def _port_url(port: etree._Element) -> str | None:
    for ext in port:
        if ext.tag in (f"{{{SOAP11_NS}}}address", f"{{{SOAP12_NS}}}address"):
            return ext.get("location")
    return None


def parse_wsdl(data: bytes) -> tuple[WsdlService, ...]:
    """The services of a WSDL 1.1 document (``invalid_wsdl`` when it has none or is broken)."""
    root = _parse_wsdl_tree(data)
    bindings = _by_name(root, "binding")
    port_types = _by_name(root, "portType")
    found: dict[tuple[str, str | None], WsdlService] = {}
    for port in root.iterfind(f"{{{WSDL_NS}}}service/{{{WSDL_NS}}}port"):
        binding = bindings.get(_local(port.get("binding")))
        if binding is None:
            raise XRoadError(Code.INVALID_WSDL, f"Port {port.get('name')} has an unknown binding")
        if not _soap_binding_over_http(binding):
            continue
        url = _port_url(port)
        port_type = port_types.get(_local(binding.get("type")))
        for operation in binding.iterfind(f"{{{WSDL_NS}}}operation"):
            name = operation.get("name")
            if not name:
                raise XRoadError(Code.INVALID_WSDL, "A binding operation has no name")
            version = _text(_first_child(operation, "version")) or None
            title = None
            if port_type is not None:
                for abstract in port_type.iterfind(f"{{{WSDL_NS}}}operation"):
                    if abstract.get("name") == name:
                        doc = abstract.find(f"{{{WSDL_NS}}}documentation")
                        title = _text(_first_child(doc, "title"))
                        break
            found[(name, version)] = WsdlService(name, version, title, url)
    if not found:
        raise XRoadError(Code.INVALID_WSDL, "WSDL defines no SOAP over HTTP services")
    probe = ClientId("x", "x", "x")
    for service in found.values():
        try:
            ServiceId(probe, service.service_code, service.version).validate()
        except XRoadError as exc:
            raise XRoadError(
                Code.INVALID_WSDL, f"Invalid service {service.service_code!r}: {exc.detail}"
            ) from None
    return tuple(found.values())


def rewrite_wsdl_addresses(data: bytes, location: str = ANONYMOUS_ENDPOINT) -> bytes:
    """The WSDL for ``getWsdl``: every SOAP 1.1 ``soap:address/@location`` set to ``location``.

    Everything else (comments, namespaces, order) is kept; the XML declaration is rewritten by
    the serializer.
    """
    root = _parse_wsdl_tree(data)
    for address in root.iter(f"{{{SOAP11_NS}}}address"):
        if address.get("location") is not None:
            address.set("location", location)
    docinfo: Any = root.getroottree().docinfo
    out: bytes = etree.tostring(
        root.getroottree(), xml_declaration=True, encoding=docinfo.encoding or "UTF-8"
    )
    return out


# ---------------------------------------------------------------------------------------------
# OpenAPI 3


@dataclass(frozen=True)
class OpenApiDescription:
    """What the security server takes from an OpenAPI 3 document."""

    version: str
    base_url: str
    operations: tuple[tuple[str, str], ...]  # (METHOD, path glob)
    format: OpenApiFormat


class _Loader(yaml.SafeLoader):
    """YAML as data only: timestamps stay strings, only ``true``/``false`` are booleans, and
    aliases are bounded (an alias bomb would expand on output)."""

    aliases = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > _MAX_YAML_ALIASES:
                raise yaml.YAMLError("too many aliases")
        return super().compose_node(parent, index)


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, regexp)
        for tag, regexp in resolvers
        if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.copy().items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def openapi_format(
    data: bytes, url: str | None = None, content_type: str | None = None
) -> OpenApiFormat:
    """JSON or YAML as NIIS decides (content type, then a ``.json`` suffix), else by sniffing."""
    if content_type:
        if "application/json" in content_type:
            return "json"
        if content_type.split(";")[0].strip() == "application/x-yaml":
            return "yaml"
    if url is not None and urlsplit(url).path.endswith(".json"):
        return "json"
    return "json" if data.lstrip()[:1] == b"{" else "yaml"


def load_openapi(
    data: bytes, fmt: OpenApiFormat | None = None
) -> tuple[dict[str, Any], OpenApiFormat]:
    """The document as a mapping (YAML is a superset of JSON, so YAML parsing reads both)."""
    if len(data) > MAX_DESCRIPTION_SIZE:
        raise XRoadError(
            Code.OPENAPI_PARSING_ERROR, f"Description is larger than {MAX_DESCRIPTION_SIZE} bytes"
        )
    fmt = fmt or openapi_format(data)
    try:
        text = data.decode("utf-8-sig")
        doc = json.loads(text) if fmt == "json" else yaml.load(text, Loader=_Loader)  # noqa: S506
    except (UnicodeDecodeError, ValueError, yaml.YAMLError, RecursionError) as exc:
        raise XRoadError(
            Code.OPENAPI_PARSING_ERROR, f"Unable to parse OpenAPI description: {exc}"
        ) from None
    if not isinstance(doc, dict):
        raise XRoadError(Code.OPENAPI_PARSING_ERROR, "OpenAPI description is not a mapping")
    return doc, fmt


_PATH_PARAM = re.compile(r"\{[^/]*}")


def parse_openapi(
    data: bytes, source_url: str | None = None, fmt: OpenApiFormat | None = None
) -> OpenApiDescription:
    """Endpoints and base URL of an OpenAPI 3.0.x / 3.1.0 description."""
    doc, fmt = load_openapi(data, fmt or openapi_format(data, source_url))
    version = doc.get("openapi")
    if not isinstance(version, str):
        raise XRoadError(Code.OPENAPI_PARSING_ERROR, "OpenAPI description lacks 'openapi'")
    if not (version.startswith("3.0") or version == "3.1.0"):
        raise XRoadError(
            Code.UNSUPPORTED_OPENAPI_VERSION, f"OpenAPI version {version} not supported"
        )
    servers = doc.get("servers")
    base_url = ""
    if isinstance(servers, list) and servers and isinstance(servers[0], dict):
        first = servers[0].get("url")
        base_url = first if isinstance(first, str) else ""
    # Relative server URLs are relative to where the description was read (HTTP sources only:
    # a description read from a local file says nothing about where the service is).
    if "{" not in base_url and source_url and source_url.lower().startswith(("http:", "https:")):
        base_url = urljoin(source_url, base_url)
    paths = doc.get("paths")
    if paths is not None and not isinstance(paths, dict):
        raise XRoadError(Code.OPENAPI_PARSING_ERROR, "'paths' must be a mapping")
    operations: list[tuple[str, str]] = []
    for path, item in (paths or {}).items():
        if not isinstance(path, str) or not isinstance(item, dict):
            raise XRoadError(Code.OPENAPI_PARSING_ERROR, f"Invalid path item {path!r}")
        glob = _PATH_PARAM.sub("*", path)
        for method in HTTP_METHODS:
            if isinstance(item.get(method.lower()), dict):
                operations.append((method, glob))
    return OpenApiDescription(version, base_url, tuple(dict.fromkeys(operations)), fmt)


def _anonymised_url(url: str) -> str:
    if any(c.isspace() or ord(c) < 0x20 for c in url):
        raise XRoadError(Code.INTERNAL_ERROR, f"Can't parse url string: {url}")
    try:
        return urlsplit(url).path
    except ValueError:
        raise XRoadError(Code.INTERNAL_ERROR, f"Can't parse url string: {url}") from None


class _Key(str):
    """A mapping key: written plain, where values are double-quoted."""


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # expanded, as Jackson writes them


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')


def _represent_key(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data))


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_Key, _represent_key)


def _keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {(_Key(k) if isinstance(k, str) else k): _keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_keys(v) for v in value]
    return value


def anonymise_openapi(data: bytes, fmt: OpenApiFormat | None = None) -> bytes:
    """The description for ``getOpenAPI``: server URLs without variables reduced to their path.

    Errors are ``internal_error``, as the provider's metaservice reports them.
    """
    try:
        doc, fmt = load_openapi(data, fmt)
    except XRoadError as exc:
        raise XRoadError(Code.INTERNAL_ERROR, exc.detail) from None
    version = doc.get("openapi")
    if version is not None and not (isinstance(version, str) and version.startswith("3.")):
        raise XRoadError(
            Code.INTERNAL_ERROR,
            "Incompatible openapi version. Openapi version 3 or greater expected. "
            f"Given openapi document is of version {version}",
        )
    servers = doc.get("servers")
    if isinstance(servers, list):
        for server in servers:
            if not isinstance(server, dict):
                continue
            url = server.get("url")
            if isinstance(url, str) and not ("{" in url and "}" in url):
                server["url"] = _anonymised_url(url)
    try:
        if fmt == "json":
            return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        text = yaml.dump(
            _keys(doc),
            Dumper=_Dumper,
            explicit_start=True,
            sort_keys=False,
            allow_unicode=True,
            default_flow_style=False,
            width=2**31 - 1,
        )
    except (RecursionError, ValueError, yaml.YAMLError) as exc:
        raise XRoadError(Code.INTERNAL_ERROR, f"Cannot write OpenAPI description: {exc}") from None
    return text.encode("utf-8")
