"""Certificate loading and inspection (protocols.md §10.1).

X-Road carries certificates in several spellings: DER, PEM, bare base64 lines without the PEM
armour (NIIS test files), and in some global configurations base64 of a PEM text
(``globalconf_good2_v3``).  :func:`load_certificate` accepts all of them.
"""

from __future__ import annotations

import base64
import binascii

from cryptography import x509

from crossroad.errors import Code, XRoadError

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"


def load_certificate(data: bytes | str) -> x509.Certificate:
    """Load one certificate from DER, PEM, bare base64 or base64-of-PEM."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    try:
        stripped = raw.strip()
        if stripped.startswith(_PEM_BEGIN):
            return x509.load_pem_x509_certificate(stripped)
        if stripped[:1] == b"\x30":
            return x509.load_der_x509_certificate(stripped)
        decoded = base64.b64decode(b"".join(stripped.split()), validate=True)
        if decoded.strip().startswith(_PEM_BEGIN):
            return x509.load_pem_x509_certificate(decoded.strip())
        return x509.load_der_x509_certificate(decoded)
    except (ValueError, binascii.Error, TypeError) as exc:
        raise XRoadError(Code.INCORRECT_CERTIFICATE, f"Cannot read certificate: {exc}") from exc
