"""The X-Road XAdES signature profile: building signatures and embedding time-stamps (§4.6–4.7).

Owns :class:`MessagePart`, :func:`build_signature` (NIIS ``SignatureXmlBuilder``),
:func:`sign_batch` (NIIS ``SignatureCtx``: one request with one part gets the simple shape,
anything else one signature over a hash chain result) and :func:`add_timestamp` (§9.2).
Reading and verifying live in :mod:`crossroad.crypto.xades_parse` and
:mod:`crossroad.crypto.xades_verify`; their entry points are re-exported here.

The produced document follows the §4.7 template: ``asic:XAdESSignatures`` with the fixed Ids
(``signature``, ``signature-reference-0/1``, ``signed-properties``, ``signature-value``,
``encapsulated-cert-N``, ``ocsp-response-N``, ``complete-certificate-refs``), inclusive C14N
1.0 in document context for SignedInfo and SignedProperties, reference digests with the
signature algorithm's digest, ECDSA values as raw ``r||s``.  Private keys never come here:
the caller's ``sign`` callable receives the canonical SignedInfo bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from crossroad.crypto import hashchain, keys
from crossroad.crypto.algorithms import (
    SHA512,
    SHA512_WITH_RSA,
    DigestAlgorithm,
    SignatureAlgorithm,
)
from crossroad.crypto.certs import java_rfc2253
from crossroad.crypto.hashchain import MESSAGE, SIG_HASH_CHAIN, SIG_HASH_CHAIN_RESULT
from crossroad.crypto.xades_parse import (
    ParsedSignature,
    find_signature,
    parse_signature,
    signature_value,
    timestamp_token,
)
from crossroad.crypto.xades_verify import SignatureInfo, verify_parsed, verify_signature
from crossroad.crypto.xmldsig import (
    ASIC_NS,
    C14N_10,
    DS_NS,
    XADES_NS,
    XSI_NS,
    b64encode,
    canonicalize,
    ds,
    parse_xml,
    xades,
)
from crossroad.errors import Code, XRoadError

__all__ = [
    "MessagePart",
    "ParsedSignature",
    "SignatureInfo",
    "SignedMessage",
    "add_timestamp",
    "build_signature",
    "parse_signature",
    "sign_batch",
    "signature_value",
    "timestamp_token",
    "verify_parsed",
    "verify_signature",
]

SIGNATURE_POLICY_ID: Final = "urn:oid:1.3.6.1.4.1.3516.16.2"
SIGNATURE_POLICY_DESCRIPTION: Final = (
    "Profile for High Performance Digital Signatures (version 1.2)"
)
# SHA-512 of the policy document; always SHA-512 whatever the signature digest (§4.7).
SIGNATURE_POLICY_HASH: Final = (
    "BuO0EDNfkxSVlUbxCzmQPzX1AUF1/xx9ytWHk3/6SAOePxQiniEfDYk+90QeYb3lWpV3Izhuz9fKaYyE+lTcXw=="
)
SIGNATURE_POLICY_SPURI: Final = "https://repo.cyber.ee/dsig-profile-1.2.pdf"
SIGNED_PROPERTIES_TYPE: Final = "http://uri.etsi.org/01903#SignedProperties"
MIME_TEXT_XML: Final = "text/xml"
MIME_HASH_CHAIN_RESULT: Final = "application/hash-chain-result"

_NSMAP: Final = {"asic": ASIC_NS, "ds": DS_NS, "xades": XADES_NS, "xsi": XSI_NS}
_DECLARATION: Final = b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>'
_MAX_LINE: Final = 76


@dataclass(frozen=True)
class MessagePart:
    """One signed input: ``/message.xml`` or ``/attachmentN`` (§4.6).

    Give the raw ``data`` (the message itself must be given so), or only ``digest_value``
    made with ``digest`` (attachments hashed while streaming).
    """

    name: str
    digest: DigestAlgorithm
    data: bytes | None = None
    digest_value: bytes | None = None

    def __post_init__(self) -> None:
        if self.data is None and self.digest_value is None:
            raise XRoadError(Code.CANNOT_CREATE_SIGNATURE, f"Part {self.name} has no data")

    def digest_with(self, algorithm: DigestAlgorithm) -> bytes:
        if self.data is not None:
            return algorithm.digest(self.data)
        if self.digest_value is not None and self.digest == algorithm:
            return self.digest_value
        raise XRoadError(
            Code.CANNOT_CREATE_SIGNATURE,
            f"Part {self.name} is hashed with {self.digest.name}, the signature needs {algorithm}",
        )


@dataclass(frozen=True)
class SignedMessage:
    """The signature data of one request of a batch (NIIS ``SignatureData``)."""

    signature_xml: bytes
    hash_chain_result: bytes | None = None
    hash_chain: bytes | None = None


# --------------------------------------------------------------------------- building


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, tag)
    for key, value in attrs.items():
        el.set(key, value)
    if text is not None:
        el.text = text
    return el


def _lines(parent: etree._Element) -> None:
    # Santuario's layout: a line break after the start tag and after every child.
    parent.text = "\n"
    for child in parent:
        child.tail = "\n"


def _digest_pair(parent: etree._Element, digest: DigestAlgorithm, value: str) -> None:
    _sub(parent, ds("DigestMethod"), Algorithm=digest.uri)
    _sub(parent, ds("DigestValue"), value)


def _cert_id(parent: etree._Element, cert: x509.Certificate, digest: DigestAlgorithm) -> None:
    cert_digest = _sub(parent, xades("CertDigest"))
    _digest_pair(cert_digest, digest, b64encode(digest.digest(cert.public_bytes(Encoding.DER))))
    issuer_serial = _sub(parent, xades("IssuerSerial"))
    _sub(issuer_serial, ds("X509IssuerName"), java_rfc2253(cert.issuer))
    _sub(issuer_serial, ds("X509SerialNumber"), str(cert.serial_number))


def _signed_properties(
    props: etree._Element,
    cert: x509.Certificate,
    digest: DigestAlgorithm,
    signing_time: dt.datetime,
    mime_type: str,
) -> etree._Element:
    signed = _sub(props, xades("SignedProperties"), Id="signed-properties")
    ssp = _sub(signed, xades("SignedSignatureProperties"))
    _sub(ssp, xades("SigningTime"), _xsd_datetime(signing_time))
    _cert_id(_sub(_sub(ssp, xades("SigningCertificate")), xades("Cert")), cert, digest)
    policy = _sub(_sub(ssp, xades("SignaturePolicyIdentifier")), xades("SignaturePolicyId"))
    policy_id = _sub(policy, xades("SigPolicyId"))
    _sub(policy_id, xades("Identifier"), SIGNATURE_POLICY_ID, Qualifier="OIDAsURN")
    _sub(policy_id, xades("Description"), SIGNATURE_POLICY_DESCRIPTION)
    _digest_pair(_sub(policy, xades("SigPolicyHash")), SHA512, SIGNATURE_POLICY_HASH)
    qualifier = _sub(_sub(policy, xades("SigPolicyQualifiers")), xades("SigPolicyQualifier"))
    _sub(qualifier, xades("SPURI"), SIGNATURE_POLICY_SPURI)
    sdop = _sub(signed, xades("SignedDataObjectProperties"))
    dof = _sub(sdop, xades("DataObjectFormat"), ObjectReference="#signature-reference-0")
    _sub(dof, xades("MimeType"), mime_type)
    return signed


def _unsigned_properties(
    props: etree._Element,
    extra_certs: Sequence[x509.Certificate],
    ocsp_responses: Sequence[bytes],
    digest: DigestAlgorithm,
) -> None:
    usp = _sub(_sub(props, xades("UnsignedProperties")), xades("UnsignedSignatureProperties"))
    if extra_certs:
        refs = _sub(usp, xades("CompleteCertificateRefs"), Id="complete-certificate-refs")
        cert_refs = _sub(refs, xades("CertRefs"))
        for n, cert in enumerate(extra_certs, 1):
            _cert_id(_sub(cert_refs, xades("Cert"), URI=f"#encapsulated-cert-{n}"), cert, digest)
        values = _sub(usp, xades("CertificateValues"))
        for n, cert in enumerate(extra_certs, 1):
            der = cert.public_bytes(Encoding.DER)
            _sub(values, xades("EncapsulatedX509Certificate"), b64encode(der)).set(
                "Id", f"encapsulated-cert-{n}"
            )
    ocsp_values = _sub(_sub(usp, xades("RevocationValues")), xades("OCSPValues"))
    for n, response in enumerate(ocsp_responses, 1):
        _sub(
            ocsp_values,
            xades("EncapsulatedOCSPValue"),
            b64encode(response),
            Id=f"ocsp-response-{n}",
        )


def _xsd_datetime(value: dt.datetime) -> str:
    """UTC ``xsd:dateTime`` with milliseconds, as Java's ``DatatypeConverter`` prints it."""
    if value.tzinfo is None:
        raise XRoadError(Code.CANNOT_CREATE_SIGNATURE, "Signing time must be timezone-aware")
    utc = value.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _wrap(value: str) -> str:
    return f"\n{value}\n" if len(value) > _MAX_LINE else value


def _signature_bytes(
    sign: Callable[[bytes], bytes],
    data: bytes,
    algorithm: SignatureAlgorithm,
    cert: x509.Certificate,
) -> bytes:
    value = sign(data)
    if algorithm.key_type != "EC":
        return value
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise XRoadError(Code.CANNOT_CREATE_SIGNATURE, "ECDSA algorithm with a non-EC certificate")
    try:
        return keys.ecdsa_der_to_raw(value, key)
    except ValueError as exc:
        raise XRoadError(
            Code.CANNOT_CREATE_SIGNATURE, "Signer returned no DER ECDSA value"
        ) from exc


def build_signature(
    parts: Sequence[MessagePart],
    *,
    signing_cert: x509.Certificate,
    extra_certs: Sequence[x509.Certificate] = (),
    ocsp_responses: Sequence[bytes],
    sign: Callable[[bytes], bytes],
    algorithm: SignatureAlgorithm = SHA512_WITH_RSA,
    signing_time: dt.datetime,
    hash_chain_result: bytes | None = None,
) -> bytes:
    """Build and sign the signature XML.

    Simple shape: exactly one part, referenced as ``/message.xml``.  Hash-chain shape: give
    ``hash_chain_result`` (``parts`` are then covered by the chain and ignored here).
    ``ocsp_responses``: DER OCSP responses for the signing certificate first, then for each of
    ``extra_certs`` (intermediate CA certificates, leaf side first).
    """
    digest = algorithm.digest
    if hash_chain_result is not None:
        uri, data_digest, mime = (
            SIG_HASH_CHAIN_RESULT,
            digest.digest(hash_chain_result),
            MIME_HASH_CHAIN_RESULT,
        )
    elif len(parts) == 1:
        uri, data_digest, mime = MESSAGE, parts[0].digest_with(digest), MIME_TEXT_XML
    else:
        raise XRoadError(
            Code.CANNOT_CREATE_SIGNATURE, "A signature without hash chain covers exactly one part"
        )
    if not ocsp_responses:
        raise XRoadError(Code.CANNOT_CREATE_SIGNATURE, "A signature needs OCSP responses")

    root = etree.Element(f"{{{ASIC_NS}}}XAdESSignatures", nsmap=_NSMAP)
    sig = _sub(root, ds("Signature"), Id="signature")
    signed_info = _sub(sig, ds("SignedInfo"))
    _sub(signed_info, ds("CanonicalizationMethod"), Algorithm=C14N_10)
    _sub(signed_info, ds("SignatureMethod"), Algorithm=algorithm.uri)
    data_ref = _sub(signed_info, ds("Reference"), Id="signature-reference-0", URI=uri)
    _digest_pair(data_ref, digest, b64encode(data_digest))
    props_ref = _sub(signed_info, ds("Reference"), Id="signature-reference-1")
    props_ref.set("Type", SIGNED_PROPERTIES_TYPE)
    props_ref.set("URI", "#signed-properties")
    _digest_pair(props_ref, digest, "")
    value_el = _sub(sig, ds("SignatureValue"), Id="signature-value")
    key_info = _sub(sig, ds("KeyInfo"))
    x509_data = _sub(key_info, ds("X509Data"))
    cert_b64 = b64encode(signing_cert.public_bytes(Encoding.DER))
    _sub(x509_data, ds("X509Certificate"), _wrap(cert_b64))
    props = _sub(_sub(sig, ds("Object")), xades("QualifyingProperties"), Target="#signature")
    signed_props = _signed_properties(props, signing_cert, digest, signing_time, mime)
    _unsigned_properties(props, extra_certs, ocsp_responses, digest)
    for el in (sig, signed_info, data_ref, props_ref, key_info, x509_data):
        _lines(el)

    # Digests and the signature are computed over the finished tree, in document context.
    props_ref[1].text = b64encode(
        digest.digest(canonicalize(signed_props, C14N_10, code=Code.CANNOT_CREATE_SIGNATURE))
    )
    value = _signature_bytes(
        sign,
        canonicalize(signed_info, C14N_10, code=Code.CANNOT_CREATE_SIGNATURE),
        algorithm,
        signing_cert,
    )
    value_el.text = _wrap(b64encode(value))
    return _serialize(root)


def _serialize(root: etree._Element) -> bytes:
    return _DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def sign_batch(
    requests: Sequence[Sequence[MessagePart]],
    *,
    signing_cert: x509.Certificate,
    extra_certs: Sequence[x509.Certificate] = (),
    ocsp_responses: Sequence[bytes],
    sign: Callable[[bytes], bytes],
    algorithm: SignatureAlgorithm = SHA512_WITH_RSA,
    signing_time: dt.datetime,
) -> list[SignedMessage]:
    """Sign several requests with one signature operation (NIIS ``SignatureCtx``).

    One request with one part gets the simple shape.  Otherwise the parts of every request
    (``/message.xml`` first, then ``/attachmentN``) go into one hash chain, the signature
    covers its result, and each request gets the shared result and its own chain.
    """
    if not requests or any(not parts for parts in requests):
        raise XRoadError(Code.CANNOT_CREATE_SIGNATURE, "Nothing to sign")
    if len(requests) == 1 and len(requests[0]) == 1:
        result: bytes | None = None
        chains: list[bytes | None] = [None]
    else:
        inputs = [[(p.name, p.digest_with(algorithm.digest)) for p in parts] for parts in requests]
        result, built = hashchain.build(inputs, algorithm.digest, chain_uri=SIG_HASH_CHAIN)
        chains = list(built)
    xml = build_signature(
        requests[0] if result is None else (),
        signing_cert=signing_cert,
        extra_certs=extra_certs,
        ocsp_responses=ocsp_responses,
        sign=sign,
        algorithm=algorithm,
        signing_time=signing_time,
        hash_chain_result=result,
    )
    return [SignedMessage(xml, result, chain) for chain in chains]


# --------------------------------------------------------------------------- time-stamps


def add_timestamp(signature_xml: bytes, token: bytes) -> bytes:
    """Embed a single time-stamp token as the first unsigned signature property (§9.2)."""
    root = parse_xml(signature_xml, Code.INVALID_XML, "Signature")
    sig = find_signature(root)
    usp = next(sig.iter(xades("UnsignedSignatureProperties")), None)
    if usp is None:
        raise XRoadError(
            Code.MALFORMED_SIGNATURE, 'Could not find element "xades:UnsignedSignatureProperties"'
        )
    stamp = etree.SubElement(usp, xades("SignatureTimeStamp"))
    etree.SubElement(stamp, xades("EncapsulatedTimeStamp")).text = b64encode(token)
    usp.insert(0, stamp)
    return _serialize(root)
