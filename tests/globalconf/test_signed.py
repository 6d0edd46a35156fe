"""globalconf.signed: build → parse → verify round trips, exact NIIS codes for every way a
directory can be wrong, the byte layout the central server writes, and property tests."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
from collections.abc import Callable

import pytest
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossroad.crypto import keys
from crossroad.crypto.algorithms import (
    SHA256,
    SHA512,
    SHA512_WITH_RSA,
    SignatureAlgorithm,
    signature_algorithm,
)
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.signed import (
    DirectoryEntry,
    DirectoryPart,
    SignedDirectory,
    build_signed_directory,
    check_content,
    content_location,
    directory_timestamp,
)
from crossroad.testing.pki import Issued, ec_key, make_cert, name, rsa_key

EXPIRES = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
BEFORE = dt.datetime(2029, 12, 31, tzinfo=dt.UTC)
AFTER = EXPIRES + dt.timedelta(seconds=1)
SHARED = b"<shared/>"
PRIVATE = b"<private/>"
ENTRIES = [
    DirectoryEntry(
        "PRIVATE-PARAMETERS", "EE", "/V6/20300101000000000000000/private-params.xml", PRIVATE
    ),
    DirectoryEntry(
        "SHARED-PARAMETERS", "EE", "/V6/20300101000000000000000/shared-params.xml", SHARED
    ),
    DirectoryEntry("SOMETHING-NEW", None, "/V6/20300101000000000000000/new.bin", b"\x00\x01"),
]


@pytest.fixture(scope="module")
def rsa_signer() -> Issued:
    return make_cert(name(CN="internalSigningKey"), key=rsa_key(7), kind="ca")


@pytest.fixture(scope="module")
def ec_signer() -> Issued:
    return make_cert(name(CN="ecSigningKey"), key=ec_key(), kind="ca")


@pytest.fixture(scope="module")
def other() -> Issued:
    return make_cert(name(CN="someone else"), key=rsa_key(8), kind="ca")


def _build(
    signer: Issued,
    algorithm: SignatureAlgorithm = SHA512_WITH_RSA,
    sign: Callable[[bytes], bytes] | None = None,
    **kw: object,
) -> bytes:
    def default_sign(data: bytes) -> bytes:
        return keys.sign(signer.key, algorithm, data)

    args: dict[str, object] = {"expires": EXPIRES, "version": 6}
    args.update(kw)
    return build_signed_directory(
        ENTRIES,
        signing_cert=signer.cert,
        sign=sign or default_sign,
        algorithm=algorithm,
        **args,  # type: ignore[arg-type]
    )


def _code(data: bytes, certs: list[x509.Certificate | bytes], at: dt.datetime = BEFORE) -> str:
    with pytest.raises(XRoadError) as info:
        SignedDirectory.parse(data).verify(certs, at)
    return info.value.code


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "alg",
    [
        "SHA512withRSA",
        "SHA256withRSA",
        "SHA512withRSAandMGF1",
        "SHA256withECDSA",
        "SHA512withECDSA",
    ],
)
def test_round_trip(alg: str, rsa_signer: Issued, ec_signer: Issued) -> None:
    algorithm = signature_algorithm(alg)
    signer = ec_signer if algorithm.key_type == "EC" else rsa_signer
    data = _build(signer, algorithm)
    directory = SignedDirectory.parse(data)
    assert directory.verify([signer.cert], BEFORE) == signer.cert
    assert directory.signature_algorithm == algorithm
    assert directory.expires == EXPIRES.replace(microsecond=0)
    assert directory.version == 6
    assert directory.verification_cert_hash_algorithm == SHA512
    assert [(p.content_identifier, p.instance, p.location) for p in directory.parts] == [
        (e.content_identifier, e.instance, e.location) for e in ENTRIES
    ]
    for part, entry in zip(directory.parts, ENTRIES, strict=True):
        assert part.hash_algorithm == SHA512
        assert part.matches(entry.data)
        check_content(part, entry.data)
    assert directory.part("SOMETHING-NEW") is not None  # unknown identifiers are kept
    assert directory.part("SHARED-PARAMETERS", "EE") is not None
    assert directory.part("SHARED-PARAMETERS", "XX") is None


def test_raw_anchor_bytes_and_several_certs(rsa_signer: Issued, other: Issued) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    der = rsa_signer.cert.public_bytes(Encoding.DER)
    directory = SignedDirectory.parse(_build(rsa_signer))
    # Anchors carry raw bytes, placeholders included (b"bar\n" in the NIIS test files).
    assert directory.verify([b"bar\n", other.cert, der], BEFORE) == rsa_signer.cert


def test_layout_is_the_central_servers(rsa_signer: Issued) -> None:
    data = _build(
        rsa_signer, boundary="OUTERboundary0000000", inner_boundary="INNERboundary0000000"
    )
    text = data.decode("ascii")
    assert text.startswith(
        "Content-Type: multipart/related; charset=UTF-8; boundary=OUTERboundary0000000\r\n\r\n"
        "--OUTERboundary0000000\r\n"
        "Content-Type: multipart/mixed; charset=UTF-8; boundary=INNERboundary0000000\r\n\r\n"
        "--INNERboundary0000000\r\n"
        "Expire-date: 2030-01-02T03:04:05Z\r\n"
        "Version: 6\r\n"
        "\r\n"
        "--INNERboundary0000000\r\n"
        "Content-type: application/octet-stream\r\n"
        "Content-transfer-encoding: base64\r\n"
        "Content-identifier: PRIVATE-PARAMETERS; instance='EE'\r\n"
        "Content-location: /V6/20300101000000000000000/private-params.xml\r\n"
        "Hash-algorithm-id: http://www.w3.org/2001/04/xmlenc#sha512\r\n\r\n"
    )
    assert "Content-identifier: SOMETHING-NEW\r\n" in text
    assert "--INNERboundary0000000--\r\n\r\n--OUTERboundary0000000\r\n" in text
    assert (
        "\r\nSignature-Algorithm-Id: http://www.w3.org/2001/04/xmldsig-more#rsa-sha512\r\n" in text
    )
    assert '; hash-algorithm-id="http://www.w3.org/2001/04/xmlenc#sha512"\r\n' in text
    assert text.endswith("\r\n--OUTERboundary0000000--\r\n")
    assert "\n" not in text.replace("\r\n", "")
    directory = SignedDirectory.parse(data)
    assert directory.signed_data.startswith(b"--INNERboundary0000000\r\nExpire-date")
    assert directory.signed_data.endswith(b"--INNERboundary0000000--\r\n")


def test_random_boundaries_differ(rsa_signer: Issued) -> None:
    a, b = _build(rsa_signer), _build(rsa_signer)
    assert a != b
    assert SignedDirectory.parse(a).verify([rsa_signer.cert], BEFORE)


def test_cert_hash_algorithm(rsa_signer: Issued) -> None:
    directory = SignedDirectory.parse(_build(rsa_signer, cert_hash_algorithm=SHA256))
    assert directory.verification_cert_hash_algorithm == SHA256
    directory.verify([rsa_signer.cert], BEFORE)


def test_unusable_build_inputs(rsa_signer: Issued) -> None:
    with pytest.raises(XRoadError):
        _build(rsa_signer, boundary="bad boundary")
    with pytest.raises(XRoadError):
        _build(rsa_signer, boundary="same", inner_boundary="same")
    with pytest.raises(XRoadError):
        build_signed_directory(
            [DirectoryEntry("X", "E'E", "/x", b"")],
            expires=EXPIRES,
            version=6,
            signing_cert=rsa_signer.cert,
            sign=lambda d: b"",
        )


def test_helpers() -> None:
    at = dt.datetime(2025, 11, 10, 17, 0, 0, 548026, tzinfo=dt.UTC)
    assert directory_timestamp(at) == "20251110170000548026000"
    assert content_location(6, "20251110170000548026000", "shared-params.xml") == (
        "/V6/20251110170000548026000/shared-params.xml"
    )


# --- verification failures -----------------------------------------------------------------------


def test_wrong_cert(rsa_signer: Issued, other: Issued) -> None:
    assert _code(_build(rsa_signer), [other.cert]) == Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT
    assert _code(_build(rsa_signer), []) == Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT


def test_wrong_key_behind_the_right_hash(rsa_signer: Issued, other: Issued) -> None:
    # Signed by another key, but naming our cert: the signature does not verify.
    data = _build(rsa_signer, sign=lambda d: keys.sign(other.key, SHA512_WITH_RSA, d))
    assert _code(data, [rsa_signer.cert]) == Code.GLOBAL_CONF_SIGNATURE_VERIFICATION_FAILURE


def test_tampered_signed_data(rsa_signer: Issued) -> None:
    data = _build(rsa_signer)
    tampered = data.replace(b"Version: 6", b"Version: 5")
    assert _code(tampered, [rsa_signer.cert]) == Code.GLOBAL_CONF_SIGNATURE_VERIFICATION_FAILURE
    hash_line = base64.b64encode(SHA512.digest(SHARED))
    forged = base64.b64encode(SHA512.digest(b"<evil/>"))
    assert _code(data.replace(hash_line, forged), [rsa_signer.cert]) == (
        Code.GLOBAL_CONF_SIGNATURE_VERIFICATION_FAILURE
    )


def test_expired_after_signature(rsa_signer: Issued, other: Issued) -> None:
    data = _build(rsa_signer)
    assert _code(data, [rsa_signer.cert], AFTER) == Code.GLOBAL_CONF_OUTDATED
    SignedDirectory.parse(data).verify([rsa_signer.cert], EXPIRES)  # expired only *after*
    # The certificate and signature are checked first.
    assert _code(data, [other.cert], AFTER) == Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT
    bad_sig = data.replace(b"Version: 6", b"Version: 7")
    assert (
        _code(bad_sig, [rsa_signer.cert], AFTER) == Code.GLOBAL_CONF_SIGNATURE_VERIFICATION_FAILURE
    )


def test_missing_and_empty_signature(rsa_signer: Issued) -> None:
    data = _build(rsa_signer)
    sig_start = data.index(b"\r\n--", data.index(b"--\r\n\r\n--")) + 2  # the 2nd outer part
    # No signature part at all: NIIS never reads the expiry, so that is what is missing.
    no_sig = data[: sig_start - 2]
    assert _code(no_sig, [rsa_signer.cert]) == Code.GLOBAL_CONF_MISSING_SIGNED_DATA_EXPIRATION_DATE
    body_start = data.rindex(b"\r\n\r\n") + 4
    body_end = data.rindex(b"\r\n--")
    empty = data[:body_start] + data[body_end + 2 :]
    assert _code(empty, [rsa_signer.cert]) == Code.GLOBAL_CONF_SIGNATURE_VERIFICATION_FAILURE
    garbage = data[:body_start] + b"!!not base64!!" + data[body_end:]
    assert _code(garbage, [rsa_signer.cert]) == Code.GLOBAL_CONF_SIGNATURE_DECODE_FAILURE


def _signed_with_headers(signer: Issued, inner: str, sig_headers: str | None = None) -> bytes:
    """A hand-made LF directory (as in the NIIS test files) with the given inner entries."""
    signed = inner.encode()
    signature = base64.b64encode(keys.sign(signer.key, SHA512_WITH_RSA, signed)).decode()
    from cryptography.hazmat.primitives.serialization import Encoding

    cert_hash = base64.b64encode(SHA512.digest(signer.cert.public_bytes(Encoding.DER))).decode()
    if sig_headers is None:
        sig_headers = (
            "Content-type: application/octet-stream\nContent-transfer-encoding: base64\n"
            f"Signature-algorithm-id: {SHA512_WITH_RSA.uri}\n"
            f'Verification-certificate-hash: {cert_hash}; hash-algorithm-id="{SHA512.uri}"\n'
        )
    return (
        "Content-Type: multipart/related; charset=UTF-8;boundary=env\n\n--env\n"
        "Content-Type: multipart/mixed; charset=UTF-8;boundary=in\n\n"
        f"{inner}\n--env\n{sig_headers}\n{signature}\n--env--\n"
    ).encode()


_ENTRY = (
    "--in\nContent-type: application/octet-stream\nContent-transfer-encoding: base64\n"
    'Content-identifier: SHARED-PARAMETERS; instance="EE"\nContent-location: /shared.xml\n'
    f"Hash-algorithm-id: {SHA512.uri}\n\n" + base64.b64encode(SHA512.digest(SHARED)).decode()
)


def test_lf_and_double_quotes(rsa_signer: Issued) -> None:
    data = _signed_with_headers(
        rsa_signer, "--in\nExpire-date: 2030-01-02T03:04:05Z\n\n\n" + _ENTRY
    )
    directory = SignedDirectory.parse(data)
    directory.verify([rsa_signer.cert], BEFORE)
    assert directory.version is None  # no Version header: a V2 directory
    (part,) = directory.parts
    assert (part.content_identifier, part.instance, part.location) == (
        "SHARED-PARAMETERS",
        "EE",
        "/shared.xml",
    )
    assert part.headers["content-location"] == "/shared.xml"


@pytest.mark.parametrize(
    ("inner", "code"),
    [
        ("--in\nVersion: 6\n\n\n" + _ENTRY, Code.GLOBAL_CONF_HEADER_FIELD_MISSING),
        ("--in\nExpire-date: tomorrow\n\n\n" + _ENTRY, Code.GLOBAL_CONF_HEADER_FIELD_WRONG_VALUE),
        ("--in\nExpire-date: 2030-13-01T00:00:00Z\n\n", Code.GLOBAL_CONF_HEADER_FIELD_WRONG_VALUE),
        ("--in\nExpire-date: 2030-01-01T00:00:00\n\n", Code.GLOBAL_CONF_HEADER_FIELD_WRONG_VALUE),
        (
            "--in\nExpire-date: 2030-01-01T00:00:00Z\nVersion: six\n\n",
            Code.GLOBAL_CONF_HEADER_FIELD_WRONG_VALUE,
        ),
        (
            "--in\nExpire-date: 2030-01-01T00:00:00Z\n\n\n" + _ENTRY.replace('; instance="EE"', ""),
            Code.GLOBAL_CONF_HEADER_FIELD_MISSING_PARAMETER,
        ),
        (
            "--in\nExpire-date: 2030-01-01T00:00:00Z\n\n\n"
            + _ENTRY.replace("application/octet-stream", "text/plain"),
            Code.GLOBAL_CONF_HEADER_FIELD_WRONG_VALUE,
        ),
        (
            "--in\nExpire-date: 2030-01-01T00:00:00Z\n\n\n"
            + _ENTRY.replace("Content-location: /shared.xml\n", ""),
            Code.GLOBAL_CONF_HEADER_FIELD_MISSING,
        ),
        (
            "--in\nExpire-date: 2030-01-01T00:00:00Z\n\n\n"
            + _ENTRY.replace(SHA512.uri, "urn:unknown"),
            Code.GLOBAL_CONF_HEADER_FIELD_WRONG_VALUE,
        ),
    ],
)
def test_inner_problems_after_the_signature(
    rsa_signer: Issued, other: Issued, inner: str, code: str
) -> None:
    data = _signed_with_headers(rsa_signer, inner)
    directory = SignedDirectory.parse(data)  # parses: inner problems wait for the signature
    assert _code(data, [rsa_signer.cert]) == code
    assert _code(data, [other.cert]) == Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT
    with pytest.raises(XRoadError):
        directory.parts  # noqa: B018


def test_unknown_identifier_without_instance_is_kept(rsa_signer: Issued) -> None:
    entry = _ENTRY.replace('SHARED-PARAMETERS; instance="EE"', "FOO").replace(
        "Content-location: /shared.xml", "Content-location: /foo.xml\nContent-file-name: foo.xml"
    )
    data = _signed_with_headers(rsa_signer, "--in\nExpire-date: 2030-01-01T00:00:00Z\n\n\n" + entry)
    (part,) = SignedDirectory.parse(data).parts
    assert (part.content_identifier, part.instance, part.file_name) == ("FOO", None, "foo.xml")


@pytest.mark.parametrize(
    ("replace", "code"),
    [
        ("Content-type: application/octet-stream\n", Code.GLOBAL_CONF_HEADER_FIELD_MISSING),
        ("Content-transfer-encoding: base64\n", Code.GLOBAL_CONF_HEADER_FIELD_MISSING),
        (
            "Signature-algorithm-id: " + SHA512_WITH_RSA.uri + "\n",
            Code.GLOBAL_CONF_HEADER_FIELD_MISSING,
        ),
        (
            '; hash-algorithm-id="' + SHA512.uri + '"',
            Code.GLOBAL_CONF_HEADER_FIELD_MISSING_PARAMETER,
        ),
    ],
)
def test_signature_headers(rsa_signer: Issued, replace: str, code: str) -> None:
    good = _signed_with_headers(rsa_signer, "--in\nExpire-date: 2030-01-01T00:00:00Z\n\n")
    head, sep, tail = good.decode().partition("--env\nContent-type: application/octet-stream")
    sig_part = sep + tail
    broken = (head + sig_part.replace(replace, "", 1)).encode()
    with pytest.raises(XRoadError) as info:
        SignedDirectory.parse(broken)
    assert info.value.code == code


def test_unknown_signature_algorithm(rsa_signer: Issued) -> None:
    data = _build(rsa_signer).replace(SHA512_WITH_RSA.uri.encode(), b"urn:x-unknown")
    with pytest.raises(XRoadError) as info:
        SignedDirectory.parse(data)
    assert info.value.code == Code.GLOBAL_CONF_SIGNATURE_VERIFICATION_FAILURE


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage without headers",
        b"Content-Type: text/plain\r\n\r\nhello",
        b"Content-Type: multipart/related\r\n\r\n--x\r\n",
        b"no colon here\r\n\r\n",
    ],
)
def test_not_a_directory(data: bytes) -> None:
    with pytest.raises(XRoadError) as info:
        SignedDirectory.parse(data)
    assert info.value.code == Code.GLOBAL_CONF_PARSING_DOWNLOADED_CONF_DIRECTORY_FAILURE


def test_no_parts_at_all() -> None:
    with pytest.raises(XRoadError) as info:
        SignedDirectory.parse(b"Content-Type: multipart/related; boundary=x\r\n\r\npreamble only")
    assert info.value.code == Code.GLOBAL_CONF_MISSING_SIGNED_DATA


def test_check_content_mismatch() -> None:
    part = DirectoryPart("SHARED-PARAMETERS", "EE", "/s.xml", SHA512, SHA512.digest(SHARED))
    check_content(part, SHARED)
    with pytest.raises(XRoadError) as info:
        check_content(part, SHARED + b" ")
    assert info.value.code == Code.GLOBAL_CONF_PART_DOWNLOADED_FILE_INTEGRITY_FAILURE
    assert part.hash_base64 == base64.b64encode(SHA512.digest(SHARED)).decode()


# --- properties ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(rsa_signer: Issued) -> bytes:
    return _build(rsa_signer)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_any_byte_flip_is_caught_or_harmless(
    built: bytes, rsa_signer: Issued, data: st.DataObject
) -> None:
    original = SignedDirectory.parse(built)
    pos = data.draw(st.integers(0, len(built) - 1))
    flip = data.draw(st.integers(1, 255))
    mutated = bytearray(built)
    mutated[pos] ^= flip
    try:
        directory = SignedDirectory.parse(bytes(mutated))
        directory.verify([rsa_signer.cert], BEFORE)
    except XRoadError:
        return
    # Whatever survives carries exactly the signed meaning (e.g. a header name's case changed).
    assert directory.signed_data == original.signed_data
    assert directory.parts == original.parts
    assert directory.expires == original.expires


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_truncation_is_caught(built: bytes, rsa_signer: Issued, data: st.DataObject) -> None:
    cut = data.draw(st.integers(0, len(built) - 1))
    try:
        SignedDirectory.parse(built[:cut]).verify([rsa_signer.cert], BEFORE)
    except XRoadError:
        return
    # Only the closing outer boundary (and what follows the signature) may go missing.
    assert cut >= built.rindex(b"\r\n--")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_give_coded_errors(blob: bytes) -> None:
    with contextlib.suppress(XRoadError):
        SignedDirectory.parse(blob)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="-\r\n:;= abcAB01/\"'Content-Type:multipart/mixed;boundary", max_size=300))
def test_mime_like_text_gives_coded_errors(text: str) -> None:
    with contextlib.suppress(XRoadError):
        SignedDirectory.parse(
            ("Content-Type: multipart/related; boundary=b\r\n\r\n" + text).encode()
        )
