"""SOAP packages of information systems: plain SOAP, SwA and MTOM (§2.1, §2.3).

Owns :class:`SoapPackageDecoder`, the incremental reader of what an information system sends
(a request to the client proxy, a response to the server proxy), and
:class:`SoapPackageEncoder`, which rebuilds a package for an information system with the
original boundary and part headers (§2.1).

The decoder follows NIIS ``SoapMessageDecoder``: ``text/xml`` and ``application/xop+xml`` are
one SOAP message; ``multipart/related`` is a SOAP part then attachments, every part needing
a Content-Type (``invalid_content_type``), the first being SOAP (its type checked by the SOAP
parser).  Attachments are opaque: never content-decoded, a nested multipart stays one part,
and their bytes are hashed while they stream (``/attachmentN``, §4.6), so the shell can spool
them without buffering.  A package without a SOAP part is ``missing_soap`` (the server proxy
reports the same situation for a service response as ``invalid_message``: pass that code).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.errors import Code, XRoadError
from crossroad.wire.faults import SoapFault
from crossroad.wire.mime import (
    MULTIPART_RELATED,
    TEXT_XML,
    XOP_XML,
    ContentType,
    HeaderField,
    MimeLimits,
    MultipartParser,
    MultipartWriter,
    PartData,
    PartEnd,
    PartStart,
)
from crossroad.wire.soap import TEXT_XML_UTF8, SoapLimits, SoapMessage, SoapParser


@dataclass(frozen=True)
class SoapPart:
    """The SOAP message (or fault) of a package, with its part's type and other headers."""

    message: SoapMessage | SoapFault
    content_type: str
    headers: tuple[HeaderField, ...] = ()


@dataclass(frozen=True)
class AttachmentStart:
    index: int  # 1-based: /attachment1, /attachment2, …
    content_type: str | None  # always set in SwA packages; may be absent in a transport message
    headers: tuple[HeaderField, ...] = ()  # the part's other headers, as received


@dataclass(frozen=True)
class AttachmentData:
    index: int
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class AttachmentEnd:
    index: int
    digest: bytes  # of the raw part body, with the decoder's digest algorithm
    size: int


PackageEvent = SoapPart | AttachmentStart | AttachmentData | AttachmentEnd


class SoapPackageDecoder:
    """Incremental decoder of an information system's SOAP package (sans-I/O)."""

    def __init__(
        self,
        content_type: str | None,
        *,
        digest: DigestAlgorithm = SHA512,
        soap_limits: SoapLimits | None = None,
        mime_limits: MimeLimits | None = None,
        missing_soap_code: str = Code.MISSING_SOAP,
    ) -> None:
        if not content_type or not ContentType.parse(content_type).mime_type:
            raise XRoadError(Code.INVALID_REQUEST, "Could not get content type from request")
        parsed = ContentType.parse(content_type)
        self.content_type = content_type
        self._digest = digest
        self._soap_limits = soap_limits
        self._missing = missing_soap_code
        self._soap: SoapParser | None = None
        self._soap_type = ""
        self._soap_headers: tuple[HeaderField, ...] = ()
        self._multipart: MultipartParser | None = None
        self._part = -1  # index of the current multipart part
        self._hasher = digest.hasher()
        self._size = 0
        self.soap: SoapMessage | SoapFault | None = None
        self.attachments: list[AttachmentEnd] = []
        if parsed.mime_type in (TEXT_XML, XOP_XML):
            self._soap = SoapParser(content_type, soap_limits)
            self._soap_type = content_type
        elif parsed.mime_type == MULTIPART_RELATED:
            self._multipart = MultipartParser(parsed.require_boundary(), mime_limits)
        else:
            raise XRoadError(Code.INVALID_CONTENT_TYPE, f"Invalid content type: {parsed.mime_type}")

    @property
    def is_multipart(self) -> bool:
        return self._multipart is not None

    def feed(self, data: bytes) -> list[PackageEvent]:
        if self._multipart is None:
            assert self._soap is not None
            self._soap.feed(data)
            return []
        return self._handle(self._multipart.feed(data))

    def close(self) -> list[PackageEvent]:
        """End of input: the remaining events; raises if no SOAP message was found."""
        if self._multipart is None:
            assert self._soap is not None
            out: list[PackageEvent] = [self._soap_part()]
        else:
            out = self._handle(self._multipart.close())
        if self.soap is None:
            raise XRoadError(self._missing, "Request does not contain SOAP message")
        return out

    def _soap_part(self) -> SoapPart:
        assert self._soap is not None
        self.soap = self._soap.close()
        self._soap = None
        return SoapPart(self.soap, self._soap_type, self._soap_headers)

    def _handle(self, events: list[PartStart | PartData | PartEnd]) -> list[PackageEvent]:
        out: list[PackageEvent] = []
        for event in events:
            if isinstance(event, PartStart):
                self._part = event.index
                content_type = event.headers.content_type
                if content_type is None:
                    raise XRoadError(
                        Code.INVALID_CONTENT_TYPE, "Could not get content type for part"
                    )
                others = event.headers.without("content-type")
                if event.index == 0:
                    self._soap = SoapParser(content_type, self._soap_limits)
                    self._soap_type, self._soap_headers = content_type, others
                else:
                    self._hasher, self._size = self._digest.hasher(), 0
                    out.append(AttachmentStart(event.index, content_type, others))
            elif isinstance(event, PartData):
                if self._part == 0:
                    assert self._soap is not None
                    self._soap.feed(event.data)
                else:
                    self._hasher.update(event.data)
                    self._size += len(event.data)
                    out.append(AttachmentData(self._part, event.data))
            elif self._part == 0:
                out.append(self._soap_part())
            else:
                end = AttachmentEnd(self._part, self._hasher.digest(), self._size)
                self.attachments.append(end)
                out.append(end)
        return out


def decode_package(
    data: bytes, content_type: str | None, **kwargs: object
) -> tuple[SoapPart, list[tuple[AttachmentStart, bytes]]]:
    """Decode a whole package at once (small inputs and tests)."""
    decoder = SoapPackageDecoder(content_type, **kwargs)  # type: ignore[arg-type]
    soap: SoapPart | None = None
    attachments: list[tuple[AttachmentStart, bytearray]] = []
    for event in [*decoder.feed(bytes(data)), *decoder.close()]:
        if isinstance(event, SoapPart):
            soap = event
        elif isinstance(event, AttachmentStart):
            attachments.append((event, bytearray()))
        elif isinstance(event, AttachmentData):
            attachments[-1][1].extend(event.data)
    assert soap is not None
    return soap, [(start, bytes(body)) for start, body in attachments]


class SoapPackageEncoder:
    """Rebuilds a package for an information system (sans-I/O: methods return bytes).

    With an original ``multipart/related`` content type, the package is rebuilt with its
    boundary: the SOAP part with its content type and headers, then each attachment; the
    package's content type is the original one.  Otherwise the SOAP bytes go as they are,
    as ``text/xml; charset=UTF-8`` (NIIS ``ProxyMessage.getSoapContentType``).
    """

    def __init__(self, original_content_type: str | None) -> None:
        parsed = ContentType.parse(original_content_type)
        boundary = parsed.boundary if parsed.mime_type == MULTIPART_RELATED else None
        self._writer = MultipartWriter(boundary) if boundary else None
        # NIIS always says text/xml; charset=UTF-8 for plain SOAP; we keep the IS's own type
        # (its charset) when it was a SOAP type, since the bytes are passed unchanged.
        keep = self._writer is not None or parsed.mime_type in (TEXT_XML, XOP_XML)
        self.content_type = (
            original_content_type if keep and original_content_type else (TEXT_XML_UTF8)
        )

    @property
    def is_multipart(self) -> bool:
        return self._writer is not None

    def soap(
        self, soap_bytes: bytes, content_type: str, headers: tuple[HeaderField, ...] = ()
    ) -> bytes:
        if self._writer is None:
            return bytes(soap_bytes)
        return self._writer.start_part(content_type, headers) + bytes(soap_bytes)

    def attachment(self, content_type: str | None, headers: tuple[HeaderField, ...] = ()) -> bytes:
        """The framing before an attachment's body (the caller streams the body itself)."""
        if self._writer is None:
            raise XRoadError(Code.INTERNAL_ERROR, "Attachments need a multipart package")
        return self._writer.start_part(content_type, headers)

    def close(self) -> bytes:
        return self._writer.close() if self._writer is not None else b""
