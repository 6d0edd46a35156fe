"""ASiC-E containers: one logged message with its signature and time-stamp (protocols.md §9.3).

An :class:`AsicContainer` is the value inside a ``*.asice`` ZIP: the signed message
(``message.xml``: SOAP bytes or the REST header part), ``META-INF/signatures.xml``, the optional
signature hash chain (``sig-hashchainresult.xml``/``sig-hashchain.xml``), the optional batch
time-stamp (``ts-hashchainresult.xml``/``ts-hashchain.xml`` + ``META-INF/timestamp.tst``) and the
attachments (``attachmentN``: SOAP attachments or the REST body).

:meth:`AsicContainer.parse` applies the loader's checks in the order NIIS ``AsicHelper`` does
(mimetype → message → signature → hash chains → time-stamp → manifests) with its fault codes;
:meth:`AsicContainer.render` writes the entries in NIIS's order with NIIS's manifests, byte for
byte deterministic.  :func:`signer_of` tells whose signature a message must carry (§4.6).
No cryptography happens here: ``crossroad.evidence.verifier`` verifies containers.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import XROAD_NS, ClientId, ServiceId

MIMETYPE = "application/vnd.etsi.asic-e+zip"
ZIP_COMMENT = b"mimetype=" + MIMETYPE.encode()

ENTRY_MIMETYPE = "mimetype"
ENTRY_MESSAGE = "message.xml"
ENTRY_SIGNATURE = "META-INF/signatures.xml"
ENTRY_SIG_HASH_CHAIN_RESULT = "sig-hashchainresult.xml"
ENTRY_SIG_HASH_CHAIN = "sig-hashchain.xml"
ENTRY_TS_HASH_CHAIN_RESULT = "ts-hashchainresult.xml"
ENTRY_TS_HASH_CHAIN = "ts-hashchain.xml"
ENTRY_MANIFEST = "META-INF/manifest.xml"
ENTRY_ASIC_MANIFEST = "META-INF/ASiCManifest.xml"
ENTRY_TIMESTAMP = "META-INF/timestamp.tst"
ATTACHMENT_PREFIX = "attachment"

#: Default cap on the total uncompressed size of a container (zip-bomb guard).
DEFAULT_MAX_SIZE = 256 * 1024 * 1024
#: Default cap on the number of entries of a container.
DEFAULT_MAX_ENTRIES = 10_000

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
_ODF_NS = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
# NIIS writes the ASiC manifest with this (misspelt, "2918" for "02918") namespace; we copy it
# so our containers carry the same bytes.
_ASIC_MANIFEST_NS = "http://uri.etsi.org/2918/v1.2.1#"
_DSIG_NS = "http://www.w3.org/2000/09/xmldsig#"

# NIIS lists the non-META-INF XML entries in its manifest in Java HashMap iteration order of
# their (fixed) names, i.e. by bucket (hash ^ hash >>> 16) & 15, then by insertion order.  For
# these names that order is constant: sig-hashchain.xml (2), message.xml (4),
# ts-hashchainresult.xml (14), sig-hashchainresult.xml (15, put first), ts-hashchain.xml (15).
_MANIFEST_ORDER = (
    ENTRY_SIG_HASH_CHAIN,
    ENTRY_MESSAGE,
    ENTRY_TS_HASH_CHAIN_RESULT,
    ENTRY_SIG_HASH_CHAIN_RESULT,
    ENTRY_TS_HASH_CHAIN,
)
# The DOS epoch: entries carry this time unless the container says when it was created.
_DOS_EPOCH = dt.datetime(1980, 1, 1, tzinfo=dt.UTC)

_XML_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False, dtd_validation=False
)


def _blank(data: bytes | None) -> bool:
    return data is None or not data.strip()


@dataclass(frozen=True)
class AsicContainer:
    """The entries of an ASiC-E container; ``None`` means the entry is absent.

    ``timestamp`` is the DER ``META-INF/timestamp.tst`` of a batch time-stamp; a single
    time-stamp lives inside ``signature`` (``xades:SignatureTimeStamp``).  ``manifest`` and
    ``asic_manifest`` are kept as read; when ``None``, :meth:`render` generates NIIS's.
    ``extra`` holds entries this format does not define (kept, written after the attachments).
    ``created`` is the entry modification time written by :meth:`render`.
    """

    message: bytes
    signature: bytes
    attachments: tuple[bytes, ...] = ()
    sig_hash_chain_result: bytes | None = None
    sig_hash_chain: bytes | None = None
    ts_hash_chain_result: bytes | None = None
    ts_hash_chain: bytes | None = None
    timestamp: bytes | None = None
    manifest: bytes | None = None
    asic_manifest: bytes | None = None
    extra: tuple[tuple[str, bytes], ...] = ()
    created: dt.datetime | None = None

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        message: bytes,
        signature: bytes,
        *,
        attachments: Iterable[bytes] = (),
        sig_hash_chain: tuple[bytes, bytes] | None = None,
        ts_hash_chain: tuple[bytes, bytes] | None = None,
        timestamp: bytes | None = None,
        created: dt.datetime | None = None,
    ) -> AsicContainer:
        """A new container; hash chains are ``(result_xml, chain_xml)`` pairs.

        ``timestamp`` (DER token) belongs with ``ts_hash_chain`` (batch time-stamp); a single
        time-stamp is embedded in ``signature`` instead.
        """
        if (timestamp is None) != (ts_hash_chain is None):
            raise XRoadError(
                Code.ASIC_TIMESTAMP_NOT_FOUND,
                "A batch time-stamp needs both timestamp.tst and the time-stamp hash chain",
            )
        container = cls(
            message=message,
            signature=signature,
            attachments=tuple(attachments),
            sig_hash_chain_result=sig_hash_chain[0] if sig_hash_chain else None,
            sig_hash_chain=sig_hash_chain[1] if sig_hash_chain else None,
            ts_hash_chain_result=ts_hash_chain[0] if ts_hash_chain else None,
            ts_hash_chain=ts_hash_chain[1] if ts_hash_chain else None,
            timestamp=timestamp,
            created=created,
        )
        container._check()
        return container

    @classmethod
    def parse(
        cls,
        data: bytes,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> AsicContainer:
        """Read a container, checking it like NIIS ``AsicContainer.read`` (no cryptography)."""
        entries = read_zip(data, max_size, max_entries)
        known: dict[str, bytes] = {}
        attachments: dict[int, bytes] = {}
        extra: list[tuple[str, bytes]] = []
        for name, content in entries:
            if name in _KNOWN_ENTRIES:
                known[name] = content
            elif name.startswith(ATTACHMENT_PREFIX) and name[len(ATTACHMENT_PREFIX) :].isdigit():
                attachments[int(name[len(ATTACHMENT_PREFIX) :])] = content
            elif not name.endswith("/"):
                extra.append((name, content))
        mimetype = known.get(ENTRY_MIMETYPE)
        if _blank(mimetype):
            raise XRoadError(
                Code.ASIC_MIME_TYPE_NOT_FOUND, f"{ENTRY_MIMETYPE} not found or is empty"
            )
        assert mimetype is not None
        if mimetype.decode("utf-8", "replace").lower() != MIMETYPE:
            raise XRoadError(Code.ASIC_INVALID_MIME_TYPE, f"Invalid mime type: {mimetype[:100]!r}")
        container = cls(
            message=known.get(ENTRY_MESSAGE, b""),
            signature=known.get(ENTRY_SIGNATURE, b""),
            attachments=_attachment_tuple(attachments),
            sig_hash_chain_result=known.get(ENTRY_SIG_HASH_CHAIN_RESULT),
            sig_hash_chain=known.get(ENTRY_SIG_HASH_CHAIN),
            ts_hash_chain_result=known.get(ENTRY_TS_HASH_CHAIN_RESULT),
            ts_hash_chain=known.get(ENTRY_TS_HASH_CHAIN),
            timestamp=known.get(ENTRY_TIMESTAMP),
            manifest=known.get(ENTRY_MANIFEST),
            asic_manifest=known.get(ENTRY_ASIC_MANIFEST),
            extra=tuple(extra),
        )
        container._check()
        return container

    def _check(self) -> None:
        # Same order and codes as NIIS AsicHelper.verify*: a missing *or blank* entry counts
        # as missing.
        if _blank(self.message):
            raise XRoadError(Code.ASIC_MESSAGE_NOT_FOUND, f"{ENTRY_MESSAGE} not found or is empty")
        if _blank(self.signature):
            raise XRoadError(
                Code.ASIC_SIGNATURE_NOT_FOUND, f"{ENTRY_SIGNATURE} not found or is empty"
            )
        _check_pair(
            ENTRY_SIG_HASH_CHAIN_RESULT,
            self.sig_hash_chain_result,
            ENTRY_SIG_HASH_CHAIN,
            self.sig_hash_chain,
        )
        if self.timestamp is not None and not self.timestamp:
            raise XRoadError(
                Code.ASIC_TIMESTAMP_NOT_FOUND, f"{ENTRY_TIMESTAMP} not found or is empty"
            )
        _check_pair(
            ENTRY_TS_HASH_CHAIN_RESULT,
            self.ts_hash_chain_result,
            ENTRY_TS_HASH_CHAIN,
            self.ts_hash_chain,
        )
        for name, value in (
            (ENTRY_MANIFEST, self.manifest),
            (ENTRY_ASIC_MANIFEST, self.asic_manifest),
        ):
            if value is not None and _blank(value):
                raise XRoadError(Code.ASIC_MANIFEST_NOT_FOUND, f"{name} not found or is empty")

    # -- access -------------------------------------------------------------------------------

    @property
    def is_batch_timestamp(self) -> bool:
        return self.ts_hash_chain_result is not None

    @property
    def has_signature_hash_chain(self) -> bool:
        return self.sig_hash_chain_result is not None

    def entry(self, uri: str) -> bytes | None:
        """The bytes a signature or hash-chain reference such as ``/message.xml`` points to."""
        name = uri[1:] if uri.startswith("/") else uri
        fixed = {
            ENTRY_MESSAGE: self.message,
            ENTRY_SIGNATURE: self.signature,
            ENTRY_SIG_HASH_CHAIN_RESULT: self.sig_hash_chain_result,
            ENTRY_SIG_HASH_CHAIN: self.sig_hash_chain,
            ENTRY_TS_HASH_CHAIN_RESULT: self.ts_hash_chain_result,
            ENTRY_TS_HASH_CHAIN: self.ts_hash_chain,
            ENTRY_TIMESTAMP: self.timestamp,
            ENTRY_MANIFEST: self.manifest,
            ENTRY_ASIC_MANIFEST: self.asic_manifest,
        }
        if name in fixed:
            return fixed[name]
        suffix = name[len(ATTACHMENT_PREFIX) :]
        if name.startswith(ATTACHMENT_PREFIX) and suffix.isdigit() and suffix[0] != "0":
            index = int(suffix)
            if 1 <= index <= len(self.attachments):
                return self.attachments[index - 1]
        return None

    def entry_names(self) -> tuple[str, ...]:
        """The entry names :meth:`render` writes, in order."""
        return tuple(name for name, _ in self._entries())

    # -- writing ------------------------------------------------------------------------------

    def render(self) -> bytes:
        """The container as ZIP bytes, entries in NIIS ``AsicHelper.write`` order.

        Deterministic: fixed entry times (``created`` or 1980-01-01), no extra fields.  The
        ``mimetype`` entry is STORED as ETSI ASiC requires (NIIS deflates it; readers accept
        both).
        """
        when = (self.created or _DOS_EPOCH).astimezone(dt.UTC)
        date_time = (
            max(when.year, 1980),
            when.month,
            when.day,
            when.hour,
            when.minute,
            when.second,
        )
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            zf.comment = ZIP_COMMENT
            for name, content in self._entries():
                info = zipfile.ZipInfo(name, date_time=date_time)
                info.create_system = 0
                info.external_attr = 0
                stored = name == ENTRY_MIMETYPE
                info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
                zf.writestr(info, content)
        return out.getvalue()

    def _entries(self) -> list[tuple[str, bytes]]:
        batch = self.ts_hash_chain_result is not None and self.ts_hash_chain is not None
        manifest = self.manifest if self.manifest is not None else self._odf_manifest()
        asic_manifest = self.asic_manifest
        if asic_manifest is None and self.ts_hash_chain_result is not None:
            asic_manifest = asic_manifest_xml(self.ts_hash_chain_result)
        candidates: list[tuple[str, bytes | None]] = [
            (ENTRY_MIMETYPE, MIMETYPE.encode()),
            (ENTRY_MESSAGE, self.message),
            (ENTRY_SIGNATURE, self.signature),
            (ENTRY_SIG_HASH_CHAIN_RESULT, self.sig_hash_chain_result),
            (ENTRY_SIG_HASH_CHAIN, self.sig_hash_chain),
            (ENTRY_TS_HASH_CHAIN_RESULT, self.ts_hash_chain_result),
            (ENTRY_TS_HASH_CHAIN, self.ts_hash_chain),
            (ENTRY_MANIFEST, manifest),
            (ENTRY_ASIC_MANIFEST, asic_manifest),
            # NIIS writes timestamp.tst only together with the time-stamp hash chain.
            (ENTRY_TIMESTAMP, self.timestamp if batch else None),
        ]
        out = [(name, content) for name, content in candidates if content is not None]
        out += [(f"{ATTACHMENT_PREFIX}{i}", a) for i, a in enumerate(self.attachments, 1)]
        out += list(self.extra)
        return out

    def _odf_manifest(self) -> bytes:
        present = {
            ENTRY_MESSAGE: self.message,
            ENTRY_SIG_HASH_CHAIN_RESULT: self.sig_hash_chain_result,
            ENTRY_SIG_HASH_CHAIN: self.sig_hash_chain,
            ENTRY_TS_HASH_CHAIN_RESULT: self.ts_hash_chain_result,
            ENTRY_TS_HASH_CHAIN: self.ts_hash_chain,
        }
        files = [(n, "text/xml") for n in _MANIFEST_ORDER if not _blank(present[n])]
        files += [
            (f"{ATTACHMENT_PREFIX}{i}", "application/octet-stream")
            for i in range(1, len(self.attachments) + 1)
        ]
        return odf_manifest_xml(files)


_KNOWN_ENTRIES = frozenset(
    {
        ENTRY_MIMETYPE,
        ENTRY_MESSAGE,
        ENTRY_SIGNATURE,
        ENTRY_SIG_HASH_CHAIN_RESULT,
        ENTRY_SIG_HASH_CHAIN,
        ENTRY_TS_HASH_CHAIN_RESULT,
        ENTRY_TS_HASH_CHAIN,
        ENTRY_MANIFEST,
        ENTRY_ASIC_MANIFEST,
        ENTRY_TIMESTAMP,
    }
)


def _check_pair(
    result_name: str, result: bytes | None, chain_name: str, chain: bytes | None
) -> None:
    if _blank(result) and _blank(chain):
        return
    if _blank(result):
        raise XRoadError(
            Code.ASIC_HASH_CHAIN_RESULT_NOT_FOUND, f"{result_name} not found or is empty"
        )
    if _blank(chain):
        raise XRoadError(Code.ASIC_HASH_CHAIN_NOT_FOUND, f"{chain_name} not found or is empty")


def _attachment_tuple(found: dict[int, bytes]) -> tuple[bytes, ...]:
    # Attachments are numbered from 1 without gaps; anything else is not a container we wrote
    # and would make "/attachmentN" references ambiguous.
    if sorted(found) != list(range(1, len(found) + 1)):
        raise XRoadError(
            Code.INVALID_ASIC_CONTAINER,
            f"Attachment entries are not numbered 1..N: {sorted(found)[:10]}",
        )
    return tuple(found[i] for i in range(1, len(found) + 1))


def read_zip(
    data: bytes, max_size: int, max_entries: int, code: str = Code.INVALID_ASIC_CONTAINER
) -> list[tuple[str, bytes]]:
    """The entries of a ZIP in central-directory order, refusing bombs, tricks and damage.

    Every failure is ``XRoadError(code, ...)``.  Duplicate names are refused: a streaming
    reader (NIIS reads local headers) and a central-directory reader could otherwise see
    different content under one name.
    """
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except Exception as exc:  # BadZipFile, OSError, ValueError, ...: all mean "not a ZIP"
        raise XRoadError(code, f"Not a ZIP file: {exc}") from exc
    with zf:
        infos = zf.infolist()
        if len(infos) > max_entries:
            raise XRoadError(code, f"Too many entries ({len(infos)})")
        total = sum(i.file_size for i in infos)
        if total > max_size:
            raise XRoadError(
                code,
                f"Container expands to {total} bytes, more than the limit of {max_size}",
            )
        seen: set[str] = set()
        out: list[tuple[str, bytes]] = []
        for info in infos:
            name = info.filename
            _check_entry_name(name, code)
            if name in seen:
                # Duplicate names let a reader and a verifier see different content.
                raise XRoadError(code, f"Duplicate entry {name!r}")
            seen.add(name)
            try:
                with zf.open(info) as fh:
                    # The declared size bounds what zipfile returns; read one more byte anyway.
                    content = fh.read(info.file_size + 1)
            except XRoadError:
                raise
            except Exception as exc:  # CRC errors, bad compression, encryption, truncation
                raise XRoadError(code, f"Cannot read entry {name!r}: {exc}") from exc
            if len(content) != info.file_size:
                raise XRoadError(code, f"Entry {name!r} has a wrong size")
            out.append((name, content))
        return out


def _check_entry_name(name: str, code: str) -> None:
    parts = name.replace("\\", "/").split("/")
    if (
        not name
        or "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or ".." in parts
        or (len(name) > 1 and name[1] == ":")
    ):
        raise XRoadError(code, f"Unsafe entry name {name[:200]!r}")


# -- manifests --------------------------------------------------------------------------------


def _xml_attr(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def odf_manifest_xml(files: Iterable[tuple[str, str]]) -> bytes:
    """``META-INF/manifest.xml`` as NIIS writes it: root entry ``/`` then ``(path, media type)``."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<manifest:manifest xmlns:manifest="{_ODF_NS}" manifest:version="1.2">',
        f'    <manifest:file-entry manifest:media-type="{MIMETYPE}" manifest:full-path="/"/>',
    ]
    for path, media_type in files:
        lines.append(
            f'    <manifest:file-entry manifest:media-type="{_xml_attr(media_type)}"'
            f' manifest:full-path="{_xml_attr(path)}"/>'
        )
    lines.append("</manifest:manifest>")
    return ("\n".join(lines) + "\n").encode()


def asic_manifest_xml(ts_hash_chain_result: bytes, digest: DigestAlgorithm = SHA512) -> bytes:
    """``META-INF/ASiCManifest.xml`` of a batch time-stamp, as NIIS writes it."""
    value = base64.b64encode(digest.digest(ts_hash_chain_result)).decode()
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<asic:ASiCManifest xmlns:asic="{_ASIC_MANIFEST_NS}" xmlns:ds="{_DSIG_NS}">\n'
        f'<asic:SigReference URI="{ENTRY_TIMESTAMP}" MimeType="vnd.etsi.timestamp-token"/>\n'
        f'<asic:DataObjectReference URI="{ENTRY_TS_HASH_CHAIN_RESULT}" MimeType="text/xml">\n'
        f'<ds:DigestMethod Algorithm="{digest.uri}" />\n'
        f"<ds:DigestValue>{value}</ds:DigestValue>\n"
        "</asic:DataObjectReference>\n"
        "</asic:ASiCManifest>"
    ).encode()


# -- the signer of a logged message -------------------------------------------------------------


def signer_of(message: bytes) -> ClientId:
    """The client whose member must have signed ``message`` (protocols.md §4.6, §9.3).

    ``message`` is parsed as SOAP first — a request is signed by its ``client``, a response (body
    element name ending in ``Response``) by its service provider — and, when it is not a SOAP
    envelope, as a REST header part: a request (``VERB\\r\\npath\\r\\nheaders``) is signed by
    ``X-Road-Client``, a response (first byte ``1``–``9``) by the ``x-road-service`` provider.
    """
    envelope = _soap_envelope(message)
    if envelope is not None:
        return _soap_signer(envelope)
    return _rest_signer(message)


def _soap_envelope(message: bytes) -> etree._Element | None:
    try:
        root = etree.fromstring(message, _XML_PARSER)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root.tag != f"{{{SOAP_ENV_NS}}}Envelope":
        return None
    # A DTD in a SOAP message is refused by X-Road's parser (disallow-doctype-decl).
    if getattr(root.getroottree().docinfo, "doctype", ""):
        raise XRoadError(Code.INVALID_MESSAGE, "SOAP message must not contain a DTD")
    return root


def _soap_signer(envelope: etree._Element) -> ClientId:
    header = envelope.find(f"{{{SOAP_ENV_NS}}}Header")
    body = envelope.find(f"{{{SOAP_ENV_NS}}}Body")
    if header is None or body is None:
        raise XRoadError(Code.INVALID_MESSAGE, "Malformed SOAP message: header or body missing")
    children = [c for c in body if isinstance(c.tag, str)]
    if len(children) != 1:
        raise XRoadError(
            Code.INVALID_MESSAGE, "Malformed SOAP message: body must have exactly one child"
        )
    if children[0].tag == f"{{{SOAP_ENV_NS}}}Fault":
        raise XRoadError(Code.INVALID_MESSAGE, "Logged message is a SOAP fault")
    is_response = etree.QName(children[0]).localname.endswith("Response")
    if is_response:
        service = header.find(f"{{{XROAD_NS}}}service")
        if service is None:
            raise XRoadError(Code.INVALID_MESSAGE, "Message header must contain service id")
        return ServiceId.from_xml(service).client
    client = header.find(f"{{{XROAD_NS}}}client")
    if client is None:
        raise XRoadError(Code.INVALID_MESSAGE, "Required field 'client' is missing")
    return ClientId.from_xml(client)


def _rest_signer(message: bytes) -> ClientId:
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise XRoadError(Code.INVALID_MESSAGE, "Message is neither SOAP nor REST") from exc
    lines = text.split("\r\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 2:
        raise XRoadError(Code.INVALID_MESSAGE, "Message is neither SOAP nor REST")
    headers: list[tuple[str, str]] = []
    for line in lines[2:]:
        name, sep, header_value = line.partition(":")
        if not sep or not name:
            raise XRoadError(Code.INVALID_MESSAGE, f"Invalid REST header line {line[:100]!r}")
        headers.append((name.lower(), header_value))
    response = "1" <= text[0] <= "9"
    wanted = "x-road-service" if response else "x-road-client"
    value = next((v for n, v in headers if n == wanted), None)
    if value is None:
        kind = "response" if response else "request"
        raise XRoadError(Code.INVALID_MESSAGE, f"REST {kind} has no {wanted} header")
    if response:
        return ServiceId.from_path(value).client
    return ClientId.from_header(value)
