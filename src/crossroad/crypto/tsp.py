"""RFC 3161 time-stamps: requests, responses, tokens, their verification (protocols.md §9.2, §9.3).

The message log stamps data (a signature value, or a hash-chain result for a batch) at an approved
TSA: :func:`build_request` makes the ``TimeStampReq``, :func:`token_from_response` takes the
``TimeStampToken`` out of the TSA's ``TimeStampResp`` (checking it answers the request), and
:func:`add_certificate` puts the TSA certificate into the token, because X-Road does not set
``certReq``.  Verifiers call :func:`verify_token` with the approved TSA certificates of the
global configuration.

Fault codes follow the NIIS message log and ``TimestampVerifier``: an imprint that does not match
the data is ``malformed_signature``; a signer that is no approved TSA is
``mlog.tsp_certificate_not_found``; a CMS signature that does not verify is
``mlog.timestamp_signer_verification_failed``.  A token whose DER cannot be read is ``io_error``,
one that is not a well-formed time-stamp token ``internal_error`` (as the BouncyCastle parser
reports it there).  asn1crypto parses lazily, so every part used is forced inside a ``try``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.crypto.algorithms import SHA512, DigestAlgorithm, digest_algorithm
from crossroad.errors import Code, XRoadError

_SIGNED_DATA = "1.2.840.113549.1.7.2"
_TST_INFO = "1.2.840.113549.1.9.16.1.4"
_CONTENT_TYPE = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_SIGNING_TIME = "1.2.840.113549.1.9.5"
_ALGORITHM_PROTECTION = "1.2.840.113549.1.9.52"
_SIGNING_CERTIFICATE = "1.2.840.113549.1.9.16.2.12"
_SIGNING_CERTIFICATE_V2 = "1.2.840.113549.1.9.16.2.47"
_GRANTED = ("granted", "granted_with_mods")


class TimeStampResp(core.Sequence):  # type: ignore[misc]
    """RFC 3161 ``TimeStampResp`` with the token OPTIONAL (asn1crypto's spec requires it)."""

    _fields = [  # noqa: RUF012 - asn1crypto's class-level spec
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True}),
    ]


@dataclass(frozen=True)
class TimestampInfo:
    """What a time-stamp token says (its ``TSTInfo``) and who signed it.

    ``tsa_cert`` is the approved TSA certificate that verified the token (from
    :func:`verify_token`), or the matching certificate carried in the token (from
    :func:`token_info`), or None.  ``tsa_name`` is the optional ``tsa`` field, for display.
    """

    gen_time: dt.datetime
    digest: DigestAlgorithm
    imprint: bytes
    serial: int
    policy: str
    nonce: int | None = None
    accuracy: dt.timedelta | None = None
    tsa_name: str | None = None
    tsa_cert: x509.Certificate | None = None


@dataclass(frozen=True)
class _Token:
    """A parsed token whose parts have all been forced (asn1crypto objects)."""

    content_info: Any
    signed_data: Any
    signer: Any
    tst_info: Any
    econtent: bytes
    attrs: dict[str, list[Any]]


# --- requests ---------------------------------------------------------------------------------


def build_request(
    data: bytes,
    digest: DigestAlgorithm = SHA512,
    *,
    cert_req: bool = False,
    nonce: int | None = None,
) -> bytes:
    """A DER ``TimeStampReq`` over ``H(data)``: version 1, no policy, ``certReq`` only if asked."""
    req: dict[str, Any] = {
        "version": "v1",
        "message_imprint": {
            # NULL parameters, as openssl and BouncyCastle write them.
            "hash_algorithm": {"algorithm": digest.oid, "parameters": core.Null()},
            "hashed_message": digest.digest(data),
        },
    }
    if nonce is not None:
        req["nonce"] = nonce
    if cert_req:
        req["cert_req"] = True
    return bytes(tsp.TimeStampReq(req).dump())


# --- responses --------------------------------------------------------------------------------


def token_from_response(resp_der: bytes, request_der: bytes | None = None) -> bytes:
    """The DER ``TimeStampToken`` of a granted ``TimeStampResp``.

    With ``request_der`` the token must answer that request: same imprint algorithm and
    digest, the request's nonce and policy if it set them.
    """
    try:
        resp = TimeStampResp.load(bytes(resp_der), strict=True)
        status = resp["status"]
        code = status["status"].native
        texts = status["status_string"].native or []
        fail_info = status["fail_info"].native
        token_value = resp["time_stamp_token"]
    except Exception as exc:
        raise XRoadError(
            Code.READING_TIMESTAMP_RESPONSE_FAILED, f"Could not read time-stamp response: {exc}"
        ) from exc
    if code not in _GRANTED:
        strings = ", ".join(f'"{t}"' for t in texts)
        failures = ", ".join(sorted(fail_info)) if fail_info else "none"
        raise XRoadError(
            Code.TIMESTAMP_NON_GRANTED_RESPONSE,
            f"TimeStampResp.status: {code}, .statusString: {strings}, failInfo: {failures}",
        )
    try:
        if isinstance(token_value, core.Void):
            raise XRoadError(Code.INTERNAL_ERROR, "granted response carries no token")
        token = bytes(token_value.dump())
        parsed = _parse_token(token)
    except Exception as exc:
        raise XRoadError(
            Code.TIMESTAMP_RESPONSE_OBJECT_CREATION_FAILED,
            f"Could not create RFC 3161 TimeStampResponse object: {exc}",
        ) from exc
    if request_der is not None:
        _check_answers_request(parsed, request_der)
    return token


def _check_answers_request(token: _Token, request_der: bytes) -> None:
    try:
        req = tsp.TimeStampReq.load(request_der, strict=True)
        req_alg = req["message_imprint"]["hash_algorithm"]["algorithm"].dotted
        req_digest = req["message_imprint"]["hashed_message"].native
        req_nonce = req["nonce"].native
        req_policy = req["req_policy"].native and req["req_policy"].dotted
    except Exception as exc:
        raise XRoadError(Code.INTERNAL_ERROR, f"Cannot read time-stamp request: {exc}") from exc
    tst = token.tst_info
    problem = None
    if req_nonce is not None and tst["nonce"].native != req_nonce:
        problem = "response contains wrong nonce value"
    elif not hmac.compare_digest(tst["message_imprint"]["hashed_message"].native, req_digest):
        problem = "response for different message imprint digest"
    elif tst["message_imprint"]["hash_algorithm"]["algorithm"].dotted != req_alg:
        problem = "response for different message imprint algorithm"
    elif req_policy and tst["policy"].dotted != req_policy:
        problem = "TSA policy wrong for request"
    if problem:
        raise XRoadError(
            Code.TIMESTAMP_RESPONSE_VALIDATION_FAILED,
            f"Timestamp response validation against the request failed: {problem}",
        )


# --- tokens -----------------------------------------------------------------------------------


def _parse_token(token: bytes) -> _Token:
    try:
        content_info = cms.ContentInfo.load(bytes(token), strict=True)
        content_type = content_info["content_type"].dotted
    except Exception as exc:
        raise XRoadError(Code.IO_ERROR, f"Cannot read time-stamp token: {exc}") from exc
    try:
        if content_type != _SIGNED_DATA:
            raise ValueError("not a CMS SignedData")
        signed_data = content_info["content"]
        signed_data["version"].native  # noqa: B018 - force parsing
        encap = signed_data["encap_content_info"]
        if encap["content_type"].dotted != _TST_INFO:
            raise ValueError("ContentInfo object not for a time stamp")
        content = encap["content"]
        if isinstance(content, core.Void):
            raise ValueError("no encapsulated TSTInfo")
        econtent = bytes(content.__bytes__())
        tst_info = tsp.TSTInfo.load(econtent, strict=True)
        tst_info.native  # noqa: B018 - force parsing of every field
        signers = signed_data["signer_infos"]
        if len(signers) != 1:
            raise ValueError(f"signed by {len(signers)} signers, must be just the TSA")
        signer = signers[0]
        for field in ("version", "sid", "digest_algorithm", "signature_algorithm", "signature"):
            signer[field].native  # noqa: B018
        attrs: dict[str, list[Any]] = {}
        signed_attrs = signer["signed_attrs"]
        if isinstance(signed_attrs, core.Void) or len(signed_attrs) == 0:
            raise ValueError("no signed attributes")
        for attr in signed_attrs:
            attr.native  # noqa: B018
            attrs.setdefault(attr["type"].dotted, []).extend(attr["values"])
        if _SIGNING_CERTIFICATE not in attrs and _SIGNING_CERTIFICATE_V2 not in attrs:
            raise ValueError("no signing certificate attribute found")
    except Exception as exc:
        raise XRoadError(Code.INTERNAL_ERROR, f"Malformed time-stamp token: {exc}") from exc
    return _Token(content_info, signed_data, signer, tst_info, econtent, attrs)


def _info(token: _Token) -> TimestampInfo:
    try:
        return _read_info(token)
    except XRoadError:
        raise
    except Exception as exc:  # out-of-range values that parse but do not convert
        raise XRoadError(Code.INTERNAL_ERROR, f"Malformed time-stamp TSTInfo: {exc}") from exc


def _read_info(token: _Token) -> TimestampInfo:
    tst = token.tst_info
    imprint = tst["message_imprint"]
    try:
        digest = digest_algorithm(imprint["hash_algorithm"]["algorithm"].dotted)
    except XRoadError as exc:
        raise XRoadError(Code.INTERNAL_ERROR, f"Time-stamp {exc.detail}") from exc
    gen_time = tst["gen_time"].native
    if not isinstance(gen_time, dt.datetime) or gen_time.tzinfo is None:
        raise XRoadError(Code.INTERNAL_ERROR, f"Time-stamp genTime is not a UTC time: {gen_time}")
    accuracy = None
    acc = tst["accuracy"].native
    if acc is not None:
        accuracy = dt.timedelta(
            seconds=acc["seconds"] or 0,
            milliseconds=acc["millis"] or 0,
            microseconds=acc["micros"] or 0,
        )
    tsa = tst["tsa"]
    return TimestampInfo(
        gen_time=gen_time.astimezone(dt.UTC),
        digest=digest,
        imprint=bytes(imprint["hashed_message"].native),
        serial=int(tst["serial_number"].native),
        policy=tst["policy"].dotted,
        nonce=tst["nonce"].native,
        accuracy=accuracy,
        tsa_name=None if isinstance(tsa, core.Void) else _general_name(tsa),
    )


def _general_name(name: Any) -> str:
    if name.name == "directory_name":
        try:
            # cryptography renders RFC 4514 with the escaping done right.
            rdns = [
                x509.RelativeDistinguishedName(
                    [
                        x509.NameAttribute(
                            x509.ObjectIdentifier(a["type"].dotted), a["value"].native
                        )
                        for a in rdn
                    ]
                )
                for rdn in name.chosen.chosen
            ]
            return x509.Name(rdns).rfc4514_string()
        except (ValueError, TypeError):
            return str(name.chosen.human_friendly)
    return str(name.native)


def token_info(token: bytes) -> TimestampInfo:
    """Parse a DER ``TimeStampToken`` without verifying it."""
    parsed = _parse_token(token)
    info = _info(parsed)
    return replace(info, tsa_cert=_embedded_signer_cert(parsed))


def _embedded_signer_cert(token: _Token) -> x509.Certificate | None:
    for cert in _embedded_certs(token):
        if _sid_matches(token.signer["sid"], cert):
            return cert
    return None


def _embedded_certs(token: _Token) -> list[x509.Certificate]:
    certs = []
    try:
        choices = token.signed_data["certificates"]
        found = [] if isinstance(choices, core.Void) else list(choices)
    except Exception:
        return []
    for choice in found:
        try:
            if choice.name == "certificate":
                certs.append(x509.load_der_x509_certificate(choice.chosen.dump()))
        except Exception:  # noqa: S112 - an unreadable extra certificate is just not a candidate
            continue
    return certs


def verify_token(token: bytes, data: bytes, tsa_certs: Sequence[x509.Certificate]) -> TimestampInfo:
    """Verify that ``token`` stamps ``data`` and is signed by one of ``tsa_certs``.

    The order of the checks is NIIS ``TimestampVerifier``'s: imprint, approved signer, CMS
    signature.  Certificates carried in the token are not trusted; only ``tsa_certs`` are.
    """
    parsed = _parse_token(token)
    info = _info(parsed)
    if not hmac.compare_digest(info.digest.digest(data), info.imprint):
        raise XRoadError(Code.MALFORMED_SIGNATURE, "Timestamp hashes do not match")
    if not tsa_certs:
        raise XRoadError(
            Code.NO_TIMESTAMPING_PROVIDER_FOUND, "No TSP service providers are configured"
        )
    cert = next((c for c in tsa_certs if _sid_matches(parsed.signer["sid"], c)), None)
    if cert is None:
        raise XRoadError(
            Code.TSP_CERTIFICATE_NOT_FOUND, "Could not find TSP certificate for timestamp"
        )
    try:
        problem = _signer_problem(parsed, cert)
    except Exception as exc:  # e.g. a signingTime asn1crypto reads but cannot compare
        problem = f"unreadable signer information: {exc}"
    if problem:
        raise XRoadError(
            Code.TIMESTAMP_SIGNER_VERIFICATION_FAILED,
            f"Failed to verify timestamp signer information: {problem}",
        )
    return replace(info, tsa_cert=cert)


def _sid_matches(sid: Any, cert: x509.Certificate) -> bool:
    try:
        if sid.name == "issuer_and_serial_number":
            ias = sid.chosen
            if ias["serial_number"].native != cert.serial_number:
                return False
            # asn1crypto compares names the RFC 5280 way (case and space folding).
            return bool(asn1_x509.Name.load(cert.issuer.public_bytes()) == ias["issuer"])
        wanted = sid.chosen.native
        try:
            ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            return bool(ski.value.digest == wanted)
        except x509.ExtensionNotFound:
            spki = asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER)).public_key
            return bool(hashlib.sha1(spki["public_key"].contents[1:]).digest() == wanted)
    except Exception:
        return False


def _single(token: _Token, oid: str, label: str) -> tuple[Any | None, str | None]:
    values = token.attrs.get(oid)
    if values is None:
        return None, None
    if len(values) != 1:
        return None, f"{label} attribute must have exactly one value"
    return values[0], None


def _signer_problem(token: _Token, cert: x509.Certificate) -> str | None:
    """Why the SignerInfo does not verify with ``cert`` (the checks BouncyCastle makes), or None."""
    signer = token.signer
    try:
        sig_digest = digest_algorithm(signer["digest_algorithm"]["algorithm"].dotted)
    except XRoadError:
        return "unsupported digest algorithm"
    content_type, problem = _single(token, _CONTENT_TYPE, "content-type")
    if problem or content_type is None:
        return problem or "the content-type attribute is missing"
    if content_type.dotted != _TST_INFO:
        return "content-type attribute value does not match eContentType"
    message_digest, problem = _single(token, _MESSAGE_DIGEST, "message-digest")
    if problem or message_digest is None:
        return problem or "the message-digest attribute is missing"
    if not hmac.compare_digest(bytes(message_digest.native), sig_digest.digest(token.econtent)):
        return "message-digest attribute value does not match calculated value"
    signing_time, problem = _single(token, _SIGNING_TIME, "signing-time")
    if problem:
        return problem
    if signing_time is not None:
        at = signing_time.native
        if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
            return "TSA certificate not valid at signingTime"
    protection, problem = _single(token, _ALGORITHM_PROTECTION, "cmsAlgorithmProtect")
    if problem:
        return problem
    if protection is not None and (
        protection["digest_algorithm"]["algorithm"].dotted
        != signer["digest_algorithm"]["algorithm"].dotted
        or protection["signature_algorithm"]["algorithm"].dotted
        != signer["signature_algorithm"]["algorithm"].dotted
    ):
        return "CMS algorithm protection attribute does not match"
    # The signature covers the DER SET OF the attributes, each as encoded, in DER order.
    children = sorted(attr.dump() for attr in signer["signed_attrs"])
    signed = bytes(core.SetOf(contents=b"".join(children)).dump())
    if not _signature_ok(cert, signer, sig_digest, signed):
        return "signature does not verify"
    return None


def _signature_ok(
    cert: x509.Certificate, signer: Any, sig_digest: DigestAlgorithm, signed: bytes
) -> bool:
    alg = signer["signature_algorithm"]
    signature = bytes(signer["signature"].native)
    try:
        kind = alg.signature_algo
        try:
            # sha512WithRSAEncryption etc. name their hash; rsaEncryption uses digestAlgorithm.
            digest = digest_algorithm(alg.hash_algo)
        except (ValueError, XRoadError):
            digest = sig_digest
        public_key = cert.public_key()
        h = digest.crypto_hash()
        if kind == "rsassa_pkcs1v15" and isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, signed, padding.PKCS1v15(), h)
        elif kind == "rsassa_pss" and isinstance(public_key, rsa.RSAPublicKey):
            params = alg["parameters"]
            mgf = params["mask_gen_algorithm"]
            if mgf["algorithm"].native != "mgf1":
                return False
            mgf_digest = digest_algorithm(mgf["parameters"]["algorithm"].dotted)
            pss = padding.PSS(
                mgf=padding.MGF1(mgf_digest.crypto_hash()),
                salt_length=int(params["salt_length"].native),
            )
            public_key.verify(signature, signed, pss, h)
        elif kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, signed, ec.ECDSA(h))
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, XRoadError, ValueError, TypeError, KeyError):
        return False
    return True


def add_certificate(token: bytes, cert: x509.Certificate) -> bytes:
    """``token`` with ``cert`` in its SignedData certificates (unchanged if already there).

    The certificates lie outside the signed attributes, so the signature stays valid; every
    other part keeps its original encoding.
    """
    parsed = _parse_token(token)
    der = cert.public_bytes(Encoding.DER)
    if any(c.public_bytes(Encoding.DER) == der for c in _embedded_certs(parsed)):
        return bytes(token)
    try:
        existing = parsed.signed_data["certificates"]
        others = [] if isinstance(existing, core.Void) else [c.dump() for c in existing]
        choices = [cms.CertificateChoices.load(c) for c in others]
        choices.insert(0, cms.CertificateChoices({"certificate": asn1_x509.Certificate.load(der)}))
        parsed.signed_data["certificates"] = cms.CertificateSet(choices)
        return bytes(parsed.content_info.dump())
    except Exception as exc:
        raise XRoadError(
            Code.INTERNAL_ERROR, f"Adding signer certificate to timestamp token failed: {exc}"
        ) from exc
