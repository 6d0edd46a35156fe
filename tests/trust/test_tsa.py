"""trust.tsa: the TSA core, and cross-checks with ``openssl ts`` in both directions."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms, tsp
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossroad.crypto import tsp as xtsp
from crossroad.crypto.algorithms import SHA1, SHA256, SHA384, SHA512
from crossroad.errors import Code, XRoadError
from crossroad.testing.pki import Issued, ec_key, make_cert, name
from crossroad.testing.pki import TestPKI as PKI
from crossroad.trust.tsa import TimeStampAuthority

GEN_TIME = dt.datetime(2025, 6, 7, 8, 9, 10, 123000, tzinfo=dt.UTC)
DATA = b"<HashChainResult>stamped bytes</HashChainResult>"

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")


@pytest.fixture(scope="module")
def ec_tsa(pki: PKI) -> Issued:
    return make_cert(name(O="Test", CN="Test EC TSA"), issuer=pki.ca, kind="tsa", key=ec_key())


@pytest.fixture(scope="module")
def tsa(pki: PKI) -> TimeStampAuthority:
    return TimeStampAuthority(pki.tsa.key, pki.tsa.cert)  # type: ignore[arg-type]


def status_of(resp: bytes) -> tuple[str, set[str] | None]:
    status = xtsp.TimeStampResp.load(resp)["status"]
    return status["status"].native, status["fail_info"].native


def tst_of(token: bytes) -> tsp.TSTInfo:
    return cms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed


# --- the token --------------------------------------------------------------------------------


def test_granted_token_contents(pki: PKI) -> None:
    authority = TimeStampAuthority(
        pki.tsa.key,  # type: ignore[arg-type]
        pki.tsa.cert,
        policy="1.3.6.1.4.1.99999.1",
        accuracy=dt.timedelta(milliseconds=250),
        include_tsa_name=True,
    )
    req = xtsp.build_request(DATA, nonce=2**70 + 5, cert_req=True)
    resp = authority.respond(req, gen_time=GEN_TIME, serial=2**64 + 1)
    assert status_of(resp) == ("granted", None)
    token = xtsp.token_from_response(resp, req)
    tst = tst_of(token)
    assert tst["version"].native == "v1"
    assert tst["policy"].dotted == "1.3.6.1.4.1.99999.1"
    assert tst["message_imprint"].dump() == tsp.TimeStampReq.load(req)["message_imprint"].dump()
    assert tst["serial_number"].native == 2**64 + 1
    assert tst["gen_time"].native == GEN_TIME
    assert tst["accuracy"].native == {"seconds": None, "millis": 250, "micros": None}
    assert tst["nonce"].native == 2**70 + 5
    assert tst["tsa"].chosen.native == {"organization_name": "Test", "common_name": "Test TSA"}

    sd = cms.ContentInfo.load(token)["content"]
    assert sd["version"].native == "v3"
    signer = sd["signer_infos"][0]
    attrs = {a["type"].native: a["values"][0] for a in signer["signed_attrs"]}
    assert set(attrs) == {"content_type", "message_digest", "signing_certificate_v2"}
    assert attrs["content_type"].native == "tst_info"
    econtent = sd["encap_content_info"]["content"].__bytes__()
    assert attrs["message_digest"].native == hashlib.sha512(econtent).digest()
    ess = attrs["signing_certificate_v2"]["certs"][0]
    assert (
        ess["cert_hash"].native == hashlib.sha512(pki.tsa.cert.public_bytes(Encoding.DER)).digest()
    )
    assert ess["issuer_serial"]["serial_number"].native == pki.tsa.cert.serial_number
    assert [c.chosen.dump() for c in sd["certificates"]] == [
        pki.tsa.cert.public_bytes(Encoding.DER)
    ]


def test_no_accuracy_nonce_or_name_unless_asked(tsa: TimeStampAuthority) -> None:
    tst = tst_of(
        xtsp.token_from_response(tsa.respond(xtsp.build_request(DATA), gen_time=GEN_TIME, serial=1))
    )
    assert tst["accuracy"].native is None
    assert tst["nonce"].native is None
    assert tst["tsa"].native is None


def test_certificate_included_on_cert_req_or_when_configured(pki: PKI) -> None:
    rfc = TimeStampAuthority(pki.tsa.key, pki.tsa.cert)  # type: ignore[arg-type]

    def certs(authority: TimeStampAuthority, cert_req: bool) -> int:
        req = xtsp.build_request(DATA, cert_req=cert_req)
        token = xtsp.token_from_response(authority.respond(req, gen_time=GEN_TIME, serial=1))
        found = cms.ContentInfo.load(token)["content"]["certificates"]
        return 0 if found.native is None else len(found)

    assert certs(rfc, cert_req=False) == 0
    assert certs(rfc, cert_req=True) == 1
    always = TimeStampAuthority(pki.tsa.key, pki.tsa.cert, include_cert=True)  # type: ignore[arg-type]
    assert certs(always, cert_req=False) == 1


@pytest.mark.parametrize("digest", [SHA1, SHA256, SHA384, SHA512])
def test_every_supported_imprint_digest(tsa: TimeStampAuthority, pki: PKI, digest) -> None:  # type: ignore[no-untyped-def]
    req = xtsp.build_request(DATA, digest)
    token = xtsp.token_from_response(tsa.respond(req, gen_time=GEN_TIME, serial=9), req)
    assert xtsp.verify_token(token, DATA, [pki.tsa.cert]).digest == digest


def test_ec_tsa_round_trip(ec_tsa: Issued) -> None:
    authority = TimeStampAuthority(ec_tsa.key, ec_tsa.cert)  # type: ignore[arg-type]
    req = xtsp.build_request(DATA)
    token = xtsp.token_from_response(authority.respond(req, gen_time=GEN_TIME, serial=3), req)
    assert xtsp.verify_token(token, DATA, [ec_tsa.cert]).tsa_cert == ec_tsa.cert


def test_configuration_errors_raise(pki: PKI, ec_tsa: Issued) -> None:
    with pytest.raises(ValueError, match="does not belong"):
        TimeStampAuthority(pki.ocsp.key, pki.tsa.cert)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="RSA-PSS"):
        TimeStampAuthority(ec_tsa.key, ec_tsa.cert, rsa_pss=True)  # type: ignore[arg-type]
    authority = TimeStampAuthority(pki.tsa.key, pki.tsa.cert)  # type: ignore[arg-type]
    req = xtsp.build_request(DATA)
    with pytest.raises(XRoadError):
        authority.respond(req, gen_time=GEN_TIME.replace(tzinfo=None), serial=1)
    with pytest.raises(XRoadError):
        authority.respond(req, gen_time=GEN_TIME, serial=0)


# --- rejections -------------------------------------------------------------------------------


def _request(**changes: object) -> bytes:
    req = tsp.TimeStampReq.load(xtsp.build_request(DATA))
    for key, value in changes.items():
        if key == "alg":
            req["message_imprint"]["hash_algorithm"]["algorithm"] = value
        elif key == "hashed":
            req["message_imprint"]["hashed_message"] = value
        else:
            req[key] = value
    return bytes(req.dump(force=True))


@pytest.mark.parametrize(
    ("request_der", "fail_info"),
    [
        (b"", "bad_data_format"),
        (b"GET / HTTP/1.1\r\n", "bad_data_format"),
        (xtsp.build_request(DATA) + b"\x00", "bad_data_format"),
        (_request(version=2), "bad_request"),
        (_request(alg="1.2.840.113549.2.5"), "bad_alg"),  # MD5
        (_request(alg="2.16.840.1.101.3.4.2.10"), "bad_alg"),  # SHA3-512
        (_request(hashed=b"short"), "bad_data_format"),
        (_request(req_policy="1.2.3.99"), "unaccepted_policy"),
        (
            _request(
                extensions=[{"extn_id": "1.2.3.4", "critical": True, "extn_value": b"\x05\x00"}]
            ),
            "unaccepted_extensions",
        ),
    ],
)
def test_rejections(tsa: TimeStampAuthority, request_der: bytes, fail_info: str) -> None:
    resp = tsa.respond(request_der, gen_time=GEN_TIME, serial=1)
    assert status_of(resp) == ("rejection", {fail_info})
    assert xtsp.TimeStampResp.load(resp)["time_stamp_token"].native is None


def test_own_policy_and_non_critical_extensions_are_granted(tsa: TimeStampAuthority) -> None:
    ext = [{"extn_id": "1.2.3.4", "critical": False, "extn_value": b"\x05\x00"}]
    for req in (_request(req_policy=tsa.policy), _request(extensions=ext)):
        assert status_of(tsa.respond(req, gen_time=GEN_TIME, serial=1))[0] == "granted"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.binary(max_size=200))
def test_random_requests_get_a_rejection(tsa: TimeStampAuthority, blob: bytes) -> None:
    status, _ = status_of(tsa.respond(blob, gen_time=GEN_TIME, serial=1))
    assert status == "rejection"


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_mangled_requests_get_an_answer(tsa: TimeStampAuthority, data: st.DataObject) -> None:
    req = bytearray(xtsp.build_request(DATA, nonce=12345))
    req[data.draw(st.integers(0, len(req) - 1))] ^= data.draw(st.integers(1, 255))
    status, _ = status_of(tsa.respond(bytes(req), gen_time=GEN_TIME, serial=1))
    assert status in ("granted", "rejection")


# --- openssl cross-checks ---------------------------------------------------------------------


def _write_pki(tmp: Path, pki: PKI, tsa: Issued) -> None:
    (tmp / "ca.pem").write_bytes(pki.ca.cert.public_bytes(Encoding.PEM))
    (tmp / "tsa.pem").write_bytes(tsa.cert.public_bytes(Encoding.PEM))
    key = tsa.key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (tmp / "tsa.key").write_bytes(key)
    (tmp / "data.bin").write_bytes(DATA)


def _openssl(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *map(str, args)], capture_output=True, text=True, check=False)


def _openssl_verify(tmp: Path, *args: str | Path) -> None:
    out = _openssl("ts", "-verify", *args, "-CAfile", tmp / "ca.pem")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Verification: OK" in out.stdout


@needs_openssl
@pytest.mark.parametrize("kind", ["rsa", "ec"])
def test_openssl_verifies_our_tokens(tmp_path: Path, pki: PKI, ec_tsa: Issued, kind: str) -> None:
    issued = pki.tsa if kind == "rsa" else ec_tsa
    _write_pki(tmp_path, pki, issued)
    authority = TimeStampAuthority(issued.key, issued.cert, include_cert=False)  # type: ignore[arg-type]
    req = xtsp.build_request(DATA, nonce=4242)
    resp = authority.respond(req, gen_time=dt.datetime.now(dt.UTC), serial=11)
    (tmp_path / "req.der").write_bytes(req)
    (tmp_path / "resp.der").write_bytes(resp)
    token = xtsp.token_from_response(resp, req)
    (tmp_path / "token.der").write_bytes(token)
    untrusted = ("-untrusted", tmp_path / "tsa.pem")
    _openssl_verify(
        tmp_path, "-in", tmp_path / "resp.der", "-data", tmp_path / "data.bin", *untrusted
    )
    _openssl_verify(
        tmp_path, "-in", tmp_path / "resp.der", "-queryfile", tmp_path / "req.der", *untrusted
    )
    _openssl_verify(
        tmp_path,
        "-token_in",
        "-in",
        tmp_path / "token.der",
        "-data",
        tmp_path / "data.bin",
        *untrusted,
    )
    # After add_certificate the token carries its signer: no -untrusted needed.
    (tmp_path / "with-cert.der").write_bytes(xtsp.add_certificate(token, issued.cert))
    _openssl_verify(
        tmp_path, "-token_in", "-in", tmp_path / "with-cert.der", "-data", tmp_path / "data.bin"
    )


@needs_openssl
def test_openssl_rejects_our_token_over_other_data(tmp_path: Path, pki: PKI) -> None:
    _write_pki(tmp_path, pki, pki.tsa)
    authority = TimeStampAuthority(pki.tsa.key, pki.tsa.cert)  # type: ignore[arg-type]
    resp = authority.respond(xtsp.build_request(b"other"), gen_time=GEN_TIME, serial=1)
    (tmp_path / "resp.der").write_bytes(resp)
    out = _openssl(
        "ts",
        "-verify",
        "-in",
        tmp_path / "resp.der",
        "-data",
        tmp_path / "data.bin",
        "-CAfile",
        tmp_path / "ca.pem",
        "-untrusted",
        tmp_path / "tsa.pem",
    )
    assert "Verification: OK" not in out.stdout


OPENSSL_TSA_CONF = """\
[tsa]
default_tsa = tsa_config

[tsa_config]
dir = {dir}
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/tsa.pem
signer_key = {dir}/tsa.key
signer_digest = {digest}
default_policy = 1.2.3.4.1
digests = sha256, sha384, sha512
accuracy = secs:1, millisecs:500
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = {ess}
"""


@needs_openssl
@pytest.mark.parametrize(
    ("kind", "digest", "ess"), [("rsa", "sha512", "sha256"), ("ec", "sha256", "sha1")]
)
def test_openssl_tokens_pass_our_verification(
    tmp_path: Path, pki: PKI, ec_tsa: Issued, kind: str, digest: str, ess: str
) -> None:
    issued = pki.tsa if kind == "rsa" else ec_tsa
    _write_pki(tmp_path, pki, issued)
    (tmp_path / "serial").write_text("0A\n")
    conf = OPENSSL_TSA_CONF.format(dir=tmp_path, digest=digest, ess=ess)
    (tmp_path / "tsa.cnf").write_text(conf)
    req = xtsp.build_request(DATA, nonce=99)
    (tmp_path / "req.der").write_bytes(req)
    out = _openssl(
        "ts",
        "-reply",
        "-config",
        tmp_path / "tsa.cnf",
        "-queryfile",
        tmp_path / "req.der",
        "-out",
        tmp_path / "resp.der",
    )
    assert out.returncode == 0, out.stderr
    token = xtsp.token_from_response((tmp_path / "resp.der").read_bytes(), req)
    info = xtsp.verify_token(token, DATA, [pki.ocsp.cert, issued.cert])
    assert info.serial == 11  # openssl increments the serial file before use
    assert info.nonce == 99
    assert info.policy == "1.2.3.4.1"
    assert info.accuracy == dt.timedelta(seconds=1, milliseconds=500)
    assert info.tsa_cert == issued.cert
    with pytest.raises(XRoadError) as err:
        xtsp.verify_token(token, DATA + b"x", [issued.cert])
    assert err.value.code == Code.MALFORMED_SIGNATURE
    with pytest.raises(XRoadError) as err:
        xtsp.verify_token(token, DATA, [pki.ocsp.cert])
    assert err.value.code == Code.TSP_CERTIFICATE_NOT_FOUND


@needs_openssl
@pytest.mark.parametrize("cert_req", [False, True])
def test_openssl_queries_get_valid_responses(
    tmp_path: Path, pki: PKI, tsa: TimeStampAuthority, cert_req: bool
) -> None:
    _write_pki(tmp_path, pki, pki.tsa)
    args: list[str | Path] = [
        "ts",
        "-query",
        "-data",
        tmp_path / "data.bin",
        "-sha512",
        "-out",
        tmp_path / "req.der",
    ]
    args += ["-cert"] if cert_req else ["-no_nonce"]
    out = _openssl(*args)
    assert out.returncode == 0, out.stderr
    req = (tmp_path / "req.der").read_bytes()
    resp = tsa.respond(req, gen_time=dt.datetime.now(dt.UTC), serial=77)
    (tmp_path / "resp.der").write_bytes(resp)
    token = xtsp.token_from_response(resp, req)
    assert xtsp.verify_token(token, DATA, [pki.tsa.cert]).serial == 77
    _openssl_verify(
        tmp_path,
        "-in",
        tmp_path / "resp.der",
        "-queryfile",
        tmp_path / "req.der",
        "-untrusted",
        tmp_path / "tsa.pem",
    )
