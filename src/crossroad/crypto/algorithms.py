"""Digest and signature algorithm identifiers: names, XML-DSig URIs, OIDs (protocols.md §0.2).

X-Road spells every algorithm two ways: a *name* (``SHA-512``, ``SHA512withRSA``) in HTTP and
MIME headers, and a *URI* in XML-DSig, hash chains and the global configuration headers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes

from crossroad.errors import Code, XRoadError


@dataclass(frozen=True)
class DigestAlgorithm:
    name: str  # X-Road/Java name, e.g. "SHA-512"
    uri: str  # XML-DSig URI
    oid: str  # ASN.1 OID
    hashlib_name: str
    size: int  # digest size in bytes

    def digest(self, data: bytes) -> bytes:
        return hashlib.new(self.hashlib_name, data).digest()

    def hasher(self) -> hashlib._Hash:
        """An incremental hasher, for hashing while streaming."""
        return hashlib.new(self.hashlib_name)

    def crypto_hash(self) -> hashes.HashAlgorithm:
        return _CRYPTO_HASHES[self.hashlib_name]()

    def __str__(self) -> str:
        return self.name


SHA1 = DigestAlgorithm(
    "SHA-1", "http://www.w3.org/2000/09/xmldsig#sha1", "1.3.14.3.2.26", "sha1", 20
)
SHA224 = DigestAlgorithm(
    "SHA-224",
    "http://www.w3.org/2001/04/xmldsig-more#sha224",
    "2.16.840.1.101.3.4.2.4",
    "sha224",
    28,
)
SHA256 = DigestAlgorithm(
    "SHA-256", "http://www.w3.org/2001/04/xmlenc#sha256", "2.16.840.1.101.3.4.2.1", "sha256", 32
)
SHA384 = DigestAlgorithm(
    "SHA-384",
    "http://www.w3.org/2001/04/xmldsig-more#sha384",
    "2.16.840.1.101.3.4.2.2",
    "sha384",
    48,
)
SHA512 = DigestAlgorithm(
    "SHA-512", "http://www.w3.org/2001/04/xmlenc#sha512", "2.16.840.1.101.3.4.2.3", "sha512", 64
)

#: Default digest everywhere (``Digests.DEFAULT_DIGEST_ALGORITHM``).
DEFAULT_DIGEST = SHA512

DIGESTS: tuple[DigestAlgorithm, ...] = (SHA1, SHA224, SHA256, SHA384, SHA512)

_CRYPTO_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

_DIGEST_BY_KEY: dict[str, DigestAlgorithm] = {}
for _d in DIGESTS:
    for _k in (_d.name, _d.uri, _d.oid, _d.hashlib_name, _d.name.replace("-", "")):
        _DIGEST_BY_KEY[_k.upper()] = _d


def digest_algorithm(key: str) -> DigestAlgorithm:
    """Look up a digest by name (``SHA-512``, ``SHA512``), URI or OID."""
    found = _DIGEST_BY_KEY.get(key.strip().upper())
    if found is None:
        raise XRoadError(Code.INVALID_REQUEST, f"Unsupported digest algorithm: {key!r}")
    return found


@dataclass(frozen=True)
class SignatureAlgorithm:
    name: str  # Java name, e.g. "SHA512withRSA"
    uri: str
    digest: DigestAlgorithm
    key_type: str  # "RSA", "RSA-PSS" or "EC"

    def __str__(self) -> str:
        return self.name


_MORE = "http://www.w3.org/2001/04/xmldsig-more#"
_MGF1 = "http://www.w3.org/2007/05/xmldsig-more#"

SIGNATURES: tuple[SignatureAlgorithm, ...] = (
    SignatureAlgorithm("SHA1withRSA", "http://www.w3.org/2000/09/xmldsig#rsa-sha1", SHA1, "RSA"),
    SignatureAlgorithm("SHA256withRSA", _MORE + "rsa-sha256", SHA256, "RSA"),
    SignatureAlgorithm("SHA384withRSA", _MORE + "rsa-sha384", SHA384, "RSA"),
    SignatureAlgorithm("SHA512withRSA", _MORE + "rsa-sha512", SHA512, "RSA"),
    SignatureAlgorithm("SHA256withRSAandMGF1", _MGF1 + "sha256-rsa-MGF1", SHA256, "RSA-PSS"),
    SignatureAlgorithm("SHA384withRSAandMGF1", _MGF1 + "sha384-rsa-MGF1", SHA384, "RSA-PSS"),
    SignatureAlgorithm("SHA512withRSAandMGF1", _MGF1 + "sha512-rsa-MGF1", SHA512, "RSA-PSS"),
    SignatureAlgorithm("SHA1withECDSA", _MORE + "ecdsa-sha1", SHA1, "EC"),
    SignatureAlgorithm("SHA224withECDSA", _MORE + "ecdsa-sha224", SHA224, "EC"),
    SignatureAlgorithm("SHA256withECDSA", _MORE + "ecdsa-sha256", SHA256, "EC"),
    SignatureAlgorithm("SHA384withECDSA", _MORE + "ecdsa-sha384", SHA384, "EC"),
    SignatureAlgorithm("SHA512withECDSA", _MORE + "ecdsa-sha512", SHA512, "EC"),
)

#: Message signatures default to SHA512withRSA (protocols.md §0.2).
SHA512_WITH_RSA = SIGNATURES[3]

_SIG_BY_KEY: dict[str, SignatureAlgorithm] = {}
for _s in SIGNATURES:
    _SIG_BY_KEY[_s.name.upper()] = _s
    _SIG_BY_KEY[_s.uri.upper()] = _s


def signature_algorithm(key: str) -> SignatureAlgorithm:
    """Look up a signature algorithm by Java name or XML-DSig URI."""
    found = _SIG_BY_KEY.get(key.strip().upper())
    if found is None:
        raise XRoadError(Code.INVALID_REQUEST, f"Unsupported signature algorithm: {key!r}")
    return found


def signature_algorithm_for(key_type: str, digest: DigestAlgorithm) -> SignatureAlgorithm:
    """The signature algorithm for a key type (``RSA``, ``RSA-PSS``, ``EC``) and digest."""
    for s in SIGNATURES:
        if s.key_type == key_type and s.digest == digest:
            return s
    raise XRoadError(Code.INVALID_REQUEST, f"No {key_type} signature algorithm with {digest.name}")
