"""X-Road identifiers: clients, services, security servers, groups (protocols.md §1).

Every identifier is a frozen value with four spellings that round-trip:

* the string form of logs and documents, ``TYPE:INSTANCE/CLASS/CODE[/...]``
  (:func:`parse_identifier`);
* XML (``xroad:client id:objectType="SUBSYSTEM"`` with qualified ``id:*`` children, §1.3);
* the REST forms (``X-Road-Client`` header, the ``/r1/`` service path, ``X-Road-Security-Server``);
* JSON with snake_case keys (listClients, REST meta services).

The SERVICE string form is ambiguous in NIIS (``toString`` just joins the present fields), so
this module fixes a rule: after ``INSTANCE/CLASS/CODE`` come one to three parts —
``SERVICECODE`` | ``SUBSYSTEM/SERVICECODE`` | ``SUBSYSTEM/SERVICECODE/VERSION`` — and a member-level
service with a version leaves the subsystem slot empty: ``SERVICE:EE/GOV/1//getX/v1``.  NIIS
would log the latter as ``SERVICE:EE/GOV/1/getX/v1``, which this rule reads as subsystem
``getX``, service ``v1``; such strings are for humans only and never cross the wire.

Parsing is structural; :meth:`validate` applies the character rules of §1.2 (lenient runtime
rules by default, the central server's strict regex with ``strict=True``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Self, TypeAlias
from urllib.parse import quote, unquote

from lxml import etree

from crossroad.errors import Code, XRoadError

ID_NS = "http://x-road.eu/xsd/identifiers"
XROAD_NS = "http://x-road.eu/xsd/xroad.xsd"
_OBJECT_TYPE_ATTR = f"{{{ID_NS}}}objectType"
_DEFAULT_NSMAP: dict[str | None, str] = {"xroad": XROAD_NS, "id": ID_NS}

MAX_COMPONENT_LENGTH = 255

# Runtime (lenient) rule: ISO control characters, % : ; / \ and the invisible U+200B / U+FEFF.
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f%:;/\\\u200b\ufeff]")
# Central server strict-identifier-checks (§1.2).  NIIS's regex is ``[a-zA-Z0-9'()+,-.=?]``, where
# ``,-.`` is a character range (``,`` ``-`` ``.``); we spell the same set out.
_STRICT = re.compile(r"[a-zA-Z0-9'()+,\-.=?]*")
# Safe characters of a URL path segment (RFC 3986 pchar minus the percent sign).
_PATH_SAFE = "!$&'()*+,;=:@-._~"


class ObjectType(StrEnum):
    """The ``id:objectType`` enumeration."""

    MEMBER = "MEMBER"
    SUBSYSTEM = "SUBSYSTEM"
    SERVER = "SERVER"
    GLOBALGROUP = "GLOBALGROUP"
    LOCALGROUP = "LOCALGROUP"
    SERVICE = "SERVICE"


def _check_component(name: str, value: str, code: str, strict: bool) -> None:
    if not value:
        raise XRoadError(code, f"Identifier component {name} must not be empty")
    if len(value) > MAX_COMPONENT_LENGTH:
        raise XRoadError(
            code, f"Identifier component {name} is longer than {MAX_COMPONENT_LENGTH} characters"
        )
    if strict:
        if not _STRICT.fullmatch(value):
            raise XRoadError(code, f"Identifier component {name} contains illegal characters")
    elif _FORBIDDEN.search(value):
        raise XRoadError(code, f"Identifier component {name} contains illegal characters")


def _split_typed(text: str, code: str) -> tuple[ObjectType, list[str]]:
    type_name, sep, rest = text.partition(":")
    if not sep:
        raise XRoadError(code, f"Identifier {text!r} has no TYPE: prefix")
    try:
        object_type = ObjectType(type_name.strip())
    except ValueError:
        raise XRoadError(code, f"Unknown identifier type {type_name!r}") from None
    return object_type, rest.split("/")


# ---------------------------------------------------------------------------------------------
# XML helpers shared by the identifier classes


def _xml_fields(element: Any, code: str) -> tuple[ObjectType, dict[str, str]]:
    """Read ``id:objectType`` and the ``id:*`` children of an identifier element."""
    if not isinstance(element, etree._Element):
        raise XRoadError(code, "Identifier is not an XML element")
    raw_type = element.get(_OBJECT_TYPE_ATTR)
    if raw_type is None:
        raise XRoadError(code, "Identifier element has no id:objectType attribute")
    try:
        object_type = ObjectType(raw_type.strip())
    except ValueError:
        raise XRoadError(code, f"Unknown identifier object type {raw_type!r}") from None
    fields: dict[str, str] = {}
    for child in element:
        if not isinstance(child.tag, str):  # comments, processing instructions
            continue
        qname = etree.QName(child)
        if qname.namespace != ID_NS or qname.localname not in _XML_ORDER:
            raise XRoadError(code, f"Unexpected element {child.tag} in identifier")
        if qname.localname in fields:
            raise XRoadError(code, f"Duplicate element {qname.localname} in identifier")
        if len(child):
            raise XRoadError(code, f"Identifier element {qname.localname} must be text")
        fields[qname.localname] = child.text or ""
    return object_type, fields


_XML_ORDER = (
    "xRoadInstance",
    "memberClass",
    "memberCode",
    "subsystemCode",
    "groupCode",
    "serviceCode",
    "serviceVersion",
    "serverCode",
)


def _expect_fields(
    fields: Mapping[str, str], required: tuple[str, ...], optional: tuple[str, ...], code: str
) -> None:
    missing = [f for f in required if f not in fields]
    if missing:
        raise XRoadError(code, f"Identifier lacks {', '.join(missing)}")
    extra = [f for f in fields if f not in required and f not in optional]
    if extra:
        raise XRoadError(code, f"Identifier must not contain {', '.join(extra)}")


def _build_xml(
    tag: str | etree.QName,
    object_type: ObjectType,
    fields: list[tuple[str, str]],
    parent: etree._Element | None,
    nsmap: Mapping[str | None, str] | None,
) -> etree._Element:
    ns: dict[str | None, str]
    if nsmap is not None:
        ns = dict(nsmap)
    elif parent is None:
        ns = dict(_DEFAULT_NSMAP)
    else:
        # Under a parent, declare only what is not in scope yet (no redundant xmlns:*).
        in_scope = set(parent.nsmap.values())
        ns = {k: v for k, v in _DEFAULT_NSMAP.items() if v not in in_scope}
    if parent is None:
        element = etree.Element(tag, nsmap=ns)  # type: ignore[arg-type]
    else:
        element = etree.SubElement(parent, tag, nsmap=ns)  # type: ignore[arg-type]
    element.set(_OBJECT_TYPE_ATTR, object_type.value)
    for name, value in fields:
        etree.SubElement(element, f"{{{ID_NS}}}{name}").text = value
    return element


def _rest_split(text: str, counts: tuple[int, ...], code: str, what: str) -> list[str]:
    parts = text.split("/")
    if len(parts) not in counts:
        expected = " or ".join(str(c) for c in counts)
        raise XRoadError(code, f"Invalid {what} {text!r}: expected {expected} parts")
    try:
        decoded = [unquote(p, errors="strict") if "%" in p else p for p in parts]
    except UnicodeDecodeError:
        raise XRoadError(code, f"Invalid {what} {text!r}: bad percent-encoding") from None
    if any(not p for p in decoded):
        raise XRoadError(code, f"Invalid {what} {text!r}: empty part")
    return decoded


def _rest_join(parts: Iterable[str]) -> str:
    return "/".join(quote(p, safe=_PATH_SAFE) for p in parts)


def _json_str(data: Mapping[str, Any], key: str, code: str, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise XRoadError(code, f"Identifier JSON lacks {key}")
        return None
    if not isinstance(value, str):
        raise XRoadError(code, f"Identifier JSON field {key} must be a string")
    return value


def _json_type(data: Any, code: str) -> ObjectType:
    if not isinstance(data, Mapping):
        raise XRoadError(code, "Identifier JSON must be an object")
    raw = data.get("object_type")
    try:
        return ObjectType(str(raw))
    except ValueError:
        raise XRoadError(code, f"Unknown identifier object_type {raw!r}") from None


# ---------------------------------------------------------------------------------------------
# The identifier values


class _Identifier:
    """What every identifier shares: the XML form and the character rules."""

    ERROR_CODE: ClassVar[str] = Code.INVALID_IDENTIFIER

    @property
    def object_type(self) -> ObjectType:
        raise NotImplementedError

    def xml_fields(self) -> list[tuple[str, str]]:
        """The ``id:*`` children in schema order, as (local name, text)."""
        raise NotImplementedError

    def validate(self, strict: bool = False) -> Self:
        """Apply the §1.2 character rules (``strict``: the central server's regex)."""
        for name, value in self.xml_fields():
            _check_component(name, value, self.ERROR_CODE, strict)
        return self

    def to_xml(
        self,
        tag: str | etree.QName,
        parent: etree._Element | None = None,
        nsmap: Mapping[str | None, str] | None = None,
    ) -> etree._Element:
        """The identifier as element ``tag`` (appended to ``parent`` if given)."""
        return _build_xml(tag, self.object_type, self.xml_fields(), parent, nsmap)


@dataclass(frozen=True)
class ClientId(_Identifier):
    """A MEMBER (no subsystem) or a SUBSYSTEM."""

    instance: str
    member_class: str
    member_code: str
    subsystem_code: str | None = None

    ERROR_CODE: ClassVar[str] = Code.INVALID_CLIENT_IDENTIFIER

    @property
    def object_type(self) -> ObjectType:
        return ObjectType.SUBSYSTEM if self.subsystem_code is not None else ObjectType.MEMBER

    @property
    def is_subsystem(self) -> bool:
        return self.subsystem_code is not None

    def member_id(self) -> ClientId:
        """The MEMBER part of this client (itself if it is a member)."""
        if self.subsystem_code is None:
            return self
        return ClientId(self.instance, self.member_class, self.member_code)

    def subsystem(self, subsystem_code: str) -> ClientId:
        """The subsystem ``subsystem_code`` of this client's member."""
        return ClientId(self.instance, self.member_class, self.member_code, subsystem_code)

    def parts(self) -> tuple[str, ...]:
        base = (self.instance, self.member_class, self.member_code)
        return base if self.subsystem_code is None else (*base, self.subsystem_code)

    def __str__(self) -> str:
        return f"{self.object_type}:{'/'.join(self.parts())}"

    @classmethod
    def parse(cls, text: str) -> ClientId:
        object_type, parts = _split_typed(text, cls.ERROR_CODE)
        if object_type is ObjectType.MEMBER and len(parts) == 3:
            return cls(*parts)
        if object_type is ObjectType.SUBSYSTEM and len(parts) == 4:
            return cls(*parts)
        raise XRoadError(cls.ERROR_CODE, f"Not a client identifier: {text!r}")

    @classmethod
    def from_xml(cls, element: Any) -> ClientId:
        object_type, f = _xml_fields(element, cls.ERROR_CODE)
        base = ("xRoadInstance", "memberClass", "memberCode")
        if object_type is ObjectType.MEMBER:
            _expect_fields(f, base, (), cls.ERROR_CODE)
            return cls(f["xRoadInstance"], f["memberClass"], f["memberCode"])
        if object_type is ObjectType.SUBSYSTEM:
            _expect_fields(f, (*base, "subsystemCode"), (), cls.ERROR_CODE)
            return cls(f["xRoadInstance"], f["memberClass"], f["memberCode"], f["subsystemCode"])
        raise XRoadError(cls.ERROR_CODE, f"Object type {object_type} is not a client")

    def xml_fields(self) -> list[tuple[str, str]]:
        names = ("xRoadInstance", "memberClass", "memberCode", "subsystemCode")
        return list(zip(names, self.parts(), strict=False))

    @classmethod
    def from_header(cls, text: str) -> ClientId:
        """``X-Road-Client: INSTANCE/CLASS/MEMBER[/SUBSYSTEM]`` (components percent-decoded)."""
        return cls(*_rest_split(text.strip(), (3, 4), cls.ERROR_CODE, "client identifier"))

    def to_header(self) -> str:
        return _rest_join(self.parts())

    def to_json(self) -> dict[str, str]:
        out = {
            "object_type": self.object_type.value,
            "xroad_instance": self.instance,
            "member_class": self.member_class,
            "member_code": self.member_code,
        }
        if self.subsystem_code is not None:
            out["subsystem_code"] = self.subsystem_code
        return out

    @classmethod
    def from_json(cls, data: Any) -> ClientId:
        object_type = _json_type(data, cls.ERROR_CODE)
        if object_type not in (ObjectType.MEMBER, ObjectType.SUBSYSTEM):
            raise XRoadError(cls.ERROR_CODE, f"Object type {object_type} is not a client")
        sub = _json_str(data, "subsystem_code", cls.ERROR_CODE, required=False)
        if (sub is not None) != (object_type is ObjectType.SUBSYSTEM):
            raise XRoadError(cls.ERROR_CODE, f"{object_type} and subsystem_code disagree")
        return cls(
            str(_json_str(data, "xroad_instance", cls.ERROR_CODE)),
            str(_json_str(data, "member_class", cls.ERROR_CODE)),
            str(_json_str(data, "member_code", cls.ERROR_CODE)),
            sub,
        )


@dataclass(frozen=True)
class ServiceId(_Identifier):
    """A service of a member or subsystem; ``service_version`` is optional and not part of ACLs."""

    client: ClientId
    service_code: str
    service_version: str | None = None

    ERROR_CODE: ClassVar[str] = Code.INVALID_SERVICE_IDENTIFIER
    object_type: ClassVar[ObjectType] = ObjectType.SERVICE

    @property
    def instance(self) -> str:
        return self.client.instance

    def without_version(self) -> ServiceId:
        return ServiceId(self.client, self.service_code)

    def __str__(self) -> str:
        c = self.client
        parts = [c.instance, c.member_class, c.member_code]
        if self.service_version is None:
            if c.subsystem_code is not None:
                parts.append(c.subsystem_code)
            parts.append(self.service_code)
        else:
            parts += [c.subsystem_code or "", self.service_code, self.service_version]
        return f"SERVICE:{'/'.join(parts)}"

    @classmethod
    def parse(cls, text: str) -> ServiceId:
        object_type, parts = _split_typed(text, cls.ERROR_CODE)
        if object_type is not ObjectType.SERVICE or not 4 <= len(parts) <= 6:
            raise XRoadError(cls.ERROR_CODE, f"Not a service identifier: {text!r}")
        inst, cls_, code, *rest = parts
        if len(rest) == 1:
            return cls(ClientId(inst, cls_, code), rest[0])
        if len(rest) == 2:
            return cls(ClientId(inst, cls_, code, rest[0]), rest[1])
        return cls(ClientId(inst, cls_, code, rest[0] or None), rest[1], rest[2])

    @classmethod
    def from_xml(cls, element: Any) -> ServiceId:
        object_type, f = _xml_fields(element, cls.ERROR_CODE)
        if object_type is not ObjectType.SERVICE:
            raise XRoadError(cls.ERROR_CODE, f"Object type {object_type} is not a service")
        _expect_fields(
            f,
            ("xRoadInstance", "memberClass", "memberCode", "serviceCode"),
            ("subsystemCode", "serviceVersion"),
            cls.ERROR_CODE,
        )
        client = ClientId(
            f["xRoadInstance"], f["memberClass"], f["memberCode"], f.get("subsystemCode")
        )
        return cls(client, f["serviceCode"], f.get("serviceVersion"))

    def xml_fields(self) -> list[tuple[str, str]]:
        out = [*self.client.xml_fields(), ("serviceCode", self.service_code)]
        if self.service_version is not None:
            out.append(("serviceVersion", self.service_version))
        return out

    @classmethod
    def from_path(cls, text: str) -> ServiceId:
        """The REST path form ``INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICECODE`` (exactly 5 parts)."""
        inst, cls_, code, sub, service = _rest_split(
            text.strip("/"), (5,), cls.ERROR_CODE, "service identifier"
        )
        return cls(ClientId(inst, cls_, code, sub), service)

    def to_path(self) -> str:
        if self.client.subsystem_code is None:
            raise XRoadError(self.ERROR_CODE, f"REST services live under a subsystem: {self}")
        return _rest_join([*self.client.parts(), self.service_code])

    def to_json(self) -> dict[str, str]:
        out = self.client.to_json()
        out["object_type"] = ObjectType.SERVICE.value
        out["service_code"] = self.service_code
        if self.service_version is not None:
            out["service_version"] = self.service_version
        return out

    @classmethod
    def from_json(cls, data: Any) -> ServiceId:
        if _json_type(data, cls.ERROR_CODE) is not ObjectType.SERVICE:
            raise XRoadError(cls.ERROR_CODE, "object_type is not SERVICE")
        client = ClientId(
            str(_json_str(data, "xroad_instance", cls.ERROR_CODE)),
            str(_json_str(data, "member_class", cls.ERROR_CODE)),
            str(_json_str(data, "member_code", cls.ERROR_CODE)),
            _json_str(data, "subsystem_code", cls.ERROR_CODE, required=False),
        )
        return cls(
            client,
            str(_json_str(data, "service_code", cls.ERROR_CODE)),
            _json_str(data, "service_version", cls.ERROR_CODE, required=False),
        )


@dataclass(frozen=True)
class SecurityServerId(_Identifier):
    """A security server: its owner member and its server code."""

    owner: ClientId
    server_code: str

    ERROR_CODE: ClassVar[str] = Code.INVALID_SECURITY_SERVER
    object_type: ClassVar[ObjectType] = ObjectType.SERVER

    def __post_init__(self) -> None:
        if self.owner.subsystem_code is not None:
            raise XRoadError(self.ERROR_CODE, "The owner of a security server is a member")

    @property
    def instance(self) -> str:
        return self.owner.instance

    def parts(self) -> tuple[str, ...]:
        return (*self.owner.parts(), self.server_code)

    def __str__(self) -> str:
        return f"SERVER:{'/'.join(self.parts())}"

    @classmethod
    def parse(cls, text: str) -> SecurityServerId:
        object_type, parts = _split_typed(text, cls.ERROR_CODE)
        if object_type is not ObjectType.SERVER or len(parts) != 4:
            raise XRoadError(cls.ERROR_CODE, f"Not a security server identifier: {text!r}")
        return cls(ClientId(*parts[:3]), parts[3])

    @classmethod
    def from_xml(cls, element: Any) -> SecurityServerId:
        object_type, f = _xml_fields(element, cls.ERROR_CODE)
        if object_type is not ObjectType.SERVER:
            raise XRoadError(cls.ERROR_CODE, f"Object type {object_type} is not a server")
        _expect_fields(
            f, ("xRoadInstance", "memberClass", "memberCode", "serverCode"), (), cls.ERROR_CODE
        )
        owner = ClientId(f["xRoadInstance"], f["memberClass"], f["memberCode"])
        return cls(owner, f["serverCode"])

    def xml_fields(self) -> list[tuple[str, str]]:
        return [*self.owner.xml_fields(), ("serverCode", self.server_code)]

    @classmethod
    def from_header(cls, text: str) -> SecurityServerId:
        """``X-Road-Security-Server: INSTANCE/CLASS/MEMBER/SERVERCODE`` (exactly 4 parts)."""
        inst, cls_, code, server = _rest_split(
            text.strip(), (4,), cls.ERROR_CODE, "security server identifier"
        )
        return cls(ClientId(inst, cls_, code), server)

    def to_header(self) -> str:
        return _rest_join(self.parts())

    def to_json(self) -> dict[str, str]:
        out = self.owner.to_json()
        out["object_type"] = ObjectType.SERVER.value
        out["server_code"] = self.server_code
        return out

    @classmethod
    def from_json(cls, data: Any) -> SecurityServerId:
        if _json_type(data, cls.ERROR_CODE) is not ObjectType.SERVER:
            raise XRoadError(cls.ERROR_CODE, "object_type is not SERVER")
        owner = ClientId(
            str(_json_str(data, "xroad_instance", cls.ERROR_CODE)),
            str(_json_str(data, "member_class", cls.ERROR_CODE)),
            str(_json_str(data, "member_code", cls.ERROR_CODE)),
        )
        return cls(owner, str(_json_str(data, "server_code", cls.ERROR_CODE)))


@dataclass(frozen=True)
class GlobalGroupId(_Identifier):
    """A global group of an instance (e.g. ``security-server-owners``)."""

    instance: str
    group_code: str

    object_type: ClassVar[ObjectType] = ObjectType.GLOBALGROUP

    def __str__(self) -> str:
        return f"GLOBALGROUP:{self.instance}/{self.group_code}"

    @classmethod
    def parse(cls, text: str) -> GlobalGroupId:
        object_type, parts = _split_typed(text, cls.ERROR_CODE)
        if object_type is not ObjectType.GLOBALGROUP or len(parts) != 2:
            raise XRoadError(cls.ERROR_CODE, f"Not a global group identifier: {text!r}")
        return cls(*parts)

    @classmethod
    def from_xml(cls, element: Any) -> GlobalGroupId:
        object_type, f = _xml_fields(element, cls.ERROR_CODE)
        if object_type is not ObjectType.GLOBALGROUP:
            raise XRoadError(cls.ERROR_CODE, f"Object type {object_type} is not a global group")
        _expect_fields(f, ("xRoadInstance", "groupCode"), (), cls.ERROR_CODE)
        return cls(f["xRoadInstance"], f["groupCode"])

    def xml_fields(self) -> list[tuple[str, str]]:
        return [("xRoadInstance", self.instance), ("groupCode", self.group_code)]

    def to_json(self) -> dict[str, str]:
        return {
            "object_type": ObjectType.GLOBALGROUP.value,
            "xroad_instance": self.instance,
            "group_code": self.group_code,
        }

    @classmethod
    def from_json(cls, data: Any) -> GlobalGroupId:
        if _json_type(data, cls.ERROR_CODE) is not ObjectType.GLOBALGROUP:
            raise XRoadError(cls.ERROR_CODE, "object_type is not GLOBALGROUP")
        return cls(
            str(_json_str(data, "xroad_instance", cls.ERROR_CODE)),
            str(_json_str(data, "group_code", cls.ERROR_CODE)),
        )


@dataclass(frozen=True)
class LocalGroupId(_Identifier):
    """A local group, scoped to the service-owning client on one security server."""

    group_code: str

    object_type: ClassVar[ObjectType] = ObjectType.LOCALGROUP

    def __str__(self) -> str:
        return f"LOCALGROUP:{self.group_code}"

    @classmethod
    def parse(cls, text: str) -> LocalGroupId:
        object_type, parts = _split_typed(text, cls.ERROR_CODE)
        if object_type is not ObjectType.LOCALGROUP or len(parts) != 1:
            raise XRoadError(cls.ERROR_CODE, f"Not a local group identifier: {text!r}")
        return cls(parts[0])

    @classmethod
    def from_xml(cls, element: Any) -> LocalGroupId:
        object_type, f = _xml_fields(element, cls.ERROR_CODE)
        if object_type is not ObjectType.LOCALGROUP:
            raise XRoadError(cls.ERROR_CODE, f"Object type {object_type} is not a local group")
        _expect_fields(f, ("groupCode",), (), cls.ERROR_CODE)
        return cls(f["groupCode"])

    def xml_fields(self) -> list[tuple[str, str]]:
        return [("groupCode", self.group_code)]

    def to_json(self) -> dict[str, str]:
        return {"object_type": ObjectType.LOCALGROUP.value, "group_code": self.group_code}

    @classmethod
    def from_json(cls, data: Any) -> LocalGroupId:
        if _json_type(data, cls.ERROR_CODE) is not ObjectType.LOCALGROUP:
            raise XRoadError(cls.ERROR_CODE, "object_type is not LOCALGROUP")
        return cls(str(_json_str(data, "group_code", cls.ERROR_CODE)))


XRoadId: TypeAlias = ClientId | ServiceId | SecurityServerId | GlobalGroupId | LocalGroupId

_CLASS_BY_TYPE: dict[ObjectType, type[XRoadId]] = {
    ObjectType.MEMBER: ClientId,
    ObjectType.SUBSYSTEM: ClientId,
    ObjectType.SERVICE: ServiceId,
    ObjectType.SERVER: SecurityServerId,
    ObjectType.GLOBALGROUP: GlobalGroupId,
    ObjectType.LOCALGROUP: LocalGroupId,
}


def parse_identifier(text: str) -> XRoadId:
    """Parse any identifier from its ``TYPE:...`` string form."""
    object_type, _ = _split_typed(text, Code.INVALID_IDENTIFIER)
    return _CLASS_BY_TYPE[object_type].parse(text)


def identifier_from_xml(element: Any) -> XRoadId:
    """Parse any identifier element, choosing the type by its ``id:objectType``."""
    object_type, _ = _xml_fields(element, Code.INVALID_IDENTIFIER)
    return _CLASS_BY_TYPE[object_type].from_xml(element)


def identifier_from_json(data: Any) -> XRoadId:
    """Parse any identifier from its snake_case JSON object."""
    return _CLASS_BY_TYPE[_json_type(data, Code.INVALID_IDENTIFIER)].from_json(data)
