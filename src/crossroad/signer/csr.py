"""Certificate signing requests for the signer's keys (protocols.md §10.1–10.2).

The subject follows the approved CA's certificate profile (``fivrk``: ``C=FI, O=name,
CN=memberCode, serialNumber=INSTANCE/serverCode/memberClass``; ``ejbca``: ``C=instance,
O=memberClass, CN=memberCode``, authentication ``C=instance, CN=serverCode``) or is given
explicitly.  The request is PKCS#10 signed with SHA-256 (NIIS's CSR digest).

A PKCS#11 private key never leaves its token, and python ``cryptography`` can only sign a
CSR with a key object it holds, so the ``CertificationRequestInfo`` is built here with
asn1crypto and its DER handed to the token's ``sign``, for software keys too: one path.
"""

from __future__ import annotations

from collections.abc import Callable

from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from crossroad.crypto.algorithms import SHA256, SignatureAlgorithm, signature_algorithm_for
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.signer.keyconf import Usage
from crossroad.trust.ca import Profile, parse_name, parse_profile, subject_for

#: Signs the given bytes with the key, with the given algorithm (ECDSA: DER).
SignWith = Callable[[SignatureAlgorithm, bytes], bytes]

_ASN1_SIGNATURE = {"RSA": "sha256_rsa", "EC": "sha256_ecdsa"}


def key_algorithm(spki_der: bytes) -> str:
    """``RSA`` or ``EC``: the kind of the public key."""
    try:
        algorithm = asn1_keys.PublicKeyInfo.load(spki_der).algorithm
    except ValueError as exc:
        raise XRoadError(Code.CSR_FAILED, "Malformed public key") from exc
    if algorithm == "rsa":
        return "RSA"
    if algorithm == "ec":
        return "EC"
    raise XRoadError(Code.CSR_FAILED, f"Unsupported public key algorithm {algorithm}")


def csr_subject(
    usage: Usage,
    *,
    profile: str | None = None,
    subject: str | None = None,
    member: ClientId | None = None,
    server: SecurityServerId | None = None,
    org_name: str | None = None,
) -> x509.Name:
    """The subject of a CSR: ``subject`` verbatim, or the one ``profile`` gives the ids."""
    if subject:
        return parse_name(subject)
    prof = parse_profile(profile or Profile.FIVRK)
    if prof is Profile.CSR:
        raise XRoadError(
            Code.INVALID_REQUEST, "Give the subject explicitly or name a profile (fivrk, ejbca)"
        )
    return subject_for(usage, prof, member=member, server=server, org_name=org_name)


def build_csr(subject: x509.Name, spki_der: bytes, sign: SignWith) -> bytes:
    """A DER PKCS#10 request for the key ``spki_der``, signed through ``sign``."""
    kind = key_algorithm(spki_der)
    info = asn1_csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": asn1_x509.Name.load(subject.public_bytes()),
            "subject_pk_info": asn1_keys.PublicKeyInfo.load(spki_der),
            "attributes": [],
        }
    )
    algorithm = signature_algorithm_for(kind, SHA256)
    signature = sign(algorithm, info.dump())
    request = asn1_csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": {"algorithm": _ASN1_SIGNATURE[kind]},
            "signature": signature,
        }
    )
    der = bytes(request.dump())
    try:
        loaded = x509.load_der_x509_csr(der)
        valid = loaded.is_signature_valid
    except ValueError as exc:
        raise XRoadError(Code.CSR_FAILED, f"The request does not parse: {exc}") from exc
    if not valid:
        raise XRoadError(Code.CSR_FAILED, "The token's signature on the request does not verify")
    return der


def csr_pem(der: bytes) -> bytes:
    return x509.load_der_x509_csr(der).public_bytes(serialization.Encoding.PEM)
