"""shared-params.xml V2–V6: parse, render, and the trust policy it implies (protocols.md §5.5).

Parsing is lenient the way NIIS asks (§5.5 last item): every version is read by one parser,
children are dispatched by name, unknown nested elements are ignored and unknown top-level
elements are kept as extensions (the V3+ ``any`` point).  What the model relies on is checked:
required elements, integer and boolean syntax, base64, IDREFs that resolve.  Any failure is
``malformed_globalconf``.

Rendering follows each version's XSD sequence exactly, with unqualified children (the schemas
have no ``elementFormDefault``), qualified ``id:*`` identifier parts, and fresh ``id0, id1, …``
ids for members and subsystems referenced by IDREF from security servers.  Features a version
cannot carry are dropped, as the central server does when it generates older versions.

The XML helpers here are shared with :mod:`.privateparams`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from lxml import etree

from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import (
    SHARED_VERSIONS,
    AcmeServer,
    ApprovedCAInfo,
    ApprovedTSAInfo,
    CaInfo,
    CentralService,
    ConfigurationSource,
    CostType,
    CsrFormat,
    GlobalGroup,
    GlobalSettings,
    MaintenanceMode,
    Member,
    MemberClass,
    OcspInfo,
    SecurityServer,
    SharedParameters,
    Subsystem,
    build_trust_policy,
    find_ca_info,
)
from crossroad.identifiers import ID_NS, XROAD_NS, ClientId, ServiceId

__all__ = [
    "SharedParameters",
    "build_trust_policy",
    "bulk_build",
    "find_ca_info",
    "parse_shared_parameters",
    "render_shared_parameters",
]

NSMAP = {"tns": XROAD_NS, "id": ID_NS}
_T = TypeVar("_T")

# --- reading -------------------------------------------------------------------------------------


def parse_xml(data: bytes, code: str, what: str) -> etree._Element:
    """Parse ``data`` with a hardened parser; DTDs are refused (X-Road never sends them)."""
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except (etree.XMLSyntaxError, ValueError, TypeError) as exc:
        raise XRoadError(code, f"{what} is not well-formed XML: {exc}") from exc
    if getattr(root.getroottree().docinfo, "doctype", ""):
        raise XRoadError(code, f"{what} must not contain a DTD")
    return root


def expect_root(root: etree._Element, localname: str, code: str, what: str) -> None:
    if root.tag != f"{{{XROAD_NS}}}{localname}":
        raise XRoadError(code, f"{what}: root element must be {{{XROAD_NS}}}{localname}")


class Node:
    """An element whose unqualified children are read by name (the globalconf schemas'
    children are unqualified; anything else is an extension)."""

    __slots__ = ("by_name", "code", "element")

    def __init__(self, element: etree._Element, code: str = Code.MALFORMED_GLOBALCONF) -> None:
        self.element = element
        self.code = code
        # Children by name, built once: configurations with 10^5 elements are read by name
        # many times per element (bench/globalconf.py).
        by_name: dict[str, list[etree._Element]] = {}
        for child in element:
            tag = child.tag
            if isinstance(tag, str) and tag[:1] != "{":
                found = by_name.get(tag)
                if found is None:
                    by_name[tag] = [child]
                else:
                    found.append(child)
        self.by_name = by_name

    @property
    def name(self) -> str:
        return etree.QName(self.element).localname

    def fail(self, message: str) -> XRoadError:
        return XRoadError(self.code, f"{self.name}: {message}")

    def all(self, name: str) -> list[etree._Element]:
        return self.by_name.get(name, [])

    def nodes(self, name: str) -> Iterator[Node]:
        return (Node(el, self.code) for el in self.all(name))

    def opt(self, name: str) -> etree._Element | None:
        found = self.by_name.get(name)
        if found is None:
            return None
        if len(found) > 1:
            raise self.fail(f"more than one {name}")
        return found[0]

    def req(self, name: str) -> etree._Element:
        found = self.opt(name)
        if found is None:
            raise self.fail(f"missing {name}")
        return found

    def node(self, name: str) -> Node:
        return Node(self.req(name), self.code)

    def opt_node(self, name: str) -> Node | None:
        found = self.opt(name)
        return Node(found, self.code) if found is not None else None

    def text(self, name: str) -> str:
        element = self.req(name)
        if len(element):
            raise self.fail(f"{name} must be text")
        return element.text or ""

    def opt_text(self, name: str) -> str | None:
        return self.text(name) if self.opt(name) is not None else None

    def int(self, name: str) -> int:
        raw = self.text(name).strip()
        try:
            return int(raw)
        except ValueError:
            raise self.fail(f"{name} is not an integer: {raw!r}") from None

    def opt_bool(self, name: str) -> bool | None:
        raw = self.opt_text(name)
        if raw is None:
            return None
        value = raw.strip()
        if value in ("true", "1"):
            return True
        if value in ("false", "0"):
            return False
        raise self.fail(f"{name} is not a boolean: {raw!r}")

    def b64(self, name: str) -> bytes:
        return decode_b64(self.text(name), self.code, name)

    def opt_b64(self, name: str) -> bytes | None:
        raw = self.opt_text(name)
        return None if raw is None else decode_b64(raw, self.code, name)

    def b64_all(self, name: str) -> tuple[bytes, ...]:
        return tuple(decode_b64(el.text or "", self.code, name) for el in self.all(name))

    def enum(self, name: str, cls: Callable[[str], _T]) -> _T | None:
        raw = self.opt_text(name)
        if raw is None:
            return None
        try:
            return cls(raw.strip())
        except ValueError:
            raise self.fail(f"{name} has an unknown value {raw!r}") from None

    def client_id(self, name: str) -> ClientId:
        try:
            return ClientId.from_xml(self.req(name))
        except XRoadError as exc:
            raise self.fail(f"{name}: {exc.detail}") from exc


def decode_b64(text: str, code: str, name: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise XRoadError(code, f"{name} is not valid base64") from exc


def extensions_of(root: etree._Element) -> tuple[bytes, ...]:
    """Top-level elements in a foreign namespace: the ``any`` extension point."""
    out = []
    for child in root:
        if isinstance(child.tag, str) and child.tag.startswith("{"):
            # A standalone copy without inherited, unused namespace declarations and tail.
            element = copy.deepcopy(child)
            element.tail = None
            etree.cleanup_namespaces(element)
            out.append(etree.tostring(element))
    return tuple(out)


# --- shared parameters: parse ---------------------------------------------------------------------


@contextmanager
def bulk_build() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large configuration's values are made.

    Building 10^5 small immutable values (no cycles among them) otherwise triggers collections
    that walk every live object again and again; that doubles the time of a large parse.  The
    collector's previous state is restored afterwards.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_shared_parameters(data: bytes) -> SharedParameters:
    with bulk_build():
        return _parse_shared_parameters(data)


def _parse_shared_parameters(data: bytes) -> SharedParameters:
    root = parse_xml(data, Code.MALFORMED_GLOBALCONF, "shared parameters")
    expect_root(root, "conf", Code.MALFORMED_GLOBALCONF, "shared parameters")
    conf = Node(root)
    instance = conf.text("instanceIdentifier")
    members, ids = _members(conf, instance)
    return SharedParameters(
        instance_identifier=instance,
        global_settings=_global_settings(conf.node("globalSettings")),
        sources=tuple(
            ConfigurationSource(
                address=n.text("address"),
                internal_verification_certs=n.b64_all("internalVerificationCert"),
                external_verification_certs=n.b64_all("externalVerificationCert"),
            )
            for n in conf.nodes("source")
        ),
        approved_cas=tuple(_approved_ca(n) for n in conf.nodes("approvedCA")),
        approved_tsas=tuple(
            ApprovedTSAInfo(
                name=n.text("name"),
                url=n.text("url"),
                cert=n.b64("cert"),
                cost_type=n.enum("costType", CostType),
            )
            for n in conf.nodes("approvedTSA")
        ),
        members=members,
        security_servers=tuple(_security_server(n, ids) for n in conf.nodes("securityServer")),
        global_groups=tuple(
            GlobalGroup(
                group_code=n.text("groupCode"),
                description=n.text("description"),
                members=_group_members(n),
            )
            for n in conf.nodes("globalGroup")
        ),
        central_services=tuple(_central_service(n) for n in conf.nodes("centralService")),
        extensions=extensions_of(root),
    )


def _member_class(node: Node) -> MemberClass:
    return MemberClass(code=node.text("code"), description=node.text("description"))


def _leaves(
    element: etree._Element, texts: tuple[str, ...], code: str
) -> tuple[dict[str, str], dict[str, list[etree._Element]]]:
    """One pass over ``element``'s unqualified children: the text of those named in ``texts``
    (each at most once, text only) and the others by name.  The same rules as :class:`Node`,
    inlined for the elements a large configuration has 10^5 of (members, subsystems)."""
    found: dict[str, str] = {}
    others: dict[str, list[etree._Element]] = {}
    for child in element:
        tag = child.tag
        if tag in texts:  # (comments and foreign elements never match)
            if tag in found or len(child):
                problem = f"more than one {tag}" if tag in found else f"{tag} must be text"
                raise XRoadError(code, f"{etree.QName(element).localname}: {problem}")
            found[tag] = child.text or ""
        elif isinstance(tag, str) and tag[:1] != "{":
            others.setdefault(tag, []).append(child)
    return found, others


def _missing(element: etree._Element, name: str, code: str) -> XRoadError:
    return XRoadError(code, f"{etree.QName(element).localname}: missing {name}")


def _subsystem(element: etree._Element, code: str) -> tuple[str, str | None]:
    """``subsystemCode`` and ``subsystemName`` (the hottest loop of a large parse, inlined)."""
    sub_code: str | None = None
    sub_name: str | None = None
    for child in element:
        tag = child.tag
        if tag == "subsystemCode":
            if sub_code is not None or len(child):
                raise XRoadError(code, "subsystem: subsystemCode must be one text element")
            sub_code = child.text or ""
        elif tag == "subsystemName":
            if sub_name is not None or len(child):
                raise XRoadError(code, "subsystem: subsystemName must be one text element")
            sub_name = child.text or ""
    if sub_code is None:
        raise _missing(element, "subsystemCode", code)
    return sub_code, sub_name


def _members(conf: Node, instance: str) -> tuple[tuple[Member, ...], dict[str, ClientId]]:
    """Every member with its subsystems, and the XML ``id`` of every member and subsystem (for
    resolving IDREFs), in one pass; equal member classes share one value."""
    code = conf.code
    members: list[Member] = []
    ids: dict[str, ClientId] = {}
    classes: dict[tuple[str, str], MemberClass] = {}

    def add(xml_id: str | None, client: ClientId) -> None:
        if xml_id is None:
            return
        if xml_id in ids:
            raise conf.fail(f"duplicate id {xml_id!r}")
        ids[xml_id] = client

    for element in conf.all("member"):
        texts, others = _leaves(element, ("memberCode", "name"), code)
        class_elements = others.get("memberClass", [])
        if len(class_elements) != 1:
            raise (
                _missing(element, "memberClass", code)
                if not class_elements
                else XRoadError(code, "member: more than one memberClass")
            )
        class_texts, _ = _leaves(class_elements[0], ("code", "description"), code)
        if "memberCode" not in texts or "name" not in texts:
            raise _missing(element, "memberCode" if "memberCode" not in texts else "name", code)
        if "code" not in class_texts or "description" not in class_texts:
            missing = "code" if "code" not in class_texts else "description"
            raise _missing(class_elements[0], missing, code)
        key = (class_texts["code"], class_texts["description"])
        member_class = classes.get(key)
        if member_class is None:
            member_class = classes[key] = MemberClass(*key)
        member_code = texts["memberCode"]
        member_id = ClientId(instance, key[0], member_code)
        add(element.get("id"), member_id)
        subsystems = []
        for sub in others.get("subsystem", ()):
            sub_code, sub_name = _subsystem(sub, code)
            subsystems.append(Subsystem(sub_code, sub_name))
            xml_id = sub.get("id")
            if xml_id is not None:
                add(xml_id, member_id.subsystem(sub_code))
        members.append(Member(member_class, member_code, texts["name"], tuple(subsystems)))
    return tuple(members), ids


def _resolve(node: Node, ref: str, ids: dict[str, ClientId]) -> ClientId:
    found = ids.get(ref.strip())
    if found is None:
        raise node.fail(f"reference {ref!r} does not name a member or subsystem")
    return found


def _security_server(node: Node, ids: dict[str, ClientId]) -> SecurityServer:
    owner = _resolve(node, node.text("owner"), ids)
    if owner.is_subsystem:
        raise node.fail(f"owner {owner} is not a member")
    maintenance = node.opt_node("inMaintenanceMode")
    return SecurityServer(
        owner=owner,
        server_code=node.text("serverCode"),
        address=node.opt_text("address"),
        auth_cert_hashes=node.b64_all("authCertHash"),
        clients=tuple(_resolve(node, el.text or "", ids) for el in node.all("client")),
        maintenance=MaintenanceMode(maintenance.opt_text("message")) if maintenance else None,
    )


def _group_members(node: Node) -> tuple[ClientId, ...]:
    # NIIS converts group members only when a membership question is asked, so a file with an
    # invalid member (globalconf_good_v2/bar: objectType MEMBER with a subsystemCode) still loads
    # there.  We skip such entries: an unreadable member is never in the group (safe denial).
    members = []
    for element in node.all("groupMember"):
        try:
            members.append(ClientId.from_xml(element))
        except XRoadError:
            continue
    return tuple(members)


def _central_service(node: Node) -> CentralService:
    impl = node.opt("implementingService")
    try:
        service = ServiceId.from_xml(impl) if impl is not None else None
    except XRoadError as exc:
        raise node.fail(f"implementingService: {exc.detail}") from exc
    return CentralService(node.text("serviceCode"), service)


def _ca_info(node: Node) -> CaInfo:
    return CaInfo(
        cert=node.b64("cert"),
        ocsp=tuple(
            OcspInfo(
                url=o.text("url"), cert=o.opt_b64("cert"), cost_type=o.enum("costType", CostType)
            )
            for o in node.nodes("ocsp")
        ),
    )


def _approved_ca(node: Node) -> ApprovedCAInfo:
    acme = node.opt_node("acmeServer")
    return ApprovedCAInfo(
        name=node.text("name"),
        authentication_only=node.opt_bool("authenticationOnly"),
        top_ca=_ca_info(node.node("topCA")),
        intermediate_cas=tuple(_ca_info(n) for n in node.nodes("intermediateCA")),
        certificate_profile_info=node.text("certificateProfileInfo"),
        default_csr_format=node.enum("defaultCsrFormat", CsrFormat),
        acme_server=AcmeServer(
            directory_url=acme.text("directoryURL"),
            ip_address=acme.opt_text("ipAddress"),
            authentication_certificate_profile_id=acme.opt_text(
                "authenticationCertificateProfileId"
            ),
            signing_certificate_profile_id=acme.opt_text("signingCertificateProfileId"),
        )
        if acme
        else None,
    )


def _global_settings(node: Node) -> GlobalSettings:
    return GlobalSettings(
        ocsp_freshness_seconds=node.int("ocspFreshnessSeconds"),
        member_classes=tuple(_member_class(n) for n in node.nodes("memberClass")),
    )


# --- shared parameters: render --------------------------------------------------------------------


def sub(parent: etree._Element, name: str, text: str | None = None) -> etree._Element:
    element = etree.SubElement(parent, name)
    if text is not None:
        element.text = text
    return element


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def serialize(root: etree._Element) -> bytes:
    etree.indent(root, space="    ")
    body = etree.tostring(root, encoding="UTF-8")
    return b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n' + body + b"\n"


def render_shared_parameters(params: SharedParameters, version: int) -> bytes:
    if version not in SHARED_VERSIONS:
        raise XRoadError(
            Code.MALFORMED_GLOBALCONF, f"Unsupported shared parameters version {version}"
        )
    root = etree.Element(f"{{{XROAD_NS}}}conf", nsmap=NSMAP)
    sub(root, "instanceIdentifier", params.instance_identifier)
    if version >= 3:
        if not params.sources:
            raise XRoadError(
                Code.MALFORMED_GLOBALCONF, f"Version {version} shared parameters need a source"
            )
        for source in params.sources:
            el = sub(root, "source")
            sub(el, "address", source.address)
            for cert in source.internal_verification_certs:
                sub(el, "internalVerificationCert", b64(cert))
            for cert in source.external_verification_certs:
                sub(el, "externalVerificationCert", b64(cert))
    for ca in params.approved_cas:
        _render_ca(sub(root, "approvedCA"), ca, version)
    for tsa in params.approved_tsas:
        el = sub(root, "approvedTSA")
        sub(el, "name", tsa.name)
        sub(el, "url", tsa.url)
        sub(el, "cert", b64(tsa.cert))
        if version >= 6 and tsa.cost_type is not None:
            sub(el, "costType", tsa.cost_type.value)
    ids = _render_members(root, params, version)
    for server in params.security_servers:
        _render_server(sub(root, "securityServer"), server, ids, version)
    for group in params.global_groups:
        el = sub(root, "globalGroup")
        sub(el, "groupCode", group.group_code)
        sub(el, "description", group.description)
        for client in group.members:
            client.to_xml("groupMember", parent=el)
    for central in params.central_services:
        el = sub(root, "centralService")
        sub(el, "serviceCode", central.service_code)
        if central.implementing_service is not None:
            central.implementing_service.to_xml("implementingService", parent=el)
    settings = sub(root, "globalSettings")
    for member_class in params.global_settings.member_classes:
        _render_member_class(sub(settings, "memberClass"), member_class)
    sub(settings, "ocspFreshnessSeconds", str(params.global_settings.ocsp_freshness_seconds))
    if version >= 3:
        append_extensions(root, params.extensions)
    return serialize(root)


def append_extensions(root: etree._Element, extensions: tuple[bytes, ...]) -> None:
    for raw in extensions:
        root.append(parse_xml(raw, Code.MALFORMED_GLOBALCONF, "extension element"))


def _render_member_class(el: etree._Element, member_class: MemberClass) -> None:
    sub(el, "code", member_class.code)
    sub(el, "description", member_class.description)


def _render_ca_info(el: etree._Element, info: CaInfo, version: int) -> None:
    sub(el, "cert", b64(info.cert))
    for ocsp in info.ocsp:
        o = sub(el, "ocsp")
        sub(o, "url", ocsp.url)
        if ocsp.cert is not None:
            sub(o, "cert", b64(ocsp.cert))
        if version >= 6 and ocsp.cost_type is not None:
            sub(o, "costType", ocsp.cost_type.value)


def _render_ca(el: etree._Element, ca: ApprovedCAInfo, version: int) -> None:
    sub(el, "name", ca.name)
    if ca.authentication_only is not None:
        sub(el, "authenticationOnly", "true" if ca.authentication_only else "false")
    _render_ca_info(sub(el, "topCA"), ca.top_ca, version)
    for info in ca.intermediate_cas:
        _render_ca_info(sub(el, "intermediateCA"), info, version)
    sub(el, "certificateProfileInfo", ca.certificate_profile_info)
    if version >= 6 and ca.default_csr_format is not None:
        sub(el, "defaultCsrFormat", ca.default_csr_format.value)
    acme = ca.acme_server
    if version >= 3 and acme is not None:
        a = sub(el, "acmeServer")
        sub(a, "directoryURL", acme.directory_url)
        if acme.ip_address is not None:
            sub(a, "ipAddress", acme.ip_address)
        if version >= 4:
            if acme.authentication_certificate_profile_id is not None:
                sub(
                    a,
                    "authenticationCertificateProfileId",
                    acme.authentication_certificate_profile_id,
                )
            if acme.signing_certificate_profile_id is not None:
                sub(a, "signingCertificateProfileId", acme.signing_certificate_profile_id)


def _render_members(
    root: etree._Element, params: SharedParameters, version: int
) -> dict[ClientId, str]:
    ids: dict[ClientId, str] = {}
    for member in params.members:
        member_id = member.client_id(params.instance_identifier)
        el = sub(root, "member")
        el.set("id", f"id{len(ids)}")
        ids.setdefault(member_id, el.get("id", ""))
        _render_member_class(sub(el, "memberClass"), member.member_class)
        sub(el, "memberCode", member.member_code)
        sub(el, "name", member.name)
        for subsystem in member.subsystems:
            s = sub(el, "subsystem")
            s.set("id", f"id{len(ids)}")
            ids.setdefault(member_id.subsystem(subsystem.subsystem_code), s.get("id", ""))
            sub(s, "subsystemCode", subsystem.subsystem_code)
            if version >= 5 and subsystem.subsystem_name is not None:
                sub(s, "subsystemName", subsystem.subsystem_name)
    return ids


def _ref(ids: dict[ClientId, str], client: ClientId) -> str:
    found = ids.get(client)
    if found is None:
        raise XRoadError(Code.MALFORMED_GLOBALCONF, f"{client} is not a member or subsystem")
    return found


def _render_server(
    el: etree._Element, server: SecurityServer, ids: dict[ClientId, str], version: int
) -> None:
    sub(el, "owner", _ref(ids, server.owner))
    sub(el, "serverCode", server.server_code)
    if server.address is not None:
        sub(el, "address", server.address)
    for digest in server.auth_cert_hashes:
        sub(el, "authCertHash", b64(digest))
    for client in server.clients:
        sub(el, "client", _ref(ids, client))
    if version >= 5 and server.maintenance is not None:
        m = sub(el, "inMaintenanceMode")
        if server.maintenance.message is not None:
            sub(m, "message", server.maintenance.message)
