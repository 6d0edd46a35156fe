"""MANIFEST "asic/load" and "asic/verifier": NIIS ASiC-E containers.

Every "asic/verifier" row goes through :func:`verify_container` and through ``crossroad verify``
with the trust of ``globalconf/globalconf_good2_v3`` at the time-stamp's genTime (no ``--at``).
Every "asic/load" row goes through :meth:`AsicContainer.parse`.  Our own rendering of each
container keeps NIIS's entry names, order, manifests and namespaces.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossroad.cli.main import app
from crossroad.crypto.asic import AsicContainer, asic_manifest_xml, signer_of
from crossroad.crypto.trust import TrustPolicy
from crossroad.errors import Code, XRoadError
from crossroad.evidence.verifier import verify_container
from crossroad.globalconf.directory import load_directory
from crossroad.identifiers import ClientId

UTC = dt.UTC

# (file, expected code or None for VALID, time-stamp genTime, signer)
VERIFIER_ROWS = [
    (
        "valid-signed-message.asice",
        None,
        dt.datetime(2024, 12, 5, 13, 16, 35, tzinfo=UTC),
        ClientId("DEV", "COM", "4321", "TestClient"),
    ),
    (
        "valid-non-batch-rest.asice",
        None,
        dt.datetime(2024, 7, 11, 12, 51, 12, tzinfo=UTC),
        ClientId("DEV", "COM", "1234", "TestService"),
    ),
    (
        "valid-signed-hashchain.asice",
        None,
        dt.datetime(2024, 12, 5, 12, 37, 50, tzinfo=UTC),
        ClientId("DEV", "COM", "4321", "TestClient"),
    ),
    (
        "valid-batch-ts.asice",
        None,
        dt.datetime(2024, 12, 5, 7, 34, 14, tzinfo=UTC),
        ClientId("DEV", "COM", "4321", "TestClient"),
    ),
    (
        "wrong-message.asice",
        Code.INVALID_SIGNATURE_VALUE,
        dt.datetime(2024, 12, 5, 13, 16, 35, tzinfo=UTC),
        ClientId("DEV", "COM", "4321", "TestClient"),
    ),
    (
        "invalid-signed-hashchain.asice",
        "malformed_signature.invalid_hash_chain_ref",
        dt.datetime(2024, 12, 5, 12, 37, 50, tzinfo=UTC),
        ClientId("DEV", "COM", "4321", "TestClient"),
    ),
    (
        "invalid-not-signed-hashchain.asice",
        None,
        dt.datetime(2024, 12, 5, 13, 16, 35, tzinfo=UTC),
        ClientId("DEV", "COM", "4321", "TestClient"),
    ),
    ("invalid-ts-hashchainresult.asice", Code.MALFORMED_SIGNATURE, None, None),
    ("attachments.asice", Code.ASIC_MESSAGE_NOT_FOUND, None, None),
]

SIGNER_CERTS = {
    "valid-signed-message.asice": "CN=4321",
    "valid-non-batch-rest.asice": "CN=1234",
}


@pytest.fixture(scope="module")
def globalconf(vectors: Path) -> Path:
    return vectors / "globalconf" / "globalconf_good2_v3"


@pytest.fixture(scope="module")
def trust(globalconf: Path) -> TrustPolicy:
    return load_directory(globalconf).trust_policy()


def _asic(vectors: Path, area: str, name: str) -> bytes:
    return (vectors / "asic" / area / name).read_bytes()


@pytest.mark.parametrize(("name", "code", "gen_time", "signer"), VERIFIER_ROWS)
def test_verifier_rows(
    vectors: Path,
    trust: TrustPolicy,
    name: str,
    code: str | None,
    gen_time: dt.datetime | None,
    signer: ClientId | None,
) -> None:
    report = verify_container(_asic(vectors, "verifier", name), trust, name=name)
    assert report.code == code, report.render_text()
    assert report.valid is (code is None)
    if gen_time is not None:
        assert report.timestamp_time == gen_time
        assert report.verified_at == gen_time
        assert report.tsa_subject is not None
        assert "Test TSA" in report.tsa_subject
    if signer is not None:
        assert report.signer == str(signer)
    if code is None:
        assert all(check.ok for check in report.checks)
        assert report.signing_cert is not None
        assert "DEV" in report.signing_cert.subject
        want = SIGNER_CERTS.get(name)
        if want:
            assert want in report.signing_cert.subject
        roles = {c.role for c in report.certificates}
        assert {"signer", "time-stamp authority", "OCSP responder"} <= roles
    else:
        assert not report.checks[-1].ok
    text = report.render_text()
    assert ("VALID" if code is None else f"INVALID ({code})") in text


def test_invalid_ts_hash_chain_fails_before_certificates(vectors: Path, trust: TrustPolicy) -> None:
    report = verify_container(_asic(vectors, "verifier", "invalid-ts-hashchainresult.asice"), trust)
    assert report.checks[-1].name == "time-stamp"
    assert "Failed to verify time-stamp hash chain" in report.detail


def test_unreferenced_hash_chain_digests_are_noted(vectors: Path, trust: TrustPolicy) -> None:
    report = verify_container(_asic(vectors, "verifier", "valid-signed-hashchain.asice"), trust)
    assert report.valid
    assert any("/attachment1" in note and "unverified" in note for note in report.notes)


def test_verifying_at_another_time(vectors: Path, trust: TrustPolicy) -> None:
    data = _asic(vectors, "verifier", "valid-signed-message.asice")
    later = dt.datetime(2024, 12, 5, 15, 0, tzinfo=UTC)  # OCSP is then 1h47m old (> 3600 s)
    report = verify_container(data, trust, later)
    assert not report.valid
    assert report.verified_at == later
    assert report.checks[-1].name == "signature"


@pytest.mark.parametrize(("name", "code", "gen_time", "signer"), VERIFIER_ROWS)
def test_verifier_rows_through_cli(
    vectors: Path,
    globalconf: Path,
    name: str,
    code: str | None,
    gen_time: dt.datetime | None,
    signer: ClientId | None,
) -> None:
    path = vectors / "asic" / "verifier" / name
    runner = CliRunner()
    result = runner.invoke(app, ["verify", str(path), "--globalconf", str(globalconf), "--json"])
    assert result.exit_code == (0 if code is None else 1), result.output
    payload = json.loads(result.stdout)
    assert payload["valid"] is (code is None)
    assert payload["code"] == code
    if signer is not None:
        assert payload["signer"] == str(signer)
    human = runner.invoke(app, ["verify", str(path), "--globalconf", str(globalconf)])
    assert human.exit_code == result.exit_code
    if code is None:
        assert "VALID" in human.stdout
        assert str(signer) in human.stdout
        assert gen_time is not None
        assert gen_time.isoformat() in human.stdout
        assert "Test TSA" in human.stdout
    else:
        assert f"INVALID ({code})" in human.stdout


# --- asic/load -----------------------------------------------------------------------------------

LOAD_ROWS = [
    ("valid-signed-message-with-attachments.asice", None),
    ("valid-signed-message.asice", None),
    ("no-mimetype.asice", Code.ASIC_MIME_TYPE_NOT_FOUND),
    ("no-signature.asice", Code.ASIC_SIGNATURE_NOT_FOUND),
]


@pytest.mark.parametrize(("name", "code"), LOAD_ROWS)
def test_load_rows(vectors: Path, name: str, code: str | None) -> None:
    data = _asic(vectors, "load", name)
    if code is None:
        container = AsicContainer.parse(data)
        assert container.message.startswith(b"<?xml")
        assert container.signature
    else:
        with pytest.raises(XRoadError) as err:
            AsicContainer.parse(data)
        assert err.value.code == code


def test_load_attachments(vectors: Path) -> None:
    c = AsicContainer.parse(_asic(vectors, "load", "valid-signed-message-with-attachments.asice"))
    assert len(c.attachments) == 2
    assert signer_of(c.message) == ClientId("DEV", "COM", "4321", "TestClient")


def test_load_2014_container_signature_matches_archive_vector(vectors: Path) -> None:
    c = AsicContainer.parse(_asic(vectors, "load", "valid-signed-message.asice"))
    assert c.signature == (vectors / "messagelog-archive" / "addon-signature.xml").read_bytes()


def test_load_container_without_timestamp_is_not_evidence(
    vectors: Path, trust: TrustPolicy
) -> None:
    report = verify_container(_asic(vectors, "load", "valid-signed-message.asice"), trust)
    assert not report.valid


# --- our rendering against NIIS's ----------------------------------------------------------------

NIIS_WRITTEN = [
    ("verifier", "valid-batch-ts.asice"),
    ("verifier", "valid-non-batch-rest.asice"),
    ("load", "valid-signed-message-with-attachments.asice"),
]
ALL_CURRENT = [
    *NIIS_WRITTEN,
    ("verifier", "valid-signed-message.asice"),
    ("verifier", "valid-signed-hashchain.asice"),
]


@pytest.mark.parametrize(("area", "name"), NIIS_WRITTEN)
def test_entry_order_matches_niis(vectors: Path, area: str, name: str) -> None:
    data = _asic(vectors, area, name)
    theirs = zipfile.ZipFile(io.BytesIO(data))
    container = AsicContainer.parse(data)
    ours = zipfile.ZipFile(io.BytesIO(container.render()))
    assert ours.namelist() == theirs.namelist()
    assert ours.comment == theirs.comment
    for entry in theirs.namelist():
        assert ours.read(entry) == theirs.read(entry)


@pytest.mark.parametrize(("area", "name"), ALL_CURRENT)
def test_generated_manifests_match_niis(vectors: Path, area: str, name: str) -> None:
    c = AsicContainer.parse(_asic(vectors, area, name))
    fresh = AsicContainer.build(
        c.message,
        c.signature,
        attachments=c.attachments,
        sig_hash_chain=(c.sig_hash_chain_result, c.sig_hash_chain)
        if c.sig_hash_chain_result and c.sig_hash_chain
        else None,
        ts_hash_chain=(c.ts_hash_chain_result, c.ts_hash_chain)
        if c.ts_hash_chain_result and c.ts_hash_chain
        else None,
        timestamp=c.timestamp,
    )
    ours = zipfile.ZipFile(io.BytesIO(fresh.render()))
    assert ours.read("META-INF/manifest.xml") == c.manifest
    if c.asic_manifest is not None:
        assert c.ts_hash_chain_result is not None
        assert asic_manifest_xml(c.ts_hash_chain_result) == c.asic_manifest
        assert ours.read("META-INF/ASiCManifest.xml") == c.asic_manifest
