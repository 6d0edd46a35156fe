"""The test OCSP responder: DER OCSPRequest in, signed DER OCSPResponse out (RFC 6960, §10.3).

X-Road security servers ask with SHA-1 CertIDs, no nonce and unsigned requests (protocols.md
§10.3); other clients (``openssl ocsp``) send a nonce and may use other CertID digests, and a
request may list several certificates.  This module answers all of them: one SingleResponse per
requested CertID, echoing its hash algorithm, and the nonce echoed back (RFC 8954).

The response is signed by a delegated responder certificate (or the CA itself), identifies the
responder by name and carries its certificate.  ``thisUpdate`` = ``producedAt`` = ``now``; like
NIIS's development CA there is no ``nextUpdate`` unless configured.

:meth:`TestOcspResponder.respond` never raises: a request it cannot parse gets
``malformedRequest``, one about certificates of another CA gets ``unauthorized``, and an
unexpected failure ``internalError``.  No clock, no sockets: ``now`` and the status ``lookup``
are parameters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from asn1crypto import algos, core
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from crossroad.trust.ca import UNKNOWN, CertStatus

log = logging.getLogger(__name__)

Lookup = Callable[[int], CertStatus]

# CertID digests we can match (asn1crypto names -> hashlib names).
_CERT_ID_DIGESTS = {
    "sha1": "sha1",
    "sha224": "sha224",
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
}


def error_response(status: str) -> bytes:
    """An unsuccessful OCSPResponse (``malformed_request``, ``unauthorized``, ...)."""
    return bytes(asn1_ocsp.OCSPResponse({"response_status": status}).dump())


@dataclass(frozen=True)
class _Request:
    cert_ids: list[asn1_ocsp.CertId]
    nonce: bytes | None


def _canonical(cert_id: asn1_ocsp.CertId) -> asn1_ocsp.CertId:
    """The CertID re-encoded in DER, keeping NULL vs absent digest parameters as sent.

    Clients match the echoed CertID against theirs (NIIS compares the whole structure), so the
    parameters are kept; re-encoding makes sure a BER-ish request cannot make us emit non-DER.
    """
    algorithm = cert_id["hash_algorithm"]
    params = algorithm["parameters"]
    alg = core.ObjectIdentifier(algorithm["algorithm"].dotted).dump()
    if not isinstance(params, core.Void):
        if not isinstance(params, core.Null):
            raise ValueError("digest algorithm parameters must be NULL or absent")
        alg += core.Null().dump()
    # Built by hand: asn1crypto would always add NULL parameters to a DigestAlgorithm.
    body = (
        core.Sequence(contents=alg).dump()
        + core.OctetString(cert_id["issuer_name_hash"].native).dump()
        + core.OctetString(cert_id["issuer_key_hash"].native).dump()
        + core.Integer(cert_id["serial_number"].native).dump()
    )
    return asn1_ocsp.CertId.load(core.Sequence(contents=body).dump())


def _parse_request(der: bytes) -> _Request:
    req = asn1_ocsp.OCSPRequest.load(der, strict=True)
    # asn1crypto parses lazily: parse everything now, so that a bad request fails here and
    # the CertIDs we echo back are well-formed.
    _ = req.native
    tbs = req["tbs_request"]
    cert_ids = [_canonical(item["req_cert"]) for item in tbs["request_list"]]
    if not cert_ids:
        raise ValueError("empty requestList")
    nonce = None
    for ext in tbs["request_extensions"] or []:
        if ext["extn_id"].native == "nonce":
            value = ext["extn_value"].parsed.native
            if not isinstance(value, bytes):
                raise ValueError("nonce is not an OCTET STRING")
            nonce = value
        elif ext["critical"].native:
            raise ValueError(f"unsupported critical request extension {ext['extn_id'].dotted}")
    return _Request(cert_ids, nonce)


def _gtime(at: dt.datetime) -> core.GeneralizedTime:
    return core.GeneralizedTime(at.astimezone(dt.UTC).replace(microsecond=0))


class TestOcspResponder:
    """Answers OCSP requests about the certificates of one issuing CA."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        issuer: x509.Certificate,
        key: CertificateIssuerPrivateKeyTypes,
        cert: x509.Certificate,
        *,
        next_update: dt.timedelta | None = None,
    ) -> None:
        self.issuer = issuer
        self.key = key
        self.cert = cert
        self.next_update = next_update
        issuer_der = issuer.public_bytes(serialization.Encoding.DER)
        parsed = asn1_x509.Certificate.load(issuer_der)
        self._issuer_name_der = parsed.subject.dump()
        # issuerKeyHash is over the subjectPublicKey BIT STRING value, without the unused-bits byte.
        self._issuer_key_bits = parsed.public_key["public_key"].contents[1:]
        self._responder_der = cert.public_bytes(serialization.Encoding.DER)
        self._responder_name = asn1_x509.Certificate.load(self._responder_der).subject
        self._hashes: dict[str, tuple[bytes, bytes]] = {}

    def _issuer_hashes(self, algorithm: str) -> tuple[bytes, bytes] | None:
        name = _CERT_ID_DIGESTS.get(algorithm)
        if name is None:
            return None
        if name not in self._hashes:
            self._hashes[name] = (
                hashlib.new(name, self._issuer_name_der).digest(),
                hashlib.new(name, self._issuer_key_bits).digest(),
            )
        return self._hashes[name]

    def _is_ours(self, cert_id: asn1_ocsp.CertId) -> bool:
        hashes_ = self._issuer_hashes(cert_id["hash_algorithm"]["algorithm"].native)
        return hashes_ is not None and hashes_ == (
            cert_id["issuer_name_hash"].native,
            cert_id["issuer_key_hash"].native,
        )

    def _single(
        self, cert_id: asn1_ocsp.CertId, status: CertStatus, now: dt.datetime
    ) -> dict[str, object]:
        cert_status: asn1_ocsp.CertStatus
        if status.state == "good":
            cert_status = asn1_ocsp.CertStatus(name="good", value=core.Null())
        elif status.state == "revoked" and status.revoked_at is not None:
            info: dict[str, object] = {"revocation_time": _gtime(status.revoked_at)}
            if status.reason:
                info["revocation_reason"] = status.reason
            cert_status = asn1_ocsp.CertStatus(name="revoked", value=info)
        else:
            cert_status = asn1_ocsp.CertStatus(name="unknown", value=core.Null())
        single: dict[str, object] = {
            "cert_id": cert_id,
            "cert_status": cert_status,
            "this_update": _gtime(now),
        }
        if self.next_update is not None:
            single["next_update"] = _gtime(now + self.next_update)
        return single

    def _sign(self, tbs: bytes) -> tuple[str, bytes]:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return "sha256_rsa", self.key.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            return "sha256_ecdsa", self.key.sign(tbs, ec.ECDSA(hashes.SHA256()))
        raise TypeError(f"unsupported responder key {type(self.key).__name__}")

    def respond(self, request_der: bytes, *, now: dt.datetime, lookup: Lookup) -> bytes:
        """The DER OCSPResponse to ``request_der`` at ``now``; ``lookup`` maps serial to status."""
        try:
            request = _parse_request(request_der)
        except Exception as exc:  # asn1crypto raises ValueError, TypeError and more
            log.info("malformed OCSP request: %s", exc)
            return error_response("malformed_request")
        try:
            return self._respond(request, now, lookup)
        except Exception:
            log.exception("OCSP responder failure")
            return error_response("internal_error")

    def _respond(self, request: _Request, now: dt.datetime, lookup: Lookup) -> bytes:
        ours = [self._is_ours(cid) for cid in request.cert_ids]
        if not any(ours):
            return error_response("unauthorized")
        singles = [
            self._single(cid, lookup(cid["serial_number"].native) if mine else UNKNOWN, now)
            for cid, mine in zip(request.cert_ids, ours, strict=True)
        ]
        data: dict[str, object] = {
            "version": "v1",
            "responder_id": asn1_ocsp.ResponderId(name="by_name", value=self._responder_name),
            "produced_at": _gtime(now),
            "responses": singles,
        }
        if request.nonce is not None:
            data["response_extensions"] = [
                {"extn_id": "nonce", "critical": False, "extn_value": request.nonce}
            ]
        tbs = asn1_ocsp.ResponseData(data)
        algorithm, signature = self._sign(tbs.dump())
        sig_alg: dict[str, object] = {"algorithm": algorithm}
        if algorithm.endswith("_rsa"):
            sig_alg["parameters"] = core.Null()
        basic = asn1_ocsp.BasicOCSPResponse(
            {
                "tbs_response_data": tbs,
                "signature_algorithm": algos.SignedDigestAlgorithm(sig_alg),
                "signature": signature,
                "certs": [asn1_x509.Certificate.load(self._responder_der)],
            }
        )
        response = asn1_ocsp.OCSPResponse(
            {
                "response_status": "successful",
                "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
            }
        )
        return bytes(response.dump())
