"""The trust services over real HTTP on 127.0.0.1, cross-checked with openssl as the client."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtensionOID

from crossroad.clock import SYSTEM
from crossroad.crypto.ocsp import verify_response
from crossroad.crypto.trust import ApprovedCA, OcspResponder, TrustPolicy
from crossroad.crypto.tsp import TimeStampResp
from crossroad.errors import XRoadError
from crossroad.testing.clock import FrozenClock
from crossroad.testing.pki import rsa_key
from crossroad.testing.services import trust_services_thread
from crossroad.trust.ca import parse_name
from crossroad.trust.service import TrustServices, start_trust_services
from crossroad.trust.store import TrustStore

pytestmark = pytest.mark.integration

DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM


def make_csr(subject: str = "/C=FI/O=Test client/CN=4321/serialNumber=DEV\\/ss2\\/COM") -> bytes:
    csr = x509.CertificateSigningRequestBuilder().subject_name(parse_name(subject))
    return csr.sign(rsa_key(11), hashes.SHA256()).public_bytes(PEM)


def http(
    url: str, data: bytes | None = None, content_type: str | None = None
) -> tuple[int, str, bytes]:
    """(status, content type, body) of one request; HTTP errors are returned, not raised."""
    headers = {"Content-Type": content_type} if content_type else {}
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get_content_type(), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get_content_type(), err.read()


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrustServices]:
    """``run_trust_services`` in a thread with its own event loop, on ephemeral ports."""
    with trust_services_thread(tmp_path_factory.mktemp("trust")) as services:
        yield services


def issue(services: TrustServices, kind: str = "sign", csr: bytes | None = None) -> bytes:
    status, ctype, body = http(f"{services.ca_url}sign?type={kind}", csr or make_csr())
    assert status == 200, body
    assert ctype == "application/x-pem-file"
    return body


def openssl_ocsp(services: TrustServices, cert_pem: bytes, tmp_path: Path) -> str:
    cert_file = tmp_path / "c.pem"
    cert_file.write_bytes(cert_pem)
    state = services.state_dir
    result = subprocess.run(
        [
            "openssl", "ocsp",
            "-issuer", str(state / "ca.pem"),
            "-cert", str(cert_file),
            "-url", services.ocsp_url,
            "-VAfile", str(state / "ocsp.pem"),
            "-CAfile", str(state / "ca.pem"),
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Response verify OK" in result.stderr + result.stdout
    return result.stdout


# -- CA ------------------------------------------------------------------------------------


def test_ca_pem_matches_state(services: TrustServices) -> None:
    status, _, body = http(f"{services.ca_url}ca.pem")
    assert status == 200
    assert x509.load_pem_x509_certificate(body) == services.ca_cert
    assert (services.state_dir / "ca.pem").read_bytes() == body
    for role, cert in (("ocsp", services.ocsp_cert), ("tsa", services.tsa_cert)):
        assert x509.load_pem_x509_certificate(http(f"{services.ca_url}{role}.pem")[2]) == cert


def test_sign_csr_pem_and_der(services: TrustServices) -> None:
    sign = x509.load_pem_x509_certificate(issue(services))
    sign.verify_directly_issued_by(services.ca_cert)
    assert sign.extensions.get_extension_for_oid(ExtensionOID.KEY_USAGE).value.content_commitment  # type: ignore[attr-defined]
    aia = sign.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
    assert aia.value[0].access_location.value == services.ocsp_url  # type: ignore[index]
    der_csr = x509.load_pem_x509_csr(make_csr()).public_bytes(DER)
    auth = x509.load_pem_x509_certificate(issue(services, "auth", der_csr))
    eku = auth.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE).value
    assert len(list(eku)) == 2  # type: ignore[arg-type]


def test_sign_with_niis_test_ca_form(services: TrustServices) -> None:
    async def post() -> tuple[int, str]:
        form = aiohttp.FormData()
        form.add_field("certreq", make_csr(), filename="sign_csr.der")
        form.add_field("type", "auth")
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{services.ca_url}sign", data=form) as resp,
        ):
            return resp.status, await resp.text()

    status, text = asyncio.run(post())
    assert status == 200, text
    cert = x509.load_pem_x509_certificate(text.encode())
    cert.extensions.get_extension_for_oid(ExtensionOID.EXTENDED_KEY_USAGE)


def test_sign_with_identifiers(services: TrustServices) -> None:
    member = urllib.parse.quote("MEMBER:DEV/COM/1234")
    server = urllib.parse.quote("SERVER:DEV/COM/1234/ss1")
    url = f"{services.ca_url}sign?type=sign&member={member}&server={server}&name=Org"
    status, _, body = http(url, make_csr("/CN=whatever"))
    assert status == 200, body
    subject = x509.load_pem_x509_certificate(body).subject
    assert subject == parse_name("/C=FI/O=Org/CN=1234/serialNumber=DEV\\/ss1\\/COM")


@pytest.mark.parametrize(
    ("query", "body", "expected"),
    [
        ("type=sign", b"garbage", "invalid_request: Malformed certificate signing request"),
        ("type=ca", make_csr(), "invalid_request: Unknown certificate type"),
        ("type=sign", make_csr("/CN=no-serial"), "invalid_request: The sign certificate subject"),
        ("type=sign&days=ten", make_csr(), "invalid_request: days must be"),
        ("type=sign&member=nonsense", make_csr(), "invalid_client_identifier"),
    ],
)
def test_sign_refusals(services: TrustServices, query: str, body: bytes, expected: str) -> None:
    status, ctype, text = http(f"{services.ca_url}sign?{query}", body)
    assert status == 400
    assert ctype == "text/plain"
    assert text.decode().startswith(expected)
    assert b"Traceback" not in text


def test_revoke_with_form(services: TrustServices) -> None:
    serial = x509.load_pem_x509_certificate(issue(services)).serial_number
    form = f"serial={serial}&reason=cessationOfOperation".encode()
    status, _, text = http(f"{services.ca_url}revoke", form, "application/x-www-form-urlencoded")
    assert status == 200, text
    assert text.decode().startswith(f"revoked {serial} cessation_of_operation ")


def test_revoke_refusals(services: TrustServices) -> None:
    refusals = (
        (b"abc", b"Not a certificate serial"),
        (b"\xff\xfe", b"Not a certificate serial"),
        (b"999999", b"has not issued"),
    )
    for body, expected in refusals:
        status, _, text = http(f"{services.ca_url}revoke", body, "text/plain")
        assert status == 400
        assert expected in text


# -- OCSP ----------------------------------------------------------------------------------


def test_openssl_ocsp_good_then_revoked(services: TrustServices, tmp_path: Path) -> None:
    cert_pem = issue(services)
    out = openssl_ocsp(services, cert_pem, tmp_path)
    assert f"{tmp_path / 'c.pem'}: good" in out
    serial = x509.load_pem_x509_certificate(cert_pem).serial_number
    status, _, text = http(f"{services.ca_url}revoke?reason=keyCompromise", str(serial).encode())
    assert status == 200, text
    out = openssl_ocsp(services, cert_pem, tmp_path)
    assert f"{tmp_path / 'c.pem'}: revoked" in out
    assert "Reason: keyCompromise" in out
    assert "Revocation Time:" in out


def _ocsp_request(cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    return builder.build().public_bytes(DER)


def test_ocsp_post_and_get(services: TrustServices) -> None:
    cert = x509.load_pem_x509_certificate(issue(services, "auth"))
    request = _ocsp_request(cert, services.ca_cert)
    status, ctype, body = http(services.ocsp_url, request, "application/ocsp-request")
    assert (status, ctype) == (200, "application/ocsp-response")
    # what a security server would check (protocols.md §10.3)
    approved = ApprovedCA(
        "Test CA", services.ca_cert, "FiVRK", ocsp=(OcspResponder(services.ocsp_url),)
    )
    trust = TrustPolicy("DEV", cas=(approved,))
    assert verify_response(body, cert, services.ca_cert, trust, SYSTEM.now()).good
    # RFC 6960 A.1: GET {url}/{url-encoding of base64(DER)}
    encoded = urllib.parse.quote(base64.b64encode(request).decode(), safe="")
    status, ctype, body = http(services.ocsp_url + encoded)
    assert (status, ctype) == (200, "application/ocsp-response")
    resp = ocsp.load_der_ocsp_response(body)
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    assert resp.serial_number == cert.serial_number
    # and revocation shows up over GET too
    http(f"{services.ca_url}revoke", str(cert.serial_number).encode(), "text/plain")
    resp = ocsp.load_der_ocsp_response(http(services.ocsp_url + encoded)[2])
    assert resp.certificate_status == ocsp.OCSPCertStatus.REVOKED


def test_ocsp_malformed_and_wrong_type(services: TrustServices) -> None:
    status, _, body = http(services.ocsp_url, b"\x30\x03junk", "application/ocsp-request")
    assert status == 200
    assert ocsp.load_der_ocsp_response(body).response_status == (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
    status, _, body = http(services.ocsp_url + "not-base64!!")
    assert ocsp.load_der_ocsp_response(body).response_status == (
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    )
    status, _, body = http(services.ocsp_url, b"x", "application/json")
    assert status == 415


# -- TSA -----------------------------------------------------------------------------------


def _ts_query(tmp_path: Path, *extra: str) -> Path:
    data = tmp_path / "data.txt"
    data.write_bytes(b"X-Road message log record\n")
    query = tmp_path / "q.tsq"
    subprocess.run(
        ["openssl", "ts", "-query", "-data", str(data), "-sha512", *extra, "-out", str(query)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return query


def _ts_verify(services: TrustServices, query: Path, reply: Path) -> None:
    state = services.state_dir
    result = subprocess.run(
        [
            "openssl", "ts", "-verify",
            "-queryfile", str(query),
            "-in", str(reply),
            "-CAfile", str(state / "ca.pem"),
            "-untrusted", str(state / "tsa.pem"),
        ],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Verification: OK" in result.stdout


@pytest.mark.parametrize("extra", [("-no_nonce",), ("-cert",)])
def test_tsa_with_openssl(services: TrustServices, tmp_path: Path, extra: tuple[str, ...]) -> None:
    query = _ts_query(tmp_path, *extra)
    status, ctype, body = http(services.tsa_url, query.read_bytes(), "application/timestamp-query")
    assert (status, ctype) == (200, "application/timestamp-reply")
    reply = tmp_path / "r.tsr"
    reply.write_bytes(body)
    _ts_verify(services, query, reply)


def test_tsa_serials_increase(services: TrustServices, tmp_path: Path) -> None:
    query = _ts_query(tmp_path, "-no_nonce").read_bytes()
    serials = []
    for _ in range(2):
        body = http(services.tsa_url, query, "application/timestamp-query")[2]
        resp = TimeStampResp.load(body)
        tst = resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
        serials.append(tst["serial_number"].native)
    assert serials[1] > serials[0] > 0


def test_tsa_refusals(services: TrustServices) -> None:
    status, _, _ = http(services.tsa_url, b"\x30\x00", "application/ocsp-request")
    assert status == 415
    status, _, _ = http(services.tsa_url, b"\x30\x00")
    assert status == 415
    status, ctype, body = http(services.tsa_url, b"garbage", "application/timestamp-query")
    assert (status, ctype) == (200, "application/timestamp-reply")
    assert TimeStampResp.load(body)["status"]["status"].native == "rejection"


# -- in-process start, restarts, state ----------------------------------------------------


async def _ocsp_status(session: aiohttp.ClientSession, url: str, request: bytes) -> object:
    headers = {"Content-Type": "application/ocsp-request"}
    async with session.post(url, data=request, headers=headers) as resp:
        return ocsp.load_der_ocsp_response(await resp.read()).certificate_status


def test_start_in_process_and_restart(tmp_path: Path) -> None:
    clock = FrozenClock(dt.datetime(2025, 6, 1, 8, 0, tzinfo=dt.UTC))

    async def first() -> tuple[x509.Certificate, x509.Certificate]:
        async with (
            start_trust_services(tmp_path, clock=clock, key_type="ec-p256") as s,
            aiohttp.ClientSession() as session,
        ):
            cert = s.ca.issue(make_csr(), "sign", now=clock.now())
            status = await _ocsp_status(session, s.ocsp_url, _ocsp_request(cert, s.ca_cert))
            assert status == ocsp.OCSPCertStatus.GOOD
            s.ca.revoke(cert.serial_number, "superseded", at=clock.now())
            return s.ca_cert, cert

    ca_cert, cert = asyncio.run(first())
    clock.advance(3600)

    async def second() -> None:
        async with (
            start_trust_services(tmp_path, clock=clock) as s,
            aiohttp.ClientSession() as session,
        ):
            assert s.ca_cert == ca_cert  # the PKI is created once
            async with session.post(
                s.ocsp_url,
                data=_ocsp_request(cert, s.ca_cert),
                headers={"Content-Type": "application/ocsp-request"},
            ) as resp:
                answer = ocsp.load_der_ocsp_response(await resp.read())
            assert answer.certificate_status == ocsp.OCSPCertStatus.REVOKED
            assert answer.revocation_reason == x509.ReasonFlags.superseded
            assert answer.this_update_utc == clock.now()
            later = s.ca.issue(make_csr(), "sign", now=clock.now())
            assert later.serial_number > cert.serial_number

    asyncio.run(second())
    with TrustStore.open(tmp_path, create=False) as store:
        kinds = [r.kind for r in store.records()]
        assert kinds == ["ocsp", "tsa", "sign", "sign"]


def test_port_in_use_is_a_clear_error(services: TrustServices, tmp_path: Path) -> None:
    busy = urllib.parse.urlsplit(services.ocsp_url).port
    assert busy is not None

    async def start() -> None:
        async with start_trust_services(tmp_path, ocsp_port=busy):
            pass

    with pytest.raises(XRoadError, match=f"Cannot listen on 127.0.0.1:{busy}") as info:
        asyncio.run(start())
    assert info.value.code == "network_error"


def test_passphrase_protected_state(tmp_path: Path) -> None:
    async def start(passphrase: bytes | None) -> None:
        async with start_trust_services(tmp_path, passphrase=passphrase, key_type="ec-p256"):
            pass

    asyncio.run(start(b"secret"))
    assert b"ENCRYPTED" in (tmp_path / "trust.sqlite").read_bytes()
    with pytest.raises(XRoadError, match="encrypted: give the passphrase"):
        asyncio.run(start(None))
    with pytest.raises(XRoadError, match="wrong passphrase"):
        asyncio.run(start(b"wrong"))
    asyncio.run(start(b"secret"))
