"""Reading X-Road XAdES signatures: structure, references, evidence (protocols.md §4.7, §4.9).

Owns :func:`parse_signature`, which turns signature XML into a :class:`ParsedSignature` or
raises ``invalid_xml`` (not XML at all) or ``malformed_signature`` (anything structurally
wrong).  The runtime ships no XSDs, so the parts of ``xmldsig-core-schema.xsd`` and
``xades-schema.xsd`` that verification relies on are checked here in code: element names,
order and cardinality inside ``ds:Signature``, the XAdES qualifying properties, the OCSP
values (at least one) and the extra certificates with their ``CompleteCertificateRefs`` digests
(NIIS ``Signature.getExtraCertificates``).  It accepts the three shapes NIIS produces: the
``asic:XAdESSignatures`` wrapper (any ASiC namespace version) or a bare ``ds:Signature`` root,
fixed or generated Ids, inclusive or exclusive C14N.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from lxml import etree

from crossroad.crypto.algorithms import DigestAlgorithm, SignatureAlgorithm
from crossroad.crypto.xmldsig import (
    C14N_METHODS,
    XADES_NS,
    b64decode,
    check_attributes,
    check_element_only,
    digest_by_uri,
    ds,
    parse_xml,
    signature_by_uri,
    text_of,
    xades,
)
from crossroad.errors import Code, XRoadError

MALFORMED: Final = Code.MALFORMED_SIGNATURE


def _malformed(detail: str) -> XRoadError:
    return XRoadError(MALFORMED, detail)


@dataclass(frozen=True)
class Transform:
    algorithm: str
    prefixes: tuple[str, ...] = ()  # exclusive C14N InclusiveNamespaces PrefixList


@dataclass(frozen=True)
class Reference:
    """One ``ds:Reference`` of ``ds:SignedInfo``."""

    uri: str
    digest_method: DigestAlgorithm
    digest_value: bytes
    transforms: tuple[Transform, ...] = ()
    id: str | None = None
    type: str | None = None


@dataclass(frozen=True, eq=False)
class ParsedSignature:
    """A structurally valid signature; the lxml tree is kept for canonicalisation."""

    root: etree._Element
    signature: etree._Element
    signed_info: etree._Element
    c14n_method: str
    c14n_prefixes: tuple[str, ...]
    algorithm: SignatureAlgorithm
    references: tuple[Reference, ...]
    signature_value: bytes
    signing_cert: x509.Certificate | None
    extra_certs: tuple[x509.Certificate, ...]
    ocsp_responses: tuple[bytes, ...]
    signing_time: dt.datetime | None
    timestamp: bytes | None

    def references_uri(self, uri: str) -> bool:
        return any(r.uri == uri for r in self.references)

    def element_by_id(self, id_: str) -> etree._Element | None:
        """The first element (document order) whose ``Id`` attribute is ``id_``."""
        # What ``//*[@Id = $id]`` selects, without compiling an XPath expression every time.
        for el in self.root.iter():
            if isinstance(el.tag, str) and el.get("Id") == id_:
                return el
        return None


# --------------------------------------------------------------------------- structure


def _attrs(el: etree._Element, allowed: frozenset[str]) -> None:
    check_attributes(el, allowed, MALFORMED)


def _children(el: etree._Element) -> list[etree._Element]:
    return check_element_only(el, MALFORMED)


def _optional(children: list[etree._Element], tag: str) -> etree._Element | None:
    """Pop the next child if it is ``tag`` (an optional element of a sequence)."""
    if children and children[0].tag == tag:
        return children.pop(0)
    return None


def _required(children: list[etree._Element], tag: str, parent: str) -> etree._Element:
    """Pop the next child, which must be ``tag`` (a required element of a sequence)."""
    found = _optional(children, tag)
    if found is None:
        raise _malformed(f"{parent} must contain {etree.QName(tag).localname}")
    return found


def _no_more(children: list[etree._Element], parent: str) -> None:
    if children:
        raise _malformed(f"Unexpected element {children[0].tag} in {parent}")


_NO_ATTRS: Final = frozenset[str]()
_ID: Final = frozenset({"Id"})


def _algorithm(el: etree._Element) -> str:
    _attrs(el, frozenset({"Algorithm"}))
    value = el.get("Algorithm")
    if not value:
        raise _malformed(f"{etree.QName(el).localname} without Algorithm")
    return value


def _prefixes(el: etree._Element) -> tuple[str, ...]:
    for child in el:
        if isinstance(child.tag, str) and etree.QName(child).localname == "InclusiveNamespaces":
            return tuple((child.get("PrefixList") or "").split())
    return ()


def _transforms(el: etree._Element) -> tuple[Transform, ...]:
    _attrs(el, _NO_ATTRS)
    children = _children(el)
    if not children:
        raise _malformed("Transforms without Transform")
    out = []
    for t in children:
        if t.tag != ds("Transform"):
            raise _malformed(f"Unexpected element {t.tag} in Transforms")
        algorithm = _algorithm(t)
        if algorithm not in C14N_METHODS:
            raise _malformed(f"Unsupported transform {algorithm}")
        out.append(Transform(algorithm, _prefixes(t)))
    return tuple(out)


def _reference(el: etree._Element) -> Reference:
    _attrs(el, frozenset({"Id", "URI", "Type"}))
    children = _children(el)
    transforms_el = _optional(children, ds("Transforms"))
    method_el = _required(children, ds("DigestMethod"), "Reference")
    value_el = _required(children, ds("DigestValue"), "Reference")
    _no_more(children, "Reference")
    uri = el.get("URI")
    if uri is None:
        raise _malformed("Reference without URI")
    method = digest_by_uri(_algorithm(method_el), MALFORMED)
    return Reference(
        uri=uri,
        digest_method=method,
        digest_value=b64decode(value_el.text, MALFORMED, "DigestValue"),
        transforms=_transforms(transforms_el) if transforms_el is not None else (),
        id=el.get("Id"),
        type=el.get("Type"),
    )


def _signed_info(
    el: etree._Element,
) -> tuple[str, tuple[str, ...], SignatureAlgorithm, tuple[Reference, ...]]:
    _attrs(el, _ID)
    children = _children(el)
    c14n_el = _required(children, ds("CanonicalizationMethod"), "SignedInfo")
    method_el = _required(children, ds("SignatureMethod"), "SignedInfo")
    c14n = _algorithm(c14n_el)
    if c14n not in C14N_METHODS:
        raise _malformed(f"Unsupported canonicalization method {c14n}")
    algorithm = signature_by_uri(_algorithm(method_el), MALFORMED)
    if not children:
        raise _malformed("SignedInfo must contain at least one Reference")
    refs = []
    for ref in children:
        if ref.tag != ds("Reference"):
            raise _malformed(f"Unexpected element {ref.tag} in SignedInfo")
        refs.append(_reference(ref))
    return c14n, _prefixes(c14n_el), algorithm, tuple(refs)


def _load_cert(text: str | None, what: str) -> x509.Certificate:
    return _cert_from_text(text or "", what)


# Every message of a member carries the same signing certificate (and OCSP responses, below):
# the same text is decoded and read once.  A pure function of the text; a failure is not
# cached and is raised again every time.
@functools.lru_cache(maxsize=1024)
def _cert_from_text(text: str, what: str) -> x509.Certificate:
    der = b64decode(text, MALFORMED, what)
    try:
        cert = x509.load_der_x509_certificate(der)
        # cryptography decodes these lazily; Java rejects such a certificate when reading it.
        # Its decoding errors are of several unrelated types (ValueError, UnsupportedAlgorithm,
        # DuplicateExtension, ...): all mean the same here.
        cert.public_key()
        _ = cert.extensions, cert.subject, cert.issuer, cert.signature_algorithm_oid
    except Exception as exc:
        raise _malformed(f"Cannot read {what}: {exc}") from exc
    return cert


def _signing_cert(key_info: etree._Element | None) -> x509.Certificate | None:
    if key_info is None:
        return None
    _attrs(key_info, _ID)
    if not _children(key_info):
        raise _malformed("KeyInfo must not be empty")
    for data in key_info.iterchildren(ds("X509Data")):
        for cert in data.iterchildren(ds("X509Certificate")):
            return _load_cert(cert.text, "signing certificate")
    return None


_DATETIME = re.compile(r"(\d{4,})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?")


def parse_datetime(text: str) -> dt.datetime:
    """An ``xsd:dateTime`` as an aware UTC datetime (no zone = UTC)."""
    m = _DATETIME.fullmatch(text.strip())
    if not m:
        raise _malformed(f"Invalid xsd:dateTime {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micros = int((m.group(7) or ".0")[1:7].ljust(6, "0"))
    zone = m.group(8)
    tz = dt.UTC
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        tz = dt.timezone(sign * dt.timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        value = dt.datetime(year, month, day, hour, minute, second, micros, tzinfo=tz)
    except (ValueError, OverflowError) as exc:
        raise _malformed(f"Invalid xsd:dateTime {text!r}") from exc
    return value.astimezone(dt.UTC)


# --------------------------------------------------------------------------- XAdES parts


_UNSIGNED_SIG_PROPS: Final = frozenset(
    xades(n)
    for n in (
        "CounterSignature",
        "SignatureTimeStamp",
        "CompleteCertificateRefs",
        "CompleteRevocationRefs",
        "AttributeCertificateRefs",
        "AttributeRevocationRefs",
        "SigAndRefsTimeStamp",
        "RefsOnlyTimeStamp",
        "CertificateValues",
        "RevocationValues",
        "AttrAuthoritiesCertValues",
        "AttributeRevocationValues",
        "ArchiveTimeStamp",
    )
)


@dataclass(frozen=True)
class _Qualifying:
    signing_time: dt.datetime | None
    unsigned: etree._Element | None  # xades:UnsignedSignatureProperties


def _qualifying(obj: etree._Element | None) -> _Qualifying:
    if obj is None:
        raise _malformed("Signature has no ds:Object")
    props = next(obj.iterchildren(xades("QualifyingProperties")), None)
    if props is None:
        raise _malformed("ds:Object has no xades:QualifyingProperties")
    _attrs(props, frozenset({"Target", "Id"}))
    if props.get("Target") is None:
        raise _malformed("QualifyingProperties without Target")
    children = _children(props)
    signed = _optional(children, xades("SignedProperties"))
    unsigned = _optional(children, xades("UnsignedProperties"))
    _no_more(children, "QualifyingProperties")
    signing_time = None
    if signed is not None:
        _attrs(signed, _ID)
        parts = _children(signed)
        ssp = _optional(parts, xades("SignedSignatureProperties"))
        _optional(parts, xades("SignedDataObjectProperties"))
        _no_more(parts, "SignedProperties")
        if ssp is not None:
            first = _children(ssp)
            if first and first[0].tag == xades("SigningTime"):
                signing_time = parse_datetime(text_of(first[0]))
    usp = None
    if unsigned is not None:
        _attrs(unsigned, _ID)
        parts = _children(unsigned)
        usp = _optional(parts, xades("UnsignedSignatureProperties"))
        _optional(parts, xades("UnsignedDataObjectProperties"))
        _no_more(parts, "UnsignedProperties")
        if usp is not None:
            _attrs(usp, _ID)
            for child in _children(usp):
                if (
                    child.tag not in _UNSIGNED_SIG_PROPS
                    and etree.QName(child).namespace == XADES_NS
                ):
                    raise _malformed(
                        f"Unexpected element {child.tag} in UnsignedSignatureProperties"
                    )
    return _Qualifying(signing_time, usp)


def _ocsp_values(usp: etree._Element | None) -> tuple[bytes, ...]:
    out = []
    if usp is not None:
        for values in usp.iterchildren(xades("RevocationValues")):
            parts = _children(values)
            _optional(parts, xades("CRLValues"))
            ocsp_values = _optional(parts, xades("OCSPValues"))
            _optional(parts, xades("OtherValues"))
            _no_more(parts, "RevocationValues")
            if ocsp_values is None:
                continue
            for value in _children(ocsp_values):
                if value.tag != xades("EncapsulatedOCSPValue"):
                    raise _malformed(f"Unexpected element {value.tag} in OCSPValues")
                out.append(_ocsp_from_text(text_of(value)))
    if not out:
        raise _malformed("Could not get any OCSP elements from signature")
    return tuple(out)


@functools.lru_cache(maxsize=1024)
def _ocsp_from_text(text: str) -> bytes:
    der = b64decode(text, MALFORMED, "EncapsulatedOCSPValue")
    try:
        ocsp.load_der_ocsp_response(der)
    except ValueError as exc:
        raise _malformed(f"Cannot read OCSP response: {exc}") from exc
    return der


def _extra_certs(usp: etree._Element | None, root: etree._Element) -> tuple[x509.Certificate, ...]:
    out: list[x509.Certificate] = []
    if usp is None:
        return ()
    for refs in usp.iterchildren(xades("CompleteCertificateRefs")):
        cert_refs = _children(refs)
        holder = _required(cert_refs, xades("CertRefs"), "CompleteCertificateRefs")
        _no_more(cert_refs, "CompleteCertificateRefs")
        assert holder is not None
        certs = _children(holder)
        if not certs:
            raise _malformed("CertRefs must contain at least one Cert")
        for ref in certs:
            if ref.tag != xades("Cert"):
                raise _malformed(f"Unexpected element {ref.tag} in CertRefs")
            out.append(_referenced_cert(ref, root))
    return tuple(out)


def _referenced_cert(ref: etree._Element, root: etree._Element) -> x509.Certificate:
    parts = _children(ref)
    digest_el = _required(parts, xades("CertDigest"), "Cert")
    _required(parts, xades("IssuerSerial"), "Cert")
    _no_more(parts, "Cert")
    cert_id = (ref.get("URI") or "").removeprefix("#")
    if not cert_id:
        raise _malformed("Missing certificate id attribute")
    found = root.xpath("//*[@Id = $id]", id=cert_id)
    if not isinstance(found, list) or not found or not isinstance(found[0], etree._Element):
        raise _malformed(f"Could not find certificate with id {cert_id}")
    cert = _load_cert(text_of(found[0]), f"certificate {cert_id}")
    dparts = _children(digest_el)
    if len(dparts) != 2 or [p.tag for p in dparts] != [ds("DigestMethod"), ds("DigestValue")]:
        raise _malformed("CertDigest must hold DigestMethod and DigestValue")
    method = digest_by_uri(_algorithm(dparts[0]), MALFORMED)
    expected = b64decode(dparts[1].text, MALFORMED, "certificate DigestValue")
    if method.digest(cert.public_bytes(Encoding.DER)) != expected:
        raise _malformed(f"Certificate ({cert.serial_number}) digest does not match")
    return cert


def _timestamp(root: etree._Element) -> bytes | None:
    # NIIS reads the first EncapsulatedTimeStamp, or (older signatures) SignatureTimeStamp text.
    for tag in ("EncapsulatedTimeStamp", "SignatureTimeStamp"):
        for el in root.iter(xades(tag)):
            return b64decode(text_of(el), MALFORMED, f"xades:{tag}")
    return None


# --------------------------------------------------------------------------- entry points


def find_signature(root: etree._Element) -> etree._Element:
    if root.tag == ds("Signature"):
        return root
    found = next(root.iter(ds("Signature")), None)
    if found is None:
        raise _malformed("Could not find element ds:Signature")
    return found


def _check_unique_ids(root: etree._Element) -> None:
    # Same-document references resolve by Id; a second element with the same Id could stand
    # in for the signed one (the XSDs declare these attributes xsd:ID, hence unique).
    seen: set[str] = set()
    for el in root.iter():
        value = el.get("Id") if isinstance(el.tag, str) else None
        if value is None:
            continue
        if value in seen:
            raise _malformed(f"Duplicate Id {value!r}")
        seen.add(value)


def parse_signature(xml: bytes) -> ParsedSignature:
    """Parse and structurally check signature XML (``invalid_xml`` / ``malformed_signature``)."""
    root = parse_xml(xml, Code.INVALID_XML, "Signature")
    _check_unique_ids(root)
    sig = find_signature(root)
    _attrs(sig, _ID)
    children = _children(sig)
    signed_info = _required(children, ds("SignedInfo"), "Signature")
    value_el = _required(children, ds("SignatureValue"), "Signature")
    key_info = _optional(children, ds("KeyInfo"))
    objects = []
    for obj in children:
        if obj.tag != ds("Object"):
            raise _malformed(f"Unexpected element {obj.tag} in Signature")
        _attrs(obj, frozenset({"Id", "MimeType", "Encoding"}))
        objects.append(obj)
    c14n, prefixes, algorithm, references = _signed_info(signed_info)
    _attrs(value_el, _ID)
    if len(value_el):
        raise _malformed("SignatureValue must hold only base64 text")
    signature_value = b64decode(value_el.text, MALFORMED, "SignatureValue")
    signing_cert = _signing_cert(key_info)
    qualifying = _qualifying(objects[0] if objects else None)
    extra = _extra_certs(qualifying.unsigned, root)
    ocsp_responses = _ocsp_values(qualifying.unsigned)
    return ParsedSignature(
        root=root,
        signature=sig,
        signed_info=signed_info,
        c14n_method=c14n,
        c14n_prefixes=prefixes,
        algorithm=algorithm,
        references=references,
        signature_value=signature_value,
        signing_cert=signing_cert,
        extra_certs=extra,
        ocsp_responses=ocsp_responses,
        signing_time=qualifying.signing_time,
        timestamp=_timestamp(root),
    )


def timestamp_token(parsed: ParsedSignature) -> bytes | None:
    """The DER time-stamp token embedded by single time-stamping, if any (§9.2)."""
    return parsed.timestamp


def signature_value(signature_xml: bytes) -> bytes:
    """The decoded ``ds:SignatureValue``: the data a single time-stamp covers (§9.2)."""
    root = parse_xml(signature_xml, Code.INVALID_XML, "Signature")
    sig = find_signature(root)
    value = next(sig.iterchildren(ds("SignatureValue")), None)
    if value is None:
        raise _malformed("Signature has no ds:SignatureValue")
    return b64decode(value.text, MALFORMED, "SignatureValue")
