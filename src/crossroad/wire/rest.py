"""REST r1 messages: request paths, X-Road headers and the signed header parts (§3, §4.5).

Owns :class:`RestRequest` and :class:`RestResponse` — built from what an information system
or a provider service sent (``from_http`` / ``build``, which apply the header filtering of
§3.2) or parsed back from a transported header part (``parse_header_part``) — and their
``header_part()`` bytes, which are exactly what NIIS ``RestRequest``/``RestResponse``
``toByteArray`` write: these bytes are signed and hashed, so they must not change by a byte.
Also the ``x-road-request-hash`` (:func:`rest_request_hash`) and the client proxy's response
checks (:func:`check_rest_response`).  Error bodies live in :mod:`crossroad.wire.faults`
(:func:`rest_error_response` is re-exported here).

Codes: a path that is not ``/r1/I/C/M/S/SERVICE[/path]`` is ``internal_error`` (what NIIS
7.8 surfaces, §12.5 item 16), ``rN`` with N≠1 is ``invalid_protocol_version``, a missing or
malformed ``X-Road-Client`` is ``invalid_client_identifier``, a malformed
``X-Road-Security-Server`` ``invalid_security_server``; a transported header part that does
not parse is ``invalid_message``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId, ServiceId
from crossroad.wire.faults import rest_error_response
from crossroad.wire.soap import RepresentedParty

__all__ = [
    "METHODS",
    "SKIPPED_HEADERS",
    "RestLimits",
    "RestPath",
    "RestRequest",
    "RestResponse",
    "check_rest_response",
    "is_rest_path",
    "parse_header_part",
    "parse_rest_path",
    "provider_url",
    "rest_error_response",
    "rest_request_hash",
    "segment_decode",
]

PROTOCOL_VERSION: Final = 1
REST_PREFIX: Final = f"/r{PROTOCOL_VERSION}/"
METHODS: Final = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE")

HEADER_CLIENT: Final = "x-road-client"
HEADER_SERVICE: Final = "x-road-service"
HEADER_QUERY_ID: Final = "x-road-id"
HEADER_REQUEST_ID: Final = "x-road-request-id"
HEADER_REQUEST_HASH: Final = "x-road-request-hash"
HEADER_USER_ID: Final = "x-road-userid"
HEADER_ISSUE: Final = "x-road-issue"
HEADER_SECURITY_SERVER: Final = "x-road-security-server"
HEADER_REPRESENTED_PARTY: Final = "x-road-represented-party"
HEADER_ERROR: Final = "x-road-error"

#: Hop-by-hop and connection headers never carried in a header part (``RestMessage``).
SKIPPED_HEADERS: Final = frozenset(
    {
        "transfer-encoding",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "upgrade",
        "connection",
        "user-agent",
        "host",
        "content-length",
        "server",
        "expect",
    }
)
_REQUEST_DROPPED: Final = SKIPPED_HEADERS | {HEADER_REQUEST_ID, HEADER_REQUEST_HASH}
_RESPONSE_DROPPED: Final = SKIPPED_HEADERS | {
    HEADER_QUERY_ID,
    HEADER_REQUEST_HASH,
    HEADER_CLIENT,
    HEADER_REQUEST_ID,
}
_CRLF: Final = b"\r\n"
_LINES = re.compile(r"\r\n|\r|\n")
_SAFE = frozenset("-._~!$&'()*+,;=:@")
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPE_SAFE: Final = "!$&'()*+,;=:@-._~"


@dataclass(frozen=True)
class RestLimits:
    max_header_part_bytes: int = 1024 * 1024
    max_headers: int = 1000


def _internal(detail: str) -> XRoadError:
    return XRoadError(Code.INTERNAL_ERROR, detail)


def segment_decode(text: str, code: str = Code.INTERNAL_ERROR) -> str:
    """Percent-decode one URI path segment as NIIS ``uriSegmentPercentDecode`` does: only
    unreserved, sub-delim, ``:`` and ``@`` characters or ``%XX`` escapes; UTF-8."""
    if "%" not in text:
        if any(
            not ("0" <= c <= "9" or "A" <= c <= "Z" or "a" <= c <= "z") and c not in _SAFE
            for c in text
        ):
            raise XRoadError(code, f"Invalid character in path segment {text!r}")
        return text
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "%":
            if i + 2 >= n:
                raise XRoadError(code, f"Incomplete percent encoding in {text!r}")
            if text[i + 1] not in _HEX or text[i + 2] not in _HEX:
                raise XRoadError(code, f"Invalid percent encoding in {text!r}")
            out.append(int(text[i + 1 : i + 3], 16))
            i += 3
        elif "0" <= c <= "9" or "A" <= c <= "Z" or "a" <= c <= "z" or c in _SAFE:
            out.append(ord(c))
            i += 1
        else:
            raise XRoadError(code, f"Invalid character in path segment {text!r}")
    return out.decode("utf-8", "replace")


def _escape(part: str) -> str:
    return quote(part, safe=_ESCAPE_SAFE)


def _nonblank(value: str, code: str, what: str) -> str:
    if not value.strip():
        raise XRoadError(code, f"{what} must not be blank")
    return value


def _java_split(text: str, limit: int) -> list[str]:
    """``String.split("/", limit)`` (limit > 0 keeps trailing empty strings)."""
    return text.split("/", limit - 1)


def decode_client(value: str) -> ClientId:
    code = Code.INVALID_CLIENT_IDENTIFIER
    parts = [segment_decode(p, code) for p in _java_split(value, 5)]
    if len(parts) not in (3, 4):
        raise XRoadError(code, f"Invalid client identifier {value!r}")
    parts = [_nonblank(p, code, "Client identifier component") for p in parts]
    return ClientId(*parts)


def decode_service(value: str, code: str = Code.INVALID_SERVICE_IDENTIFIER) -> ServiceId:
    parts = [segment_decode(p, code) for p in _java_split(value, 6)]
    if len(parts) != 5:
        raise XRoadError(code, f"Invalid service identifier {value!r}")
    inst, cls_, member, sub, service = (_nonblank(p, code, "Service id component") for p in parts)
    return ServiceId(ClientId(inst, cls_, member, sub), service)


def decode_server(value: str) -> SecurityServerId:
    code = Code.INVALID_SECURITY_SERVER
    parts = [segment_decode(p, code) for p in _java_split(value, 5)]
    if len(parts) != 4:
        raise XRoadError(code, f"Invalid security server identifier {value!r}")
    inst, cls_, member, server = (_nonblank(p, code, "Server id component") for p in parts)
    return SecurityServerId(ClientId(inst, cls_, member), server)


def decode_represented_party(value: str) -> RepresentedParty:
    parts = value.split("/")
    while len(parts) > 1 and parts[-1] == "":  # Java's split drops trailing empty strings
        parts.pop()
    if len(parts) > 2:
        raise _internal(f"Invalid represented party {value!r}")
    decoded = [segment_decode(p) for p in parts]
    if len(decoded) == 1:
        return RepresentedParty(None, decoded[0])
    return RepresentedParty(decoded[0], decoded[1])


def encode_represented_party(party: RepresentedParty) -> str:
    code = _escape(party.party_code or "")
    return code if party.party_class is None else f"{_escape(party.party_class)}/{code}"


def encode_id(identifier: ClientId | ServiceId) -> str:
    """``x-road-client`` / ``x-road-service`` values: each component path-segment escaped."""
    if isinstance(identifier, ServiceId):
        parts = [*identifier.client.parts(), identifier.service_code]
        if identifier.service_version is not None:
            parts.append(identifier.service_version)
    else:
        parts = list(identifier.parts())
    return "/".join(_escape(p) for p in parts)


# --------------------------------------------------------------------------- paths


def is_rest_path(path: str) -> bool:
    """Whether a client-proxy request path is REST (only ``/r1/`` is, §3.1)."""
    return path.startswith(REST_PREFIX)


@dataclass(frozen=True)
class RestPath:
    service: ServiceId
    service_path: str  # "" or "/..." — raw, appended to the service's base URL


def parse_rest_path(raw_path: str) -> RestPath:
    """``/r1/INSTANCE/CLASS/MEMBER/SUBSYSTEM/SERVICECODE[/service/path]`` (raw, encoded)."""
    parts = _java_split(raw_path, 8)
    if len(parts) < 7:
        raise _internal(f"Invalid request URI {raw_path!r}")
    version = parts[1]
    if len(version) == 2 and version[0] == "r" and version[1] in "0123456789":
        if int(version[1]) != PROTOCOL_VERSION:
            raise XRoadError(
                Code.INVALID_PROTOCOL_VERSION, f"Unsupported protocol version {version[1]}"
            )
    else:
        raise XRoadError(Code.INVALID_PROTOCOL_VERSION, f"Invalid protocol version {version!r}")
    decoded = [segment_decode(p) for p in parts[2:7]]
    inst, cls_, member, sub, service = (
        _nonblank(p, Code.INTERNAL_ERROR, "Path part") for p in decoded
    )
    service_id = ServiceId(ClientId(inst, cls_, member, sub), service)
    return RestPath(service_id, "/" + parts[7] if len(parts) == 8 else "")


def provider_url(address: str, service_path: str, query: str | None) -> str:
    """The provider service URL: base address + service path (no doubled ``/``) + query."""
    url = address
    if service_path:
        url = address + service_path[1:] if address.endswith("/") else address + service_path
    return url if query is None else f"{url}?{query}"


# --------------------------------------------------------------------------- header parts


def _serialize(first: str, second: str, headers: Iterable[tuple[str, str]]) -> bytes:
    out = bytearray(first.encode("utf-8") + _CRLF + second.encode("utf-8") + _CRLF)
    for name, value in headers:
        out += name.encode("utf-8") + b":" + value.encode("utf-8") + _CRLF
    return bytes(out)


def _split_header_part(
    data: bytes, limits: RestLimits
) -> tuple[str, str | None, list[tuple[str, str]]]:
    if len(data) > limits.max_header_part_bytes:
        raise XRoadError(Code.INVALID_MESSAGE, "REST header part is too large")
    if not data:
        raise XRoadError(Code.INVALID_MESSAGE, "Empty REST message")
    lines = _LINES.split(data.decode("utf-8", "replace"))
    if lines and lines[-1] == "" and len(lines) > 1:
        lines.pop()  # the final line break ends the last line; it does not start another
    if len(lines) - 2 > limits.max_headers:
        raise XRoadError(Code.INVALID_MESSAGE, "Too many headers in a REST header part")
    headers = []
    for line in lines[2:]:
        name, sep, value = line.partition(":")
        if not line or not sep:
            raise XRoadError(Code.INVALID_MESSAGE, f"Invalid header line {line[:80]!r}")
        if name.lower() in SKIPPED_HEADERS:
            raise XRoadError(Code.INVALID_MESSAGE, f"Invalid header: {name}")
        headers.append((name, value))
    return lines[0], lines[1] if len(lines) > 1 else None, headers


def _last(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    found = None
    for key, value in headers:
        if key.lower() == name:
            found = value
    return found


@dataclass(frozen=True)
class RestRequest:
    """A REST request as the client proxy transports it (§3.1–3.2, §4.5)."""

    method: str
    path: str  # raw path, e.g. /r1/EE/GOV/1/sub/svc/v2/pets
    query: str | None  # raw query without "?", None when the URL had no "?"
    headers: tuple[tuple[str, str], ...]
    service: ServiceId
    service_path: str
    client: ClientId
    query_id: str | None
    request_id: str | None = None
    user_id: str | None = None
    issue: str | None = None
    security_server: SecurityServerId | None = None
    represented_party: RepresentedParty | None = None

    @classmethod
    def from_http(
        cls,
        method: str,
        path: str,
        query: str | None,
        headers: Iterable[tuple[str, str]],
        *,
        request_id: str,
        instance: str,
        query_uuid: str,
        limits: RestLimits | None = None,
    ) -> RestRequest:
        """The request of an information system: hop-by-hop headers and any
        ``x-road-request-id``/``x-road-request-hash`` are dropped, ``x-road-request-id`` is
        appended, and ``x-road-id: INSTANCE-UUID`` too when the client sent no X-Road-Id."""
        limits = limits or RestLimits()
        kept = [(n, v) for n, v in headers if n.lower() not in _REQUEST_DROPPED]
        if len(kept) > limits.max_headers:
            raise XRoadError(Code.BAD_REQUEST, "Too many request headers")
        kept.append((HEADER_REQUEST_ID, request_id))
        if _last(kept, HEADER_QUERY_ID) is None:
            kept.append((HEADER_QUERY_ID, f"{instance}-{query_uuid}"))
        return cls._decode(method, path, query, kept)

    @classmethod
    def parse_header_part(cls, data: bytes, limits: RestLimits | None = None) -> RestRequest:
        """An ``application/x-road-rest-request`` part (provider side)."""
        verb, uri, headers = _split_header_part(bytes(data), limits or RestLimits())
        if (
            uri is None
            or re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:|//", uri)
            or any(c in uri for c in ' \t"<>\\^`{|}')
        ):
            raise XRoadError(Code.INVALID_MESSAGE, "Invalid request URI in REST message")
        path, sep, query = uri.partition("?")
        try:
            return cls._decode(verb, path, query if sep else None, headers)
        except XRoadError as exc:
            if exc.code == Code.INVALID_MESSAGE:
                raise
            raise XRoadError(Code.INVALID_MESSAGE, f"Invalid REST request: {exc.detail}") from exc

    @classmethod
    def _decode(
        cls, method: str, path: str, query: str | None, headers: list[tuple[str, str]]
    ) -> RestRequest:
        if method not in METHODS:
            raise XRoadError(Code.INVALID_HTTP_METHOD, f"Unsupported HTTP method {method!r}")
        rest_path = parse_rest_path(path)
        client_value = _last(headers, HEADER_CLIENT)
        if client_value is None:
            raise XRoadError(Code.INVALID_CLIENT_IDENTIFIER, "The client identifier is missing")
        server = _last(headers, HEADER_SECURITY_SERVER)
        party = _last(headers, HEADER_REPRESENTED_PARTY)
        return cls(
            method=method,
            path=path,
            query=query,
            headers=tuple(headers),
            service=rest_path.service,
            service_path=rest_path.service_path,
            client=decode_client(client_value),
            query_id=_last(headers, HEADER_QUERY_ID),
            request_id=_last(headers, HEADER_REQUEST_ID),
            user_id=_last(headers, HEADER_USER_ID),
            issue=_last(headers, HEADER_ISSUE),
            security_server=decode_server(server) if server is not None else None,
            represented_party=decode_represented_party(party) if party is not None else None,
        )

    def header_part(self) -> bytes:
        """``VERB CRLF path[?query] CRLF (Name:Value CRLF)*`` — the signed bytes (§4.5)."""
        target = self.path if self.query is None else f"{self.path}?{self.query}"
        return _serialize(self.method, target, self.headers)

    def filtered_header_part(self) -> bytes:
        """Only the X-Road headers and no service path (NIIS ``getFilteredMessage``, what
        the message log keeps when bodies are not logged)."""
        path = (
            self.path[: len(self.path) - len(self.service_path)] if self.service_path else self.path
        )
        return _serialize(
            self.method, path, [(n, v) for n, v in self.headers if n.lower().startswith("x-road-")]
        )

    def digest(self, algorithm: DigestAlgorithm = SHA512) -> bytes:
        return algorithm.digest(self.header_part())


@dataclass(frozen=True)
class RestResponse:
    """A provider's REST response as transported back (§3.2, §4.5)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    query_id: str
    request_hash: bytes = field(repr=False)
    client: ClientId | None = None
    service: ServiceId | None = None
    request_id: str | None = None

    @classmethod
    def build(
        cls,
        *,
        status: int,
        reason: str,
        headers: Iterable[tuple[str, str]],
        request: RestRequest,
        request_hash: bytes,
    ) -> RestResponse:
        """The provider side header set: the service's headers minus the skip list and any
        ``x-road-id``/``-request-hash``/``-client``/``-request-id`` it set, then ``x-road-id``,
        ``x-road-client``, ``x-road-service``, ``x-road-request-id``, ``x-road-request-hash``."""
        kept = [(n, v) for n, v in headers if n.lower() not in _RESPONSE_DROPPED]
        query_id = request.query_id or ""
        kept += [
            (HEADER_QUERY_ID, query_id),
            (HEADER_CLIENT, encode_id(request.client)),
            (HEADER_SERVICE, encode_id(request.service)),
            (HEADER_REQUEST_ID, request.request_id or ""),
            (HEADER_REQUEST_HASH, base64.b64encode(request_hash).decode("ascii")),
        ]
        return cls(
            status,
            reason,
            tuple(kept),
            query_id,
            request_hash,
            request.client,
            request.service,
            request.request_id,
        )

    @classmethod
    def parse_header_part(cls, data: bytes, limits: RestLimits | None = None) -> RestResponse:
        """An ``application/x-road-rest-response`` part (consumer side)."""
        status_line, reason, headers = _split_header_part(bytes(data), limits or RestLimits())
        if not re.fullmatch(r"[+-]?[0-9]{1,9}", status_line):
            raise XRoadError(Code.INVALID_MESSAGE, f"Invalid REST status {status_line[:20]!r}")
        query_id = _last(headers, HEADER_QUERY_ID)
        hash_value = _last(headers, HEADER_REQUEST_HASH)
        try:
            request_hash = base64.b64decode(hash_value or "", validate=True)
            client = _last(headers, HEADER_CLIENT)
            service = _last(headers, HEADER_SERVICE)
            client_id = decode_client(client) if client is not None else None
            service_id = decode_service(service) if service is not None else None
        except (binascii.Error, ValueError, XRoadError) as exc:
            raise XRoadError(Code.INVALID_MESSAGE, f"Invalid REST Response message: {exc}") from exc
        if not query_id or not request_hash:
            raise XRoadError(Code.INVALID_MESSAGE, "Invalid REST Response message")
        return cls(
            int(status_line),
            reason or "",
            tuple(headers),
            query_id,
            request_hash,
            client_id,
            service_id,
            _last(headers, HEADER_REQUEST_ID),
        )

    @property
    def is_error(self) -> bool:
        return 400 <= self.status <= 599

    def header_part(self) -> bytes:
        """``status CRLF reason CRLF (Name:Value CRLF)*`` — the signed bytes (§4.5)."""
        return _serialize(str(self.status), self.reason, self.headers)

    def filtered_header_part(self) -> bytes:
        return _serialize(
            str(self.status),
            self.reason,
            [(n, v) for n, v in self.headers if n.lower().startswith("x-road-")],
        )

    def digest(self, algorithm: DigestAlgorithm = SHA512) -> bytes:
        return algorithm.digest(self.header_part())


def parse_header_part(data: bytes, limits: RestLimits | None = None) -> RestRequest | RestResponse:
    """A REST header part of either kind: a first byte ``1``–``9`` makes it a response
    (NIIS ``RestMessage.of``)."""
    if data[:1] and b"1" <= data[:1] <= b"9":
        return RestResponse.parse_header_part(data, limits)
    return RestRequest.parse_header_part(data, limits)


def rest_request_hash_bytes(header_part: bytes, body_digest: bytes | None) -> bytes:
    """SHA-512(header part), or SHA-512(SHA-512(header part) ‖ body digest) with a body."""
    head = SHA512.digest(header_part)
    return head if body_digest is None else SHA512.digest(head + body_digest)


def rest_request_hash(header_part: bytes, body_digest: bytes | None) -> str:
    """The ``x-road-request-hash`` value (§3.2), base64."""
    return base64.b64encode(rest_request_hash_bytes(header_part, body_digest)).decode("ascii")


def check_rest_response(
    request: RestRequest, response: RestResponse, body_digest: bytes | None
) -> None:
    """The client proxy's checks of a REST response (``inconsistent_response``)."""
    checks = (
        (request.client, response.client, "Response client id does not match request message"),
        (request.query_id, response.query_id, "Response message id does not match request message"),
        (request.service, response.service, "Response service id does not match request message"),
        (
            request.request_id,
            response.request_id,
            "Response message request id does not match request message",
        ),
        (
            rest_request_hash_bytes(request.header_part(), body_digest),
            response.request_hash,
            "Response message hash does not match request message",
        ),
    )
    for expected, got, message in checks:
        if expected != got:
            raise XRoadError(Code.INCONSISTENT_RESPONSE, message)
