"""The internal-configuration parts besides shared parameters (protocols.md §5.3, §5.4, §5.6):
private-params.xml (V2/V3), configuration anchors, and the optional parts MONITORING,
FETCHINTERVAL and NEXTUPDATE.

Private parameters carry the management service (where the security server sends management
requests), the time-stamping interval and the anchors of federation partners.  A configuration
anchor (``tns:configurationAnchor``) has the same type as those embedded anchors.  Verification
certificates are kept as raw bytes: they are only public-key containers (§5.3), and the NIIS
test files put placeholders there (``YmFyCg==`` = ``bar\\n``).

Bad private parameters are ``malformed_globalconf``; a bad anchor is ``malformed_anchor``; an
optional part that breaks its (small, strict) schema is ``malformed_optional_parts_conf``.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from lxml import etree

from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import (
    PRIVATE_VERSIONS,
    AnchorSource,
    ConfigurationAnchor,
    ManagementService,
    PrivateParameters,
)
from crossroad.globalconf.sharedparams import (
    NSMAP,
    Node,
    append_extensions,
    b64,
    expect_root,
    extensions_of,
    parse_xml,
    serialize,
    sub,
)
from crossroad.identifiers import XROAD_NS, ClientId

__all__ = [
    "FETCHINTERVAL_DEFAULT",
    "anchor_hash",
    "parse_anchor",
    "parse_fetch_interval",
    "parse_monitoring_params",
    "parse_next_update",
    "parse_private_parameters",
    "render_anchor",
    "render_private_parameters",
]


def parse_private_parameters(data: bytes) -> PrivateParameters:
    code = Code.MALFORMED_GLOBALCONF
    root = parse_xml(data, code, "private parameters")
    expect_root(root, "conf", code, "private parameters")
    conf = Node(root, code)
    mgmt = conf.node("managementService")
    return PrivateParameters(
        instance_identifier=conf.text("instanceIdentifier"),
        configuration_anchors=tuple(_anchor(n) for n in conf.nodes("configurationAnchor")),
        management_service=ManagementService(
            auth_cert_reg_service_address=mgmt.text("authCertRegServiceAddress"),
            auth_cert_reg_service_cert=mgmt.opt_b64("authCertRegServiceCert"),
            management_request_service_provider_id=mgmt.client_id(
                "managementRequestServiceProviderId"
            ),
        ),
        time_stamping_interval_seconds=conf.int("timeStampingIntervalSeconds"),
        extensions=extensions_of(root),
    )


def parse_anchor(data: bytes) -> ConfigurationAnchor:
    """A configuration anchor file; ``malformed_anchor`` on anything unreadable (also empty)."""
    code = Code.MALFORMED_ANCHOR
    if not data.strip():
        raise XRoadError(code, "The configuration anchor is empty")
    root = parse_xml(data, code, "configuration anchor")
    expect_root(root, "configurationAnchor", code, "configuration anchor")
    return _anchor(Node(root, code))


def anchor_hash(data: bytes) -> str:
    """The anchor hash shown to administrators: SHA-224 of the file, upper-case hex pairs."""
    digest = hashlib.sha224(data).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _datetime(node: Node, name: str) -> dt.datetime | None:
    raw = node.opt_text(name)
    if raw is None:
        return None
    try:
        value = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise node.fail(f"{name} is not a date-time: {raw!r}") from None
    # xs:dateTime without a zone is local time in the sender's view; X-Road always writes Z.
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _anchor(node: Node) -> ConfigurationAnchor:
    sources = tuple(
        AnchorSource(
            download_url=s.text("downloadURL"),
            verification_certs=s.b64_all("verificationCert"),
        )
        for s in node.nodes("source")
    )
    if not sources:
        raise node.fail("an anchor needs at least one source")
    return ConfigurationAnchor(
        instance_identifier=node.text("instanceIdentifier"),
        sources=sources,
        generated_at=_datetime(node, "generatedAt"),
    )


def _xml_datetime(value: dt.datetime) -> str:
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _render_anchor_body(el: etree._Element, anchor: ConfigurationAnchor) -> None:
    if anchor.generated_at is not None:
        sub(el, "generatedAt", _xml_datetime(anchor.generated_at))
    sub(el, "instanceIdentifier", anchor.instance_identifier)
    for source in anchor.sources:
        s = sub(el, "source")
        sub(s, "downloadURL", source.download_url)
        for cert in source.verification_certs:
            sub(s, "verificationCert", b64(cert))


def render_anchor(anchor: ConfigurationAnchor) -> bytes:
    root = etree.Element(f"{{{XROAD_NS}}}configurationAnchor", nsmap={"tns": XROAD_NS})
    _render_anchor_body(root, anchor)
    return serialize(root)


def render_private_parameters(params: PrivateParameters, version: int = 3) -> bytes:
    if version not in PRIVATE_VERSIONS:
        raise XRoadError(
            Code.MALFORMED_GLOBALCONF, f"Unsupported private parameters version {version}"
        )
    root = etree.Element(f"{{{XROAD_NS}}}conf", nsmap=NSMAP)
    sub(root, "instanceIdentifier", params.instance_identifier)
    for anchor in params.configuration_anchors:
        _render_anchor_body(sub(root, "configurationAnchor"), anchor)
    mgmt = params.management_service
    m = sub(root, "managementService")
    sub(m, "authCertRegServiceAddress", mgmt.auth_cert_reg_service_address)
    if mgmt.auth_cert_reg_service_cert is not None:
        sub(m, "authCertRegServiceCert", b64(mgmt.auth_cert_reg_service_cert))
    mgmt.management_request_service_provider_id.to_xml(
        "managementRequestServiceProviderId", parent=m
    )
    sub(root, "timeStampingIntervalSeconds", str(params.time_stamping_interval_seconds))
    if version >= 3:
        append_extensions(root, params.extensions)
    return serialize(root)


# --- optional parts (§5.6) ------------------------------------------------------------------

#: OCSP fetch interval when the FETCHINTERVAL part is absent.
FETCHINTERVAL_DEFAULT = 1200


def _optional_part(data: bytes, what: str, allowed: tuple[str, ...]) -> Node:
    code = Code.MALFORMED_OPTIONAL_PARTS_CONF
    root = parse_xml(data, code, what)
    expect_root(root, "conf", code, what)
    node = Node(root, code)
    _only(node, allowed)
    return node


def read_optional_part(data: bytes, what: str = "optional part") -> etree._Element:
    """The ``conf`` root of any optional configuration part, parsed the hardened way.

    Parts the client does not know are stored, not interpreted (§5.2), but whatever is read
    goes through here: no DTD, no entities, no network — an XXE part gives
    ``malformed_optional_parts_conf``.
    """
    code = Code.MALFORMED_OPTIONAL_PARTS_CONF
    root = parse_xml(data, code, what)
    expect_root(root, "conf", code, what)
    return root


def _only(node: Node, allowed: tuple[str, ...]) -> None:
    # These schemas have no extension point: every child must be a known unqualified element.
    for child in node.element:
        if isinstance(child.tag, str) and child.tag not in allowed:
            raise node.fail(f"unexpected element {child.tag}")


def parse_fetch_interval(data: bytes) -> int:
    """FETCHINTERVAL (``fetchinterval-params.xml``): the OCSP fetch interval in seconds."""
    return _optional_part(data, "fetch interval", ("ocspFetchInterval",)).int("ocspFetchInterval")


def parse_next_update(data: bytes) -> bool:
    """NEXTUPDATE (``nextupdate-params.xml``): whether OCSP ``nextUpdate`` is verified."""
    node = _optional_part(data, "next update", ("verifyNextUpdate",))
    value = node.opt_bool("verifyNextUpdate")
    if value is None:
        raise node.fail("missing verifyNextUpdate")
    return value


def parse_monitoring_params(data: bytes) -> ClientId | None:
    """MONITORING (``monitoring-params.xml``): the client allowed to query all servers' data."""
    node = _optional_part(data, "monitoring parameters", ("monitoringClient",))
    client = node.node("monitoringClient")
    _only(client, ("monitoringClientId",))
    return (
        client.client_id("monitoringClientId")
        if client.opt("monitoringClientId") is not None
        else None
    )
