"""Certificate loading and inspection (protocols.md §4.1, §10.1).

X-Road carries certificates in several spellings: DER, PEM (also PEM bundles and OpenSSL's
``TRUSTED CERTIFICATE`` armour), bare base64 lines without the PEM armour (NIIS test files), and in
some global configurations base64 of a PEM text (``globalconf_good2_v3``).
:func:`load_certificate` / :func:`load_certificates` accept all of them.

Names are rendered the way the Java peers render them, because those strings travel on the wire
or decide identities: :func:`java_rfc2253` is ``X500Principal.getName()`` (XAdES
``X509IssuerName``), :func:`subject_field` is NIIS ``CertUtils.getRDNValue`` (certificate profiles),
:func:`subject_alt_names` is NIIS ``CertUtils.getSubjectAlternativeNames``.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import re
from collections.abc import Iterator

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID

from crossroad.crypto.algorithms import SHA1, DigestAlgorithm
from crossroad.errors import Code, XRoadError

_PEM_BEGIN = b"-----BEGIN CERTIFICATE-----"
_PEM_BLOCK = re.compile(
    rb"-----BEGIN (CERTIFICATE|TRUSTED CERTIFICATE|X509 CERTIFICATE|PKCS7)-----"
    rb"(.*?)-----END \1-----",
    re.S,
)


# ---------------------------------------------------------------------------------------------
# Loading


def _incorrect(what: str, exc: Exception | None = None) -> XRoadError:
    detail = f"Cannot read certificate: {what}" + (f": {exc}" if exc else "")
    return XRoadError(Code.INCORRECT_CERTIFICATE, detail)


def _first_tlv(data: bytes) -> bytes:
    """The first DER element of ``data`` (a TRUSTED CERTIFICATE body is cert DER + aux DER)."""
    _, _, end = _tlv(data, 0)
    return data[:end]


# What cryptography raises on malformed input (InvalidVersion is not a ValueError).
_PARSE_ERRORS = (ValueError, TypeError, x509.InvalidVersion, UnsupportedAlgorithm)


def _checked(cert: x509.Certificate) -> x509.Certificate:
    """Parse what Java parses when it reads a certificate: cryptography decodes names and
    extensions lazily, and a flaw found later must not surface as a foreign exception."""
    try:
        _ = (cert.subject, cert.issuer, cert.serial_number)
        _ = (cert.not_valid_before_utc, cert.not_valid_after_utc)
    except _PARSE_ERRORS as exc:
        raise _incorrect("malformed certificate", exc) from exc
    extensions(cert)
    return cert


def _load_der(der: bytes) -> list[x509.Certificate]:
    try:
        return [_checked(x509.load_der_x509_certificate(der))]
    except _PARSE_ERRORS as exc:
        try:
            certs = pkcs7.load_der_pkcs7_certificates(der)
        except _PARSE_ERRORS:
            raise _incorrect("not a DER certificate", exc) from exc
        if not certs:
            raise _incorrect("PKCS#7 structure holds no certificates") from exc
        return [_checked(c) for c in certs]


def _load_pem_blocks(text: bytes) -> list[x509.Certificate]:
    certs: list[x509.Certificate] = []
    for kind, body in _PEM_BLOCK.findall(text):
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _incorrect("bad base64 in PEM block", exc) from exc
        if kind == b"TRUSTED CERTIFICATE":
            der = _first_tlv(der)
        certs.extend(_load_der(der))
    if not certs:
        raise _incorrect("no certificate found in PEM text")
    return certs


def load_certificates(data: bytes | str) -> list[x509.Certificate]:
    """All certificates in ``data``: a PEM bundle, DER (also PKCS#7), bare base64, base64-of-PEM."""
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    return list(_load_all(raw))


@functools.lru_cache(maxsize=512)
def _load_all(raw: bytes) -> tuple[x509.Certificate, ...]:
    # The same bytes always give the same certificates (or the same error, not cached): a
    # peer's TLS chain and the certificates of configuration are read again and again.
    return tuple(_load_any(raw))


def _load_any(raw: bytes) -> list[x509.Certificate]:
    try:
        if raw[:1] == b"\x30":
            # Binary DER: never strip, its last bytes may well look like whitespace.
            return _load_der(raw)
        stripped = raw.strip()
        if b"-----BEGIN " in stripped:
            return _load_pem_blocks(stripped)
        if stripped[:1] == b"\x30":
            return _load_der(stripped)
        decoded = base64.b64decode(b"".join(stripped.split()), validate=True)
        if b"-----BEGIN " in decoded:
            return _load_pem_blocks(decoded.strip())
        return _load_der(decoded)
    except XRoadError:
        raise
    except (ValueError, binascii.Error, TypeError) as exc:
        raise _incorrect("unrecognised encoding", exc) from exc


def load_certificate(data: bytes | str) -> x509.Certificate:
    """Load one certificate (the first one) from DER, PEM, bare base64 or base64-of-PEM."""
    return load_certificates(data)[0]


# Certificates are immutable values, and a proxy meets the same few in every message (signing
# and authentication certificates, CA and OCSP responder certificates): what is computed from
# a certificate's bytes alone is computed once.  The caches are bounded and keyed by the
# certificates themselves (cryptography hashes and compares them by their full DER), or by
# object identity with the object held, so an entry only ever answers for the same bytes.
_CACHE_SIZE = 4096
_DER_BY_ID: dict[int, tuple[x509.Certificate, bytes]] = {}


def cert_der(cert: x509.Certificate) -> bytes:
    entry = _DER_BY_ID.get(id(cert))
    if entry is not None and entry[0] is cert:
        return entry[1]
    der = cert.public_bytes(Encoding.DER)
    if len(_DER_BY_ID) >= _CACHE_SIZE:
        _DER_BY_ID.clear()
    _DER_BY_ID[id(cert)] = (cert, der)  # held, so its id cannot pass to another object
    return der


def cert_hash(cert: x509.Certificate, digest: DigestAlgorithm = SHA1) -> bytes:
    """The digest of the certificate's DER encoding (SHA-1: OCSP download, V2 ``authCertHash``)."""
    return digest.digest(cert_der(cert))


def cert_hash_hex(cert: x509.Certificate, digest: DigestAlgorithm = SHA1) -> str:
    """Lower-case hex of :func:`cert_hash` (the ``cert=`` form of the OCSP download service)."""
    return cert_hash(cert, digest).hex()


def public_key_sha1(cert: x509.Certificate) -> bytes:
    """SHA-1 of the subjectPublicKey BIT STRING value (OCSP issuerKeyHash and responder KeyHash)."""
    der = cert_der(cert)
    try:
        fields = [f for f in _tbs_fields(der) if f[0] & 0xC0 == 0]  # skip [0] version etc.
        _, _, spki_start, spki_end = fields[5]
        bits = list(_children(der, spki_start, spki_end))[1]
        if bits[0] != 0x03:
            raise ValueError("subjectPublicKey is a BIT STRING")
        return SHA1.digest(der[bits[2] + 1 : bits[3]])
    except (ValueError, IndexError) as exc:
        raise _incorrect("cannot read the public key", exc) from exc


# ---------------------------------------------------------------------------------------------
# Extensions, read with our own DER reader: cryptography refuses whole extension lists over
# details Java accepts (x400Address/ediPartyName in a SAN), and key usage must still be known.


def _tbs_fields(der: bytes) -> list[tuple[int, int, int, int]]:
    _, start, end = _tlv(der, 0)
    tag, tbs_start, tbs_end = _tlv(der[:end], start)
    if tag != 0x30:
        raise ValueError("tbsCertificate is a SEQUENCE")
    return list(_children(der, tbs_start, tbs_end))


@functools.lru_cache(maxsize=1024)
def extensions(cert: x509.Certificate) -> dict[str, tuple[bool, bytes]]:
    """The certificate's extensions: OID -> (critical, DER of extnValue's content).
    Malformed or duplicate extensions are ``incorrect_certificate`` (Java refuses them too)."""
    der = cert_der(cert)
    found: dict[str, tuple[bool, bytes]] = {}
    try:
        for tag, _, start, end in _tbs_fields(der):
            if tag != 0xA3:
                continue
            seq_tag, seq_start, seq_end = _tlv(der[:end], start)
            if seq_tag != 0x30:
                raise ValueError("extensions are a SEQUENCE")
            for ext_tag, _, ext_start, ext_end in _children(der, seq_start, seq_end):
                parts = list(_children(der, ext_start, ext_end))
                if ext_tag != 0x30 or len(parts) not in (2, 3) or parts[0][0] != 0x06:
                    raise ValueError("malformed extension")
                if parts[-1][0] != 0x04 or (len(parts) == 3 and parts[1][0] != 0x01):
                    raise ValueError("malformed extension")
                oid = _oid(der[parts[0][2] : parts[0][3]])
                critical = len(parts) == 3 and der[parts[1][2] : parts[1][3]] != b"\x00"
                if oid in found:
                    raise ValueError(f"duplicate extension {oid}")
                found[oid] = (critical, der[parts[-1][2] : parts[-1][3]])
    except ValueError as exc:
        raise _incorrect("malformed extensions", exc) from exc
    return found


def critical_extensions(cert: x509.Certificate) -> tuple[str, ...]:
    return tuple(oid for oid, (critical, _) in extensions(cert).items() if critical)


def _extension(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> tuple[int, bytes] | None:
    """The outer element (tag, content) of an extension's value, or None if absent."""
    found = extensions(cert).get(oid.dotted_string)
    if found is None:
        return None
    value = found[1]
    try:
        tag, start, end = _tlv(value, 0)
    except ValueError as exc:
        raise _incorrect(f"malformed extension {oid.dotted_string}", exc) from exc
    return tag, value[start:end]


# keyUsage bits (RFC 5280 4.2.1.3)
DIGITAL_SIGNATURE, NON_REPUDIATION, KEY_ENCIPHERMENT, DATA_ENCIPHERMENT = 0, 1, 2, 3
KEY_CERT_SIGN = 5


def key_usage(cert: x509.Certificate) -> frozenset[int] | None:
    """The keyUsage bits set (0 = digitalSignature ...), None when the extension is absent."""
    found = _extension(cert, ExtensionOID.KEY_USAGE)
    if found is None:
        return None
    tag, content = found
    if tag != 0x03 or not content:
        raise _incorrect("malformed keyUsage")
    bits = content[1:]
    return frozenset(i for i in range(len(bits) * 8) if bits[i // 8] & (0x80 >> (i % 8)))


def extended_key_usage(cert: x509.Certificate) -> tuple[str, ...]:
    """The EKU OIDs (dotted), empty when the extension is absent."""
    found = _extension(cert, ExtensionOID.EXTENDED_KEY_USAGE)
    if found is None:
        return ()
    tag, content = found
    try:
        if tag != 0x30:
            raise ValueError("extKeyUsage is a SEQUENCE")
        return tuple(_oid(content[s:e]) for t, _, s, e in _children(content, 0, len(content)))
    except ValueError as exc:
        raise _incorrect("malformed extKeyUsage", exc) from exc


def basic_constraints(cert: x509.Certificate) -> tuple[bool, int | None] | None:
    """(cA, pathLenConstraint) or None when the extension is absent."""
    found = _extension(cert, ExtensionOID.BASIC_CONSTRAINTS)
    if found is None:
        return None
    tag, content = found
    ca, path_len = False, None
    try:
        if tag != 0x30:
            raise ValueError("basicConstraints is a SEQUENCE")
        for t, _, s, e in _children(content, 0, len(content)):
            if t == 0x01:
                ca = content[s:e] != b"\x00"
            elif t == 0x02 and e > s:
                path_len = int.from_bytes(content[s:e], "big", signed=True)
            else:
                raise ValueError("unexpected element in basicConstraints")
    except ValueError as exc:
        raise _incorrect("malformed basicConstraints", exc) from exc
    return ca, path_len


def is_auth_cert(cert: x509.Certificate) -> bool:
    """An authentication certificate: EKU clientAuth, or keyUsage digitalSignature,
    keyEncipherment or dataEncipherment (NIIS ``CertUtils.isAuthCert``, protocols.md §4.1)."""
    if ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string in extended_key_usage(cert):
        return True
    ku = key_usage(cert)
    if ku is None:
        return False  # NIIS throws here; callers turn it into ssl_authentication_failed
    return bool(ku & {DIGITAL_SIGNATURE, KEY_ENCIPHERMENT, DATA_ENCIPHERMENT})


def is_sign_cert(cert: x509.Certificate) -> bool:
    """A signing certificate: keyUsage nonRepudiation (protocols.md §4.9 step 4, §10.1)."""
    ku = key_usage(cert)
    return ku is not None and NON_REPUDIATION in ku


def is_ca_cert(cert: x509.Certificate) -> bool:
    """basicConstraints cA=TRUE."""
    bc = basic_constraints(cert)
    return bc is not None and bc[0]


def can_sign_certs(cert: x509.Certificate) -> bool:
    """Whether ``cert`` may issue certificates: keyCertSign when keyUsage is present
    (v1 certificates without extensions qualify, as in PKIX)."""
    ku = key_usage(cert)
    return ku is None or KEY_CERT_SIGN in ku


def verify_signature(cert: x509.Certificate, public_key: CertificatePublicKeyTypes) -> bool:
    """Whether ``public_key`` verifies ``cert``'s signature (names are matched by the callers,
    with Java semantics, see :func:`names_equal`)."""
    try:
        sig, data, h = cert.signature, cert.tbs_certificate_bytes, cert.signature_hash_algorithm
        params = cert.signature_algorithm_parameters
        if isinstance(public_key, rsa.RSAPublicKey) and isinstance(
            params, padding.PKCS1v15 | padding.PSS
        ):
            if h is None:
                return False
            public_key.verify(sig, data, params, h)
        elif isinstance(public_key, ec.EllipticCurvePublicKey) and isinstance(params, ec.ECDSA):
            public_key.verify(sig, data, params)
        elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            public_key.verify(sig, data)
        elif isinstance(public_key, dsa.DSAPublicKey) and h is not None:
            public_key.verify(sig, data, h)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


@functools.lru_cache(maxsize=_CACHE_SIZE)
def verify_issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key verifies ``cert``'s signature (a pure function of the two
    certificates' bytes, memoised: paths and OCSP responders repeat in every message)."""
    try:
        key = issuer.public_key()
    except (ValueError, UnsupportedAlgorithm):
        return False
    return verify_signature(cert, key)


# ---------------------------------------------------------------------------------------------
# A minimal DER reader (names keep their raw value tags, which matter for Java's output)


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """Read one DER element at ``pos``: (tag byte, content start, end)."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER element")
    tag = data[pos]
    if tag & 0x1F == 0x1F:
        raise ValueError("multi-byte DER tags are not used here")
    first = data[pos + 1]
    start = pos + 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or start + count > len(data):
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[start : start + count], "big")
        start += count
    end = start + length
    if end > len(data):
        raise ValueError("DER element overruns its container")
    return tag, start, end


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """The elements inside ``data[start:end]``: (tag, element start, content start, end)."""
    pos = start
    while pos < end:
        tag, cstart, cend = _tlv(data[:end], pos)
        yield tag, pos, cstart, cend
        pos = cend


def _oid(content: bytes) -> str:
    if not content:
        raise ValueError("empty OID")
    first = content[0]
    parts = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    value = 0
    for i, byte in enumerate(content[1:], 1):
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
        elif i == len(content) - 1:
            raise ValueError("truncated OID")
    if first & 0x80:
        raise ValueError("unsupported OID encoding")
    return ".".join(str(p) for p in parts)


# One attribute: (OID, value tag, value content bytes, full value TLV bytes).
_Ava = tuple[str, int, bytes, bytes]


def _name_rdns(der: bytes) -> list[list[_Ava]]:
    """The RDNs of a DER Name, in encoded order."""
    tag, start, end = _tlv(der, 0)
    if tag != 0x30:
        raise ValueError("a Name is a SEQUENCE")
    rdns: list[list[_Ava]] = []
    for set_tag, _, s_start, s_end in _children(der, start, end):
        if set_tag != 0x31:
            raise ValueError("an RDN is a SET")
        avas: list[_Ava] = []
        for seq_tag, _, a_start, a_end in _children(der, s_start, s_end):
            if seq_tag != 0x30:
                raise ValueError("an attribute is a SEQUENCE")
            parts = list(_children(der, a_start, a_end))
            if len(parts) != 2 or parts[0][0] != 0x06:
                raise ValueError("an attribute is (OID, value)")
            (_, _, o_start, o_end), (v_tag, v_pos, v_start, v_end) = parts
            avas.append((_oid(der[o_start:o_end]), v_tag, der[v_start:v_end], der[v_pos:v_end]))
        rdns.append(avas)
    return rdns


_NAME_DER_BY_ID: dict[int, tuple[x509.Name, bytes]] = {}


def _name_der(name: x509.Name | bytes) -> bytes:
    if isinstance(name, bytes):
        return name
    # A certificate hands out the same Name object every time: encode it once (held, as in
    # cert_der, so that its id cannot pass to another object).
    entry = _NAME_DER_BY_ID.get(id(name))
    if entry is not None and entry[0] is name:
        return entry[1]
    der = name.public_bytes()
    if len(_NAME_DER_BY_ID) >= _CACHE_SIZE:
        _NAME_DER_BY_ID.clear()
    _NAME_DER_BY_ID[id(name)] = (name, der)
    return der


# ---------------------------------------------------------------------------------------------
# Java X500Principal.getName() (RFC 2253 form)

# Keywords Java emits in RFC 2253 output; every other attribute type is printed as its OID
# with the value as "#" + hex of its DER encoding (e.g. serialNumber, emailAddress).
_JAVA_RFC2253_KEYWORDS = {
    "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.10": "O",
    "2.5.4.11": "OU", "2.5.4.9": "STREET", "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
}  # fmt: skip
# PrintableString, T61String, IA5String, GeneralString, BMPString, UTF8String.
_JAVA_DER_STRING_TAGS = frozenset({0x13, 0x14, 0x16, 0x1B, 0x1E, 0x0C})
_JAVA_ESCAPEES = ',=+<>#;"\\'
_PRINTABLE_EXTRA = frozenset(" '()+,-./:=?")


def _java_printable(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in _PRINTABLE_EXTRA)


def _java_ava(oid: str, tag: int, content: bytes, tlv: bytes) -> str:
    keyword = _JAVA_RFC2253_KEYWORDS.get(oid, oid)
    if keyword[0].isdigit() or tag not in _JAVA_DER_STRING_TAGS:
        return f"{keyword}=#{tlv.hex()}"
    # Java decodes the content octets as UTF-8 whatever the string type.
    text = content.decode("utf-8", "replace")
    buf: list[str] = []
    for c in text:
        if _java_printable(c) or c in _JAVA_ESCAPEES:
            if c in _JAVA_ESCAPEES:
                buf.append("\\")
            buf.append(c)
        elif c == "\x00":
            buf.append("\\00")
        else:
            buf.append(c)
    chars = "".join(buf)
    lead = 0
    while lead < len(chars) and chars[lead] in " \r":
        lead += 1
    trail = len(chars) - 1
    while trail >= 0 and chars[trail] in " \r":
        trail -= 1
    out = "".join(("\\" + c) if (i < lead or i > trail) else c for i, c in enumerate(chars))
    return f"{keyword}={out}"


def java_rfc2253(name: x509.Name | bytes) -> str:
    """``X500Principal.getName()``: RDNs last-to-first, Java's keywords and escaping.

    >>> from crossroad.testing.pki import name
    >>> java_rfc2253(name(C="FI", CN="4321", serialNumber="DEV/ss2/COM"))
    '2.5.4.5=#130b4445562f7373322f434f4d,CN=4321,C=FI'
    """
    try:
        rdns = _name_rdns(_name_der(name))
    except ValueError as exc:
        raise XRoadError(
            Code.INCORRECT_CERTIFICATE, f"Malformed distinguished name: {exc}"
        ) from exc
    return ",".join("+".join(_java_ava(*ava) for ava in rdn) for rdn in reversed(rdns))


# ---------------------------------------------------------------------------------------------
# NIIS CertUtils.getRDNValue: BouncyCastle's view of the Java RFC 2253 string

# BouncyCastle's ASN1String decodings: UTF8String, BMPString, and the 8-bit string types
# (Numeric, Printable, T61, Videotex, IA5, Graphic, Visible, General) byte for char.
_BC_STRING_DECODERS = {0x0C: "utf-8", 0x1E: "utf-16-be"} | dict.fromkeys(
    (0x12, 0x13, 0x14, 0x15, 0x16, 0x19, 0x1A, 0x1B), "latin-1"
)
_BC_ESCAPEES = frozenset('",+;<=>\\')


def _bc_value(oid: str, tag: int, content: bytes, tlv: bytes) -> str:
    if oid in _JAVA_RFC2253_KEYWORDS and tag in _JAVA_DER_STRING_TAGS:
        text = content.decode("utf-8", "replace")  # what Java's RFC 2253 string carried
    elif tag in _BC_STRING_DECODERS:
        text = codecs.decode(content, _BC_STRING_DECODERS[tag], "replace")
    else:
        text = "#" + tlv.hex()
        return _bc_escape(text, hex_form=True)
    return _bc_escape(text, hex_form=False)


def _bc_escape(text: str, *, hex_form: bool) -> str:
    """BouncyCastle ``IETFUtils.valueToString`` escaping."""
    buf = list(text)
    index = 0
    if not hex_form and buf[:1] == ["#"]:
        buf.insert(0, "\\")
        index = 2
    out: list[str] = buf[:index]
    for c in buf[index:]:
        if c in _BC_ESCAPEES:
            out.append("\\")
        out.append(c)
    s = "".join(out)
    stripped = s.lstrip(" ")
    lead = len(s) - len(stripped)
    s = "\\ " * lead + stripped
    body = s.rstrip(" ")
    trail = len(s) - len(body)
    return body + "\\ " * trail


def subject_field(cert: x509.Certificate, oid: x509.ObjectIdentifier | str) -> str | None:
    """The value of attribute ``oid`` in the subject, as NIIS ``CertUtils.getRDNValue`` sees it.

    NIIS re-parses the Java RFC 2253 string, so the *last* RDN in encoded order wins, a
    multi-valued RDN yields its first attribute, and special characters come back escaped.
    """
    return name_field(cert.subject, oid)


def name_field(name: x509.Name | bytes, oid: x509.ObjectIdentifier | str) -> str | None:
    wanted = oid if isinstance(oid, str) else oid.dotted_string
    try:
        rdns = _name_rdns(_name_der(name))
    except ValueError as exc:
        raise XRoadError(
            Code.INCORRECT_CERTIFICATE, f"Malformed distinguished name: {exc}"
        ) from exc
    for rdn in reversed(rdns):
        if any(ava[0] == wanted for ava in rdn):
            return _bc_value(*rdn[0])
    return None


def _canonical(tag: int, content: bytes, tlv: bytes) -> str:
    if tag in _BC_STRING_DECODERS:
        text = codecs.decode(content, _BC_STRING_DECODERS[tag], "replace")
    else:
        return "#" + tlv.hex()
    return " ".join(text.lower().split())


def names_equal(a: x509.Name | bytes, b: x509.Name | bytes, *, any_order: bool = False) -> bool:
    """Name equality as Java compares principals: same attributes, values compared
    case-insensitively with whitespace collapsed, string types ignored.

    ``any_order``: RDNs may come in any order, as BouncyCastle ``X500Name.equals`` allows
    (NIIS writes OCSP responder names from an RFC 2253 string, i.e. in reverse order).
    """
    da, db = _name_der(a), _name_der(b)
    if da == db:
        return True
    return _names_equal_der(da, db, any_order)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _names_equal_der(da: bytes, db: bytes, any_order: bool) -> bool:
    try:
        ra, rb = _name_rdns(da), _name_rdns(db)
    except ValueError:
        return False

    def canon(rdns: list[list[_Ava]]) -> list[list[tuple[str, str]]]:
        return [sorted((o, _canonical(t, c, v)) for o, t, c, v in rdn) for rdn in rdns]

    ca, cb = canon(ra), canon(rb)
    if any_order:
        return sorted(ca) == sorted(cb)
    return ca == cb


# ---------------------------------------------------------------------------------------------
# Subject alternative names, as NIIS CertUtils.getSubjectAlternativeNames prints them

_SAN_LABELS = (
    "othername", "email", "DNS", "x400", "DirName", "ediPartyName", "URI", "IP Address",
    "Registered ID",
)  # fmt: skip
_SAN_UNSUPPORTED = frozenset({0, 3, 5})


def _java_ip(octets: bytes) -> str:
    if len(octets) == 4:
        return ".".join(str(b) for b in octets)
    if len(octets) == 16:
        if octets[:10] == bytes(10) and octets[10:12] == b"\xff\xff":
            return ".".join(str(b) for b in octets[12:])  # Java turns v4-mapped into Inet4
        groups = [int.from_bytes(octets[i : i + 2], "big") for i in range(0, 16, 2)]
        return ":".join(f"{g:x}" for g in groups)
    return "#" + octets.hex()


def _san_raw(cert: x509.Certificate) -> bytes | None:
    found = extensions(cert).get(ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string)
    return None if found is None else found[1]


def subject_alt_names(cert: x509.Certificate) -> str | None:
    """The SAN entries as ``"DNS:*.example.org, IP Address:192.168.7.1"``, None if none."""
    raw = _san_raw(cert)
    if raw is None:
        return None
    items: list[str] = []
    try:
        tag, start, end = _tlv(raw, 0)
        if tag != 0x30:
            raise ValueError("GeneralNames is a SEQUENCE")
        for g_tag, _, g_start, g_end in _children(raw, start, end):
            kind = g_tag & 0x1F
            if g_tag & 0xC0 != 0x80 or kind > 8:
                raise ValueError("unknown GeneralName choice")
            value = raw[g_start:g_end]
            if kind in _SAN_UNSUPPORTED:
                text = "<unsupported>"
            elif kind == 4:
                text = java_rfc2253(value)
            elif kind == 7:
                text = _java_ip(value)
            elif kind == 8:
                text = _oid(value)
            else:
                text = value.decode("ascii", "replace")
            items.append(f"{_SAN_LABELS[kind]}:{text}")
    except (ValueError, XRoadError) as exc:
        raise XRoadError(
            Code.INCORRECT_CERTIFICATE, "Failed parsing the certificate information"
        ) from exc
    return ", ".join(items) if items else None


def describe(cert: x509.Certificate) -> str:
    """A short human description for fault messages: subject and serial number."""
    return f"{java_rfc2253(cert.subject)} (serial {cert.serial_number:#x})"
