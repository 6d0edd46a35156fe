"""XML-DSig primitives shared by the XAdES profile and hash chains (protocols.md §4.7, §4.8).

Owns: the namespaces of X-Road signatures, hardened XML parsing (no DTDs, no entities, no
network), canonicalisation (inclusive C14N 1.0 and exclusive C14N, with or without comments)
and strict base64 decoding of XML text values.  Every failure is an :class:`XRoadError` with
the code the caller names, so each format reports its own NIIS fault code.
"""

from __future__ import annotations

import base64
import binascii
import re
import threading
from collections.abc import Sequence
from typing import Final

from lxml import etree

from crossroad.crypto.algorithms import DIGESTS, SIGNATURES, DigestAlgorithm, SignatureAlgorithm
from crossroad.errors import XRoadError

DS_NS: Final = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS: Final = "http://uri.etsi.org/01903/v1.3.2#"
ASIC_NS: Final = "http://uri.etsi.org/02918/v1.2.1#"
XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"
HASHCHAIN_NS: Final = "http://cyber.ee/hashchain"

C14N_10: Final = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
C14N_10_COMMENTS: Final = C14N_10 + "#WithComments"
EXC_C14N: Final = "http://www.w3.org/2001/10/xml-exc-c14n#"
EXC_C14N_COMMENTS: Final = EXC_C14N + "WithComments"

#: Canonicalisation URIs we implement, mapped to (exclusive, with_comments).
C14N_METHODS: Final[dict[str, tuple[bool, bool]]] = {
    C14N_10: (False, False),
    C14N_10_COMMENTS: (False, True),
    EXC_C14N: (True, False),
    EXC_C14N_COMMENTS: (True, True),
}

# Algorithm URIs are compared exactly, as NIIS does (``DigestAlgorithm.ofUri``).
_DIGEST_URIS: Final = {d.uri: d for d in DIGESTS}
_SIGNATURE_URIS: Final = {s.uri: s for s in SIGNATURES}

_WHITESPACE = re.compile(r"[ \t\r\n]+")
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def ds(name: str) -> str:
    return f"{{{DS_NS}}}{name}"


def xades(name: str) -> str:
    return f"{{{XADES_NS}}}{name}"


def hc(name: str) -> str:
    return f"{{{HASHCHAIN_NS}}}{name}"


_PARSERS = threading.local()


def _parser() -> etree.XMLParser:
    # One parser per thread: lxml parsers are not thread-safe, and a new one per document
    # costs more than parsing a small signature.
    parser: etree.XMLParser | None = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = _new_parser()
    return parser


def _new_parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=False,
        remove_pis=False,
    )


def parse_xml(data: bytes, code: str, what: str) -> etree._Element:
    """Parse ``data`` as an XML document, refusing DTDs; failures raise ``code``."""
    if not isinstance(data, bytes | bytearray):
        raise XRoadError(code, f"{what}: expected bytes")
    try:
        root = etree.fromstring(bytes(data), _parser())
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise XRoadError(code, f"{what} is not well-formed XML: {exc}") from exc
    if root is None:
        raise XRoadError(code, f"{what} is empty")
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise XRoadError(code, f"{what} must not contain a document type declaration")
    return root


def _c14n(
    node: etree._Element | etree._ElementTree,
    method: str,
    inclusive_prefixes: Sequence[str],
    code: str,
) -> bytes:
    exclusive, comments = C14N_METHODS[method]
    try:
        return etree.tostring(
            node,
            method="c14n",
            exclusive=exclusive,
            with_comments=comments,
            inclusive_ns_prefixes=list(inclusive_prefixes)
            if exclusive and inclusive_prefixes
            else None,
        )
    except (etree.C14NError, ValueError) as exc:
        # libxml2 refuses e.g. relative namespace URIs, which C14N 1.0 forbids.
        raise XRoadError(code, f"Cannot canonicalize: {exc}") from exc


def canonicalize(
    node: etree._Element, method: str, inclusive_prefixes: Sequence[str] = (), *, code: str
) -> bytes:
    """Canonicalise ``node`` in its document context with the C14N ``method`` URI.

    lxml carries the namespace declarations in scope at ``node`` into the output, which is what
    inclusive C14N of a document subset requires (protocols.md §4.7).  Failures raise ``code``.
    """
    return _c14n(node, method, inclusive_prefixes, code)


def canonicalize_document(
    data: bytes, method: str, code: str, what: str, inclusive_prefixes: Sequence[str] = ()
) -> bytes:
    """Parse octets and canonicalise the whole document (a C14N transform over octets)."""
    root = parse_xml(data, code, what)
    return _c14n(root.getroottree(), method, inclusive_prefixes, code)


def b64decode(text: str | None, code: str, what: str) -> bytes:
    """Decode an ``xsd:base64Binary`` value (whitespace and CRs allowed), strictly."""
    compact = _WHITESPACE.sub("", text or "")
    if not _BASE64.fullmatch(compact):
        raise XRoadError(code, f"{what} is not valid base64")
    try:
        decoded = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the regex already checks
        raise XRoadError(code, f"{what} is not valid base64") from exc
    # Only the canonical spelling: unused trailing bits must be zero, so that no two texts
    # decode to the same value (every encoder X-Road uses writes them so).
    if base64.b64encode(decoded).decode("ascii") != compact:
        raise XRoadError(code, f"{what} is not canonical base64")
    return decoded


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def elements(node: etree._Element) -> list[etree._Element]:
    """Child elements of ``node`` (comments and processing instructions skipped)."""
    return [c for c in node if isinstance(c.tag, str)]


def check_element_only(node: etree._Element, code: str) -> list[etree._Element]:
    """Children of an element-only content model: text between them must be whitespace."""
    if node.text and node.text.strip():
        raise XRoadError(code, f"Unexpected text in {etree.QName(node).localname}")
    children = []
    for child in node:
        if child.tail and child.tail.strip():
            raise XRoadError(code, f"Unexpected text in {etree.QName(node).localname}")
        if isinstance(child.tag, str):
            children.append(child)
    return children


def text_of(node: etree._Element) -> str:
    """The concatenated text content of ``node`` (like DOM ``getTextContent``)."""
    return "".join(str(t) for t in node.itertext())


def check_attributes(el: etree._Element, allowed: frozenset[str], code: str) -> None:
    """Refuse attributes in no namespace that the schema does not declare for ``el``."""
    for key in el.attrib:
        name = key.decode() if isinstance(key, bytes) else key
        if not name.startswith("{") and name not in allowed:
            raise XRoadError(code, f"Unexpected attribute {name} on {etree.QName(el).localname}")


def digest_by_uri(uri: str | None, code: str) -> DigestAlgorithm:
    """The digest algorithm named by an XML-DSig URI (exact match)."""
    found = _DIGEST_URIS.get(uri or "")
    if found is None:
        raise XRoadError(code, f"Unsupported digest method {uri!r}")
    return found


def signature_by_uri(uri: str | None, code: str) -> SignatureAlgorithm:
    """The signature algorithm named by an XML-DSig URI (exact match)."""
    found = _SIGNATURE_URIS.get(uri or "")
    if found is None:
        raise XRoadError(code, f"Unsupported signature method {uri!r}")
    return found
