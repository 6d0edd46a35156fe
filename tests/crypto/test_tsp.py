"""crypto.tsp: requests, responses, tokens and their verification (protocols.md §9.2)."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib

import pytest
from asn1crypto import cms, core, tsp
from cryptography import x509
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossroad.crypto import tsp as xtsp
from crossroad.crypto.algorithms import SHA256, SHA512
from crossroad.errors import Code, XRoadError
from crossroad.testing.pki import TestPKI as PKI
from crossroad.testing.pki import ec_key, make_cert, name
from crossroad.trust.tsa import TimeStampAuthority

GEN_TIME = dt.datetime(2025, 3, 4, 5, 6, 7, 250000, tzinfo=dt.UTC)
DATA = b"the signature value being stamped"


@pytest.fixture(scope="module")
def tsa(pki: PKI) -> TimeStampAuthority:
    return TimeStampAuthority(pki.tsa.key, pki.tsa.cert)  # type: ignore[arg-type]


def stamp(authority: TimeStampAuthority, data: bytes = DATA, **kw: object) -> bytes:
    req = xtsp.build_request(data, **kw)  # type: ignore[arg-type]
    resp = authority.respond(req, gen_time=GEN_TIME, serial=42)
    return xtsp.token_from_response(resp, req)


def expect(code: str, fn, *args):  # type: ignore[no-untyped-def]
    with pytest.raises(XRoadError) as info:
        fn(*args)
    assert info.value.code == code, info.value
    return info.value


# --- requests ---------------------------------------------------------------------------------


def test_request_defaults_to_sha512_without_nonce_policy_or_cert_req() -> None:
    req = tsp.TimeStampReq.load(xtsp.build_request(DATA))
    assert req["version"].native == "v1"
    assert req["message_imprint"]["hash_algorithm"]["algorithm"].native == "sha512"
    assert req["message_imprint"]["hashed_message"].native == hashlib.sha512(DATA).digest()
    assert req["nonce"].native is None
    assert req["req_policy"].native is None
    assert req["cert_req"].native is False
    assert b"\x01\x01\xff" not in req.dump()  # certReq FALSE is the DEFAULT: not encoded


def test_request_with_nonce_cert_req_and_other_digest() -> None:
    req = tsp.TimeStampReq.load(xtsp.build_request(DATA, SHA256, cert_req=True, nonce=987654321))
    assert req["message_imprint"]["hashed_message"].native == hashlib.sha256(DATA).digest()
    assert req["nonce"].native == 987654321
    assert req["cert_req"].native is True


# --- responses --------------------------------------------------------------------------------


def test_granted_response_gives_the_token(tsa: TimeStampAuthority) -> None:
    req = xtsp.build_request(DATA, nonce=5)
    resp = tsa.respond(req, gen_time=GEN_TIME, serial=42)
    token = xtsp.token_from_response(resp, req)
    assert token == xtsp.TimeStampResp.load(resp)["time_stamp_token"].dump()
    assert cms.ContentInfo.load(token)["content_type"].native == "signed_data"


def test_rejection_is_non_granted(tsa: TimeStampAuthority) -> None:
    resp = tsa.respond(b"\x30\x03\x02\x01\x07", gen_time=GEN_TIME, serial=1)
    err = expect(Code.TIMESTAMP_NON_GRANTED_RESPONSE, xtsp.token_from_response, resp)
    assert "rejection" in err.detail
    assert "bad_data_format" in err.detail


@pytest.mark.parametrize("resp", [b"", b"junk", b"\x30\x00", b"\x30\x03\x02\x01\x00\x00"])
def test_unreadable_response(resp: bytes) -> None:
    expect(Code.READING_TIMESTAMP_RESPONSE_FAILED, xtsp.token_from_response, resp)


def test_granted_without_a_usable_token() -> None:
    no_token = xtsp.TimeStampResp({"status": {"status": "granted"}}).dump()
    expect(Code.TIMESTAMP_RESPONSE_OBJECT_CREATION_FAILED, xtsp.token_from_response, no_token)
    data_token = xtsp.TimeStampResp(
        {
            "status": {"status": "granted"},
            "time_stamp_token": {"content_type": "data", "content": b"x"},
        }
    ).dump()
    expect(Code.TIMESTAMP_RESPONSE_OBJECT_CREATION_FAILED, xtsp.token_from_response, data_token)


def test_response_must_answer_the_request(tsa: TimeStampAuthority) -> None:
    req = xtsp.build_request(DATA, nonce=1)
    resp = tsa.respond(req, gen_time=GEN_TIME, serial=42)
    other_data = xtsp.build_request(b"other", nonce=1)
    other_nonce = xtsp.build_request(DATA, nonce=2)
    other_digest = xtsp.build_request(DATA, SHA256, nonce=1)
    for other in (other_data, other_nonce, other_digest):
        expect(Code.TIMESTAMP_RESPONSE_VALIDATION_FAILED, xtsp.token_from_response, resp, other)
    # Without a nonce in the request the token's nonce is not checked.
    assert xtsp.token_from_response(resp, xtsp.build_request(DATA))


def test_response_policy_must_be_the_requested_one(tsa: TimeStampAuthority) -> None:
    req = tsp.TimeStampReq.load(xtsp.build_request(DATA))
    req["req_policy"] = tsa.policy
    resp = tsa.respond(req.dump(), gen_time=GEN_TIME, serial=42)
    assert xtsp.token_from_response(resp, req.dump())
    other = tsp.TimeStampReq.load(xtsp.build_request(DATA))
    other["req_policy"] = "1.2.3.9"
    expect(Code.TIMESTAMP_RESPONSE_VALIDATION_FAILED, xtsp.token_from_response, resp, other.dump())


# --- tokens -----------------------------------------------------------------------------------


def test_round_trip_rsa(tsa: TimeStampAuthority, pki: PKI) -> None:
    token = stamp(tsa, nonce=77)
    info = xtsp.verify_token(token, DATA, [pki.ocsp.cert, pki.tsa.cert])
    assert info.gen_time == GEN_TIME
    assert info.digest == SHA512
    assert info.imprint == hashlib.sha512(DATA).digest()
    assert info.serial == 42
    assert info.policy == tsa.policy
    assert info.nonce == 77
    assert info.tsa_cert == pki.tsa.cert


@pytest.mark.parametrize("kind", ["ec", "pss", "sha256"])
def test_round_trip_other_signatures(kind: str, pki: PKI) -> None:
    if kind == "ec":
        issued = make_cert(name(O="Test", CN="EC TSA"), issuer=pki.ca, kind="tsa", key=ec_key())
        authority = TimeStampAuthority(issued.key, issued.cert)  # type: ignore[arg-type]
    elif kind == "pss":
        issued = pki.tsa
        authority = TimeStampAuthority(issued.key, issued.cert, rsa_pss=True)  # type: ignore[arg-type]
    else:
        issued = pki.tsa
        authority = TimeStampAuthority(issued.key, issued.cert, digest=SHA256)  # type: ignore[arg-type]
    token = stamp(authority, digest=SHA256)
    info = xtsp.verify_token(token, DATA, [issued.cert])
    assert info.digest == SHA256
    assert info.tsa_cert == issued.cert


def test_imprint_mismatch_is_malformed_signature(tsa: TimeStampAuthority, pki: PKI) -> None:
    err = expect(
        Code.MALFORMED_SIGNATURE, xtsp.verify_token, stamp(tsa), DATA + b"!", [pki.tsa.cert]
    )
    assert err.detail == "Timestamp hashes do not match"


def test_signer_must_be_an_approved_tsa(tsa: TimeStampAuthority, pki: PKI) -> None:
    token = stamp(tsa)
    expect(Code.NO_TIMESTAMPING_PROVIDER_FOUND, xtsp.verify_token, token, DATA, [])
    expect(
        Code.TSP_CERTIFICATE_NOT_FOUND,
        xtsp.verify_token,
        token,
        DATA,
        [pki.ocsp.cert, pki.ca.cert],
    )


def test_certificate_in_the_token_is_not_trusted(tsa: TimeStampAuthority, pki: PKI) -> None:
    token = stamp(tsa, cert_req=True)
    assert xtsp.token_info(token).tsa_cert == pki.tsa.cert
    expect(Code.TSP_CERTIFICATE_NOT_FOUND, xtsp.verify_token, token, DATA, [pki.ocsp.cert])


def test_same_issuer_and_serial_but_another_key_fails_the_signature(pki: PKI) -> None:
    impostor = make_cert(
        name(O="Test", CN="Test TSA"),
        issuer=pki.ca,
        kind="tsa",
        key=ec_key(),
        serial=pki.tsa.cert.serial_number,
    )
    token = stamp(TimeStampAuthority(impostor.key, impostor.cert))  # type: ignore[arg-type]
    err = expect(
        Code.TIMESTAMP_SIGNER_VERIFICATION_FAILED, xtsp.verify_token, token, DATA, [pki.tsa.cert]
    )
    assert "signature" in err.detail


def _mutate(token: bytes, edit) -> bytes:  # type: ignore[no-untyped-def]
    ci = cms.ContentInfo.load(token)
    edit(ci["content"])
    return bytes(ci.dump())


def test_signature_and_signed_attributes_are_checked(tsa: TimeStampAuthority, pki: PKI) -> None:
    token = stamp(tsa)

    def flip_signature(sd):  # type: ignore[no-untyped-def]
        sig = bytearray(sd["signer_infos"][0]["signature"].native)
        sig[10] ^= 1
        sd["signer_infos"][0]["signature"] = bytes(sig)

    def other_content(sd):  # type: ignore[no-untyped-def]
        tst = sd["encap_content_info"]["content"].parsed
        tst["serial_number"] = 43
        sd["encap_content_info"]["content"] = core.ParsableOctetString(tst.dump(force=True))

    for edit in (flip_signature, other_content):
        forged = _mutate(token, edit)
        expect(
            Code.TIMESTAMP_SIGNER_VERIFICATION_FAILED,
            xtsp.verify_token,
            forged,
            DATA,
            [pki.tsa.cert],
        )


def test_signer_found_by_subject_key_identifier(tsa: TimeStampAuthority, pki: PKI) -> None:
    ski = pki.tsa.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest

    def by_ski(sd):  # type: ignore[no-untyped-def]
        # The sid is not signed: replacing it keeps the signature valid.
        sd["signer_infos"][0]["sid"] = cms.SignerIdentifier({"subject_key_identifier": ski})

    token = _mutate(stamp(tsa), by_ski)
    assert xtsp.verify_token(token, DATA, [pki.ocsp.cert, pki.tsa.cert]).tsa_cert == pki.tsa.cert
    expect(Code.TSP_CERTIFICATE_NOT_FOUND, xtsp.verify_token, token, DATA, [pki.ocsp.cert])


def test_token_info_parses_without_verifying(pki: PKI) -> None:
    authority = TimeStampAuthority(
        pki.tsa.key,  # type: ignore[arg-type]
        pki.tsa.cert,
        include_cert=False,
        accuracy=dt.timedelta(seconds=1, milliseconds=500, microseconds=100),
        include_tsa_name=True,
    )
    info = xtsp.token_info(stamp(authority, nonce=3))
    assert info.tsa_cert is None
    assert info.accuracy == dt.timedelta(seconds=1, microseconds=500100)
    assert info.tsa_name == "CN=Test TSA,O=Test"
    assert info.nonce == 3
    assert info.gen_time.tzinfo is not None


def test_add_certificate_keeps_the_signature(pki: PKI) -> None:
    authority = TimeStampAuthority(pki.tsa.key, pki.tsa.cert, include_cert=False)  # type: ignore[arg-type]
    token = stamp(authority)
    with_cert = xtsp.add_certificate(token, pki.tsa.cert)
    assert with_cert != token
    assert xtsp.token_info(with_cert).tsa_cert == pki.tsa.cert
    assert xtsp.verify_token(with_cert, DATA, [pki.tsa.cert]).serial == 42
    signer = cms.ContentInfo.load(token)["content"]["signer_infos"].dump()
    assert cms.ContentInfo.load(with_cert)["content"]["signer_infos"].dump() == signer
    assert xtsp.add_certificate(with_cert, pki.tsa.cert) == with_cert
    # Another certificate joins the one already there.
    both = xtsp.add_certificate(with_cert, pki.ca.cert)
    assert len(cms.ContentInfo.load(both)["content"]["certificates"]) == 2
    assert xtsp.verify_token(both, DATA, [pki.tsa.cert]).tsa_cert == pki.tsa.cert


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (b"", Code.IO_ERROR),
        (b"\x30\x80", Code.IO_ERROR),
        (b"\x04\x01x", Code.IO_ERROR),
        (cms.ContentInfo({"content_type": "data", "content": b"x"}).dump(), Code.INTERNAL_ERROR),
    ],
)
def test_malformed_tokens(token: bytes, code: str, pki: PKI) -> None:
    expect(code, xtsp.token_info, token)
    expect(code, xtsp.verify_token, token, DATA, [pki.tsa.cert])
    expect(code, xtsp.add_certificate, token, pki.tsa.cert)


def test_structural_requirements(tsa: TimeStampAuthority, pki: PKI) -> None:
    token = stamp(tsa)

    def no_ess(sd):  # type: ignore[no-untyped-def]
        attrs = sd["signer_infos"][0]["signed_attrs"]
        kept = [a for a in attrs if a["type"].native != "signing_certificate_v2"]
        sd["signer_infos"][0]["signed_attrs"] = cms.CMSAttributes(kept)

    def two_signers(sd):  # type: ignore[no-untyped-def]
        first = sd["signer_infos"][0]
        sd["signer_infos"] = cms.SignerInfos([first, first])

    def unknown_imprint(sd):  # type: ignore[no-untyped-def]
        tst = sd["encap_content_info"]["content"].parsed
        tst["message_imprint"]["hash_algorithm"]["algorithm"] = "1.2.3.4"
        sd["encap_content_info"]["content"] = core.ParsableOctetString(tst.dump(force=True))

    def huge_accuracy(sd):  # type: ignore[no-untyped-def]
        tst = sd["encap_content_info"]["content"].parsed
        tst["accuracy"] = {"seconds": 10**30}
        sd["encap_content_info"]["content"] = core.ParsableOctetString(tst.dump(force=True))

    for edit in (no_ess, two_signers, huge_accuracy):
        expect(Code.INTERNAL_ERROR, xtsp.token_info, _mutate(token, edit))
    forged = _mutate(token, unknown_imprint)
    expect(Code.INTERNAL_ERROR, xtsp.verify_token, forged, DATA, [pki.tsa.cert])


# --- properties -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bare_token(pki: PKI) -> bytes:
    authority = TimeStampAuthority(pki.tsa.key, pki.tsa.cert, include_cert=False)  # type: ignore[arg-type]
    return stamp(authority)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_flipped_token_byte_is_coded(bare_token: bytes, pki: PKI, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, len(bare_token) - 1))
    bit = data.draw(st.integers(0, 7))
    forged = bytearray(bare_token)
    forged[index] ^= 1 << bit
    try:
        info = xtsp.verify_token(bytes(forged), DATA, [pki.tsa.cert])
    except XRoadError:
        return
    # A few bytes lie outside what is signed (e.g. the unused digestAlgorithms set).
    assert info.imprint == hashlib.sha512(DATA).digest()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_flipped_data_byte_is_malformed_signature(
    bare_token: bytes, pki: PKI, data: st.DataObject
) -> None:
    index = data.draw(st.integers(0, len(DATA) - 1))
    forged = bytearray(DATA)
    forged[index] ^= data.draw(st.integers(1, 255))
    expect(Code.MALFORMED_SIGNATURE, xtsp.verify_token, bare_token, bytes(forged), [pki.tsa.cert])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_give_coded_errors(blob: bytes) -> None:
    for fn in (xtsp.token_from_response, xtsp.token_info):
        with pytest.raises(XRoadError):
            fn(blob)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_mangled_responses_give_coded_errors(tsa: TimeStampAuthority, data: st.DataObject) -> None:
    req = xtsp.build_request(DATA)
    resp = bytearray(tsa.respond(req, gen_time=GEN_TIME, serial=42))
    cut = data.draw(st.integers(0, len(resp)))
    index = data.draw(st.integers(0, len(resp) - 1))
    resp[index] ^= data.draw(st.integers(1, 255))
    for candidate in (bytes(resp), bytes(resp[:cut])):
        with contextlib.suppress(XRoadError):
            xtsp.token_from_response(candidate, req)
