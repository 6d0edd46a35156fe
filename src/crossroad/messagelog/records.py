"""Message-log records: what a security server keeps of every signed message (protocols.md §9.1).

A :class:`MessageRecord` is one request or response as signed and sent (or received and
verified): the ``/message.xml`` bytes (SOAP, or the REST header part), the signature XML and its
hash chain when it was signed in a batch, the query id, the local client it belongs to, the
service, and ``signatureHash`` = base64 H(signature XML) with the log's digest (SHA-512 by
default, NIIS ``message-log.hash-algo-id``).  As in NIIS, the client of a record is the *local*
one: the service client on the consumer's server, the service provider on the provider's.

**Body logging** can be switched off, globally or for some service provider subsystems
(:class:`BodyLogging`).  Then the SOAP body's element is emptied and attachments are dropped, or
the REST header part keeps only its request line and ``x-road-*`` headers and the body is
dropped.  The X-Road header fields stay, so the record is still found and time-stamped, but
**such a record's container can never verify**: what was signed is gone (NIIS's documented
behaviour, UG-SIGDOC §3.1).

:func:`container_for` turns a stored, time-stamped record into its ASiC-E container (§9.3) and
:func:`container_name` names it as NIIS does (``{queryId}-request|response-{id base 32}.asice``).
Pure functions of bytes and values: no clock, no database.
"""

from __future__ import annotations

import base64
import datetime as dt
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from lxml import etree

from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.crypto.asic import AsicContainer
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, ServiceId
from crossroad.wire.rest import RestRequest, RestResponse, parse_header_part
from crossroad.wire.soap import SoapMessage

SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
#: NIIS truncates the query id part of container names to this many characters.
MAX_QUERY_ID_IN_NAME = 226

_XML_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=True, load_dtd=False, dtd_validation=False
)


class Side(StrEnum):
    """Which proxy logged the record: the consumer's (client) or the provider's (server)."""

    CLIENT = "client"
    SERVER = "server"


class Grouping(StrEnum):
    """How archive files are split (NIIS ``archive-grouping``)."""

    NONE = "none"
    MEMBER = "member"
    SUBSYSTEM = "subsystem"


@dataclass(frozen=True)
class BodyLogging:
    """Whether message bodies are kept (NIIS ``message-body-logging`` and its overrides).

    ``local_overrides`` lists provider subsystems served by this server, ``remote_overrides``
    provider subsystems elsewhere; for them the global setting is inverted.
    """

    enabled: bool = True
    local_overrides: frozenset[ClientId] = frozenset()
    remote_overrides: frozenset[ClientId] = frozenset()

    def logs_body(self, side: Side, provider: ClientId) -> bool:
        overrides = self.remote_overrides if side is Side.CLIENT else self.local_overrides
        return self.enabled != (provider in overrides)


@dataclass(frozen=True)
class MessageRecord:
    """One logged message, as it goes into the database."""

    side: Side
    response: bool
    query_id: str
    client: ClientId  # the local client: service client (consumer side) or provider
    service: ServiceId | None
    rest: bool
    message: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    signature_hash: str
    time_ms: int
    x_request_id: str | None = None
    hash_chain_result: bytes | None = field(default=None, repr=False)
    hash_chain: bytes | None = field(default=None, repr=False)
    body_logged: bool = True


@dataclass(frozen=True)
class StoredRecord:
    """A message record read back from the store, with its time-stamp when it has one.

    ``timestamp`` is the DER token of the time-stamp record; for a single time-stamp it is
    also embedded in ``signature``, for a batch ``ts_hash_chain_result``/``ts_hash_chain``
    link the record to it.
    """

    id: int
    record: MessageRecord
    attachments: int = 0
    timestamp_id: int | None = None
    timestamp: bytes | None = field(default=None, repr=False)
    ts_hash_chain_result: bytes | None = field(default=None, repr=False)
    ts_hash_chain: bytes | None = field(default=None, repr=False)
    archived: bool = False
    archive_file: str | None = None

    @property
    def stamped(self) -> bool:
        return self.timestamp_id is not None

    @property
    def batch_stamped(self) -> bool:
        return self.ts_hash_chain is not None


def signature_hash(signature: bytes, digest: DigestAlgorithm = SHA512) -> str:
    """``signatureHash``: base64 of H(signature XML bytes)."""
    return base64.b64encode(digest.digest(signature)).decode("ascii")


def time_ms(at: dt.datetime) -> int:
    """A record time: milliseconds since the epoch."""
    return int(at.timestamp() * 1000)


def from_ms(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(value / 1000, dt.UTC)


# --------------------------------------------------------------------------- building records

ParsedMessage = SoapMessage | RestRequest | RestResponse


def parse_message(message: bytes, rest: bool) -> ParsedMessage:
    """The header fields of a signed message (``logging_failed`` when they cannot be read)."""
    try:
        if rest:
            return parse_header_part(message)
        return SoapMessage.parse(message, None)
    except XRoadError as err:
        raise XRoadError(Code.LOGGING_FAILED, f"Cannot log message: {err.detail}") from err


def new_record(
    side: Side,
    response: bool,
    message: bytes,
    signature: bytes,
    *,
    rest: bool,
    at: dt.datetime,
    x_request_id: str | None = None,
    hash_chain_result: bytes | None = None,
    hash_chain: bytes | None = None,
    body_logging: BodyLogging | None = None,
    digest: DigestAlgorithm = SHA512,
    parsed: ParsedMessage | None = None,
) -> MessageRecord:
    """The record of one signed message; ``parsed`` saves parsing ``message`` again."""
    parsed = parsed if parsed is not None else parse_message(message, rest)
    client, service = _parties(parsed)
    if client is None or service is None:
        raise XRoadError(Code.LOGGING_FAILED, "Cannot log message: no client or service header")
    local = client if side is Side.CLIENT else service.client
    body = (body_logging or BodyLogging()).logs_body(side, service.client)
    logged = message if body else loggable_without_body(message, parsed)
    query_id = parsed.query_id or ""
    if not query_id:
        raise XRoadError(Code.LOGGING_FAILED, "Cannot log message: no query id")
    return MessageRecord(
        side=side,
        response=response,
        query_id=query_id,
        client=local,
        service=service,
        rest=rest,
        message=logged,
        signature=signature,
        signature_hash=signature_hash(signature, digest),
        time_ms=time_ms(at),
        x_request_id=x_request_id or getattr(parsed, "request_id", None),
        hash_chain_result=hash_chain_result,
        hash_chain=hash_chain,
        body_logged=body,
    )


def _parties(parsed: ParsedMessage) -> tuple[ClientId | None, ServiceId | None]:
    if isinstance(parsed, SoapMessage):
        return parsed.header.client, parsed.header.service
    return parsed.client, parsed.service


def loggable_without_body(message: bytes, parsed: ParsedMessage) -> bytes:
    """The message as kept when bodies are not logged (see the module docstring)."""
    if isinstance(parsed, RestRequest | RestResponse):
        return parsed.filtered_header_part()
    return _empty_soap_body(message)


def _empty_soap_body(message: bytes) -> bytes:
    try:
        root = etree.fromstring(message, _XML_PARSER)
    except etree.XMLSyntaxError as exc:
        raise XRoadError(Code.LOGGING_FAILED, f"Cannot log message: {exc}") from exc
    body = root.find(f"{{{SOAP_ENV_NS}}}Body")
    if body is None:
        raise XRoadError(Code.LOGGING_FAILED, "Cannot log message: no SOAP body")
    for child in body:
        if isinstance(child.tag, str):
            tail = child.tail
            child.clear()  # drops children, text and attributes; the element name stays
            child.tail = tail
    docinfo = root.getroottree().docinfo
    encoding = docinfo.encoding or "UTF-8"
    out = etree.tostring(root, xml_declaration=True, encoding=encoding)
    return out if isinstance(out, bytes) else out.encode()


# --------------------------------------------------------------------------- containers


def escape_query_id(query_id: str) -> str:
    """Java ``URLEncoder.encode`` (space as ``+``), with ``/`` escaped (NIIS ``AsicUtils``)."""
    return urllib.parse.quote_plus(query_id, safe="*").replace("~", "%7E")


def _base32(value: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuv"
    if value == 0:
        return "0"
    out = []
    value &= (1 << 64) - 1  # Long.toUnsignedString
    while value:
        value, rest = divmod(value, 32)
        out.append(digits[rest])
    return "".join(reversed(out))


def container_name(query_id: str, response: bool, record_id: int) -> str:
    """``{escaped queryId}-request|response-{id in base 32}.asice``."""
    kind = "response" if response else "request"
    escaped = escape_query_id(query_id)[:MAX_QUERY_ID_IN_NAME]
    return f"{escaped}-{kind}-{_base32(record_id)}.asice"


def record_id_from_name(name: str) -> int | None:
    """The record id a container name carries (``None`` if it is not one of ours)."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or suffix != "asice":
        return None
    _, dash, tail = stem.rpartition("-")
    if not dash or not tail:
        return None
    try:
        return int(tail, 32)
    except ValueError:
        return None


def container_for(stored: StoredRecord, attachments: Sequence[bytes] = ()) -> AsicContainer:
    """The ASiC-E container of a time-stamped record (``asic_timestamp_not_found`` if it is
    not stamped yet)."""
    record = stored.record
    if not stored.stamped or stored.timestamp is None:
        raise XRoadError(
            Code.ASIC_TIMESTAMP_NOT_FOUND, "Message signature has not been timestamped yet!"
        )
    sig_chain = (
        (record.hash_chain_result, record.hash_chain)
        if record.hash_chain_result is not None and record.hash_chain is not None
        else None
    )
    created = from_ms(record.time_ms)
    if stored.batch_stamped:
        assert stored.ts_hash_chain_result is not None
        assert stored.ts_hash_chain is not None
        return AsicContainer.build(
            record.message,
            record.signature,
            attachments=attachments,
            sig_hash_chain=sig_chain,
            ts_hash_chain=(stored.ts_hash_chain_result, stored.ts_hash_chain),
            timestamp=stored.timestamp,
            created=created,
        )
    # Single time-stamp: the token is already embedded in the stored signature.
    return AsicContainer.build(
        record.message,
        record.signature,
        attachments=attachments,
        sig_hash_chain=sig_chain,
        created=created,
    )


# --------------------------------------------------------------------------- archive groups


def group_name(client: ClientId, grouping: Grouping) -> str:
    """The archive group of a record's client: ``''``, ``INST/CLASS/CODE`` or with ``/SUB``."""
    if grouping is Grouping.NONE:
        return ""
    if grouping is Grouping.MEMBER:
        return "/".join(client.member_id().parts())
    return "/".join(client.parts())


def with_signature(
    record: MessageRecord, signature: bytes, digest: DigestAlgorithm
) -> MessageRecord:
    """The record with a new signature (a single time-stamp embedded) and its hash."""
    return replace(record, signature=signature, signature_hash=signature_hash(signature, digest))
