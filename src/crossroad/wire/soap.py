"""SOAP 4.0 messages between information systems and security servers (protocols.md §2).

Owns :class:`SoapMessage` (a frozen value: the X-Road header fields, the body element, the
raw bytes exactly as received, BOM included, since those are hashed and signed),
:class:`SoapParser` (incremental: ``feed(bytes)``, ``close() -> SoapMessage | SoapFault``),
the request/response checks of §2.2 and the ``requestHash`` of §2.4.

Validation follows NIIS ``SaxSoapParserImpl`` (what the proxies use) in its order, which
decides the code a client sees: errors are raised in document order while parsing
(``duplicate_header_field`` for a repeated X-Road header field or identifier part,
``invalid_xml`` for a missing or wrong ``id:objectType``, ``invalid_protocol_version`` when
the version does not start with ``4.``, ``invalid_body`` at a second body element), then at
the end of the envelope, unless the body holds a fault: ``missing_header``, then
``missing_header_field`` (protocolVersion, client, id, service), ``missing_body``,
``invalid_body`` (empty body) and ``inconsistent_headers`` (body element name must *start
with* the service code, CODE≠SPEC).  Malformed XML, a DOCTYPE or a root other than the SOAP
1.1 envelope are ``invalid_soap`` (NIIS wraps SAX errors in a SOAPException).  Unknown
header elements are extensions and pass untouched.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from lxml import etree

from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId, ServiceId
from crossroad.wire.faults import SOAP_ENV_NS, SoapFault
from crossroad.wire.mime import TEXT_XML, XOP_XML, ContentType
from crossroad.wire.soap_header import (
    ID_NS,
    REPR_NS,
    SECURITY_TOKEN_NS,
    SOAP_ENCODING_NS,
    XROAD_NS,
    RepresentedParty,
    RequestHash,
    SecurityToken,
    SoapHeader,
    header_identifier,
)

__all__ = [
    "ID_NS",
    "REPR_NS",
    "RESPONSE_SUFFIX",
    "SECURITY_TOKEN_NS",
    "SOAP_ENCODING_NS",
    "TEXT_XML_UTF8",
    "XROAD_NS",
    "RepresentedParty",
    "RequestHash",
    "SecurityToken",
    "SoapHeader",
    "SoapLimits",
    "SoapMessage",
    "SoapParser",
    "parse_soap",
    "validate_soap_action",
]

TEXT_XML_UTF8: Final = "text/xml; charset=UTF-8"
PROTOCOL_VERSION_PREFIX: Final = "4."
RESPONSE_SUFFIX: Final = "Response"

_ENVELOPE = f"{{{SOAP_ENV_NS}}}Envelope"
_HEADER = f"{{{SOAP_ENV_NS}}}Header"
_BODY = f"{{{SOAP_ENV_NS}}}Body"
_FAULT = f"{{{SOAP_ENV_NS}}}Fault"
_OBJECT_TYPE = f"{{{ID_NS}}}objectType"
_DOCTYPE = b"<!DOCTYPE"
_MAX_PROLOG = 64 * 1024

# Identifier parts each header identifier may contain (others are ignored, as NIIS does).
_CLIENT_PARTS = ("xRoadInstance", "memberClass", "memberCode", "subsystemCode")
_SERVICE_PARTS = (*_CLIENT_PARTS, "serviceCode", "serviceVersion")
_SERVER_PARTS = ("xRoadInstance", "memberClass", "memberCode", "serverCode")
_IDENTIFIERS: Final = {
    "client": (("MEMBER", "SUBSYSTEM"), _CLIENT_PARTS),
    "service": (("SERVICE",), _SERVICE_PARTS),
    "securityServer": (("SERVER",), _SERVER_PARTS),
}
_OBJECT_TYPES: Final = ("MEMBER", "SUBSYSTEM", "SERVER", "GLOBALGROUP", "LOCALGROUP", "SERVICE")
_VALUE_FIELDS: Final = ("id", "userId", "issue", "protocolVersion")
_FAULT_FIELDS: Final = ("faultcode", "faultstring", "faultactor")


@dataclass(frozen=True)
class SoapMessage:
    """A validated X-Road SOAP request or response (never a fault: see :class:`SoapFault`)."""

    raw: bytes = field(repr=False)
    content_type: str
    header: SoapHeader
    body_namespace: str | None
    body_name: str  # local name of the body's element (the "service name")
    is_rpc: bool = False

    @classmethod
    def parse(
        cls, data: bytes, content_type: str | None = TEXT_XML_UTF8, limits: SoapLimits | None = None
    ) -> SoapMessage:
        """Parse and validate; a fault raises ``invalid_message`` (use :func:`parse_soap`)."""
        result = parse_soap(data, content_type, limits)
        if isinstance(result, SoapFault):
            raise XRoadError(Code.INVALID_MESSAGE, "Expected a SOAP message, got a SOAP fault")
        return result

    # The validated header fields (never None for a message that parsed).
    @property
    def client(self) -> ClientId:
        assert self.header.client is not None
        return self.header.client

    @property
    def service(self) -> ServiceId:
        assert self.header.service is not None
        return self.header.service

    @property
    def query_id(self) -> str:
        assert self.header.query_id is not None
        return self.header.query_id

    @property
    def protocol_version(self) -> str:
        assert self.header.protocol_version is not None
        return self.header.protocol_version

    @property
    def user_id(self) -> str | None:
        return self.header.user_id

    @property
    def issue(self) -> str | None:
        return self.header.issue

    @property
    def security_server(self) -> SecurityServerId | None:
        return self.header.security_server

    @property
    def request_hash(self) -> RequestHash | None:
        return self.header.request_hash

    @property
    def represented_party(self) -> RepresentedParty | None:
        return self.header.represented_party

    @property
    def charset(self) -> str:
        return ContentType.parse(self.content_type).charset or "UTF-8"

    @property
    def is_response(self) -> bool:
        return self.body_name.endswith(RESPONSE_SUFFIX)

    @property
    def is_request(self) -> bool:
        return not self.is_response

    @property
    def is_fault(self) -> bool:
        return False  # faults parse to SoapFault; this keeps ``parse_soap`` results uniform

    def digest(self, algorithm: DigestAlgorithm = SHA512) -> bytes:
        """The digest of the raw bytes (``/message.xml`` and the request hash, §2.4, §4.6)."""
        return algorithm.digest(self.raw)


@dataclass(frozen=True)
class SoapLimits:
    max_bytes: int = 100 * 1024 * 1024


def _invalid_soap(detail: str) -> XRoadError:
    return XRoadError(Code.INVALID_SOAP, detail)


def _check_mime_type(content_type: str | None) -> None:
    if content_type is None:
        return
    mime_type = ContentType.parse(content_type).mime_type
    if mime_type not in (TEXT_XML, XOP_XML):
        raise XRoadError(Code.INVALID_CONTENT_TYPE, f"Invalid content type: {mime_type}")


def _prolog(raw: bytearray) -> str:
    """Whether the prolog so far holds a DOCTYPE ("doctype"), has ended ("root") or may
    still hold one ("more").  UTF-16/32 documents are left to the check on the parsed tree."""
    if bytes(raw[:2]) in (b"\xff\xfe", b"\xfe\xff") or 0 in raw[:2]:
        return "root"
    i = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    n = len(raw)
    while True:
        while i < n and raw[i] in b" \t\r\n":
            i += 1
        if i >= n:
            return "more"
        if raw[i] != 0x3C:  # not markup: libxml2 will refuse it
            return "root"
        for start, end in ((b"<?", b"?>"), (b"<!--", b"-->")):
            if raw.startswith(start, i):
                j = raw.find(end, i + len(start))
                if j < 0:
                    return "more"
                i = j + len(end)
                break
        else:
            head = bytes(raw[i : i + len(_DOCTYPE)])
            if head == _DOCTYPE:
                return "doctype"
            return "more" if _DOCTYPE.startswith(head) else "root"


def _direct_text(el: etree._Element) -> str:
    """The character data directly inside ``el`` (what a SAX handler collects for it)."""
    parts = [el.text or ""]
    parts.extend(child.tail or "" for child in el)
    return "".join(parts)


def _split(tag: str) -> tuple[str | None, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return None, tag


class _Frame:
    __slots__ = ("data", "kind", "name")

    def __init__(self, kind: str, name: str = "") -> None:
        self.kind = kind
        self.name = name
        self.data: dict[str, str] = {}


_DUPLICATE = "SOAP header contains duplicate field '%s'"


class SoapParser:
    """Incremental SOAP parser: ``feed`` bytes as they arrive, ``close`` for the result.

    The raw bytes are kept (they are hashed and signed); payload elements of the body are
    dropped from the tree as soon as they end, so memory holds the bytes once.
    """

    def __init__(
        self, content_type: str | None = TEXT_XML_UTF8, limits: SoapLimits | None = None
    ) -> None:
        _check_mime_type(content_type)
        self._content_type = content_type or TEXT_XML_UTF8
        self._limits = limits or SoapLimits()
        self._raw = bytearray()
        self._parser = etree.XMLPullParser(
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            # Large inline payloads (base64 in one text node > 10 MB) are legitimate SOAP; the
            # size is bounded by SoapLimits.max_bytes and DOCTYPEs are refused before libxml2
            # sees them, so lifting libxml2's node-size limit opens no entity expansion.
            huge_tree=True,
            load_dtd=False,
            dtd_validation=False,
            remove_comments=False,
            remove_pis=False,
        )
        self._stack: list[_Frame] = []
        self._root_seen = False
        self._in_prolog = True
        self._seen: set[str] = set()
        self._values: dict[str, object] = {}
        self._header_finished = False
        self._body: _Frame | None = None
        self._body_ns: str | None = None
        self._fault: _Frame | None = None
        self._rpc = False
        self._done = False
        self._result: SoapMessage | SoapFault | None = None

    def feed(self, data: bytes) -> None:
        if self._done:
            raise XRoadError(Code.INTERNAL_ERROR, "SOAP parser is already closed")
        if len(self._raw) + len(data) > self._limits.max_bytes:
            raise _invalid_soap(f"SOAP message is larger than {self._limits.max_bytes} bytes")
        self._raw += data
        if self._in_prolog:
            # Refuse a DOCTYPE before libxml2 reads it (NIIS disallows doctype declarations).
            state = _prolog(self._raw)
            if state == "doctype":
                raise _invalid_soap("Malformed SOAP message: DOCTYPE is not allowed")
            if state == "more" and len(self._raw) > _MAX_PROLOG:
                raise _invalid_soap("Malformed SOAP message: XML prolog is too long")
            self._in_prolog = state == "more"
        try:
            self._parser.feed(bytes(data))
        except etree.XMLSyntaxError as exc:
            raise _invalid_soap(f"Malformed SOAP message: {exc}") from exc
        self._drain()

    def close(self) -> SoapMessage | SoapFault:
        if self._result is not None:
            return self._result
        self._done = True
        try:
            self._parser.close()
        except etree.XMLSyntaxError as exc:
            self._drain()
            raise _invalid_soap(f"Malformed SOAP message: {exc}") from exc
        self._drain()
        if not self._root_seen:
            raise _invalid_soap("Malformed SOAP message: envelope missing")
        self._result = self._finish()
        return self._result

    # -- event handling, mirroring the SAX handlers of NIIS

    def _drain(self) -> None:
        for event, el in self._parser.read_events():
            if not isinstance(el, etree._Element):
                continue
            if event == "start":
                self._start(el)
            else:
                self._end(el)

    def _start(self, el: etree._Element) -> None:
        tag = el.tag
        if not isinstance(tag, str):
            return
        if not self._stack:
            self._root_seen = True
            if getattr(el.getroottree().docinfo, "doctype", ""):
                raise _invalid_soap("Malformed SOAP message: DOCTYPE is not allowed")
            if tag != _ENVELOPE:
                raise _invalid_soap("Malformed SOAP message: envelope missing")
            self._rpc = el.get(f"{{{SOAP_ENV_NS}}}encodingStyle") == SOAP_ENCODING_NS
            self._stack.append(_Frame("envelope"))
            return
        self._stack.append(self._child(self._stack[-1], tag, el))

    def _child(self, top: _Frame, tag: str, el: etree._Element) -> _Frame:
        ns, local = _split(tag)
        kind = top.kind
        if kind == "envelope":
            if tag == _HEADER:
                return _Frame("header")
            if tag == _BODY:
                self._body, self._fault = _Frame("body"), None
                return self._body
        elif kind == "header":
            return self._header_child(ns, local, el)
        elif kind == "ident":
            if ns == ID_NS and local in _IDENTIFIERS[top.name][1]:
                self._once(top.data, local, tag)
                return _Frame("ident-part", local)
        elif kind == "repr":
            if ns == REPR_NS and local in ("partyClass", "partyCode"):
                self._once(top.data, local, tag)
                return _Frame("repr-part", local)
        elif kind == "body":
            return self._body_child(top, tag, ns, local)
        elif kind == "fault":
            if local in _FAULT_FIELDS:
                return _Frame("fault-value", local)
            if local == "detail":
                return _Frame("fault-detail")
        elif kind == "fault-detail" and local == "faultDetail":
            return _Frame("fault-detail-value")
        elif kind == "payload":
            return _Frame("payload")
        return _Frame("noop")

    def _once(self, data: dict[str, str], name: str, tag: str) -> None:
        if name in data:
            raise XRoadError(Code.DUPLICATE_HEADER_FIELD, _DUPLICATE % tag)

    def _header_child(self, ns: str | None, local: str, el: etree._Element) -> _Frame:
        tag = f"{{{ns}}}{local}"
        if ns == XROAD_NS and (local in _VALUE_FIELDS or local in _IDENTIFIERS):
            self._claim(local, tag)
            if local in _VALUE_FIELDS:
                return _Frame("value", local)
            frame = _Frame("ident", local)
            raw_type = el.get(_OBJECT_TYPE)
            if raw_type is None:
                raise XRoadError(Code.INVALID_XML, "Missing objectType attribute")
            if raw_type not in _OBJECT_TYPES:
                raise XRoadError(Code.INVALID_XML, f"Unknown objectType: {raw_type}")
            if raw_type not in _IDENTIFIERS[local][0]:
                raise XRoadError(Code.INVALID_XML, f"Unexpected objectType: {raw_type}")
            return frame
        if ns == XROAD_NS and local == "requestHash":
            self._claim(local, tag)
            frame = _Frame("request-hash")
            algorithm = el.get("algorithmId")
            if algorithm is not None:
                frame.data["algorithmId"] = algorithm
            return frame
        if ns == REPR_NS and local == "representedParty":
            self._claim(local, tag)
            return _Frame("repr")
        if ns == SECURITY_TOKEN_NS and local == "securityToken" and local not in self._seen:
            self._seen.add(local)
            frame = _Frame("token")
            token_type = el.get("tokenType")
            if token_type is not None:
                frame.data["tokenType"] = token_type
            return frame
        return _Frame("noop")

    def _claim(self, name: str, tag: str) -> None:
        if name in self._seen:
            raise XRoadError(Code.DUPLICATE_HEADER_FIELD, _DUPLICATE % tag)
        self._seen.add(name)

    def _body_child(self, top: _Frame, tag: str, ns: str | None, local: str) -> _Frame:
        if tag == _FAULT:
            self._fault = _Frame("fault")
            return self._fault
        if "service" not in top.data:
            top.data["service"] = local
            self._body_ns = ns
            return _Frame("payload")
        raise XRoadError(
            Code.INVALID_BODY, "Malformed SOAP message: body must have exactly one child element"
        )

    def _end(self, el: etree._Element) -> None:
        if not isinstance(el.tag, str) or not self._stack:
            return
        frame = self._stack.pop()
        handler = _END_HANDLERS.get(frame.kind)
        if handler is not None:
            handler(self, frame, el)
        if frame.kind in ("payload", "fault"):
            # Body content is not needed once read: drop it so large bodies stay out of memory.
            el.clear()
            parent = el.getparent()
            while parent is not None and el.getprevious() is not None:
                del parent[0]

    def _end_value(self, frame: _Frame, el: etree._Element) -> None:
        value = _direct_text(el)
        if frame.name == "protocolVersion" and not value.startswith(PROTOCOL_VERSION_PREFIX):
            raise XRoadError(
                Code.INVALID_PROTOCOL_VERSION,
                f"Invalid protocol version (supported: 4.x, provided: {value})",
            )
        self._values[frame.name] = value

    def _end_part(self, frame: _Frame, el: etree._Element) -> None:
        self._stack[-1].data[frame.name] = _direct_text(el)

    def _end_ident(self, frame: _Frame, el: etree._Element) -> None:
        self._values[frame.name] = header_identifier(frame.name, frame.data)

    def _end_repr(self, frame: _Frame, el: etree._Element) -> None:
        d = frame.data
        self._values["representedParty"] = RepresentedParty(d.get("partyClass"), d.get("partyCode"))

    def _end_request_hash(self, frame: _Frame, el: etree._Element) -> None:
        self._values["requestHash"] = RequestHash(_direct_text(el), frame.data.get("algorithmId"))

    def _end_token(self, frame: _Frame, el: etree._Element) -> None:
        token = SecurityToken(_direct_text(el), frame.data.get("tokenType"))
        self._values["securityToken"] = token

    def _end_header(self, frame: _Frame, el: etree._Element) -> None:
        self._header_finished = True

    def _end_fault_value(self, frame: _Frame, el: etree._Element) -> None:
        if self._fault is not None:
            self._fault.data[frame.name] = _direct_text(el)

    def _end_fault_detail(self, frame: _Frame, el: etree._Element) -> None:
        if self._fault is not None and not self._fault.data.get("detail"):
            self._fault.data["detail"] = _direct_text(el)

    def _end_fault_detail_value(self, frame: _Frame, el: etree._Element) -> None:
        if self._fault is not None:
            self._fault.data["detail"] = _direct_text(el)

    def _end_envelope(self, frame: _Frame, el: etree._Element) -> None:
        if self._fault is None:
            self._validate()

    def _validate(self) -> None:
        if not self._header_finished:
            raise XRoadError(Code.MISSING_HEADER, "Malformed SOAP message: header missing")
        for name in ("protocolVersion", "client", "id"):
            if name not in self._values:
                raise XRoadError(Code.MISSING_HEADER_FIELD, f"Required field '{name}' is missing")
        service = self._values.get("service")
        if not isinstance(service, ServiceId):
            raise XRoadError(Code.MISSING_HEADER_FIELD, "Message header must contain service id")
        if self._body is None:
            raise XRoadError(Code.MISSING_BODY, "Malformed SOAP message: body missing")
        body_name = self._body.data.get("service")
        if body_name is None:
            raise XRoadError(
                Code.INVALID_BODY,
                "Malformed SOAP message: body must have exactly one child element",
            )
        if not body_name.startswith(service.service_code):
            raise XRoadError(
                Code.INCONSISTENT_HEADERS,
                "Malformed SOAP message: service code does not match in header and body",
            )

    def _finish(self) -> SoapMessage | SoapFault:
        charset = ContentType.parse(self._content_type).charset or "UTF-8"
        if self._fault is not None:
            d = self._fault.data
            return SoapFault(
                d.get("faultcode"),
                d.get("faultstring"),
                d.get("faultactor"),
                d.get("detail"),
                bytes(self._raw),
                charset,
            )
        v = self._values
        header = SoapHeader(
            client=v.get("client"),  # type: ignore[arg-type]
            service=v.get("service"),  # type: ignore[arg-type]
            security_server=v.get("securityServer"),  # type: ignore[arg-type]
            query_id=v.get("id"),  # type: ignore[arg-type]
            user_id=v.get("userId"),  # type: ignore[arg-type]
            issue=v.get("issue"),  # type: ignore[arg-type]
            protocol_version=v.get("protocolVersion"),  # type: ignore[arg-type]
            request_hash=v.get("requestHash"),  # type: ignore[arg-type]
            represented_party=v.get("representedParty"),  # type: ignore[arg-type]
            security_token=v.get("securityToken"),  # type: ignore[arg-type]
        )
        assert self._body is not None
        return SoapMessage(
            bytes(self._raw),
            self._content_type,
            header,
            self._body_ns,
            self._body.data["service"],
            self._rpc,
        )


_END_HANDLERS: Final[dict[str, Callable[[SoapParser, _Frame, etree._Element], None]]] = {
    "value": SoapParser._end_value,
    "ident-part": SoapParser._end_part,
    "repr-part": SoapParser._end_part,
    "ident": SoapParser._end_ident,
    "repr": SoapParser._end_repr,
    "request-hash": SoapParser._end_request_hash,
    "token": SoapParser._end_token,
    "header": SoapParser._end_header,
    "fault-value": SoapParser._end_fault_value,
    "fault-detail": SoapParser._end_fault_detail,
    "fault-detail-value": SoapParser._end_fault_detail_value,
    "envelope": SoapParser._end_envelope,
}


def parse_soap(
    data: bytes, content_type: str | None = TEXT_XML_UTF8, limits: SoapLimits | None = None
) -> SoapMessage | SoapFault:
    """Parse a whole SOAP message (or fault) at once."""
    parser = SoapParser(content_type, limits)
    parser.feed(bytes(data))
    return parser.close()


# RFC 2396 characters java.net.URI accepts (plus non-ASCII "other" characters).
_URI_CHARS = re.compile(r"(?:[A-Za-z0-9\-_.!~*'();/?:@&=+$,\[\]#]|%[0-9A-Fa-f]{2}|[^\x00-\x7f])*")


def validate_soap_action(value: str | None) -> str | None:
    """Check a ``SOAPAction`` header (§2.1): absent, empty and ``""`` pass; otherwise a
    double-quoted URI, else ``invalid_soap_action``.  Returns the value unchanged."""
    if value is None or value in ("", '""'):
        return value
    if len(value) >= 3 and value[0] == '"' and value[-1] == '"':
        uri = value[1:-1]
        if (
            _URI_CHARS.fullmatch(uri)
            and uri.count("#") <= 1
            and not uri.startswith(":")
            and not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]*:(#.*)?", uri)
        ):
            return value
    raise XRoadError(Code.INVALID_SOAP_ACTION, "Malformed SOAPAction header")
