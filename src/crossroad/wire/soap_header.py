"""The X-Road SOAP header fields as values (protocols.md §2.2, §12.3).

Owns the header namespaces, :class:`SoapHeader` and the values of its extension fields
(:class:`RepresentedParty`, :class:`RequestHash`, :class:`SecurityToken`), and the building
of header identifiers with NIIS's rule that components must not be blank (``invalid_xml``).
Parsing is :mod:`crossroad.wire.soap`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId, ServiceId

XROAD_NS: Final = "http://x-road.eu/xsd/xroad.xsd"
ID_NS: Final = "http://x-road.eu/xsd/identifiers"
REPR_NS: Final = "http://x-road.eu/xsd/representation.xsd"
SECURITY_TOKEN_NS: Final = "http://x-road.eu/xsd/security-token.xsd"  # noqa: S105
SOAP_ENCODING_NS: Final = "http://schemas.xmlsoap.org/soap/encoding/"


@dataclass(frozen=True)
class RepresentedParty:
    """The ``repr:representedParty`` extension: an optional class and a code (§12.3)."""

    party_class: str | None
    party_code: str | None


@dataclass(frozen=True)
class RequestHash:
    value: str  # base64, as written
    algorithm_id: str | None = None


@dataclass(frozen=True)
class SecurityToken:
    """The ``securityToken`` extension (e.g. a JWT); passed through, never validated."""

    value: str
    token_type: str | None = None


@dataclass(frozen=True)
class SoapHeader:
    client: ClientId | None = None
    service: ServiceId | None = None
    security_server: SecurityServerId | None = None
    query_id: str | None = None
    user_id: str | None = None
    issue: str | None = None
    protocol_version: str | None = None
    request_hash: RequestHash | None = None
    represented_party: RepresentedParty | None = None
    security_token: SecurityToken | None = None


def _blank(value: str | None) -> bool:
    return value is None or not value.strip()


def header_identifier(kind: str, parts: dict[str, str]) -> ClientId | ServiceId | SecurityServerId:
    """Build a header identifier; NIIS refuses blank components (``Validation``)."""

    def required(name: str) -> str:
        value = parts.get(name)
        if value is None or _blank(value):
            raise XRoadError(Code.INVALID_XML, f"Identifier in '{kind}' lacks {name}")
        return value

    def optional(name: str) -> str | None:
        value = parts.get(name)
        if value is not None and _blank(value):
            raise XRoadError(Code.INVALID_XML, f"Identifier in '{kind}' has a blank {name}")
        return value

    instance, member_class = required("xRoadInstance"), required("memberClass")
    member_code = required("memberCode")
    if kind == "securityServer":
        return SecurityServerId(
            ClientId(instance, member_class, member_code), required("serverCode")
        )
    client = ClientId(instance, member_class, member_code, optional("subsystemCode"))
    if kind == "client":
        return client
    return ServiceId(client, required("serviceCode"), optional("serviceVersion"))
