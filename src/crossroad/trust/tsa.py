"""The time-stamping authority's core: DER TimeStampReq in, signed DER TimeStampResp out (RFC 3161).

Security servers stamp their message log at an approved TSA (protocols.md §9.2): SHA-512
imprints, no nonce, no policy, ``certReq`` not set.  ``openssl ts -query`` sends nonces and may
set ``certReq``; both are honoured.  A granted response carries a token whose SignedData has the
signed attributes content-type, message-digest and signing-certificate-v2 (ESSCertIDv2, which
``openssl ts -verify`` requires), signed with RSA PKCS#1 v1.5, RSA-PSS or ECDSA.

:meth:`TimeStampAuthority.respond` never raises for a bad request: it answers ``rejection`` with
a failInfo (badAlg, badRequest, badDataFormat, unacceptedPolicy, unacceptedExtension).  No
clock, no sockets: ``gen_time`` and ``serial`` are parameters, the HTTP shell supplies them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from crossroad.crypto.algorithms import DIGESTS, SHA256, SHA512, DigestAlgorithm, digest_algorithm
from crossroad.crypto.tsp import TimeStampResp
from crossroad.errors import Code, XRoadError

log = logging.getLogger(__name__)

#: The policy of the NIIS development TSA, used when none is configured.
DEFAULT_POLICY = "1.2.3.4.1"


class _Rejection(Exception):
    def __init__(self, fail_info: str, text: str) -> None:
        super().__init__(text)
        self.fail_info = fail_info
        self.text = text


@dataclass(frozen=True)
class TimeStampAuthority:
    """A TSA: its signing key and certificate, policy and signature digest.

    ``include_cert``: put the TSA certificate into every token even when the request does not
    ask for it.  Off by default, as RFC 3161 §2.4.1 wants: the certificate goes in only when the
    request sets ``certReq``.  X-Road clients never set it and insert the approved TSA
    certificate themselves before storing the token (protocols.md §9.2).
    ``accuracy`` and ``include_tsa_name`` fill the optional TSTInfo fields.
    """

    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    policy: str = DEFAULT_POLICY
    digest: DigestAlgorithm = SHA512
    include_cert: bool = False
    rsa_pss: bool = False
    accuracy: dt.timedelta | None = None
    include_tsa_name: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise TypeError(f"Unsupported TSA key type {type(self.key).__name__}")
        mine = self.key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        theirs = self.cert.public_key().public_bytes(
            Encoding.DER, PublicFormat.SubjectPublicKeyInfo
        )
        if mine != theirs:
            raise ValueError("The TSA key does not belong to the TSA certificate")
        if self.rsa_pss and not isinstance(self.key, rsa.RSAPrivateKey):
            raise ValueError("RSA-PSS needs an RSA key")

    # --- the response --------------------------------------------------------------------

    def respond(self, request_der: bytes, *, gen_time: dt.datetime, serial: int) -> bytes:
        """A DER TimeStampResp for ``request_der``: granted with a token, or a rejection."""
        if gen_time.tzinfo is None:
            raise XRoadError(Code.INTERNAL_ERROR, "genTime must be an aware UTC datetime")
        if serial <= 0:
            raise XRoadError(Code.INTERNAL_ERROR, "The time-stamp serial number must be positive")
        try:
            request = _parse_request(request_der, self.policy)
        except _Rejection as rej:
            return _rejection(rej.fail_info, rej.text)
        try:
            token = self._token(request, gen_time.astimezone(dt.UTC), serial)
        except Exception:
            log.exception("Cannot sign a time-stamp token")
            return _rejection("system_failure", "Cannot create the time-stamp token")
        resp = TimeStampResp({"status": {"status": "granted"}, "time_stamp_token": token})
        return bytes(resp.dump())

    def _token(self, request: Any, gen_time: dt.datetime, serial: int) -> cms.ContentInfo:
        cert = asn1_x509.Certificate.load(self.cert.public_bytes(Encoding.DER))
        tst: dict[str, Any] = {
            "version": "v1",
            "policy": self.policy,
            "message_imprint": request["message_imprint"],
            "serial_number": serial,
            "gen_time": gen_time,
        }
        if self.accuracy is not None:
            tst["accuracy"] = _accuracy(self.accuracy)
        if request["nonce"].native is not None:
            tst["nonce"] = request["nonce"].native
        if self.include_tsa_name:
            tst["tsa"] = asn1_x509.GeneralName({"directory_name": cert.subject})
        tst_der = tsp.TSTInfo(tst).dump()
        digest_id = {"algorithm": self.digest.oid}
        signed_attrs = cms.CMSAttributes(
            [
                {"type": "content_type", "values": ["tst_info"]},
                {"type": "message_digest", "values": [self.digest.digest(tst_der)]},
                {"type": "signing_certificate_v2", "values": [self._signing_certificate(cert)]},
            ]
        )
        signature_algorithm, signature = self._sign(signed_attrs.dump())
        signer = cms.SignerInfo(
            {
                "version": "v1",
                "sid": cms.SignerIdentifier(
                    {
                        "issuer_and_serial_number": {
                            "issuer": cert.issuer,
                            "serial_number": cert.serial_number,
                        }
                    }
                ),
                "digest_algorithm": digest_id,
                "signed_attrs": signed_attrs,
                "signature_algorithm": signature_algorithm,
                "signature": signature,
            }
        )
        signed_data: dict[str, Any] = {
            "version": "v3",
            "digest_algorithms": [digest_id],
            "encap_content_info": {
                "content_type": "tst_info",
                "content": core.ParsableOctetString(tst_der),
            },
            "signer_infos": [signer],
        }
        if self.include_cert or request["cert_req"].native:
            signed_data["certificates"] = [cert]
        return cms.ContentInfo({"content_type": "signed_data", "content": signed_data})

    def _signing_certificate(self, cert: asn1_x509.Certificate) -> tsp.SigningCertificateV2:
        ess: dict[str, Any] = {
            "cert_hash": self.digest.digest(cert.dump()),
            "issuer_serial": {
                "issuer": [asn1_x509.GeneralName({"directory_name": cert.issuer})],
                "serial_number": cert.serial_number,
            },
        }
        if self.digest != SHA256:  # SHA-256 is the DEFAULT and DER omits defaults
            ess["hash_algorithm"] = {"algorithm": self.digest.oid}
        return tsp.SigningCertificateV2({"certs": [ess]})

    def _sign(self, signed_attrs_der: bytes) -> tuple[algos.SignedDigestAlgorithm, bytes]:
        h = self.digest.crypto_hash()
        name = self.digest.hashlib_name
        if isinstance(self.key, ec.EllipticCurvePrivateKey):
            alg = algos.SignedDigestAlgorithm({"algorithm": f"{name}_ecdsa"})
            return alg, self.key.sign(signed_attrs_der, ec.ECDSA(h))
        if self.rsa_pss:
            params = {
                "hash_algorithm": {"algorithm": name},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": name}},
                "salt_length": self.digest.size,
            }
            alg = algos.SignedDigestAlgorithm({"algorithm": "rsassa_pss", "parameters": params})
            pss = padding.PSS(mgf=padding.MGF1(h), salt_length=self.digest.size)
            return alg, self.key.sign(signed_attrs_der, pss, h)
        # rsaEncryption with the hash named by digestAlgorithm, as most TSAs write it.
        alg = algos.SignedDigestAlgorithm(
            {"algorithm": "rsassa_pkcs1v15", "parameters": core.Null()}
        )
        return alg, self.key.sign(signed_attrs_der, padding.PKCS1v15(), h)


def _parse_request(request_der: bytes, policy: str) -> Any:
    """The parsed TimeStampReq, or :class:`_Rejection` saying why it cannot be answered."""
    try:
        request = tsp.TimeStampReq.load(bytes(request_der), strict=True)
        request.native  # noqa: B018 - asn1crypto parses lazily: force every field now
        version = request["version"].native
        imprint = request["message_imprint"]
        alg_oid = imprint["hash_algorithm"]["algorithm"].dotted
        hashed = imprint["hashed_message"].native
        req_policy = request["req_policy"]
        extensions = request["extensions"].native or []
    except Exception as exc:
        raise _Rejection("bad_data_format", f"Cannot read the request: {exc}") from exc
    if version != "v1":
        raise _Rejection("bad_request", f"Unsupported request version {version}")
    try:
        digest = digest_algorithm(alg_oid)
    except XRoadError as exc:
        raise _Rejection("bad_alg", f"Unsupported message imprint algorithm {alg_oid}") from exc
    if digest not in DIGESTS or len(hashed) != digest.size:
        raise _Rejection("bad_data_format", f"The message imprint is not a {digest.name} digest")
    if req_policy.native is not None and req_policy.dotted != policy:
        raise _Rejection("unaccepted_policy", f"Unsupported policy {req_policy.dotted}")
    if any(ext["critical"] for ext in extensions):
        raise _Rejection("unaccepted_extensions", "Unsupported critical extension")
    return request


def _accuracy(value: dt.timedelta) -> dict[str, int]:
    micros_total = value // dt.timedelta(microseconds=1)
    seconds, rest = divmod(micros_total, 1_000_000)
    millis, micros = divmod(rest, 1000)
    out = {}
    # Accuracy fields are optional and 1..999 when present (RFC 3161 §2.4.2).
    if seconds:
        out["seconds"] = seconds
    if millis:
        out["millis"] = millis
    if micros:
        out["micros"] = micros
    return out


def _rejection(fail_info: str, text: str) -> bytes:
    status = {"status": "rejection", "status_string": [text], "fail_info": {fail_info}}
    return bytes(TimeStampResp({"status": status}).dump())
