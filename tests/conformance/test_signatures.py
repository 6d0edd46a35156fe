"""NIIS signature vectors (MANIFEST.md "signatures"): SignatureVerifierTest outcomes.

Times: the Java tests use ``createDate(30, 9, 2014)`` and ``createDate(9, 6, 2024)`` with
0-based months, i.e. 2014-10-30 and 2024-07-09 (JVM-local midnight; UTC midnight here, which
changes nothing for these certificates and OCSP responses).  Trust: the EE shared parameters
of ``globalconf_good_v4`` (whose first approved CA is the "Cyber" root the Java test forces)
and the DEV shared parameters of ``globalconf_good2_v3``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import zipfile
from pathlib import Path

import pytest

from crossroad.crypto import xades
from crossroad.crypto.certs import load_certificate
from crossroad.crypto.trust import TrustPolicy
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import SharedParameters
from crossroad.identifiers import ClientId

AT_2014 = dt.datetime(2014, 10, 30, tzinfo=dt.UTC)
AT_2024 = dt.datetime(2024, 7, 9, tzinfo=dt.UTC)
CONSUMER = ClientId("EE", "BUSINESS", "consumer")
TEST_ORG = ClientId("EE", "BUSINESS", "Test Org")
DEV_CLIENT = ClientId("DEV", "COM", "4321")


@pytest.fixture(scope="module")
def ee_trust(vectors: Path) -> TrustPolicy:
    params = vectors / "globalconf" / "globalconf_good_v4" / "EE" / "shared-params.xml"
    trust = SharedParameters.parse(params.read_bytes()).trust_policy()
    # The Java test pins the CA to certs/common-test/root-ca.pem: it is this policy's first CA.
    root = load_certificate((vectors / "certs" / "common-test" / "root-ca.pem").read_bytes())
    assert trust.cas[0].top_ca == root
    return trust


@pytest.fixture(scope="module")
def dev_trust(vectors: Path) -> TrustPolicy:
    params = vectors / "globalconf" / "globalconf_good2_v3" / "DEV" / "shared-params.xml"
    trust = SharedParameters.parse(params.read_bytes()).trust_policy()
    assert trust.ocsp_freshness_seconds == 3600
    return trust


def sig(vectors: Path, name: str) -> bytes:
    return (vectors / "signatures" / name).read_bytes()


def code_of(action) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(XRoadError) as err:
        action()
    return err.value.code


# --------------------------------------------------------------------------- sign-0


def verify_sign0(vectors: Path, trust: TrustPolicy, signer: ClientId, message: bytes) -> None:
    xades.verify_signature(
        sig(vectors, "sign-0.xml"),
        signer=signer,
        trust=trust,
        at=AT_2014,
        resolve={"/message.xml": message}.get,
        part_digests={"/message.xml": hashlib.sha512(message).digest()},
    )


def test_sign0_valid(vectors: Path, ee_trust: TrustPolicy) -> None:
    verify_sign0(vectors, ee_trust, CONSUMER, sig(vectors, "message-0.xml"))


def test_sign0_wrong_signer_is_incorrect_certificate(vectors: Path, ee_trust: TrustPolicy) -> None:
    signer = ClientId("EE", "BUSINESS", "FOORBAR")
    message = sig(vectors, "message-0.xml")
    assert code_of(lambda: verify_sign0(vectors, ee_trust, signer, message)) == (
        Code.INCORRECT_CERTIFICATE
    )


def test_sign0_wrong_message_is_invalid_signature_value(
    vectors: Path, ee_trust: TrustPolicy
) -> None:
    assert code_of(lambda: verify_sign0(vectors, ee_trust, CONSUMER, b"foo")) == (
        Code.INVALID_SIGNATURE_VALUE
    )


def test_sign0_info(vectors: Path, ee_trust: TrustPolicy) -> None:
    message = sig(vectors, "message-0.xml")
    info = xades.verify_signature(
        sig(vectors, "sign-0.xml"),
        signer=CONSUMER,
        trust=ee_trust,
        at=AT_2014,
        resolve={"/message.xml": message}.get,
    )
    assert info.signer == CONSUMER
    assert info.references == ("/message.xml", "#signed-properties")
    assert info.signing_time == dt.datetime(2017, 9, 8, 9, 15, 11, 580000, tzinfo=dt.UTC)
    assert info.signature_value == xades.signature_value(sig(vectors, "sign-0.xml"))
    assert len(info.signature_value) == 256
    assert [s.good for s in info.ocsp_statuses] == [True]


# --------------------------------------------------------------------------- batch signature


def test_batch_signature_valid(vectors: Path, ee_trust: TrustPolicy) -> None:
    resolve = {"/message.xml": sig(vectors, "message-1.xml"), "/attachment1": b"blaah"}
    info = xades.verify_signature(
        sig(vectors, "batch-sig.xml"),
        signer=CONSUMER,
        trust=ee_trust,
        at=AT_2014,
        resolve=resolve.get,
        hash_chain=sig(vectors, "hash-chain-1.xml"),
        hash_chain_result=sig(vectors, "hash-chain-result.xml"),
    )
    assert info.references[0] == "/sig-hashchainresult.xml"


def test_batch_signature_wrong_attachment(vectors: Path, ee_trust: TrustPolicy) -> None:
    resolve = {"/message.xml": sig(vectors, "message-1.xml"), "/attachment1": b"blaah!"}
    code = code_of(
        lambda: xades.verify_signature(
            sig(vectors, "batch-sig.xml"),
            signer=CONSUMER,
            trust=ee_trust,
            at=AT_2014,
            resolve=resolve.get,
            hash_chain=sig(vectors, "hash-chain-1.xml"),
            hash_chain_result=sig(vectors, "hash-chain-result.xml"),
        )
    )
    assert code == "malformed_signature.invalid_hash_chain_ref"


# --------------------------------------------------------------------------- parse failures


def test_empty_is_invalid_xml(vectors: Path) -> None:
    assert code_of(lambda: xades.parse_signature(sig(vectors, "empty.xml"))) == Code.INVALID_XML


@pytest.mark.parametrize(
    "name",
    [
        "sign-0-no-signature.xml",
        "sign-0-schema-fail.xml",
    ],
)
def test_structure_failures_are_malformed(vectors: Path, name: str) -> None:
    assert code_of(lambda: xades.parse_signature(sig(vectors, name))) == Code.MALFORMED_SIGNATURE


@pytest.mark.parametrize(
    ("name", "signer"),
    [
        ("sign-0-ocsp-no-responses.xml", CONSUMER),
        ("extra-certs-missing-id.xml", TEST_ORG),
        ("extra-certs-missing-cert.xml", TEST_ORG),
    ],
)
def test_verification_failures_are_malformed(
    vectors: Path, ee_trust: TrustPolicy, name: str, signer: ClientId
) -> None:
    code = code_of(
        lambda: xades.verify_signature(
            sig(vectors, name),
            signer=signer,
            trust=ee_trust,
            at=AT_2014,
            resolve={"/message.xml": sig(vectors, "message-0.xml")}.get,
        )
    )
    assert code == Code.MALFORMED_SIGNATURE


# --------------------------------------------------------------------------- X-Road 7 REST


def verify_non_batch(vectors: Path, trust: TrustPolicy, attachment_digest: bytes) -> None:
    folder = vectors / "signatures" / "non-batch-sig"
    message = (folder / "message.xml").read_bytes()
    xades.verify_signature(
        (folder / "signatures.xml").read_bytes(),
        signer=DEV_CLIENT,
        trust=trust,
        at=AT_2024,
        resolve={"/message.xml": message}.get,
        part_digests={
            "/message.xml": hashlib.sha512(message).digest(),
            "/attachment1": attachment_digest,
        },
    )


def test_non_batch_signature_valid(vectors: Path, dev_trust: TrustPolicy) -> None:
    attachment = (vectors / "signatures" / "non-batch-sig" / "attachment1").read_bytes()
    verify_non_batch(vectors, dev_trust, hashlib.sha512(attachment).digest())


def test_non_batch_signature_wrong_attachment(vectors: Path, dev_trust: TrustPolicy) -> None:
    wrong = hashlib.sha512(b"\x01").digest()
    assert code_of(lambda: verify_non_batch(vectors, dev_trust, wrong)) == (
        Code.INVALID_SIGNATURE_VALUE
    )


def test_non_batch_signature_uses_exclusive_c14n(vectors: Path) -> None:
    parsed = xades.parse_signature(
        (vectors / "signatures" / "non-batch-sig" / "signatures.xml").read_bytes()
    )
    assert parsed.c14n_method == "http://www.w3.org/2001/10/xml-exc-c14n#"
    assert parsed.references[2].uri.startswith("#xades-id-")


# --------------------------------------------------------------------------- ASiC signatures
# The message signatures inside the asic/verifier containers, verified at their time-stamp's
# genTime (the container-level checks belong to the ASiC tests).

ASIC_CASES = [
    ("valid-signed-message.asice", dt.datetime(2024, 12, 5, 13, 16, 35, tzinfo=dt.UTC), None),
    ("valid-non-batch-rest.asice", dt.datetime(2024, 7, 11, 12, 51, 12, tzinfo=dt.UTC), None),
    ("valid-signed-hashchain.asice", dt.datetime(2024, 12, 5, 12, 37, 50, tzinfo=dt.UTC), None),
    ("valid-batch-ts.asice", dt.datetime(2024, 12, 5, 7, 34, 14, tzinfo=dt.UTC), None),
    (
        "invalid-not-signed-hashchain.asice",
        dt.datetime(2024, 12, 5, 13, 16, 35, tzinfo=dt.UTC),
        None,
    ),
    (
        "wrong-message.asice",
        dt.datetime(2024, 12, 5, 13, 16, 35, tzinfo=dt.UTC),
        Code.INVALID_SIGNATURE_VALUE,
    ),
    (
        "invalid-signed-hashchain.asice",
        dt.datetime(2024, 12, 5, 12, 37, 50, tzinfo=dt.UTC),
        "malformed_signature.invalid_hash_chain_ref",
    ),
]


@pytest.mark.parametrize(("name", "at", "code"), ASIC_CASES)
def test_asic_message_signatures(
    vectors: Path, dev_trust: TrustPolicy, name: str, at: dt.datetime, code: str | None
) -> None:
    with zipfile.ZipFile(vectors / "asic" / "verifier" / name) as z:
        files = {f"/{n}": z.read(n) for n in z.namelist()}
    # REST responses are signed by the service provider DEV/COM/1234, SOAP requests by the client.
    signer = ClientId("DEV", "COM", "1234" if "rest" in name else "4321")

    def verify() -> xades.SignatureInfo:
        return xades.verify_signature(
            files["/META-INF/signatures.xml"],
            signer=signer,
            trust=dev_trust,
            at=at,
            resolve=files.get,
            hash_chain=files.get("/sig-hashchain.xml"),
            hash_chain_result=files.get("/sig-hashchainresult.xml"),
            part_digests={"/message.xml": None},
        )

    if code is None:
        assert verify().signer == signer
    else:
        assert code_of(verify) == code


def test_add_timestamp_reproduces_niis_bytes(vectors: Path) -> None:
    # Single time-stamping (§9.2): removing the embedded token from a NIIS signature and
    # embedding it again gives back the very bytes NIIS stored.
    with zipfile.ZipFile(vectors / "asic" / "verifier" / "valid-signed-message.asice") as z:
        stored = z.read("META-INF/signatures.xml")
    token = xades.timestamp_token(xades.parse_signature(stored))
    assert token is not None
    start = stored.index(b"<xades:SignatureTimeStamp>")
    end = stored.index(b"</xades:SignatureTimeStamp>") + len(b"</xades:SignatureTimeStamp>")
    stripped = stored[:start] + stored[end:]
    assert xades.timestamp_token(xades.parse_signature(stripped)) is None
    assert xades.add_timestamp(stripped, token) == stored
    derived = vectors / "derived" / "timestamps" / "dev-testtsa-token-20241205T131635Z"
    assert token == derived.with_suffix(".tst").read_bytes()
    assert xades.signature_value(stored) == derived.with_suffix(".stamped-data").read_bytes()
