"""Errors on the wire: SOAP 1.1 faults (§2.5) and REST error responses (§3.3).

Owns :class:`SoapFault` (a fault as parsed, raw bytes kept so a provider's own fault travels
back as-is), :func:`build_fault` (the exact envelope NIIS ``SoapFault.createFaultXml`` writes)
and :func:`rest_error_response` (status, ``X-Road-Error`` and an XML or JSON body chosen by
``Accept``, as NIIS ``ClientRestMessageHandler.sendErrorResponse`` does).

The fault detail NIIS sends is a fresh UUID per error; the core takes it as a parameter so it
stays free of randomness.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from crossroad.errors import XRoadError

SOAP_ENV_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"

#: Faults go back with HTTP 200, this content type and an empty SOAPAction (§2.5).
SOAP_FAULT_CONTENT_TYPE: Final = "text/xml; charset=UTF-8"
SOAP_FAULT_HEADERS: Final = (("Content-Type", SOAP_FAULT_CONTENT_TYPE), ("SOAPAction", ""))

# XML 1.0 cannot carry these at all; StringEscapeUtils.escapeXml10 drops them.
_XML10_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")
# ...and writes these C1 controls as character references.
_XML10_REFERENCED = re.compile("[\x7f-\x84\x86-\x9f]")
_ENTITIES: Final = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;"}


def _dom_text(text: str) -> str:
    # What a DOM serializer writes for a text node: markup characters only.
    text = _XML10_INVALID.sub("", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_xml10(text: str) -> str:
    """Escape text the way Apache Commons ``StringEscapeUtils.escapeXml10`` does."""
    text = _XML10_INVALID.sub("", text)
    text = "".join(_ENTITIES.get(c, c) for c in text)
    return _XML10_REFERENCED.sub(lambda m: f"&#{ord(m.group(0))};", text)


@dataclass(frozen=True)
class SoapFault:
    """A SOAP 1.1 fault: the X-Road fault code and texts; ``raw`` are the bytes received."""

    code: str | None
    string: str | None
    actor: str | None = None
    detail: str | None = None
    raw: bytes = field(default=b"", repr=False)
    charset: str = "UTF-8"

    @property
    def is_fault(self) -> bool:
        return True

    def to_error(self) -> XRoadError:
        """The fault as an error (code normalised to the 7.8 spelling)."""
        return XRoadError(self.code or "", self.string or "")

    def to_bytes(self) -> bytes:
        """The bytes to pass on: as received, or built when the fault was made locally."""
        if self.raw:
            return self.raw
        return build_fault(self.code or "", self.string or "", self.detail, actor=self.actor)


def build_fault(
    code: str, string: str, detail: str | None = None, *, actor: str | None = ""
) -> bytes:
    """The SOAP fault envelope of §2.5, byte for byte as NIIS writes it (UTF-8).

    ``actor`` None omits ``faultactor``; ``detail`` None omits ``detail`` (NIIS always sends
    a UUID there).
    """
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV_NS}">',
        "<SOAP-ENV:Body><SOAP-ENV:Fault>",
        f"<faultcode>{escape_xml10(code)}</faultcode>",
        f"<faultstring>{escape_xml10(string)}</faultstring>",
    ]
    if actor is not None:
        parts.append(f"<faultactor>{escape_xml10(actor)}</faultactor>")
    if detail is not None:
        parts.append(f'<detail><faultDetail xmlns="">{escape_xml10(detail)}</faultDetail></detail>')
    parts.append("</SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>")
    return "".join(parts).encode("utf-8")


def soap_fault(err: XRoadError, detail: str | None = None) -> bytes:
    """The fault for an error: its (prefixed) code, its message, ``detail`` (a UUID)."""
    return build_fault(err.code, err.detail, detail)


# --------------------------------------------------------------------------- REST errors

_XML_TYPES: Final = ("text/xml", "application/xml", "text/*")
JSON_CONTENT_TYPE: Final = "application/json"


def rest_error_content_type(accept: str | Iterable[str] | None) -> str:
    """The error body type for the ``Accept`` header values: the first of ``text/xml``,
    ``application/xml`` or ``text/*`` listed (``text/*`` means ``text/xml``), else JSON.
    Quality values are ignored, as NIIS does."""
    values = [accept] if isinstance(accept, str) else list(accept or ())
    for value in values:
        for item in value.split(","):
            mime_type = item.split(";", 1)[0].strip().lower()
            if mime_type in _XML_TYPES:
                return "text/xml" if mime_type == "text/*" else mime_type
    return JSON_CONTENT_TYPE


def rest_error_status(code: str) -> int:
    """500 for faults raised by a security server (``server.*``), 400 otherwise (§3.3)."""
    return 500 if code.startswith("server.") else 400


def rest_error_response(
    err: XRoadError, accept: str | Iterable[str] | None, detail: str | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) of the error response a client proxy sends for ``err``.

    XML bodies are ``<error><type/><message/><detail/></error>`` with
    ``Content-Type: <type>;charset=utf-8``; JSON bodies are
    ``{"type":…,"message":…,"detail":…}`` with ``Content-Type: application/json`` (the
    header values NIIS's Jetty produces).
    """
    mime_type = rest_error_content_type(accept)
    if mime_type == JSON_CONTENT_TYPE:
        body = json.dumps(
            {"type": err.code, "message": err.detail, "detail": detail},
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode("utf-8")
        content_type = JSON_CONTENT_TYPE
    else:
        detail_xml = f"<detail>{_dom_text(detail)}</detail>" if detail else "<detail/>"
        body = (
            '<?xml version="1.0" encoding="UTF-8" standalone="no"?>'
            f"<error><type>{_dom_text(err.code)}</type>"
            f"<message>{_dom_text(err.detail)}</message>{detail_xml}</error>"
        ).encode()
        content_type = f"{mime_type};charset=utf-8"
    headers = [("X-Road-Error", err.code), ("Content-Type", content_type)]
    return rest_error_status(err.code), headers, body
