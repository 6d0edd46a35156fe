"""``listClients``: the members and subsystems of an instance (protocols.md §7.1).

The consumer security server answers ``GET /listClients[?xRoadInstance=XX]`` itself, from the
global configuration; nothing is transported.  As NIIS ``MetadataClientRequestProcessor``:

* the instance is the first ``xRoadInstance`` query parameter, the own instance when it is
  absent or blank; an instance the configuration does not hold is ``internal_error``;
* the list holds every member of that instance's shared parameters, each followed by its
  subsystems, in configuration order; ``name`` is always the member's name and
  ``subsystemName`` the subsystem's (V5+ configurations), omitted when unknown;
* an ``Accept`` header naming ``application/json`` (anywhere, parameters and ``q`` ignored)
  selects JSON — ``{"member": [{"id": {...snake_case...}, "name": ..., "subsystem_name": ...}]}``
  with ``application/json; charset=utf-8`` — otherwise the XML ``xroad:clientList`` of
  ``service-metainfo.xsd`` with ``text/xml; charset=UTF-8``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

from lxml import etree

from crossroad.errors import Code, XRoadError
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ID_NS, XROAD_NS, ClientId

LIST_CLIENTS_PATH: Final = "/listClients"
PARAM_INSTANCE: Final = "xRoadInstance"
JSON_CONTENT_TYPE: Final = "application/json; charset=utf-8"
XML_CONTENT_TYPE: Final = "text/xml; charset=UTF-8"
#: What JAXB writes before a marshalled document.
XML_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
# A query string with more parameters than this is not a listClients request anyone sends.
_MAX_QUERY_FIELDS = 1000


@dataclass(frozen=True)
class ClientEntry:
    """One entry of the list: a member or a subsystem, with the member's name."""

    id: ClientId
    name: str | None
    subsystem_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        # Keys as Jackson's snake_case view of NIIS ClientType; nulls are left out.
        out: dict[str, Any] = {"id": dict(sorted(self.id.to_json().items()))}
        if self.name is not None:
            out["name"] = self.name
        if self.subsystem_name is not None:
            out["subsystem_name"] = self.subsystem_name
        return out


@dataclass(frozen=True)
class ClientListResponse:
    """What the client proxy sends back: status 200, this content type and body."""

    content_type: str
    body: bytes
    status: int = 200


def client_list(
    globalconf: GlobalConfSnapshot, instance: str | None = None, at: dt.datetime | None = None
) -> tuple[ClientEntry, ...]:
    """The members and subsystems of ``instance`` (own by default).

    With ``at``, a federated instance whose configuration has expired counts as absent.
    """
    name = instance or globalconf.instance
    if name not in globalconf.instances(at):
        raise XRoadError(
            Code.INTERNAL_ERROR, f"Shared params for instance identifier {name} not found"
        )
    out: list[ClientEntry] = []
    for member in globalconf.members(name):
        member_id = member.client_id(name)
        out.append(ClientEntry(member_id, member.name))
        for subsystem in member.subsystems:
            out.append(
                ClientEntry(
                    member_id.subsystem(subsystem.subsystem_code),
                    member.name,
                    subsystem.subsystem_name,
                )
            )
    return tuple(out)


def instance_from_query(query: str | None) -> str | None:
    """The ``xRoadInstance`` parameter of a raw query string (first occurrence, decoded),
    or ``None`` when it is absent or blank."""
    if not query:
        return None
    try:
        pairs = parse_qsl(
            query, keep_blank_values=True, errors="replace", max_num_fields=_MAX_QUERY_FIELDS
        )
    except ValueError:
        raise XRoadError(Code.INVALID_REQUEST, "Too many query parameters") from None
    for key, value in pairs:
        if key == PARAM_INSTANCE:
            return value if value.strip() else None
    return None


def accepts_json(accept: str | Iterable[str] | None) -> bool:
    """Whether an ``Accept`` header (one value or all of them) names ``application/json``."""
    if accept is None:
        return False
    values = [accept] if isinstance(accept, str) else list(accept)
    for value in values:
        for item in value.split(","):
            media = item.split(";", 1)[0].strip().lower()
            if media == "application/json":
                return True
    return False


def client_list_xml(entries: Iterable[ClientEntry]) -> bytes:
    """The ``xroad:clientList`` document (JAXB-style: declaration, four-space indentation)."""
    root = etree.Element(f"{{{XROAD_NS}}}clientList", nsmap={"xroad": XROAD_NS, "id": ID_NS})
    for entry in entries:
        member = etree.SubElement(root, f"{{{XROAD_NS}}}member")
        entry.id.to_xml(f"{{{XROAD_NS}}}id", parent=member)
        if entry.name is not None:
            etree.SubElement(member, f"{{{XROAD_NS}}}name").text = entry.name
        if entry.subsystem_name is not None:
            etree.SubElement(member, f"{{{XROAD_NS}}}subsystemName").text = entry.subsystem_name
    etree.indent(root, space="    ")
    return XML_DECLARATION + etree.tostring(root, encoding="UTF-8") + b"\n"


def client_list_json(entries: Iterable[ClientEntry]) -> bytes:
    """``{"member": [...]}`` as compact UTF-8 JSON (Jackson's default output)."""
    doc = {"member": [e.to_json() for e in entries]}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def list_clients(
    globalconf: GlobalConfSnapshot,
    *,
    query: str | None = None,
    accept: str | Iterable[str] | None = None,
    at: dt.datetime | None = None,
) -> ClientListResponse:
    """Answer ``GET /listClients?<query>`` with the ``Accept`` header(s) given."""
    entries = client_list(globalconf, instance_from_query(query), at)
    if accepts_json(accept):
        return ClientListResponse(JSON_CONTENT_TYPE, client_list_json(entries))
    return ClientListResponse(XML_CONTENT_TYPE, client_list_xml(entries))
