"""MIME: content types, an incremental multipart parser and a multipart writer (§2.3, §4.4).

Owns the byte-level MIME layer shared by the SwA/MTOM packages of information systems
(``multipart/related``, :mod:`crossroad.wire.swa`) and the security-server transport message
(``multipart/mixed``, :mod:`crossroad.wire.transport`):

* :class:`ContentType` parses header values robustly (case-insensitive names, quoted values);
* :class:`MultipartParser` takes bytes in any chunking and yields :class:`PartStart` (the
  part's ORIGINAL header fields), :class:`PartData` (raw body bytes, never content-decoded:
  what is hashed is what was transmitted, §4.6) and :class:`PartEnd`.  It is flat: a nested
  multipart is an opaque part whose body the caller may feed to another parser;
* :class:`MultipartWriter` frames parts the way NIIS ``MultipartEncoder`` does (``--boundary``
  CRLF, lower-case ``content-type``, CRLF line ends, ``CRLF--boundary--CRLF`` at the end).

Parsing is strict where NIIS's mime4j is lenient only by accident: header lines without a
colon, headers or part counts above :class:`MimeLimits`, or input that ends inside a part
raise ``mime_parsing_failed``.  Two leniencies are kept because real peers rely on them:
bare LF line ends, and a final delimiter without ``--`` at the very end of the input.  Input
without any delimiter is a multipart with no parts (mime4j treats it as preamble).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from crossroad.errors import Code, XRoadError

MULTIPART_MIXED: Final = "multipart/mixed"
MULTIPART_RELATED: Final = "multipart/related"
TEXT_XML: Final = "text/xml"
XOP_XML: Final = "application/xop+xml"
#: mime4j's type for a part without a Content-Type header.
DEFAULT_PART_TYPE: Final = "text/plain"

_CR: Final = 0x0D
_LF: Final = 0x0A
_MAX_BOUNDARY: Final = 256
_MAX_PADDING: Final = 1024


def _fail(detail: str) -> XRoadError:
    return XRoadError(Code.MIME_PARSING_FAILED, detail)


# --------------------------------------------------------------------------- content types


@dataclass(frozen=True)
class ContentType:
    """A parsed ``Content-Type`` value: lower-case ``type/subtype`` and its parameters.

    Parameter names are lower-case, values unquoted; the first occurrence of a name wins.
    Parsing never fails: a value without ``/`` keeps its text as ``mime_type`` and callers
    compare it with what they accept.
    """

    raw: str
    mime_type: str
    params: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, value: str | None) -> ContentType:
        raw = value or ""
        head, _, rest = raw.partition(";")
        return cls(raw, head.strip().lower(), tuple(_parse_params(rest)))

    def param(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.params:
            if key == wanted:
                return value
        return None

    @property
    def boundary(self) -> str | None:
        return self.param("boundary")

    @property
    def charset(self) -> str | None:
        return self.param("charset")

    @property
    def type(self) -> str | None:
        """The ``type`` parameter (root part type of ``multipart/related``)."""
        return self.param("type")

    @property
    def start(self) -> str | None:
        return self.param("start")

    @property
    def start_info(self) -> str | None:
        return self.param("start-info")

    def require_boundary(self) -> str:
        """The boundary, or ``invalid_content_type`` (a multipart needs one, §4.9)."""
        boundary = self.boundary
        if not boundary or len(boundary) > _MAX_BOUNDARY or any(c in boundary for c in "\r\n"):
            raise XRoadError(
                Code.INVALID_CONTENT_TYPE,
                f"Multipart content type is missing a usable boundary: {self.raw!r}",
            )
        return boundary


def _parse_params(text: str) -> Iterable[tuple[str, str]]:
    seen: set[str] = set()
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t\r\n;":
            i += 1
        start = i
        while i < n and text[i] not in "=;":
            i += 1
        name = text[start:i].strip().lower()
        value = ""
        if i < n and text[i] == "=":
            i += 1
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] == '"':
                i += 1
                chars: list[str] = []
                while i < n and text[i] != '"':
                    if text[i] == "\\" and i + 1 < n:
                        i += 1
                    chars.append(text[i])
                    i += 1
                i += 1  # the closing quote (or past the end when unterminated)
                value = "".join(chars)
                while i < n and text[i] != ";":
                    i += 1
            else:
                start = i
                while i < n and text[i] != ";":
                    i += 1
                value = text[start:i].strip()
        if name and name not in seen:
            seen.add(name)
            yield name, value


def base_type(value: str | None) -> str | None:
    """The lower-case ``type/subtype`` of a content type value, None when absent/empty."""
    if value is None:
        return None
    mime_type = ContentType.parse(value).mime_type
    return mime_type or None


def content_type_with_charset(mime_type: str, charset: str = "UTF-8") -> str:
    return f"{mime_type}; charset={charset}"


def multipart_mixed(boundary: str) -> str:
    """NIIS ``mpMixedContentType``: ``multipart/mixed; charset=UTF-8; boundary=...``."""
    return f"{MULTIPART_MIXED}; charset=UTF-8; boundary={boundary}"


# --------------------------------------------------------------------------- headers


@dataclass(frozen=True)
class HeaderField:
    """One MIME header field as received: ``raw`` keeps the original bytes (folding included,
    final line break excluded); ``value`` is the unfolded, stripped value."""

    name: str
    value: str
    raw: bytes = b""

    def to_bytes(self) -> bytes:
        """The original bytes, or ``Name: value`` for a field that was built, not parsed."""
        return self.raw or f"{self.name}: {self.value}".encode("latin-1", "replace")


@dataclass(frozen=True)
class PartHeaders:
    """The header fields of one part, in order."""

    fields: tuple[HeaderField, ...] = ()

    def get(self, name: str) -> str | None:
        wanted = name.lower()
        for f in self.fields:
            if f.name.lower() == wanted:
                return f.value
        return None

    @property
    def content_type(self) -> str | None:
        return self.get("content-type")

    @property
    def mime_type(self) -> str:
        """Lower-case base type, ``text/plain`` when the part has no Content-Type (mime4j)."""
        return base_type(self.content_type) or DEFAULT_PART_TYPE

    def without(self, name: str) -> tuple[HeaderField, ...]:
        """The fields other than ``name`` (e.g. the preserved headers besides content-type)."""
        wanted = name.lower()
        return tuple(f for f in self.fields if f.name.lower() != wanted)


def _parse_field(raw: bytes) -> HeaderField:
    colon = raw.find(b":")
    if colon <= 0:
        raise _fail(f"Malformed MIME header line: {raw[:80]!r}")
    name_bytes = raw[:colon].rstrip(b" \t")
    if not name_bytes or any(b < 33 or b > 126 for b in name_bytes):
        raise _fail(f"Malformed MIME header name: {name_bytes[:80]!r}")
    # Unfolding removes the line breaks only (RFC 5322 §2.2.3).
    value = raw[colon + 1 :].replace(b"\r\n", b"").replace(b"\n", b"")
    return HeaderField(
        name_bytes.decode("latin-1"), value.decode("latin-1").strip(" \t"), bytes(raw)
    )


# --------------------------------------------------------------------------- parser


@dataclass(frozen=True)
class MimeLimits:
    """Bounds that keep a hostile peer from exhausting memory or CPU."""

    max_header_bytes: int = 64 * 1024  # per part
    max_header_fields: int = 128  # per part
    max_parts: int = 10_000


@dataclass(frozen=True)
class PartStart:
    index: int  # 0-based position in this multipart
    headers: PartHeaders


@dataclass(frozen=True)
class PartData:
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class PartEnd:
    index: int


MimeEvent = PartStart | PartData | PartEnd

_PREAMBLE, _HEADERS, _BODY, _EPILOGUE = range(4)


class MultipartParser:
    """Incremental, flat multipart parser (sans-I/O): ``feed(bytes) -> events``, ``close()``.

    Body bytes are emitted as they arrive, holding back only what could still be the start of
    a delimiter, so memory stays bounded whatever the part sizes.
    """

    def __init__(self, boundary: str, limits: MimeLimits | None = None) -> None:
        if not boundary or len(boundary) > _MAX_BOUNDARY:
            raise XRoadError(Code.INVALID_CONTENT_TYPE, "Multipart boundary is missing or too long")
        try:
            encoded = boundary.encode("latin-1")
        except UnicodeEncodeError:
            raise XRoadError(
                Code.INVALID_CONTENT_TYPE, "Multipart boundary is not Latin-1"
            ) from None
        self._limits = limits or MimeLimits()
        self._delim = b"\n--" + encoded
        # A virtual line break lets a delimiter at the very start be found like any other;
        # ``_skip`` says how many leading buffer bytes are virtual and never body data.
        self._buf = bytearray(b"\n")
        self._skip = 1
        self._state = _PREAMBLE
        self._index = -1
        self._fields: list[bytearray] = []
        self._header_bytes = 0
        self._closed = False

    @property
    def finished(self) -> bool:
        """Whether the closing delimiter (or the tolerated bare final one) was seen."""
        return self._state == _EPILOGUE

    @property
    def part_count(self) -> int:
        return self._index + 1

    def feed(self, data: bytes) -> list[MimeEvent]:
        if self._closed:
            raise _fail("Data after the end of the multipart input")
        if self._state == _EPILOGUE:
            return []
        self._buf += data
        return self._run(eof=False)

    def close(self) -> list[MimeEvent]:
        """Signal the end of input; raises ``mime_parsing_failed`` if a part is unfinished."""
        if self._closed:
            return []
        self._closed = True
        events = self._run(eof=True)
        if self._state == _BODY:
            raise _fail("Multipart input ended inside a part (no closing boundary)")
        if self._state == _HEADERS:
            if self._fields or len(self._buf) > 0:
                raise _fail("Multipart input ended inside part headers")
            self._state = _EPILOGUE  # a delimiter line at the very end: nothing follows
        return events

    # -- internals

    def _emit_body(self, out: list[MimeEvent], end: int) -> None:
        """Emit buffer bytes before ``end`` as body data (or drop them in the preamble)."""
        if end <= 0:
            return
        if self._state == _BODY and end > self._skip:
            out.append(PartData(bytes(self._buf[self._skip : end])))
        del self._buf[:end]
        self._skip = 0

    def _run(self, eof: bool) -> list[MimeEvent]:
        out: list[MimeEvent] = []
        while True:
            if self._state == _EPILOGUE:
                self._buf.clear()
                return out
            if self._state == _HEADERS:
                if not self._read_header_line(out, eof):
                    return out
                continue
            if not self._scan_delimiter(out, eof):
                return out

    def _scan_delimiter(self, out: list[MimeEvent], eof: bool) -> bool:
        """Look for the next delimiter; False when more input is needed."""
        buf, delim = self._buf, self._delim
        i = buf.find(delim)
        if i < 0:
            if not eof:
                self._emit_body(out, len(buf) - len(delim))
            elif self._state == _PREAMBLE:
                buf.clear()  # no delimiter at all: a multipart without parts
            return False
        end = self._delimiter_end(i + len(delim), eof)
        if end is None:  # undecided: keep the possible CR before the line break
            self._emit_body(out, i - 1)
            return False
        if isinstance(end, int):  # looked like a delimiter but is body data
            self._emit_body(out, i + 1)
            return True
        stop, is_close = end
        if self._state == _BODY:
            body_end = i - 1 if i >= 1 + self._skip and buf[i - 1] == _CR else i
            if body_end > self._skip:
                out.append(PartData(bytes(buf[self._skip : body_end])))
            out.append(PartEnd(self._index))
        del buf[:stop]
        self._skip = 0
        if is_close:
            self._state = _EPILOGUE
        else:
            self._state = _HEADERS
            self._fields = []
            self._header_bytes = 0
        return True

    def _delimiter_end(self, k: int, eof: bool) -> tuple[int, bool] | int | None:
        """After ``\\n--boundary`` at ``k``: (end of the delimiter line, is_close), -1 when this
        is not a delimiter, None when more input is needed."""
        buf, n = self._buf, len(self._buf)
        if k < n and buf[k] == 0x2D:  # '-'
            if k + 1 >= n:
                return -1 if eof else None
            if buf[k + 1] != 0x2D:
                return -1
            return k + 2, True  # what follows a close delimiter is epilogue, ignored
        start = k
        while k < n and buf[k] in (0x20, 0x09):
            k += 1
            if k - start > _MAX_PADDING:
                raise _fail("Multipart delimiter line is too long")
        if k >= n:
            return (k, True) if eof else None
        if buf[k] == _LF:
            return k + 1, False
        if buf[k] == _CR:
            if k + 1 >= n:
                return (k + 1, True) if eof else None
            if buf[k + 1] == _LF:
                return k + 2, False
        return -1

    def _read_header_line(self, out: list[MimeEvent], eof: bool) -> bool:
        buf = self._buf
        nl = buf.find(b"\n")
        if nl < 0:
            if len(buf) + self._header_bytes > self._limits.max_header_bytes:
                raise _fail("MIME part headers are too large")
            if eof and buf:
                raise _fail("Multipart input ended inside part headers")
            return False
        self._header_bytes += nl + 1
        if self._header_bytes > self._limits.max_header_bytes:
            raise _fail("MIME part headers are too large")
        raw = bytes(buf[:nl])  # the line with its CR, if any: folded fields keep their breaks
        del buf[: nl + 1]
        if raw in (b"", b"\r"):
            return self._start_body(out)
        if raw[0] in (0x20, 0x09):
            if not self._fields:
                raise _fail("MIME header continuation line without a header")
            self._fields[-1] += b"\n" + raw
            return True
        if len(self._fields) >= self._limits.max_header_fields:
            raise _fail("Too many MIME part header fields")
        self._fields.append(bytearray(raw))
        return True

    def _start_body(self, out: list[MimeEvent]) -> bool:
        self._index += 1
        if self._index >= self._limits.max_parts:
            raise _fail("Too many MIME parts")
        fields = tuple(_parse_field(bytes(f).rstrip(b"\r")) for f in self._fields)
        out.append(PartStart(self._index, PartHeaders(fields)))
        self._fields = []
        self._state = _BODY
        # The blank line's break may double as the start of the next delimiter (empty body).
        self._buf[0:0] = b"\n"
        self._skip = 1
        return True


def parse_multipart(
    data: bytes, boundary: str, limits: MimeLimits | None = None
) -> list[tuple[PartHeaders, bytes]]:
    """Parse a whole multipart body at once (for small inputs and tests)."""
    parser = MultipartParser(boundary, limits)
    parts: list[tuple[PartHeaders, bytearray]] = []
    for event in [*parser.feed(data), *parser.close()]:
        if isinstance(event, PartStart):
            parts.append((event.headers, bytearray()))
        elif isinstance(event, PartData):
            parts[-1][1].extend(event.data)
    return [(headers, bytes(body)) for headers, body in parts]


# --------------------------------------------------------------------------- writer

CRLF: Final = b"\r\n"


class MultipartWriter:
    """Frames multipart parts (sans-I/O: every method returns the bytes to send).

    Mirrors NIIS ``MultipartEncoder``: the first delimiter has no leading CRLF, every later one
    does; part headers are ``content-type: X`` (lower-case name) followed by the given fields;
    nested multiparts get ``multipart/mixed; charset=UTF-8; boundary=...``.  Body bytes are the
    caller's to send between :meth:`start_part` calls.
    """

    def __init__(self, boundary: str) -> None:
        self._boundary = boundary
        self._stack = [boundary]
        self._in_part = False

    @property
    def boundary(self) -> str:
        return self._boundary

    @property
    def content_type(self) -> str:
        return multipart_mixed(self._boundary)

    @property
    def depth(self) -> int:
        return len(self._stack)

    def start_part(
        self, content_type: str | None, headers: Sequence[HeaderField | tuple[str, str]] = ()
    ) -> bytes:
        """The delimiter and header block of a new part.  A field named content-type in
        ``headers`` is dropped when ``content_type`` is given (it would be a duplicate)."""
        if not self._stack:
            raise XRoadError(Code.INTERNAL_ERROR, "Multipart writer is already closed")
        out = bytearray(CRLF if self._in_part else b"")
        self._in_part = True
        out += b"--" + self._stack[-1].encode("latin-1") + CRLF
        if content_type is not None:
            out += b"content-type: " + content_type.encode("latin-1", "replace") + CRLF
        for h in headers:
            f = h if isinstance(h, HeaderField) else HeaderField(h[0], h[1])
            if content_type is not None and f.name.lower() == "content-type":
                continue
            out += f.to_bytes() + CRLF
        out += CRLF
        return bytes(out)

    def start_nested(self, boundary: str) -> bytes:
        out = self.start_part(multipart_mixed(boundary))
        self._stack.append(boundary)
        return out

    def end_nested(self) -> bytes:
        if not self._stack:
            return b""
        boundary = self._stack.pop()
        return CRLF + b"--" + boundary.encode("latin-1") + b"--" + CRLF

    def close(self) -> bytes:
        out = bytearray()
        while self._stack:
            out += self.end_nested()
        return bytes(out)
