"""The signed configuration directory (protocols.md §5.1–5.2, §12.5 items 5–8): parse, verify,
build.  (The download locations V3+ shared parameters offer are in :mod:`.snapshot`.)

The file a central server serves (``internalconf``, ``externalconf``, a configuration proxy's
``conf``) begins with its own MIME header: a ``multipart/related`` whose first part is a
``multipart/mixed`` (the *signed data*) and whose second part is the signature.  The signed data
is the first part's body, from its first inner boundary line through the closing inner boundary,
without the line break that belongs to the next outer boundary.  Inside it, the first entry
carries only ``Expire-date`` and ``Version``; every further entry names one content file
(identifier, instance, location, hash algorithm) and carries the base64 hash of that file.

Failures carry the NIIS ``ConfigurationParser`` codes, in its order: outer structure
(``global_conf_parsing_downloaded_conf_directory_failure``), no signed data, no signature part
(``global_conf_missing_signed_data_expiration_date``, since the expiry is read only after the
signature), signature decoding and headers; then, in :meth:`SignedDirectory.verify`, the
verification certificate, the signature, the inner headers, the expiry (``global_conf_outdated``)
and the content entries.  Problems inside the signed data are therefore reported only once the
signature is known to be good, as NIIS does: :meth:`SignedDirectory.parse` keeps them and the
accessors raise them.

Lines may end in CRLF (central server output) or LF (the NIIS test files); both parse.
:func:`build_signed_directory` writes exactly what the NIIS central server writes (CRLF,
``instance='X'`` in single quotes, ``Expire-date`` to the second with ``Z``, ``Version``).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import secrets
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.crypto import keys
from crossroad.crypto.algorithms import (
    SHA512,
    SHA512_WITH_RSA,
    DigestAlgorithm,
    SignatureAlgorithm,
    digest_algorithm,
    signature_algorithm,
)
from crossroad.crypto.certs import load_certificate
from crossroad.errors import Code, XRoadError

__all__ = [
    "CONTENT_FILE_NAMES",
    "DirectoryEntry",
    "DirectoryPart",
    "SignedDirectory",
    "build_signed_directory",
    "check_content",
    "content_location",
    "directory_timestamp",
]

PRIVATE_PARAMETERS = "PRIVATE-PARAMETERS"
SHARED_PARAMETERS = "SHARED-PARAMETERS"
#: The file each known content identifier is stored as (§5.2, §5.6).  Others are kept as-is.
CONTENT_FILE_NAMES: Mapping[str, str] = {
    PRIVATE_PARAMETERS: "private-params.xml",
    SHARED_PARAMETERS: "shared-params.xml",
    "MONITORING": "monitoring-params.xml",
    "FETCHINTERVAL": "fetchinterval-params.xml",
    "NEXTUPDATE": "nextupdate-params.xml",
}

_PARSE = Code.GLOBAL_CONF_PARSING_DOWNLOADED_CONF_DIRECTORY_FAILURE
_OCTET_STREAM = "application/octet-stream"
_BASE64 = "base64"
# OffsetDateTime.parse: ISO local date-time with a mandatory offset.
_ISO_OFFSET = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}(:\d{2})?)\Z"
)
_TOKEN = re.compile(r"[A-Za-z0-9'()+_,\-./:=?]{1,70}\Z")
_T = TypeVar("_T")


# --- values --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryPart:
    """One content entry of a directory: which file, where to fetch it, and its hash.

    ``content_identifier`` is ``""`` when the entry has none (NIIS keeps such entries too);
    ``headers`` holds every header as received (lower-case names, last value wins).
    """

    content_identifier: str
    instance: str | None
    location: str
    hash_algorithm: DigestAlgorithm
    hash: bytes
    file_name: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def hash_base64(self) -> str:
        return base64.b64encode(self.hash).decode("ascii")

    def matches(self, data: bytes) -> bool:
        return self.hash_algorithm.digest(data) == self.hash


class DirectoryEntry(NamedTuple):
    """What :func:`build_signed_directory` lists: a content file and where it will be served."""

    content_identifier: str
    instance: str | None
    location: str
    data: bytes


def check_content(part: DirectoryPart, data: bytes) -> None:
    """A downloaded content file must hash to what the signed directory says."""
    if not part.matches(data):
        raise XRoadError(
            Code.GLOBAL_CONF_PART_DOWNLOADED_FILE_INTEGRITY_FAILURE,
            f"Failed to verify content integrity ({part.content_identifier or part.location})",
        )


@dataclass(frozen=True)
class SignedDirectory:
    """A parsed signed directory.  Build it with :meth:`parse`; trust it after :meth:`verify`."""

    signed_data: bytes
    signature: bytes
    signature_algorithm: SignatureAlgorithm
    verification_cert_hash: bytes
    verification_cert_hash_algorithm: DigestAlgorithm
    signed_data_content_type: str | None = None
    # The inner structure, or the coded error it produced (raised only after the signature).
    _header: tuple[dt.datetime, int | None] | XRoadError = field(
        default=(dt.datetime.min.replace(tzinfo=dt.UTC), None), repr=False, compare=False
    )
    _parts: tuple[DirectoryPart, ...] | XRoadError = field(default=(), repr=False, compare=False)

    @classmethod
    def parse(cls, data: bytes) -> SignedDirectory:
        return _parse(data)

    # -- the signed content --

    @property
    def expires(self) -> dt.datetime:
        """``Expire-date`` (aware UTC)."""
        return _unwrap(self._header)[0]

    @property
    def version(self) -> int | None:
        """``Version``; ``None`` when absent (a V2 directory)."""
        return _unwrap(self._header)[1]

    @property
    def parts(self) -> tuple[DirectoryPart, ...]:
        _unwrap(self._header)
        return _unwrap(self._parts)

    def part(self, content_identifier: str, instance: str | None = None) -> DirectoryPart | None:
        """The first entry with ``content_identifier`` (and ``instance``, when given)."""
        return next(
            (
                p
                for p in self.parts
                if p.content_identifier == content_identifier
                and (instance is None or p.instance == instance)
            ),
            None,
        )

    def is_expired(self, at: dt.datetime) -> bool:
        """Expired once ``at`` is after ``Expire-date`` (NIIS ``isAfter``)."""
        return at > self.expires

    # -- verification --

    def find_verification_cert(self, certs: Sequence[x509.Certificate | bytes]) -> x509.Certificate:
        """The certificate whose hash is ``Verification-certificate-hash``.

        Raw bytes (an anchor's ``verificationCert``) are hashed as given, certificates as DER;
        a matching entry that is no certificate is skipped, as NIIS does.
        """
        for cert in certs:
            raw = cert.public_bytes(Encoding.DER) if isinstance(cert, x509.Certificate) else cert
            if self.verification_cert_hash_algorithm.digest(raw) != self.verification_cert_hash:
                continue
            if isinstance(cert, x509.Certificate):
                return cert
            try:
                return load_certificate(raw)
            except XRoadError:
                continue
        raise XRoadError(
            Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT,
            "Could not find verification certificate for certificate hash "
            + base64.b64encode(self.verification_cert_hash).decode("ascii"),
        )

    def verify(
        self, certs: Sequence[x509.Certificate | bytes], at: dt.datetime
    ) -> x509.Certificate:
        """Verify the signature with one of ``certs`` and the expiry at ``at``; return the
        certificate that verified.  Content entries are checked last (NIIS order)."""
        cert = self.find_verification_cert(certs)
        try:
            good = keys.verify(
                cert.public_key(), self.signature_algorithm, self.signature, self.signed_data
            )
        except (ValueError, TypeError, UnsupportedAlgorithm, XRoadError):  # unusable key
            good = False
        if not good:
            raise XRoadError(
                Code.GLOBAL_CONF_SIGNATURE_VERIFICATION_FAILURE,
                "Failed to verify the signature of the configuration directory",
            )
        if self.is_expired(at):
            raise XRoadError(
                Code.GLOBAL_CONF_OUTDATED,
                f"Configuration directory expired on {_format_expire_date(self.expires)}",
            )
        self.parts  # noqa: B018  (raises the first problem of the content entries)
        return cert


def _unwrap(value: _T | XRoadError) -> _T:
    if isinstance(value, XRoadError):
        raise value
    return value


# --- MIME reading --------------------------------------------------------------------------------


def _lines(data: bytes) -> list[tuple[int, int, int]]:
    """``(start, end_without_break, next_start)`` of every line."""
    out = []
    pos, n = 0, len(data)
    while pos < n:
        eol = data.find(b"\n", pos)
        if eol < 0:
            out.append((pos, n, n))
            break
        end = eol - 1 if eol > pos and data[eol - 1] == 0x0D else eol
        out.append((pos, end, eol + 1))
        pos = eol + 1
    return out


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _entity(raw: bytes, what: str) -> tuple[dict[str, str], bytes]:
    """Split a MIME entity into header fields (lower-case names; folded lines joined; the last
    of repeated names wins, as in NIIS) and body.  Headers end at the first empty line; an
    entity without one is all headers."""
    fields: dict[str, str] = {}
    last: str | None = None
    for start, end, nxt in _lines(raw):
        line = raw[start:end]
        if not line:
            return fields, raw[nxt:]
        if line[:1] in (b" ", b"\t"):
            if last is None:
                raise XRoadError(_PARSE, f"{what}: header continuation without a header")
            fields[last] = (fields[last] + " " + _decode(line.strip())).strip()
            continue
        name, sep, value = line.partition(b":")
        name = name.strip()
        if not sep or not name or any(c <= 0x20 or c >= 0x7F for c in name):
            raise XRoadError(_PARSE, f"{what}: malformed header line {_decode(line[:60])!r}")
        last = name.decode("ascii").lower()
        fields[last] = _decode(value).strip()
    return fields, b""


def _split_params(value: str) -> list[str]:
    """Split at ``;`` outside double or single quotes."""
    out: list[str] = []
    buf: list[str] = []
    quote = ""
    for ch in value:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch == ";":
            out.append("".join(buf))
            buf = []
            continue
        buf.append(ch)
    out.append("".join(buf))
    return out


def _value_params(value: str) -> tuple[str, dict[str, str]]:
    """``main; a=1; b="2"; c='3'`` → ``("main", {...})`` (names lower-case, quotes removed)."""
    items = _split_params(value)
    params: dict[str, str] = {}
    for item in items[1:]:
        name, sep, val = item.partition("=")
        if not sep:
            continue
        val = val.strip()
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "\"'":
            val = val[1:-1]
        params[name.strip().lower()] = val
    return items[0].strip(), params


def _boundary(headers: Mapping[str, str], what: str) -> bytes:
    content_type = headers.get("content-type")
    if content_type is None:
        raise XRoadError(_PARSE, f"{what} has no Content-Type")
    mime_type, params = _value_params(content_type)
    boundary = params.get("boundary", "")
    if not mime_type.lower().startswith("multipart/") or not boundary:
        raise XRoadError(_PARSE, f"{what} is not a multipart with a boundary: {content_type!r}")
    try:
        return boundary.encode("ascii")
    except UnicodeEncodeError:
        raise XRoadError(_PARSE, f"{what}: boundary is not ASCII") from None


def _multipart(body: bytes, boundary: bytes) -> list[bytes]:
    """The raw parts of a multipart body.  A part ends before the line break that precedes the
    next boundary line; a body cut off before its closing boundary ends its last part at EOF."""
    dash = b"--" + boundary
    parts: list[bytes] = []
    current: int | None = None
    for start, end, nxt in _lines(body):
        line = body[start:end]
        if not line.startswith(dash):
            continue
        rest = line[len(dash) :]
        closing = rest.startswith(b"--")
        if (rest[2:] if closing else rest).strip(b" \t"):
            continue  # a longer token that merely starts like the boundary
        if current is not None:
            chunk = body[current:start]
            if chunk.endswith(b"\r\n"):
                chunk = chunk[:-2]
            elif chunk.endswith(b"\n"):
                chunk = chunk[:-1]
            parts.append(chunk)
        if closing:
            return parts
        current = nxt
    if current is not None:
        parts.append(body[current:])
    return parts


def _require(headers: Mapping[str, str], name: str, expected: str | None = None) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise XRoadError(Code.GLOBAL_CONF_HEADER_FIELD_MISSING, f"Missing field {name}")
    if expected is not None and value != expected:
        raise XRoadError(
            Code.GLOBAL_CONF_HEADER_FIELD_WRONG_VALUE, f"Field {name} must have value {expected}"
        )
    return value


def _b64(text: str, code: str, what: str) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise XRoadError(code, f"{what} is not valid base64") from None


def _digest(uri: str, field_name: str) -> DigestAlgorithm:
    try:
        return digest_algorithm(uri)
    except XRoadError:
        raise XRoadError(
            Code.GLOBAL_CONF_HEADER_FIELD_WRONG_VALUE,
            f"Field {field_name}: unsupported hash algorithm {uri!r}",
        ) from None


# --- parsing -------------------------------------------------------------------------------------


def _parse(data: bytes) -> SignedDirectory:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise XRoadError(_PARSE, "A configuration directory must be bytes")
    data = bytes(data)
    headers, body = _entity(data, "configuration directory")
    outer = _multipart(body, _boundary(headers, "configuration directory"))
    if not outer:
        raise XRoadError(Code.GLOBAL_CONF_MISSING_SIGNED_DATA, "The directory has no signed data")
    if len(outer) < 2:
        # NIIS reads the expiry only after verifying the signature, so a directory cut off
        # before its signature part is reported as lacking an expiration date.
        raise XRoadError(
            Code.GLOBAL_CONF_MISSING_SIGNED_DATA_EXPIRATION_DATE,
            "The directory has no signature part, so no verified expiration date",
        )
    signed_headers, signed_data = _entity(outer[0], "signed data")
    sig_headers, sig_body = _entity(outer[1], "signature part")
    signature = _b64(_decode(sig_body), Code.GLOBAL_CONF_SIGNATURE_DECODE_FAILURE, "Signature")
    _require(sig_headers, "content-type", _OCTET_STREAM)
    _require(sig_headers, "content-transfer-encoding", _BASE64)
    algorithm_uri = _require(sig_headers, "signature-algorithm-id")
    cert_hash_b64, params = _value_params(_require(sig_headers, "verification-certificate-hash"))
    hash_uri = params.get("hash-algorithm-id", "").strip()
    if not hash_uri:
        raise XRoadError(
            Code.GLOBAL_CONF_HEADER_FIELD_MISSING_PARAMETER,
            "Field verification-certificate-hash is missing parameter hash-algorithm-id",
        )
    try:
        algorithm = signature_algorithm(algorithm_uri)
    except XRoadError:
        raise XRoadError(
            Code.GLOBAL_CONF_SIGNATURE_VERIFICATION_FAILURE,
            f"Unsupported signature algorithm {algorithm_uri!r}",
        ) from None
    return SignedDirectory(
        signed_data=signed_data,
        signature=signature,
        signature_algorithm=algorithm,
        verification_cert_hash=_b64(
            cert_hash_b64, Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT, "Verification cert hash"
        ),
        verification_cert_hash_algorithm=_digest(hash_uri, "verification-certificate-hash"),
        signed_data_content_type=signed_headers.get("content-type"),
        _header=_attempt(lambda: _inner_header(signed_headers, signed_data)),
        _parts=_attempt(lambda: _inner_parts(signed_headers, signed_data)),
    )


def _attempt(fn: Callable[[], _T]) -> _T | XRoadError:
    try:
        return fn()
    except XRoadError as exc:
        return exc


def _inner(signed_headers: Mapping[str, str], signed_data: bytes) -> list[bytes]:
    parts = _multipart(signed_data, _boundary(signed_headers, "signed data"))
    if not parts:
        raise XRoadError(_PARSE, "The signed data holds no entries")
    return parts


def _inner_header(
    signed_headers: Mapping[str, str], signed_data: bytes
) -> tuple[dt.datetime, int | None]:
    headers, _ = _entity(_inner(signed_headers, signed_data)[0], "directory header")
    raw = headers.get("expire-date", "").strip()
    if not raw:
        raise XRoadError(Code.GLOBAL_CONF_HEADER_FIELD_MISSING, "Missing header expire-date")
    try:
        if not _ISO_OFFSET.match(raw):
            raise ValueError(raw)
        expires = dt.datetime.fromisoformat(raw).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise XRoadError(
            Code.GLOBAL_CONF_HEADER_FIELD_WRONG_VALUE, f"Expire-date is not a date-time: {raw!r}"
        ) from None
    version_text = headers.get("version", "").strip()
    if not version_text:
        return expires, None
    if not version_text.isascii() or not version_text.isdigit():
        raise XRoadError(
            Code.GLOBAL_CONF_HEADER_FIELD_WRONG_VALUE, f"Version is not a number: {version_text!r}"
        )
    return expires, int(version_text)


def _inner_parts(
    signed_headers: Mapping[str, str], signed_data: bytes
) -> tuple[DirectoryPart, ...]:
    return tuple(
        _content_part(raw, i) for i, raw in enumerate(_inner(signed_headers, signed_data)[1:], 1)
    )


def _content_part(raw: bytes, index: int) -> DirectoryPart:
    headers, body = _entity(raw, f"directory entry {index}")
    _require(headers, "content-type", _OCTET_STREAM)
    _require(headers, "content-transfer-encoding", _BASE64)
    location = _require(headers, "content-location")
    hash_uri = _require(headers, "hash-algorithm-id")
    identifier, instance = "", None
    if headers.get("content-identifier", "").strip():
        identifier, params = _value_params(headers["content-identifier"])
        instance = params.get("instance", "").strip() or None
        if identifier in (PRIVATE_PARAMETERS, SHARED_PARAMETERS) and instance is None:
            raise XRoadError(
                Code.GLOBAL_CONF_HEADER_FIELD_MISSING_PARAMETER,
                "Field content-identifier is missing parameter instance",
            )
    return DirectoryPart(
        content_identifier=identifier,
        instance=instance,
        location=location,
        hash_algorithm=_digest(hash_uri, "hash-algorithm-id"),
        hash=_b64(_decode(body), _PARSE, f"Hash of {identifier or location}"),
        file_name=headers.get("content-file-name") or None,
        headers=headers,
    )


# --- building ------------------------------------------------------------------------------------

_CRLF = "\r\n"
_BOUNDARY_CHARS = string.ascii_letters + string.digits


def _random_boundary() -> str:
    # The central server's boundaries: 20 random letters and digits.
    return "".join(secrets.choice(_BOUNDARY_CHARS) for _ in range(20))


def _format_expire_date(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def directory_timestamp(at: dt.datetime) -> str:
    """The central server's per-generation folder name: ``yyyyMMddHHmmss`` + 9-digit nanos."""
    utc = at.astimezone(dt.UTC)
    return utc.strftime("%Y%m%d%H%M%S") + f"{utc.microsecond * 1000:09d}"


def content_location(version: int, timestamp: str, file_name: str) -> str:
    """``/V{n}/{timestamp}/{file}``: where the central server serves a content file."""
    return f"/V{version}/{timestamp}/{file_name}"


def _header_value(value: str, what: str) -> str:
    if not value or any(c in value for c in "\r\n\"';") or not value.isprintable():
        raise XRoadError(Code.MALFORMED_GLOBALCONF, f"{what} cannot be written: {value!r}")
    return value


def build_signed_directory(
    entries: Sequence[DirectoryEntry | tuple[str, str | None, str, bytes]],
    *,
    expires: dt.datetime,
    version: int,
    signing_cert: x509.Certificate,
    sign: Callable[[bytes], bytes],
    algorithm: SignatureAlgorithm = SHA512_WITH_RSA,
    hash_algorithm: DigestAlgorithm = SHA512,
    cert_hash_algorithm: DigestAlgorithm = SHA512,
    boundary: str | None = None,
    inner_boundary: str | None = None,
) -> bytes:
    """A signed directory, byte for byte as the NIIS central server writes it.

    ``sign(data)`` returns the signature of ``data`` with ``algorithm`` (ECDSA: DER), e.g.
    ``lambda d: keys.sign(key, algorithm, d)``.  Boundaries are random unless given.
    """
    outer_b = boundary or _random_boundary()
    inner_b = inner_boundary or _random_boundary()
    for b in (outer_b, inner_b):
        if not _TOKEN.match(b):
            raise XRoadError(Code.MALFORMED_GLOBALCONF, f"Unusable MIME boundary {b!r}")
    if outer_b == inner_b:
        raise XRoadError(Code.MALFORMED_GLOBALCONF, "The two MIME boundaries must differ")
    # Each entry is "--boundary", its headers, and (content entries only) a blank line and the
    # hash; the header-only entry ends with the blank line that ends its headers.
    lines = [
        f"--{inner_b}",
        f"Expire-date: {_format_expire_date(expires)}",
        f"Version: {version}",
        "",
    ]
    for entry in entries:
        identifier, instance, location, data = entry
        content_id = _header_value(identifier, "Content identifier")
        if instance is not None:
            content_id += f"; instance='{_header_value(instance, 'Instance')}'"
        lines += [
            f"--{inner_b}",
            f"Content-type: {_OCTET_STREAM}",
            f"Content-transfer-encoding: {_BASE64}",
            f"Content-identifier: {content_id}",
            f"Content-location: {_header_value(location, 'Content location')}",
            f"Hash-algorithm-id: {hash_algorithm.uri}",
            "",
            base64.b64encode(hash_algorithm.digest(bytes(data))).decode("ascii"),
        ]
    lines += [f"--{inner_b}--", ""]
    signed = _CRLF.join(lines).encode("ascii")
    signature = base64.b64encode(sign(signed)).decode("ascii")
    cert_hash = base64.b64encode(
        cert_hash_algorithm.digest(signing_cert.public_bytes(Encoding.DER))
    ).decode("ascii")
    head = _CRLF.join(
        [
            f"Content-Type: multipart/related; charset=UTF-8; boundary={outer_b}",
            "",
            f"--{outer_b}",
            f"Content-Type: multipart/mixed; charset=UTF-8; boundary={inner_b}",
            "",
            "",
        ]
    )
    tail = _CRLF.join(
        [
            "",
            f"--{outer_b}",
            f"Content-Type: {_OCTET_STREAM}",
            f"Content-Transfer-Encoding: {_BASE64}",
            f"Signature-Algorithm-Id: {algorithm.uri}",
            f'Verification-certificate-hash: {cert_hash}; hash-algorithm-id="'
            f'{cert_hash_algorithm.uri}"',
            "",
            signature,
            f"--{outer_b}--",
            "",
        ]
    )
    return head.encode("ascii") + signed + tail.encode("ascii")
