"""Writing the message between security servers, part by part (§4.3–4.4, §4.6).

Owns :class:`TransportEncoder` (NIIS ``ProxyMessageEncoder`` with ``MultipartEncoder``
framing: lower-case ``content-type``, CRLF, attachments in a nested ``multipart/mixed`` with
an ``xatt`` boundary) and the part types and HTTP header names of the transport message.
Reading is :mod:`crossroad.wire.transport`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from crossroad.crypto.algorithms import SHA512, DigestAlgorithm, digest_algorithm
from crossroad.crypto.hashchain import MESSAGE, attachment_name
from crossroad.crypto.xades import MessagePart
from crossroad.errors import Code, XRoadError
from crossroad.wire.mime import TEXT_XML, HeaderField, MultipartWriter, content_type_with_charset
from crossroad.wire.rest import RestRequest, RestResponse
from crossroad.wire.soap import TEXT_XML_UTF8, SoapMessage

OCSP_RESPONSE: Final = "application/ocsp-response"
REST_REQUEST: Final = "application/x-road-rest-request"
REST_RESPONSE: Final = "application/x-road-rest-response"
REST_BODY: Final = "application/x-road-rest-body"
HASH_CHAIN_RESULT: Final = "application/hash-chain-result"
HASH_CHAIN: Final = "application/hash-chain"
SIGNATURE: Final = "signature/bdoc-1.0/ts"

# HTTP headers of the transport message (§4.3).
HEADER_HASH_ALGORITHM: Final = "x-hash-algorithm"
HEADER_PROXY_VERSION: Final = "x-proxy-version"
HEADER_ORIGINAL_CONTENT_TYPE: Final = "x-original-content-type"
HEADER_ORIGINAL_SOAP_ACTION: Final = "x-original-soapaction"
HEADER_REQUEST_ID: Final = "x-road-request-id"
HEADER_MESSAGE_TYPE: Final = "x-road-message-type"
MESSAGE_TYPE_REST: Final = "REST"


def to_digest(algorithm: DigestAlgorithm | str | None) -> DigestAlgorithm:
    """The digest of ``x-hash-algorithm`` (a name such as ``SHA-512``, or the algorithm)."""
    if algorithm is None:
        raise XRoadError(
            Code.INTERNAL_ERROR, "Could not get hash algorithm identifier from message"
        )
    return algorithm if isinstance(algorithm, DigestAlgorithm) else digest_algorithm(algorithm)


_E_OCSP, _E_MESSAGE, _E_BODY, _E_SIGNED, _E_CLOSED = range(5)


class TransportEncoder:
    """Writes a transport message part by part (sans-I/O: each method returns bytes).

    Order: :meth:`ocsp`\\* → :meth:`soap` | :meth:`rest_request` | :meth:`rest_response` →
    (:meth:`attachment` + :meth:`write`)\\* | :meth:`rest_body` + :meth:`write` →
    :meth:`signing_parts` (sign them) → :meth:`signature` | :meth:`fault` → :meth:`close`.
    Boundaries come from the caller (NIIS: ``xtop`` + 30 random letters; the attachment
    boundary defaults to ``xatt`` + the same letters).
    """

    def __init__(
        self,
        boundary: str,
        *,
        attachment_boundary: str | None = None,
        hash_algorithm: DigestAlgorithm | str = SHA512,
    ) -> None:
        self._writer = MultipartWriter(boundary)
        if attachment_boundary is None:
            attachment_boundary = "xatt" + (
                boundary[4:] if boundary.startswith("xtop") else boundary
            )
        self._attachment_boundary = attachment_boundary
        self.digest = to_digest(hash_algorithm)
        self._state = _E_OCSP
        self._rest = False
        self._in_attachments = False
        self._streaming = ""  # "attachment" or "rest-body" while a body is being written
        self._hasher = self.digest.hasher()
        self._size = 0
        self._message: bytes | None = None
        self._parts: list[MessagePart] = []
        self.bytes_streamed = 0  # attachment / REST body bytes (opmon sizes)

    @property
    def content_type(self) -> str:
        """The HTTP Content-Type: ``multipart/mixed; charset=UTF-8; boundary=…``."""
        return self._writer.content_type

    def _expect(self, *states: int, what: str) -> None:
        if self._state not in states:
            raise XRoadError(Code.INTERNAL_ERROR, f"Transport message: {what} out of order")

    def _finish_body(self) -> None:
        if self._streaming:
            index = len(self._parts)  # /message.xml is part 0, so this is the 1-based number
            self._parts.append(
                MessagePart(attachment_name(index), self.digest, digest_value=self._hasher.digest())
            )
            self._streaming = ""

    def ocsp(self, der: bytes) -> bytes:
        self._expect(_E_OCSP, what="OCSP part")
        return self._writer.start_part(OCSP_RESPONSE) + bytes(der)

    def soap(
        self,
        message: SoapMessage | bytes,
        content_type: str | None = None,
        headers: Sequence[HeaderField | tuple[str, str]] = (),
    ) -> bytes:
        """The SOAP part: its original content type and preserved part headers."""
        self._expect(_E_OCSP, what="SOAP part")
        data = message.raw if isinstance(message, SoapMessage) else bytes(message)
        if content_type is None:
            content_type = (
                message.content_type if isinstance(message, SoapMessage) else (TEXT_XML_UTF8)
            )
        return self._message_part(content_type, data, headers)

    def rest_request(self, request: RestRequest | bytes) -> bytes:
        self._expect(_E_OCSP, what="REST request part")
        self._rest = True
        data = request.header_part() if isinstance(request, RestRequest) else bytes(request)
        return self._message_part(REST_REQUEST, data, ())

    def rest_response(self, response: RestResponse | bytes) -> bytes:
        self._expect(_E_OCSP, what="REST response part")
        self._rest = True
        data = response.header_part() if isinstance(response, RestResponse) else bytes(response)
        return self._message_part(REST_RESPONSE, data, ())

    def _message_part(
        self, content_type: str, data: bytes, headers: Sequence[HeaderField | tuple[str, str]]
    ) -> bytes:
        self._state = _E_MESSAGE
        self._message = data
        self._parts = [MessagePart(MESSAGE, self.digest, data=data)]
        return self._writer.start_part(content_type, headers) + data

    def attachment(
        self, content_type: str | None, headers: Sequence[HeaderField | tuple[str, str]] = ()
    ) -> bytes:
        """Start a SOAP attachment (its original type and headers); then :meth:`write` it."""
        self._expect(_E_MESSAGE, _E_BODY, what="attachment")
        if self._rest:
            raise XRoadError(Code.INTERNAL_ERROR, "REST messages have a body, not attachments")
        self._finish_body()
        out = b""
        if not self._in_attachments:
            out = self._writer.start_nested(self._attachment_boundary)
            self._in_attachments = True
        self._state, self._streaming = _E_BODY, "attachment"
        self._hasher, self._size = self.digest.hasher(), 0
        return out + self._writer.start_part(content_type, headers)

    def rest_body(self) -> bytes:
        """Start the REST body part (only when the body has at least one byte)."""
        self._expect(_E_MESSAGE, what="REST body")
        if not self._rest:
            raise XRoadError(Code.INTERNAL_ERROR, "SOAP messages have attachments, not a body")
        self._state, self._streaming = _E_BODY, "rest-body"
        self._hasher, self._size = self.digest.hasher(), 0
        return self._writer.start_part(REST_BODY)

    def write(self, data: bytes) -> bytes:
        """Body bytes of the current attachment or REST body, hashed on the way."""
        if not self._streaming:
            raise XRoadError(Code.INTERNAL_ERROR, "No attachment or body part is open")
        self._hasher.update(data)
        self._size += len(data)
        self.bytes_streamed += len(data)
        return bytes(data)

    def signing_parts(self) -> list[MessagePart]:
        """The signature inputs (§4.6): ``/message.xml`` then ``/attachmentN`` digests."""
        self._expect(_E_MESSAGE, _E_BODY, _E_SIGNED, what="signing")
        self._finish_body()
        return list(self._parts)

    def _end_parts(self) -> bytes:
        self._finish_body()
        out = b""
        if self._in_attachments:
            out = self._writer.end_nested()
            self._in_attachments = False
        return out

    def signature(
        self,
        signature_xml: bytes,
        hash_chain_result: bytes | None = None,
        hash_chain: bytes | None = None,
    ) -> bytes:
        """The hash chain parts (batch signatures) and the signature part."""
        self._expect(_E_MESSAGE, _E_BODY, what="signature")
        if (hash_chain_result is None) != (hash_chain is None):
            raise XRoadError(Code.INTERNAL_ERROR, "A hash chain needs its result and vice versa")
        out = self._end_parts()
        if hash_chain_result is not None and hash_chain is not None:
            out += self._writer.start_part(HASH_CHAIN_RESULT) + bytes(hash_chain_result)
            out += self._writer.start_part(HASH_CHAIN) + bytes(hash_chain)
        self._state = _E_SIGNED
        return out + self._writer.start_part(SIGNATURE) + bytes(signature_xml)

    def fault(self, fault_xml: bytes) -> bytes:
        """A SOAP fault instead of the signature (processing failed after streaming began)."""
        if self._state == _E_CLOSED:
            raise XRoadError(Code.INTERNAL_ERROR, "Transport message is closed")
        out = self._end_parts()
        self._state = _E_SIGNED
        part_type = content_type_with_charset(TEXT_XML)
        return out + self._writer.start_part(part_type) + bytes(fault_xml)

    def close(self) -> bytes:
        out = self._end_parts()
        self._state = _E_CLOSED
        return out + self._writer.close()
