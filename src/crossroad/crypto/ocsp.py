"""OCSP requests and the verification of OCSP responses (protocols.md §10.3).

Requests are what X-Road sends: one SHA-1 CertID, no nonce, unsigned.  Responses are checked
as NIIS ``OcspVerifier`` checks them, in its order and with its fault codes:

1. the response is SUCCESSFUL and basic; only its *first* SingleResponse counts;
2. its CertID matches the certificate (SHA-1);
3. the responder certificate is found, by name or by SHA-1 key hash, among the trust policy's
   OCSP responder certificates, its CA certificates and the certificates in the response;
4. the signature verifies with it;
5. the responder is authorised: listed for the issuing CA, or the CA itself, or issued by the
   CA with EKU id-kp-OCSPSigning;
6. ``thisUpdate >= at - ocspFreshnessSeconds`` (a ``thisUpdate`` in the future is accepted);
7. when the trust policy says so and ``nextUpdate`` is present, ``nextUpdate >= at``.

Failures of 1-7 are ``incorrect_validation_info``; a REVOKED or UNKNOWN status is
``cert_validation`` (:func:`verify_response`; :func:`verify_status` returns it instead).  Like
NIIS, the responder certificate's own validity period is not checked.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from asn1crypto import ocsp as asn1_ocsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from crossroad.crypto.algorithms import SHA1
from crossroad.crypto.certs import (
    cert_der,
    describe,
    extended_key_usage,
    names_equal,
    public_key_sha1,
    verify_issued_by,
)
from crossroad.crypto.trust import ApprovedCA, TrustPolicy
from crossroad.errors import Code, XRoadError

GOOD = "good"
REVOKED = "revoked"
UNKNOWN = "unknown"

_STATUS_NAMES = {
    ocsp.OCSPCertStatus.GOOD: GOOD,
    ocsp.OCSPCertStatus.REVOKED: REVOKED,
    ocsp.OCSPCertStatus.UNKNOWN: UNKNOWN,
}
_RESPONSE_STATUS_NAMES = {
    ocsp.OCSPResponseStatus.SUCCESSFUL: "successful",
    ocsp.OCSPResponseStatus.MALFORMED_REQUEST: "malformedRequest",
    ocsp.OCSPResponseStatus.INTERNAL_ERROR: "internalError",
    ocsp.OCSPResponseStatus.TRY_LATER: "tryLater",
    ocsp.OCSPResponseStatus.SIG_REQUIRED: "sigRequired",
    ocsp.OCSPResponseStatus.UNAUTHORIZED: "unauthorized",
}
_OCSP_SIGNING = ExtendedKeyUsageOID.OCSP_SIGNING.dotted_string
_CACHE_SIZE = 1024


def _invalid(detail: str) -> XRoadError:
    return XRoadError(Code.INCORRECT_VALIDATION_INFO, detail)


def _iso(t: dt.datetime | None) -> str:
    return "-" if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_at(at: dt.datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the verification time must be timezone-aware")


# ---------------------------------------------------------------------------------------------
# CertID and requests


@dataclass(frozen=True)
class CertId:
    """An OCSP CertID (RFC 6960 §4.1.1); ``hash_algorithm`` is the digest name (``sha1``)."""

    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial_number: int


@functools.lru_cache(maxsize=_CACHE_SIZE)
def cert_id(cert: x509.Certificate, issuer: x509.Certificate) -> CertId:
    """The SHA-1 CertID X-Road uses for ``cert`` issued by ``issuer``."""
    return CertId(
        "sha1",
        SHA1.digest(issuer.subject.public_bytes()),
        public_key_sha1(issuer),
        cert.serial_number,
    )


def build_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    """A DER OCSPRequest for ``cert``: one SHA-1 CertID, no nonce, unsigned."""
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    return builder.build().public_bytes(Encoding.DER)


# ---------------------------------------------------------------------------------------------
# Parsing


@dataclass(frozen=True)
class OcspResponse:
    """A parsed SUCCESSFUL basic OCSP response; the fields describe its first SingleResponse."""

    der: bytes = field(repr=False)
    cert_id: CertId
    status: str
    this_update: dt.datetime
    next_update: dt.datetime | None
    produced_at: dt.datetime
    revocation_time: dt.datetime | None
    responder_name: x509.Name | None
    responder_key_hash: bytes | None
    certificates: tuple[x509.Certificate, ...]
    tbs: bytes = field(repr=False)
    signature: bytes = field(repr=False)
    signature_oid: str = ""
    signature_hash: hashes.HashAlgorithm | None = field(default=None, compare=False, repr=False)


def response_status(der: bytes) -> str:
    """The responseStatus of a DER OCSPResponse (``successful``, ``tryLater``, ...)."""
    try:
        resp = ocsp.load_der_ocsp_response(bytes(der))
        return _RESPONSE_STATUS_NAMES[resp.response_status]
    except (ValueError, TypeError, KeyError, UnsupportedAlgorithm) as exc:
        raise _invalid(f"Malformed OCSP response: {exc}") from exc


def parse_response(der: bytes) -> OcspResponse:
    """Parse a DER OCSPResponse; garbage or a non-SUCCESSFUL status raise
    ``incorrect_validation_info``."""
    return _parse_response(bytes(der))


# A response travels in every message its certificate signs or authenticates until it is
# refreshed: parsing (and checking its signature, below) is a pure function of its bytes and
# is done once per response.  Failures are not cached; they are raised again every time.
@functools.lru_cache(maxsize=_CACHE_SIZE)
def _parse_response(der: bytes) -> OcspResponse:
    try:
        resp = ocsp.load_der_ocsp_response(der)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise _invalid(f"Malformed OCSP response: {exc}") from exc
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        name = _RESPONSE_STATUS_NAMES.get(resp.response_status, str(resp.response_status))
        raise _invalid(f"OCSP response status is not successful: {name}")
    try:
        single = next(iter(resp.responses), None)
        if single is None:
            raise _invalid("OCSP response contains no certificate status")
        try:
            hash_name = single.hash_algorithm.name
        except UnsupportedAlgorithm:
            hash_name = "unsupported"
        try:
            sig_hash = resp.signature_hash_algorithm
        except UnsupportedAlgorithm:
            sig_hash = None
        return OcspResponse(
            der=der,
            cert_id=CertId(
                hash_name, single.issuer_name_hash, single.issuer_key_hash, single.serial_number
            ),
            status=_STATUS_NAMES[single.certificate_status],
            this_update=single.this_update_utc,
            next_update=single.next_update_utc,
            produced_at=resp.produced_at_utc,
            revocation_time=single.revocation_time_utc,
            responder_name=resp.responder_name,
            responder_key_hash=resp.responder_key_hash,
            certificates=tuple(resp.certificates),
            tbs=resp.tbs_response_bytes,
            signature=resp.signature,
            signature_oid=resp.signature_algorithm_oid.dotted_string,
            signature_hash=sig_hash,
        )
    except XRoadError:
        raise
    except (ValueError, TypeError, KeyError, UnsupportedAlgorithm) as exc:
        raise _invalid(f"Malformed OCSP response: {exc}") from exc


def find_response(
    cert: x509.Certificate, issuer: x509.Certificate, responses: Iterable[bytes]
) -> bytes | None:
    """The first response whose (first) CertID is ``cert``'s; unusable responses are skipped."""
    wanted = cert_id(cert, issuer)
    for der in responses:
        try:
            if parse_response(der).cert_id == wanted:
                return bytes(der)
        except XRoadError:
            continue
    return None


# ---------------------------------------------------------------------------------------------
# Verification


@dataclass(frozen=True)
class OcspStatus:
    """What a verified OCSP response says about a certificate."""

    status: str  # GOOD, REVOKED or UNKNOWN
    this_update: dt.datetime
    next_update: dt.datetime | None
    produced_at: dt.datetime
    revocation_time: dt.datetime | None
    responder: x509.Certificate

    @property
    def good(self) -> bool:
        return self.status == GOOD

    def describe(self) -> str:
        if self.status == REVOKED:
            return f"REVOKED (date: {_iso(self.revocation_time)})"
        return self.status.upper()


def _pss_params(der: bytes) -> tuple[padding.PSS, hashes.HashAlgorithm] | None:
    """The parameters of an RSASSA-PSS response signature (cryptography does not expose them)."""
    try:
        basic = asn1_ocsp.OCSPResponse.load(der)["response_bytes"]["response"].parsed
        params = basic["signature_algorithm"]["parameters"]
        hash_name = params["hash_algorithm"]["algorithm"].native
        mgf_hash = params["mask_gen_algorithm"]["parameters"]["algorithm"].native
        salt = int(params["salt_length"].native)
        algs: dict[str, type[hashes.HashAlgorithm]] = {
            "sha1": hashes.SHA1,
            "sha224": hashes.SHA224,
            "sha256": hashes.SHA256,
            "sha384": hashes.SHA384,
            "sha512": hashes.SHA512,
        }
        if hash_name not in algs or mgf_hash not in algs:
            return None
        pss = padding.PSS(mgf=padding.MGF1(algs[mgf_hash]()), salt_length=salt)
        return pss, algs[hash_name]()
    except Exception:  # asn1crypto raises assorted types on odd input
        return None


def _signature_valid(resp: OcspResponse, signer: x509.Certificate) -> bool:
    return _response_signed_by(resp.der, signer)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _response_signed_by(der: bytes, signer: x509.Certificate) -> bool:
    resp = _parse_response(der)
    try:
        key = signer.public_key()
        h = resp.signature_hash
        if isinstance(key, rsa.RSAPublicKey):
            if resp.signature_oid == SignatureAlgorithmOID.RSASSA_PSS.dotted_string:
                params = _pss_params(resp.der)
                if params is None:
                    return False
                key.verify(resp.signature, resp.tbs, *params)
            elif h is not None:
                key.verify(resp.signature, resp.tbs, padding.PKCS1v15(), h)
            else:
                return False
        elif isinstance(key, ec.EllipticCurvePublicKey) and h is not None:
            key.verify(resp.signature, resp.tbs, ec.ECDSA(h))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(resp.signature, resp.tbs)
        elif isinstance(key, dsa.DSAPublicKey) and h is not None:
            key.verify(resp.signature, resp.tbs, h)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _responder_cert(resp: OcspResponse, trust: TrustPolicy) -> x509.Certificate | None:
    known = (*trust.ocsp_responder_certs(), *trust.all_ca_certs(), *resp.certificates)
    if resp.responder_name is not None:
        for cert in known:
            if names_equal(cert.subject, resp.responder_name, any_order=True):
                return cert
    elif resp.responder_key_hash is not None:
        for cert in known:
            try:
                if public_key_sha1(cert) == resp.responder_key_hash:
                    return cert
            except XRoadError:
                continue
    return None


def _listed_responders(
    trust: TrustPolicy, issuer: x509.Certificate, ca: ApprovedCA | None
) -> list[x509.Certificate]:
    """Responder certificates the trust policy lists for the CA certificate ``issuer``.

    An issuer the trust policy does not list (an intermediate from the message's extra
    certificates) inherits the responders of the approved CA ``ca`` its path leads to.
    """
    issuer_der = cert_der(issuer)
    listed: list[x509.Certificate] = []
    found = False
    for approved in trust.cas:
        if cert_der(approved.top_ca) == issuer_der:
            found = True
            listed.extend(r.cert for r in approved.ocsp if r.cert is not None)
        for inter in approved.intermediates:
            if cert_der(inter.cert) == issuer_der:
                found = True
                listed.extend(r.cert for r in inter.ocsp if r.cert is not None)
    if not found and ca is not None:
        listed.extend(r.cert for r in ca.responders() if r.cert is not None)
    return listed


def _authorised(
    responder: x509.Certificate,
    issuer: x509.Certificate,
    trust: TrustPolicy,
    ca: ApprovedCA | None,
) -> bool:
    responder_der = cert_der(responder)
    if any(cert_der(c) == responder_der for c in _listed_responders(trust, issuer, ca)):
        return True
    if responder_der == cert_der(issuer):
        return True
    return (
        names_equal(responder.issuer, issuer.subject)
        and verify_issued_by(responder, issuer)
        and _OCSP_SIGNING in _safe_eku(responder)
    )


def _safe_eku(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        return extended_key_usage(cert)
    except XRoadError:
        return ()


def verify_status(
    der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    trust: TrustPolicy,
    at: dt.datetime,
    *,
    ca: ApprovedCA | None = None,
) -> OcspStatus:
    """Check that ``der`` is a valid, fresh response about ``cert`` at ``at`` (steps 1-7) and
    return what it says, whatever the status.  ``ca``: see :func:`_listed_responders`."""
    _check_at(at)
    resp = parse_response(der)
    if resp.cert_id != cert_id(cert, issuer):
        raise _invalid(f"OCSP response does not apply to certificate (sn = {cert.serial_number})")
    responder = _responder_cert(resp, trust)
    if responder is None:
        raise _invalid("Could not find OCSP certificate for responder ID")
    if not _signature_valid(resp, responder):
        raise _invalid("Signature on OCSP response is not valid")
    if not _authorised(responder, issuer, trust, ca):
        raise _invalid("OCSP responder is not authorized for given CA")
    oldest = at - dt.timedelta(seconds=trust.ocsp_freshness_seconds)
    if resp.this_update < oldest:
        raise _invalid(f"OCSP response is too old (thisUpdate: {_iso(resp.this_update)})")
    if trust.verify_ocsp_next_update and resp.next_update is not None and resp.next_update < at:
        raise _invalid(
            f"OCSP nextUpdate is too old, atDate: {_iso(at)} nextUpdate: {_iso(resp.next_update)}"
        )
    return OcspStatus(
        status=resp.status,
        this_update=resp.this_update,
        next_update=resp.next_update,
        produced_at=resp.produced_at,
        revocation_time=resp.revocation_time,
        responder=responder,
    )


def verify_response(
    der: bytes,
    cert: x509.Certificate,
    issuer: x509.Certificate,
    trust: TrustPolicy,
    at: dt.datetime,
    *,
    ca: ApprovedCA | None = None,
) -> OcspStatus:
    """:func:`verify_status`, and the status must be GOOD (else ``cert_validation``)."""
    status = verify_status(der, cert, issuer, trust, at, ca=ca)
    if not status.good:
        raise XRoadError(
            Code.CERT_VALIDATION,
            f"OCSP response indicates certificate status is {status.describe()}"
            f" for {describe(cert)}",
        )
    return status


def find_and_verify(
    cert: x509.Certificate,
    issuer: x509.Certificate,
    responses: Sequence[bytes],
    trust: TrustPolicy,
    at: dt.datetime,
    *,
    ca: ApprovedCA | None = None,
) -> OcspStatus:
    """The matching response among ``responses``, verified; none is ``cert_validation``."""
    der = find_response(cert, issuer, responses)
    if der is None:
        raise XRoadError(
            Code.CERT_VALIDATION, f"Unable to find OCSP response for certificate {describe(cert)}"
        )
    return verify_response(der, cert, issuer, trust, at, ca=ca)
