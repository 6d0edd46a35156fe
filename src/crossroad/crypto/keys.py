"""Raw signing and verification with a key, per signature algorithm (protocols.md §0.2).

The signer process is the only holder of private keys; it calls :func:`sign` with its key.
Everything else only verifies.  ECDSA signatures are DER-encoded here; XML-DSig wants the raw
``r||s`` form (:func:`ecdsa_der_to_raw` / :func:`ecdsa_raw_to_der`).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificatePublicKeyTypes,
    PrivateKeyTypes,
)
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from crossroad.crypto.algorithms import DigestAlgorithm, SignatureAlgorithm, signature_algorithm_for
from crossroad.errors import Code, XRoadError


def key_type(key: PrivateKeyTypes | CertificatePublicKeyTypes) -> str:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "RSA"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return "EC"
    raise XRoadError(Code.CANNOT_CREATE_SIGNATURE, f"Unsupported key type {type(key).__name__}")


def default_algorithm(
    key: PrivateKeyTypes | CertificatePublicKeyTypes, digest: DigestAlgorithm
) -> SignatureAlgorithm:
    """The signature algorithm X-Road uses for ``key`` with ``digest`` (PKCS#1 v1.5 for RSA)."""
    return signature_algorithm_for(key_type(key), digest)


def _pss(alg: SignatureAlgorithm) -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(alg.digest.crypto_hash()), salt_length=alg.digest.size)


def sign(key: PrivateKeyTypes, alg: SignatureAlgorithm, data: bytes) -> bytes:
    """Sign ``data`` (ECDSA result is DER)."""
    h = alg.digest.crypto_hash()
    if isinstance(key, rsa.RSAPrivateKey):
        if alg.key_type == "RSA":
            return key.sign(data, padding.PKCS1v15(), h)
        if alg.key_type == "RSA-PSS":
            return key.sign(data, _pss(alg), h)
    elif isinstance(key, ec.EllipticCurvePrivateKey) and alg.key_type == "EC":
        return key.sign(data, ec.ECDSA(h))
    raise XRoadError(Code.CANNOT_CREATE_SIGNATURE, f"Key does not fit algorithm {alg.name}")


def verify(
    key: CertificatePublicKeyTypes, alg: SignatureAlgorithm, signature: bytes, data: bytes
) -> bool:
    """Whether ``signature`` (ECDSA: DER) over ``data`` verifies with ``key``."""
    h = alg.digest.crypto_hash()
    try:
        if isinstance(key, rsa.RSAPublicKey) and alg.key_type == "RSA":
            key.verify(signature, data, padding.PKCS1v15(), h)
        elif isinstance(key, rsa.RSAPublicKey) and alg.key_type == "RSA-PSS":
            key.verify(signature, data, _pss(alg), h)
        elif isinstance(key, ec.EllipticCurvePublicKey) and alg.key_type == "EC":
            key.verify(signature, data, ec.ECDSA(h))
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def _curve_bytes(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> int:
    return (key.curve.key_size + 7) // 8


def ecdsa_der_to_raw(
    der: bytes, key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey
) -> bytes:
    r, s = decode_dss_signature(der)
    n = _curve_bytes(key)
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def ecdsa_raw_to_der(raw: bytes) -> bytes:
    if not raw or len(raw) % 2:
        raise XRoadError(Code.INVALID_SIGNATURE_VALUE, "Malformed raw ECDSA signature")
    n = len(raw) // 2
    return encode_dss_signature(int.from_bytes(raw[:n], "big"), int.from_bytes(raw[n:], "big"))
