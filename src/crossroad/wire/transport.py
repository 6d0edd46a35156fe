"""The message between security servers: a ``multipart/mixed`` stream (§4.3–4.4, §4.6).

Owns :class:`TransportDecoder`, the strict incremental state machine of NIIS
``ProxyMessageDecoder``, its events and :class:`TransportMessage` (what was received, for
the checks and the signature verification); the writing side,
:class:`~crossroad.wire.transport_encoder.TransportEncoder`, is re-exported here::

    OCSP* → SOAP | REST → ATTACHMENTS | RESTBODY → HASH_CHAIN_RESULT → HASH_CHAIN → SIGNATURE

A state's part may be skipped (NIIS falls through to the next state), so the type of each
part decides its role.  Codes: a top-level type other than ``multipart/mixed`` with a
boundary (or ``text/xml`` where a bare fault is allowed) is ``invalid_content_type``; so is
a SOAP part that is neither ``text/xml`` nor ``application/xop+xml`` and a last part that is
neither a signature nor a SOAP fault; a part after the signature is ``invalid_message``; an
OCSP part that is not DER ``io_error``; broken MIME ``mime_parsing_failed``.
:meth:`TransportMessage.check` then reports a fault, ``missing_soap``/``missing_rest`` or
``missing_signature``.

Attachments and REST bodies stream through as events with their digest computed on the way
(``x-hash-algorithm``, over the raw bytes as transmitted), so the shell can spool them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.x509 import ocsp as x509_ocsp

from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.crypto.hashchain import MESSAGE, attachment_name
from crossroad.errors import Code, XRoadError
from crossroad.wire.faults import SoapFault
from crossroad.wire.mime import (
    MULTIPART_MIXED,
    TEXT_XML,
    XOP_XML,
    ContentType,
    HeaderField,
    MimeLimits,
    MultipartParser,
    PartData,
    PartEnd,
    PartStart,
)
from crossroad.wire.rest import RestLimits, RestRequest, RestResponse
from crossroad.wire.soap import TEXT_XML_UTF8, SoapLimits, SoapMessage, SoapParser, parse_soap
from crossroad.wire.swa import AttachmentData, AttachmentEnd, AttachmentStart, SoapPart
from crossroad.wire.transport_encoder import (
    HASH_CHAIN,
    HASH_CHAIN_RESULT,
    OCSP_RESPONSE,
    REST_BODY,
    REST_REQUEST,
    REST_RESPONSE,
    SIGNATURE,
    TransportEncoder,
    to_digest,
)

__all__ = [
    "FaultPart",
    "HashChainPart",
    "HashChainResultPart",
    "OcspPart",
    "RestBodyData",
    "RestBodyEnd",
    "RestBodyStart",
    "RestPart",
    "SignaturePart",
    "TransportDecoder",
    "TransportEncoder",
    "TransportEvent",
    "TransportLimits",
    "TransportMessage",
]


@dataclass(frozen=True)
class OcspPart:
    der: bytes = field(repr=False)


@dataclass(frozen=True)
class RestPart:
    message: RestRequest | RestResponse
    raw: bytes = field(repr=False)  # the header part as transmitted (signed as /message.xml)


@dataclass(frozen=True)
class RestBodyStart:
    pass


@dataclass(frozen=True)
class RestBodyData:
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class RestBodyEnd:
    digest: bytes
    size: int


@dataclass(frozen=True)
class HashChainResultPart:
    xml: bytes = field(repr=False)


@dataclass(frozen=True)
class HashChainPart:
    xml: bytes = field(repr=False)


@dataclass(frozen=True)
class SignaturePart:
    xml: bytes = field(repr=False)


@dataclass(frozen=True)
class FaultPart:
    fault: SoapFault


TransportEvent = (
    OcspPart
    | SoapPart
    | RestPart
    | AttachmentStart
    | AttachmentData
    | AttachmentEnd
    | RestBodyStart
    | RestBodyData
    | RestBodyEnd
    | HashChainResultPart
    | HashChainPart
    | SignaturePart
    | FaultPart
)


@dataclass(frozen=True)
class TransportLimits:
    mime: MimeLimits = field(default_factory=MimeLimits)
    soap: SoapLimits = field(default_factory=SoapLimits)
    rest: RestLimits = field(default_factory=RestLimits)
    max_ocsp_bytes: int = 1024 * 1024
    max_signature_bytes: int = 16 * 1024 * 1024  # signature, hash chain (result) parts


@dataclass(frozen=True)
class TransportMessage:
    """What a transport message carried, bodies aside (those went by as events)."""

    digest: DigestAlgorithm
    ocsp_responses: tuple[bytes, ...] = ()
    soap: SoapPart | None = None
    rest: RestPart | None = None
    attachments: tuple[AttachmentEnd, ...] = ()
    rest_body: RestBodyEnd | None = None
    hash_chain_result: bytes | None = None
    hash_chain: bytes | None = None
    signature: bytes | None = None
    fault: SoapFault | None = None

    @property
    def message_bytes(self) -> bytes | None:
        """The ``/message.xml`` bytes: the SOAP part or the REST header part."""
        if self.soap is not None and isinstance(self.soap.message, SoapMessage):
            return self.soap.message.raw
        return self.rest.raw if self.rest is not None else None

    def part_digests(self) -> dict[str, bytes | None]:
        """Signature inputs for :func:`crossroad.crypto.xades.verify_signature`:
        ``/message.xml`` (None: resolve its bytes) and ``/attachmentN`` digests."""
        parts: dict[str, bytes | None] = {}
        if self.message_bytes is not None:
            parts[MESSAGE] = None
        for end in self.attachments:
            parts[attachment_name(end.index)] = end.digest
        if self.rest_body is not None:
            parts[attachment_name(1)] = self.rest_body.digest
        return parts

    def resolve(self, uri: str) -> bytes | None:
        return self.message_bytes if uri == MESSAGE else None

    def check(self, *, rest: bool = False) -> None:
        """Raise what the receiving proxy raises: the fault carried, then the missing message
        (``missing_soap``/``missing_rest``), then the missing signature."""
        if self.fault is not None:
            raise self.fault.to_error()
        if rest and self.rest is None:
            raise XRoadError(Code.MISSING_REST, "Message does not have REST message")
        if not rest and self.soap is None:
            raise XRoadError(Code.MISSING_SOAP, "Message does not have SOAP message")
        if self.signature is None:
            raise XRoadError(Code.MISSING_SIGNATURE, "Message does not have signature")


# --------------------------------------------------------------------------- decoder

_OCSP, _SOAP, _RESTBODY, _ATTACHMENT, _HCR, _HC, _SIG, _NONE = range(8)


class TransportDecoder:
    """Incremental decoder of a transport message (sans-I/O): ``feed`` → events, ``close``.

    ``content_type`` is the HTTP Content-Type; ``hash_algorithm`` the ``x-hash-algorithm``
    header.  ``fault_allowed``: a plain ``text/xml`` body is a SOAP fault (responses).
    """

    def __init__(
        self,
        content_type: str | None,
        *,
        hash_algorithm: DigestAlgorithm | str | None = SHA512,
        fault_allowed: bool = True,
        limits: TransportLimits | None = None,
    ) -> None:
        self._limits = limits or TransportLimits()
        parsed = ContentType.parse(content_type)
        self._fault_only: SoapParser | None = None
        self._parser: MultipartParser | None = None
        if fault_allowed and parsed.mime_type == TEXT_XML:
            self._fault_only = SoapParser(TEXT_XML_UTF8, self._limits.soap)
        elif parsed.mime_type == MULTIPART_MIXED:
            self._parser = MultipartParser(parsed.require_boundary(), self._limits.mime)
        else:
            raise XRoadError(
                Code.INVALID_CONTENT_TYPE, f"Invalid content type: {parsed.mime_type or None}"
            )
        self._digest = to_digest(hash_algorithm)
        self._next = _OCSP
        self._is_rest = False
        self._role = ""
        self._part_type = ""
        self._part_headers: tuple[HeaderField, ...] = ()
        self._buffer = bytearray()
        self._soap: SoapParser | None = None
        self._nested: MultipartParser | None = None
        self._attachment = 0
        self._hasher = self._digest.hasher()
        self._size = 0
        self._ocsp: list[bytes] = []
        self._soap_part: SoapPart | None = None
        self._rest_part: RestPart | None = None
        self._ends: list[AttachmentEnd] = []
        self._body_end: RestBodyEnd | None = None
        self._xml: dict[str, bytes] = {}  # hash_chain_result, hash_chain, signature
        self._fault: SoapFault | None = None
        self._message: TransportMessage | None = None

    @property
    def message(self) -> TransportMessage:
        """The summary; complete after :meth:`close`."""
        if self._message is not None:
            return self._message
        return TransportMessage(
            self._digest,
            tuple(self._ocsp),
            self._soap_part,
            self._rest_part,
            tuple(self._ends),
            self._body_end,
            self._xml.get("hash_chain_result"),
            self._xml.get("hash_chain"),
            self._xml.get("signature"),
            self._fault,
        )

    def feed(self, data: bytes) -> list[TransportEvent]:
        if self._fault_only is not None:
            self._fault_only.feed(data)
            return []
        assert self._parser is not None
        return self._handle(self._parser.feed(data))

    def close(self) -> list[TransportEvent]:
        if self._message is not None:
            return []
        if self._fault_only is not None:
            result = self._fault_only.close()
            if not isinstance(result, SoapFault):
                raise XRoadError(
                    Code.INVALID_MESSAGE, "Expected fault message, but got regular SOAP message"
                )
            self._fault = result
            events: list[TransportEvent] = [FaultPart(result)]
        else:
            assert self._parser is not None
            events = self._handle(self._parser.close())
        self._message = self.message
        return events

    # -- parts

    def _handle(self, events: Sequence[PartStart | PartData | PartEnd]) -> list[TransportEvent]:
        out: list[TransportEvent] = []
        for event in events:
            if isinstance(event, PartStart):
                self._start(event, out)
            elif isinstance(event, PartData):
                self._data(event.data, out)
            else:
                self._end(out)
        return out

    def _start(self, event: PartStart, out: list[TransportEvent]) -> None:
        mime_type = event.headers.mime_type
        content_type = event.headers.content_type
        self._part_type = content_type or ""
        self._part_headers = event.headers.without("content-type")
        self._buffer.clear()
        state = self._next
        if state == _NONE:
            raise XRoadError(Code.INVALID_MESSAGE, f"Extra content ({mime_type}) after signature")
        if state == _OCSP and mime_type == OCSP_RESPONSE:
            self._role = "ocsp"
        elif state == _OCSP and mime_type in (REST_REQUEST, REST_RESPONSE):
            self._role, self._is_rest, self._next = mime_type, True, _RESTBODY
        elif state == _OCSP:
            if mime_type not in (TEXT_XML, XOP_XML):
                raise XRoadError(
                    Code.INVALID_CONTENT_TYPE,
                    f"Invalid content type for SOAP message: {mime_type}",
                )
            self._role, self._next = "soap", _ATTACHMENT
            self._soap = SoapParser(content_type, self._limits.soap)
        elif state == _RESTBODY and mime_type == REST_BODY:
            self._role, self._next = "rest-body", _HCR
            self._hasher, self._size = self._digest.hasher(), 0
            out.append(RestBodyStart())
        elif state <= _ATTACHMENT and not self._is_rest and mime_type == MULTIPART_MIXED:
            self._role, self._next = "attachments", _HCR
            boundary = ContentType.parse(content_type).require_boundary()
            limits = MimeLimits(
                self._limits.mime.max_header_bytes,
                self._limits.mime.max_header_fields,
                self._limits.mime.max_parts,
            )
            self._nested = MultipartParser(boundary, limits)
        elif state <= _HCR and mime_type == HASH_CHAIN_RESULT:
            self._role, self._next = "hash_chain_result", _HC
        elif state <= _HC and mime_type == HASH_CHAIN:
            self._role, self._next = "hash_chain", _SIG
        elif mime_type in (SIGNATURE, TEXT_XML):
            self._role, self._next = ("signature" if mime_type == SIGNATURE else "fault"), _NONE
        else:
            raise XRoadError(
                Code.INVALID_CONTENT_TYPE,
                f"Received invalid content type instead of signature: {mime_type}",
            )

    def _data(self, data: bytes, out: list[TransportEvent]) -> None:
        role = self._role
        if role == "soap":
            assert self._soap is not None
            self._soap.feed(data)
        elif role == "rest-body":
            self._hasher.update(data)
            self._size += len(data)
            out.append(RestBodyData(data))
        elif role == "attachments":
            assert self._nested is not None
            self._attachments(self._nested.feed(data), out)
        else:
            limit = self._limits.max_signature_bytes
            if role == "ocsp":
                limit = self._limits.max_ocsp_bytes
            elif role in (REST_REQUEST, REST_RESPONSE):
                limit = self._limits.rest.max_header_part_bytes
            elif role == "fault":
                limit = self._limits.soap.max_bytes
            if len(self._buffer) + len(data) > limit:
                raise XRoadError(Code.INVALID_MESSAGE, f"Message part {role} is too large")
            self._buffer += data

    def _attachments(
        self, events: Sequence[PartStart | PartData | PartEnd], out: list[TransportEvent]
    ) -> None:
        for event in events:
            if isinstance(event, PartStart):
                self._attachment += 1
                self._hasher, self._size = self._digest.hasher(), 0
                others = event.headers.without("content-type")
                out.append(AttachmentStart(self._attachment, event.headers.content_type, others))
            elif isinstance(event, PartData):
                self._hasher.update(event.data)
                self._size += len(event.data)
                out.append(AttachmentData(self._attachment, event.data))
            else:
                end = AttachmentEnd(self._attachment, self._hasher.digest(), self._size)
                self._ends.append(end)
                out.append(end)

    def _end(self, out: list[TransportEvent]) -> None:
        role, data = self._role, bytes(self._buffer)
        self._buffer.clear()
        if role == "ocsp":
            try:
                x509_ocsp.load_der_ocsp_response(data)
            except ValueError as exc:
                raise XRoadError(Code.IO_ERROR, f"Malformed OCSP response: {exc}") from exc
            self._ocsp.append(data)
            out.append(OcspPart(data))
        elif role == "soap":
            assert self._soap is not None
            result = self._soap.close()
            self._soap = None
            if isinstance(result, SoapFault):
                self._fault = result
                out.append(FaultPart(result))
            else:
                self._soap_part = SoapPart(result, self._part_type, self._part_headers)
                out.append(self._soap_part)
        elif role in (REST_REQUEST, REST_RESPONSE):
            limits = self._limits.rest
            message: RestRequest | RestResponse = (
                RestRequest.parse_header_part(data, limits)
                if role == REST_REQUEST
                else RestResponse.parse_header_part(data, limits)
            )
            self._rest_part = RestPart(message, data)
            out.append(self._rest_part)
        elif role == "rest-body":
            self._body_end = RestBodyEnd(self._hasher.digest(), self._size)
            out.append(self._body_end)
        elif role == "attachments":
            assert self._nested is not None
            self._attachments(self._nested.close(), out)
            self._nested = None
        elif role in ("hash_chain_result", "hash_chain", "signature"):
            self._xml[role] = data
            if role == "signature":
                out.append(SignaturePart(data))
            elif role == "hash_chain":
                out.append(HashChainPart(data))
            else:
                out.append(HashChainResultPart(data))
        elif role == "fault":
            result = parse_soap(data, TEXT_XML, self._limits.soap)
            if not isinstance(result, SoapFault):
                raise XRoadError(
                    Code.INVALID_CONTENT_TYPE,
                    f"Received invalid content type instead of signature: {TEXT_XML}",
                )
            self._fault = result
            out.append(FaultPart(result))
