"""Verifying X-Road XAdES message signatures (protocols.md §4.9, NIIS ``SignatureVerifier``).

Owns :func:`verify_signature` and its result :class:`SignatureInfo`.  The order of checks is
NIIS's, because it decides which fault code a peer sees:

1. structure (:func:`~crossroad.crypto.xades_parse.parse_signature`): ``invalid_xml``,
   ``malformed_signature``; the signature must cover ``/message.xml`` or
   ``/sig-hashchainresult.xml``;
2. the hash chain, when the signature covers a hash chain result: its errors are reported
   under ``malformed_signature.`` (e.g. ``malformed_signature.invalid_hash_chain_ref``);
3. the signing certificate (``ds:KeyInfo``) must exist and allow nonRepudiation
   (``malformed_signature``);
4. the signer: the approved CA's certificate profile maps the certificate to a member that
   must equal the sender's member (``incorrect_certificate``);
5. the SignatureValue over the canonical SignedInfo, then every Reference digest
   (``invalid_signature_value``);
6. the certificate path to an approved CA at ``at`` with the signature's OCSP responses
   (codes from :mod:`crossroad.crypto.chain`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from crossroad.crypto import chain, hashchain, keys, ocsp
from crossroad.crypto.certs import is_sign_cert
from crossroad.crypto.hashchain import MESSAGE, SIG_HASH_CHAIN, SIG_HASH_CHAIN_RESULT
from crossroad.crypto.profiles import member_id_from_sign_cert
from crossroad.crypto.trust import TrustPolicy
from crossroad.crypto.xades_parse import ParsedSignature, Reference, parse_signature
from crossroad.crypto.xmldsig import C14N_10, canonicalize, canonicalize_document
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId

Resolve = Callable[[str], bytes | None]
#: part name → digest, or None for "resolve the raw bytes and hash them" (NIIS MessagePart).
PartDigests = Mapping[str, bytes | None]


@dataclass(frozen=True)
class SignatureInfo:
    """What a successful verification established."""

    signing_cert: x509.Certificate
    signer: ClientId  # the member the signing certificate belongs to
    signing_time: dt.datetime | None
    signature_value: bytes  # decoded ds:SignatureValue (what a single time-stamp covers)
    c14n_method: str
    references: tuple[str, ...]
    extra_certs: tuple[x509.Certificate, ...]
    ocsp_responses: tuple[bytes, ...]
    cert_path: chain.CertPath  # signing certificate up to its approved CA
    ocsp_statuses: tuple[ocsp.OcspStatus, ...]  # one per checked certificate, leaf first


def _malformed(detail: str) -> XRoadError:
    return XRoadError(Code.MALFORMED_SIGNATURE, detail)


def _invalid(detail: str) -> XRoadError:
    return XRoadError(Code.INVALID_SIGNATURE_VALUE, detail)


# --------------------------------------------------------------------------- hash chain


def _verify_hash_chain(
    hash_chain_result: bytes,
    hash_chain: bytes | None,
    resolve: Resolve,
    part_digests: PartDigests | None,
) -> None:
    def resolver(uri: str) -> bytes | None:
        if uri == SIG_HASH_CHAIN:
            return hash_chain
        return resolve(uri)

    try:
        hashchain.verify(hash_chain_result, resolver, dict(part_digests or {}))
    except XRoadError as exc:
        raise exc.with_prefix(Code.MALFORMED_SIGNATURE) from exc


# --------------------------------------------------------------------------- references


def _same_document(parsed: ParsedSignature, ref: Reference) -> bytes:
    target = parsed.element_by_id(ref.uri[1:])
    if target is None:
        raise _malformed(f"Cannot resolve reference {ref.uri}")
    data: bytes | None = None
    for transform in ref.transforms:
        if data is None:
            data = canonicalize(
                target, transform.algorithm, transform.prefixes, code=Code.MALFORMED_SIGNATURE
            )
        else:
            data = canonicalize_document(
                data, transform.algorithm, Code.INVALID_SIGNATURE_VALUE, ref.uri, transform.prefixes
            )
    # A node set left at the end is turned into octets with inclusive C14N 1.0 (XML-DSig).
    return (
        data if data is not None else canonicalize(target, C14N_10, code=Code.MALFORMED_SIGNATURE)
    )


def _external(
    ref: Reference,
    resolve: Resolve,
    part_digests: PartDigests | None,
    hash_chain_result: bytes | None,
) -> bytes:
    """The digest of an external reference, from its bytes or a digest the caller computed."""
    data = hash_chain_result if ref.uri == SIG_HASH_CHAIN_RESULT else None
    if data is None:
        data = resolve(ref.uri)
    if data is None:
        given = part_digests.get(ref.uri) if part_digests is not None else None
        if given is not None and not ref.transforms:
            return given
        if ref.uri == SIG_HASH_CHAIN_RESULT:
            raise _malformed("Signature covers a hash chain result but none was given")
        raise _malformed(f"Cannot resolve reference {ref.uri}")
    for transform in ref.transforms:
        data = canonicalize_document(
            data, transform.algorithm, Code.INVALID_SIGNATURE_VALUE, ref.uri, transform.prefixes
        )
    return ref.digest_method.digest(data)


def _check_signature_value(parsed: ParsedSignature, cert: x509.Certificate) -> None:
    signed_info = canonicalize(
        parsed.signed_info, parsed.c14n_method, parsed.c14n_prefixes, code=Code.MALFORMED_SIGNATURE
    )
    value = parsed.signature_value
    public_key = cert.public_key()
    if parsed.algorithm.key_type == "EC":
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise _invalid("Signature is not valid: key does not fit the signature method")
        size = (public_key.curve.key_size + 7) // 8
        if len(value) != 2 * size:
            raise _invalid("Signature is not valid: wrong ECDSA signature length")
        value = keys.ecdsa_raw_to_der(value)
    if not keys.verify(public_key, parsed.algorithm, value, signed_info):
        raise _invalid("Signature is not valid")


def _check_references(
    parsed: ParsedSignature,
    resolve: Resolve,
    part_digests: PartDigests | None,
    hash_chain_result: bytes | None,
) -> None:
    for ref in parsed.references:
        if ref.uri.startswith("#"):
            digest = ref.digest_method.digest(_same_document(parsed, ref))
        else:
            digest = _external(ref, resolve, part_digests, hash_chain_result)
        if digest != ref.digest_value:
            raise _invalid(f"Signature is not valid: digest of {ref.uri or '(empty)'} differs")


# --------------------------------------------------------------------------- entry point


def _signing_cert(parsed: ParsedSignature) -> x509.Certificate:
    cert = parsed.signing_cert
    if cert is None:
        raise _malformed("Signature does not contain signing certificate")
    if not is_sign_cert(cert):
        raise _malformed(
            f"Certificate {cert.subject.rfc4514_string()} is not a signing certificate"
        )
    return cert


def _signer_member(cert: x509.Certificate, signer: ClientId, trust: TrustPolicy) -> ClientId:
    ca = trust.ca_for_issuer(cert)
    if ca is None:
        raise XRoadError(
            Code.INCORRECT_CERTIFICATE,
            "Signing certificate is not issued by an approved certification service provider",
        )
    member = member_id_from_sign_cert(cert, ca.certificate_profile, signer.instance)
    if member.member_id() != signer.member_id():
        raise XRoadError(
            Code.INCORRECT_CERTIFICATE,
            f"Name in certificate ({member}) does not match name in message ({signer})",
        )
    return member.member_id()


def _check_covers_message(parsed: ParsedSignature) -> None:
    if not (parsed.references_uri(MESSAGE) or parsed.references_uri(SIG_HASH_CHAIN_RESULT)):
        raise _malformed("Signature must reference /message.xml or /sig-hashchainresult.xml")


def _check_covers_parts(parsed: ParsedSignature, part_digests: PartDigests | None) -> None:
    # Without a hash chain every part must be a Reference of its own; NIIS never signs a
    # message with attachments in the simple shape, so a missing one means tampering.
    missing = sorted(name for name in part_digests or () if not parsed.references_uri(name))
    if missing:
        raise _invalid(f"Signature does not cover {', '.join(missing)}")


def verify_parsed(
    parsed: ParsedSignature,
    *,
    signer: ClientId,
    trust: TrustPolicy,
    at: dt.datetime,
    resolve: Resolve,
    hash_chain: bytes | None = None,
    hash_chain_result: bytes | None = None,
    part_digests: PartDigests | None = None,
) -> SignatureInfo:
    """:func:`verify_signature` on an already parsed signature."""
    _check_covers_message(parsed)
    chained = hash_chain_result is not None and parsed.references_uri(SIG_HASH_CHAIN_RESULT)
    if chained:
        assert hash_chain_result is not None
        _verify_hash_chain(hash_chain_result, hash_chain, resolve, part_digests)
    cert = _signing_cert(parsed)
    member = _signer_member(cert, signer, trust)
    _check_signature_value(parsed, cert)
    _check_references(parsed, resolve, part_digests, hash_chain_result)
    if not chained:
        _check_covers_parts(parsed, part_digests)
    path = chain.build_path(cert, parsed.extra_certs, trust)
    statuses = chain.validate_path(path, at, parsed.ocsp_responses, trust)
    return SignatureInfo(
        signing_cert=cert,
        signer=member,
        signing_time=parsed.signing_time,
        signature_value=parsed.signature_value,
        c14n_method=parsed.c14n_method,
        references=tuple(r.uri for r in parsed.references),
        extra_certs=parsed.extra_certs,
        ocsp_responses=parsed.ocsp_responses,
        cert_path=path,
        ocsp_statuses=statuses,
    )


def verify_signature(
    signature_xml: bytes,
    *,
    signer: ClientId,
    trust: TrustPolicy,
    at: dt.datetime,
    resolve: Resolve,
    hash_chain: bytes | None = None,
    hash_chain_result: bytes | None = None,
    part_digests: PartDigests | None = None,
) -> SignatureInfo:
    """Verify a message signature of ``signer`` (its member) at time ``at``.

    External references (``/message.xml``, ``/attachmentN``) are resolved to raw bytes with
    ``resolve``; where it returns None, ``part_digests`` (name → digest made with the
    reference's digest method, or None) supplies the digest.  ``/sig-hashchainresult.xml`` is
    ``hash_chain_result``; the chain document ``/sig-hashchain.xml`` is ``hash_chain``, and
    ``part_digests`` are the chain's inputs (every one must be referenced).
    """
    return verify_parsed(
        parse_signature(signature_xml),
        signer=signer,
        trust=trust,
        at=at,
        resolve=resolve,
        hash_chain=hash_chain,
        hash_chain_result=hash_chain_result,
        part_digests=part_digests,
    )
