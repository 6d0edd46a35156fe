"""What ties a SOAP response to its request: header consistency and ``requestHash`` (§2.2, §2.4).

Owns :func:`check_consistency` (NIIS ``SoapUtils.checkConsistency``), :func:`check_response`
(the client proxy's checks of a provider's response), :func:`request_hash` and
:func:`insert_request_hash` (what the provider's server proxy does to the service response
before signing it).

NIIS inserts the hash by re-serialising the whole response through a SAX writer, which also
rewrites the XML declaration, expands empty elements and normalises attributes.  We edit the
bytes instead: every byte of the service's response is kept except that any ``requestHash``
the service put in the header is dropped (with the whitespace before it) and
``<P:requestHash algorithmId="…sha512">HASH</P:requestHash>`` is inserted right after the
``id`` element, ``P`` being the ``id`` element's prefix (its namespace declarations are
copied along) and preceded by the first whitespace-only text seen in the header, as NIIS
does.  Peers verify the signature over the bytes they receive, so both forms interoperate,
and the response reaches the client byte-identical to what the service sent, plus the hash.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from crossroad.crypto.algorithms import SHA512
from crossroad.errors import Code, XRoadError
from crossroad.wire.faults import SOAP_ENV_NS, SoapFault
from crossroad.wire.soap import (
    RESPONSE_SUFFIX,
    TEXT_XML_UTF8,
    XROAD_NS,
    SoapMessage,
    parse_soap,
)


def check_consistency(request: SoapMessage, response: SoapMessage) -> None:
    """The header fields a response must echo (NIIS ``SoapUtils.checkConsistency``)."""
    fields = (
        ("client", request.header.client, response.header.client),
        ("service", request.header.service, response.header.service),
        ("userId", request.user_id, response.user_id),
        ("representedParty", request.represented_party, response.represented_party),
        ("issue", request.issue, response.issue),
        ("queryId", request.header.query_id, response.header.query_id),
    )
    for name, expected, got in fields:
        if expected != got:
            raise XRoadError(
                Code.INCONSISTENT_HEADERS, f"Field '{name}' does not match in request and response"
            )


def check_response(request: SoapMessage, response: SoapMessage) -> None:
    """What a client proxy checks of a provider's response (``ClientMessageProcessor``):
    header consistency (``service_failed.inconsistent_response``) and the ``requestHash``
    (``inconsistent_response``), which is SHA-512 of the request's raw bytes."""
    try:
        check_consistency(request, response)
    except XRoadError as exc:
        raise XRoadError(
            f"{Code.SERVICE_FAILED}.{Code.INCONSISTENT_RESPONSE}",
            "Response from server proxy is not consistent with request",
        ) from exc
    found = response.request_hash
    if found is None:
        raise XRoadError(
            Code.INCONSISTENT_RESPONSE,
            "Response from server proxy is missing request message hash",
        )
    try:
        value = base64.b64decode(re.sub(r"\s+", "", found.value), validate=True)
    except (binascii.Error, ValueError):
        value = b""
    if value != request.digest(SHA512):
        raise XRoadError(
            Code.INCONSISTENT_RESPONSE, "Request message hash does not match request message"
        )


def request_hash(request_soap: bytes) -> str:
    """The ``requestHash`` value: base64(SHA-512(request SOAP bytes as received)) (§2.4)."""
    return base64.b64encode(SHA512.digest(bytes(request_soap))).decode("ascii")


def response_body_name(request: SoapMessage) -> str:
    """The response element's local name: the service code plus ``Response``
    (NIIS ``SoapUtils.toResponse``: ``testQueryRequest`` → ``testQueryResponse``)."""
    return request.service.service_code + RESPONSE_SUFFIX


# --------------------------------------------------------------------------- requestHash insertion

_ATTR = re.compile(r"""\s*([^\s=/>]+)\s*=\s*("[^"]*"|'[^']*')""")
_NAME = re.compile(r"[^\s/>]+")
_REF = re.compile(r"&(#x[0-9A-Fa-f]+|#[0-9]+|lt|gt|amp|quot|apos);")
_PREDEFINED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}


def _unescape(value: str) -> str:
    def sub(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref.startswith("#x"):
            return chr(int(ref[2:], 16))
        if ref.startswith("#"):
            return chr(int(ref[1:]))
        return _PREDEFINED[ref]

    return _REF.sub(sub, value)


@dataclass
class _Child:
    """A direct child of the SOAP header, with its text offsets."""

    namespace: str | None
    local: str
    prefix: str
    xmlns: str  # the namespace declarations of its start tag, as written
    space_start: int  # start of the whitespace-only text before it (== start if none)
    start: int
    end: int = -1


@dataclass
class _Layout:
    children: list[_Child] = field(default_factory=list)
    indent: str | None = None


def _tag_end(s: str, lt: int) -> int:
    quote = ""
    for i in range(lt + 1, len(s)):
        c = s[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == ">":
            return i
    raise ValueError("unterminated tag")


def _layout(s: str) -> _Layout:
    """Locate the header's direct children in well-formed XML text (already validated)."""
    layout = _Layout()
    # (namespace, local, prefix map, child record) per open element
    stack: list[tuple[str | None, str, dict[str, str], _Child | None]] = []
    in_header = False
    pos = 0
    while True:
        lt = s.find("<", pos)
        if lt < 0:
            raise ValueError("no SOAP header found")
        text = s[pos:lt]
        if in_header and layout.indent is None and text and not text.strip(" \t\r\n"):
            layout.indent = text
        if s.startswith("<!--", lt):
            pos = s.index("-->", lt + 4) + 3
        elif s.startswith("<![CDATA[", lt):
            pos = s.index("]]>", lt + 9) + 3
        elif s.startswith("<?", lt):
            pos = s.index("?>", lt + 2) + 2
        elif s.startswith("<!", lt):
            raise ValueError("unexpected declaration")
        elif s.startswith("</", lt):
            pos = s.index(">", lt) + 1
            if _close(stack, layout, pos):
                return layout
        else:
            gt = _tag_end(s, lt)
            pos = gt + 1
            tag = s[lt + 1 : gt]
            closed = tag.endswith("/")
            name_match = _NAME.match(tag)
            if name_match is None:
                raise ValueError("malformed start tag")
            nsmap = dict(stack[-1][2]) if stack else {}
            xmlns = []
            for attr, quoted in _ATTR.findall(tag, name_match.end()):
                if attr == "xmlns" or attr.startswith("xmlns:"):
                    nsmap[attr[6:]] = _unescape(quoted[1:-1])
                    xmlns.append(f" {attr}={quoted}")
            prefix, _, local = name_match.group(0).rpartition(":")
            namespace = nsmap.get(prefix) or None
            depth = len(stack)
            child = None
            if depth == 1 and (namespace, local) == (SOAP_ENV_NS, "Body"):
                raise ValueError("SOAP body before any header")
            if depth == 1 and (namespace, local) == (SOAP_ENV_NS, "Header"):
                in_header = True
            elif depth == 2 and in_header:
                space_start = lt - len(text) if not text.strip(" \t\r\n") else lt
                child = _Child(namespace, local, prefix, "".join(xmlns), space_start, lt)
                layout.children.append(child)
            stack.append((namespace, local, nsmap, child))
            if closed and _close(stack, layout, pos):
                return layout


def _close(
    stack: list[tuple[str | None, str, dict[str, str], _Child | None]], layout: _Layout, end: int
) -> bool:
    """Pop an element ending at ``end``; True once the header is closed."""
    namespace, local, _, child = stack.pop()
    if child is not None:
        child.end = end
    return len(stack) == 1 and (namespace, local) == (SOAP_ENV_NS, "Header")


def _text_view(raw: bytes) -> tuple[str, Callable[[int], int], str]:
    """The document as text whose offsets map back to byte offsets, and its codec.

    ASCII-compatible encodings are viewed as Latin-1 (one character per byte, markup
    characters never inside multi-byte sequences); UTF-16/32 are decoded."""
    boms = (
        (b"\xff\xfe\x00\x00", "utf-32-le"),
        (b"\x00\x00\xfe\xff", "utf-32-be"),
        (b"\xff\xfe", "utf-16-le"),
        (b"\xfe\xff", "utf-16-be"),
    )
    for bom, codec in boms:
        if raw.startswith(bom):
            return _decoded(raw, len(bom), codec)
    if raw.startswith(b"<\x00?\x00"):
        return _decoded(raw, 0, "utf-16-le")
    if raw.startswith(b"\x00<\x00?"):
        return _decoded(raw, 0, "utf-16-be")
    return raw.decode("latin-1"), lambda i: i, "latin-1"


def _decoded(raw: bytes, skip: int, codec: str) -> tuple[str, Callable[[int], int], str]:
    text = raw[skip:].decode(codec)
    return text, lambda i: skip + len(text[:i].encode(codec)), codec


def insert_request_hash(
    response: bytes,
    request_hash_value: str,
    content_type: str | None = TEXT_XML_UTF8,
    *,
    parsed: SoapMessage | SoapFault | None = None,
) -> bytes:
    """The service response with ``requestHash`` (base64 SHA-512 of the request, see
    :func:`request_hash`) in its header, as a provider's server proxy signs and sends it.

    The response is validated first (the usual SOAP codes) unless the caller passes what it
    already ``parsed`` from these bytes; a SOAP fault is returned unchanged, since faults of
    the service travel back as they are.
    """
    if parsed is None:
        parsed = parse_soap(response, content_type)
    if isinstance(parsed, SoapFault):
        return bytes(response)
    try:
        text, to_byte, codec = _text_view(bytes(response))
        layout = _layout(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise XRoadError(Code.INTERNAL_ERROR, f"Cannot insert requestHash: {exc}") from exc
    query_id = next(c for c in layout.children if (c.namespace, c.local) == (XROAD_NS, "id"))
    pfx = f"{query_id.prefix}:" if query_id.prefix else ""
    element = (
        f'{layout.indent or ""}<{pfx}requestHash algorithmId="{SHA512.uri}"{query_id.xmlns}>'
        f"{request_hash_value}</{pfx}requestHash>"
    )
    edits = [(query_id.end, query_id.end, element)]
    edits += [
        (c.space_start, c.end, "")
        for c in layout.children
        if (c.namespace, c.local) == (XROAD_NS, "requestHash")
    ]
    out = bytearray()
    done = 0
    for start, end, insert in sorted(edits):
        out += response[to_byte(done) : to_byte(start)]
        out += insert.encode(codec)
        done = end
    out += response[to_byte(done) :]
    result = bytes(out)
    check = parse_soap(result, content_type)
    if not isinstance(check, SoapMessage) or check.request_hash is None:
        raise XRoadError(Code.INTERNAL_ERROR, "Cannot insert requestHash into the response")
    return result
