"""MANIFEST "timestamps" rows and the derived DEV time-stamp token (NIIS TimestampVerifierTest).

Trust: the approved TSA certificates of ``globalconf/globalconf_good_v2`` (one per instance EE,
foo, bar: three in all, as NIIS ``getTspCertificates``); its OCSP responder certificates stand in
for the wrong certificates.  The time-stamp verification itself takes no time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from crossroad.crypto import tsp
from crossroad.crypto.algorithms import SHA256, SHA512
from crossroad.crypto.certs import load_certificate
from crossroad.errors import Code, XRoadError

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _shared_params_certs(vectors: Path, path_: str) -> list[x509.Certificate]:
    certs = []
    for instance in ("EE", "foo", "bar"):
        path = vectors / "globalconf" / "globalconf_good_v2" / instance / "shared-params.xml"
        root = etree.fromstring(path.read_bytes(), _PARSER)
        certs += [load_certificate(el.text or "") for el in root.iterfind(path_)]
    return certs


@pytest.fixture(scope="module")
def tsa_certs(vectors: Path) -> list[x509.Certificate]:
    certs = _shared_params_certs(vectors, "approvedTSA/cert")
    assert len(certs) == 3
    return certs


@pytest.fixture(scope="module")
def ocsp_certs(vectors: Path) -> list[x509.Certificate]:
    certs = _shared_params_certs(vectors, "approvedCA//ocsp/cert")
    assert len(certs) == 12
    return certs


@pytest.fixture(scope="module")
def valid(vectors: Path) -> bytes:
    return (vectors / "timestamps" / "valid").read_bytes()


@pytest.fixture(scope="module")
def stamped(vectors: Path) -> bytes:
    return (vectors / "timestamps" / "stamped-data").read_bytes()


def test_valid_token_verifies_over_stamped_data(
    valid: bytes, stamped: bytes, tsa_certs: list[x509.Certificate]
) -> None:
    info = tsp.verify_token(valid, stamped, tsa_certs)
    assert info.gen_time == dt.datetime(2012, 11, 29, 13, 10, 4, tzinfo=dt.UTC)
    assert info.digest == SHA256
    assert info.policy == "1.2.3"
    assert info.tsa_cert is not None
    assert info.tsa_cert.subject.rfc4514_string() == "CN=timestamp1"


def test_stamped_data_is_the_imprint(valid: bytes, stamped: bytes) -> None:
    digest = hashlib.sha256(stamped).digest()
    assert digest.hex().startswith("be9a71b0")
    assert digest.hex().endswith("bd5fb")
    assert tsp.token_info(valid).imprint == digest


def test_changed_stamped_data_is_malformed_signature(
    valid: bytes, stamped: bytes, tsa_certs: list[x509.Certificate]
) -> None:
    changed = bytearray(stamped)
    assert changed[42] != 0x01
    changed[42] = 0x01  # as the NIIS test does
    with pytest.raises(XRoadError) as err:
        tsp.verify_token(valid, bytes(changed), tsa_certs)
    assert err.value.code == "malformed_signature"
    assert err.value.detail == "Timestamp hashes do not match"


def test_ocsp_certs_instead_of_tsa_certs(
    valid: bytes, stamped: bytes, ocsp_certs: list[x509.Certificate]
) -> None:
    with pytest.raises(XRoadError) as err:
        tsp.verify_token(valid, stamped, ocsp_certs)
    assert err.value.code == "mlog.tsp_certificate_not_found"
    assert err.value.code == Code.TSP_CERTIFICATE_NOT_FOUND


def test_tsp_response_parses(vectors: Path) -> None:
    resp = (vectors / "timestamps" / "tsp.response").read_bytes()
    token = tsp.token_from_response(resp)
    info = tsp.token_info(token)
    assert info.gen_time == dt.datetime(2014, 5, 6, 8, 28, 49, tzinfo=dt.UTC)
    assert info.digest == SHA256
    assert info.nonce == 0x075BCD15
    # The bare token is what ASiC containers and EncapsulatedTimeStamp carry.
    assert resp.endswith(token)
    # A request over other data (the canned imprint matches nothing) is not answered by it.
    with pytest.raises(XRoadError) as err:
        tsp.token_from_response(resp, tsp.build_request(b"x", SHA256, nonce=0x075BCD15))
    assert err.value.code == Code.TIMESTAMP_RESPONSE_VALIDATION_FAILED


def test_derived_dev_test_tsa_token(vectors: Path) -> None:
    base = vectors / "derived" / "timestamps" / "dev-testtsa-token-20241205T131635Z"
    token = base.with_suffix(".tst").read_bytes()
    data = base.with_suffix(".stamped-data").read_bytes()
    tsa_cert = load_certificate((vectors / "derived" / "certs" / "dev-test-tsa.pem").read_bytes())
    info = tsp.verify_token(token, data, [tsa_cert])
    assert info.gen_time == dt.datetime(2024, 12, 5, 13, 16, 35, tzinfo=dt.UTC)
    assert info.digest == SHA512
    assert info.tsa_cert == tsa_cert
    assert info.tsa_name == "CN=Test TSA,O=Test"
    ocsp_cert = load_certificate((vectors / "derived" / "certs" / "dev-test-ocsp.pem").read_bytes())
    with pytest.raises(XRoadError) as err:
        tsp.verify_token(token, data, [ocsp_cert])
    assert err.value.code == Code.TSP_CERTIFICATE_NOT_FOUND


def test_niis_token_survives_add_certificate(
    valid: bytes, stamped: bytes, tsa_certs: list[x509.Certificate]
) -> None:
    with_cert = tsp.add_certificate(valid, tsa_certs[0])
    assert tsp.token_info(with_cert).tsa_cert == tsa_certs[0]
    assert tsp.verify_token(with_cert, stamped, tsa_certs).serial == tsp.token_info(valid).serial


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_openssl_accepts_niis_token_after_add_certificate(
    vectors: Path, tmp_path: Path, valid: bytes, tsa_certs: list[x509.Certificate]
) -> None:
    # The MANIFEST row's openssl check, without -untrusted: the token now carries its signer.
    cas = _shared_params_certs(vectors, "approvedCA//cert")
    admin_ca = next(c for c in cas if "CN=AdminCA1" in c.subject.rfc4514_string())
    (tmp_path / "ca.pem").write_bytes(admin_ca.public_bytes(Encoding.PEM))
    (tmp_path / "token.der").write_bytes(tsp.add_certificate(valid, tsa_certs[0]))
    out = subprocess.run(
        [
            "openssl",
            "ts",
            "-verify",
            "-token_in",
            "-in",
            str(tmp_path / "token.der"),
            "-data",
            str(vectors / "timestamps" / "stamped-data"),
            "-CAfile",
            str(tmp_path / "ca.pem"),
            "-no_check_time",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Verification: OK" in out.stdout, out.stdout + out.stderr
