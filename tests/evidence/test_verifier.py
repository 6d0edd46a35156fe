"""verify_container / verify_archive on evidence we make ourselves, valid and tampered."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from crossroad.crypto import xades
from crossroad.crypto.algorithms import SHA512
from crossroad.crypto.archive import build_archive
from crossroad.crypto.asic import AsicContainer
from crossroad.crypto.trust import ApprovedTSA, TrustPolicy
from crossroad.errors import Code
from crossroad.evidence import verify_archive, verify_archive_files, verify_container
from crossroad.testing import pki as testing_pki

from .conftest import GEN_TIME, REST_RESPONSE, Factory, soap

CLIENT = ("EE", "COM", "111")
MESSAGE = soap(CLIENT)
SHAPES = {
    "simple, single time-stamp": {},
    "simple, batch time-stamp": {"batch_timestamp": True},
    "attachments (hash chain), single time-stamp": {"attachments": [b"att one", b"\x00two"]},
    "attachments (hash chain), batch time-stamp": {
        "attachments": [b"att one"],
        "batch_timestamp": True,
    },
    "batch signature, single time-stamp": {"batch_signature": True},
    "batch signature, batch time-stamp": {"batch_signature": True, "batch_timestamp": True},
}


def _rezip(data: bytes, **replace: bytes) -> bytes:
    """The container with some entries' bytes replaced (same names and order)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in src.namelist():
            zf.writestr(name, replace.get(name.replace("/", "_").replace(".", "_"), src.read(name)))
    return out.getvalue()


@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip_is_valid(factory: Factory, shape: str) -> None:
    data = factory.container(MESSAGE, **SHAPES[shape])  # type: ignore[arg-type]
    container = AsicContainer.parse(data)
    assert container.is_batch_timestamp is bool(SHAPES[shape].get("batch_timestamp"))
    report = verify_container(data, factory.trust)
    assert report.valid, report.render_text()
    assert report.code is None
    assert report.signer == "SUBSYSTEM:EE/COM/111/client"
    assert report.timestamp_time == GEN_TIME
    assert report.verified_at == GEN_TIME
    assert report.tsa is not None
    assert "Test TSA" in report.tsa.subject
    assert report.signing_cert is not None
    assert "CN=111" in report.signing_cert.subject
    assert [c.name for c in report.checks if c.name != "time-stamp hash chain"] == [
        "container structure",
        "signature document",
        "signer",
        "signature references",
        "time-stamp",
        "signature",
    ]
    payload = report.to_json()
    assert json.loads(json.dumps(payload))["valid"] is True
    text = report.render_text()
    for needle in ("VALID", "SUBSYSTEM:EE/COM/111/client", "2025-06-01T12:00:00Z", "Test TSA"):
        assert needle in text


def test_rest_response_is_signed_by_provider(factory: Factory) -> None:
    data = factory.container(REST_RESPONSE, [b'{"a": 1}'], who=factory.provider)
    report = verify_container(data, factory.trust)
    assert report.valid, report.render_text()
    assert report.signer == "SUBSYSTEM:EE/GOV/222/svc"


def test_soap_response_signed_by_client_is_rejected(factory: Factory) -> None:
    response = soap(CLIENT, body="getThingResponse")
    report = verify_container(factory.container(response), factory.trust)
    assert report.code == Code.INCORRECT_CERTIFICATE
    assert report.signer == "SUBSYSTEM:EE/GOV/222/svc"


def test_changed_message(factory: Factory) -> None:
    data = factory.container(MESSAGE)
    forged = _rezip(data, message_xml=MESSAGE.replace(b"<ns:n>1<", b"<ns:n>2<"))
    report = verify_container(forged, factory.trust)
    assert report.code == Code.INVALID_SIGNATURE_VALUE
    assert report.checks[-1].name == "signature"


def test_changed_attachment_in_hash_chain(factory: Factory) -> None:
    data = factory.container(MESSAGE, [b"att one"])
    report = verify_container(_rezip(data, attachment1=b"att two"), factory.trust)
    assert report.code == "malformed_signature.invalid_hash_chain_ref"


def test_changed_message_in_hash_chain(factory: Factory) -> None:
    data = factory.container(MESSAGE, batch_signature=True)
    forged = _rezip(data, message_xml=MESSAGE.replace(b"4f1c", b"4f1d"))
    report = verify_container(forged, factory.trust)
    assert report.code == "malformed_signature.invalid_hash_chain_ref"


def test_added_attachment_is_not_covered(factory: Factory) -> None:
    c = AsicContainer.parse(factory.container(MESSAGE))
    extended = dataclasses.replace(c, attachments=(b"smuggled",), manifest=None).render()
    report = verify_container(extended, factory.trust)
    assert not report.valid
    assert report.code == Code.INVALID_SIGNATURE_VALUE


def test_time_stamp_of_another_signature(factory: Factory) -> None:
    c = AsicContainer.parse(factory.container(MESSAGE))
    other = AsicContainer.parse(factory.container(soap(CLIENT, body="different")))

    def token_text(xml: bytes) -> bytes:
        return xml.split(b"EncapsulatedTimeStamp>")[1].split(b"</")[0]

    forged = c.signature.replace(token_text(c.signature), token_text(other.signature))
    assert forged != c.signature
    report = verify_container(dataclasses.replace(c, signature=forged).render(), factory.trust)
    assert report.code == Code.MALFORMED_SIGNATURE  # "Timestamp hashes do not match"
    assert report.checks[-1].name == "time-stamp"


def test_changed_signature_breaks_batch_time_stamp(factory: Factory) -> None:
    data = factory.container(MESSAGE, batch_timestamp=True)
    c = AsicContainer.parse(data)
    forged = c.signature.replace(b"<ds:SignedInfo>", b"<ds:SignedInfo >", 1)
    assert forged != c.signature
    report = verify_container(dataclasses.replace(c, signature=forged).render(), factory.trust)
    assert report.code == Code.MALFORMED_SIGNATURE
    assert report.checks[-1].name == "time-stamp"


def test_garbage_ts_hash_chain(factory: Factory) -> None:
    c = AsicContainer.parse(factory.container(MESSAGE, batch_timestamp=True))
    broken = dataclasses.replace(c, ts_hash_chain=b"<not-a-chain/>").render()
    report = verify_container(broken, factory.trust)
    assert report.code == Code.MALFORMED_SIGNATURE
    assert "Failed to verify time-stamp hash chain" in report.detail


def test_unapproved_tsa(factory: Factory) -> None:
    data = factory.container(MESSAGE)
    trust = dataclasses.replace(factory.trust, tsas=())
    report = verify_container(data, trust)
    assert not report.valid
    assert report.checks[-1].name == "time-stamp"
    other = testing_pki.TestPKI.create("Other")
    trust = dataclasses.replace(factory.trust, tsas=(ApprovedTSA("x", "http://x", other.tsa.cert),))
    assert verify_container(data, trust).code == Code.TSP_CERTIFICATE_NOT_FOUND


def test_unknown_ca(factory: Factory) -> None:
    data = factory.container(MESSAGE)
    trust = TrustPolicy(instance="EE", tsas=factory.trust.tsas)
    report = verify_container(data, trust)
    assert not report.valid
    assert report.checks[-1].name == "signature"


def test_stale_ocsp_at_gen_time(factory: Factory) -> None:
    data = factory.container(MESSAGE, ocsp_time=GEN_TIME - dt.timedelta(hours=3))
    report = verify_container(data, factory.trust)
    assert not report.valid
    assert report.checks[-1].name == "signature"


def test_no_time_stamp(factory: Factory) -> None:
    signed = factory.sign([[xades.MessagePart("/message.xml", SHA512, data=MESSAGE)]])[0]
    data = AsicContainer.build(MESSAGE, signed.signature_xml).render()
    report = verify_container(data, factory.trust)
    assert report.code == Code.ASIC_TIMESTAMP_NOT_FOUND
    # With an explicit time the signature is still checked and reported, but it is no evidence.
    at = GEN_TIME
    report = verify_container(data, factory.trust, at)
    assert report.code == Code.ASIC_TIMESTAMP_NOT_FOUND
    assert not report.valid
    assert report.verified_at == at
    signature_check = next(c for c in report.checks if c.name == "signature")
    assert signature_check.ok


def test_explicit_time(factory: Factory) -> None:
    data = factory.container(MESSAGE)
    at = GEN_TIME + dt.timedelta(minutes=30)
    report = verify_container(data, factory.trust, at)
    assert report.valid
    assert report.verified_at == at
    assert report.timestamp_time == GEN_TIME
    late = verify_container(data, factory.trust, GEN_TIME + dt.timedelta(hours=5))
    assert not late.valid


def test_naive_time_is_refused(factory: Factory) -> None:
    naive = dt.datetime(2025, 1, 1)  # noqa: DTZ001 - the point of the test
    data = factory.container(MESSAGE)
    with pytest.raises(ValueError, match="timezone-aware"):
        verify_container(data, factory.trust, naive)


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", Code.INVALID_ASIC_CONTAINER),
        (b"garbage", Code.INVALID_ASIC_CONTAINER),
        (AsicContainer.build(b"not a message", b"<x/>").render(), Code.MALFORMED_SIGNATURE),
        (AsicContainer.build(b"junk", b"\xff").render(), Code.INVALID_XML),
    ],
)
def test_broken_containers_are_reports(factory: Factory, data: bytes, code: str) -> None:
    report = verify_container(data, factory.trust)
    assert not report.valid
    assert report.code == code
    assert report.to_json()["code"] == code


def test_unreadable_message(factory: Factory) -> None:
    c = AsicContainer.parse(factory.container(MESSAGE))
    report = verify_container(dataclasses.replace(c, message=b"nonsense").render(), factory.trust)
    assert report.code == Code.INVALID_MESSAGE
    assert report.checks[-1].name == "signer"


# --- archives ------------------------------------------------------------------------------------

T0 = dt.datetime(2025, 6, 1, 12, 0, tzinfo=dt.UTC)
T1 = dt.datetime(2025, 6, 1, 18, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def archives(factory: Factory) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    previous = None
    shapes = list(SHAPES.values())
    for i in range(3):
        containers = [
            (f"q{i}-{j}-request-X{j}.asice", factory.container(MESSAGE, **shapes[(i + j) % 6]))  # type: ignore[arg-type]
            for j in range(2)
        ]
        data, last, name = build_archive(containers, previous, start=T0, end=T1)
        out.append((name, data))
        previous = (last, name)
    return out


def test_archive_chain_with_containers(factory: Factory, archives: list[tuple[str, bytes]]) -> None:
    result = verify_archive_files(archives, factory.trust, previous_digest="")
    assert result.valid, result.render_text()
    assert len(result.containers) == 6
    assert all(r.valid for r in result.containers)
    assert result.to_json()["containers_verified"] is True
    assert "VALID" in result.render_text()


def test_archive_chain_detects_removed_and_reordered(
    factory: Factory, archives: list[tuple[str, bytes]]
) -> None:
    removed = verify_archive_files([archives[0], archives[2]], factory.trust)
    assert not removed.valid
    assert removed.code == Code.INVALID_LOG_ARCHIVE
    reordered = verify_archive_files([archives[1], archives[0], archives[2]])
    assert not reordered.valid


def test_archive_with_forged_container(factory: Factory, archives: list[tuple[str, bytes]]) -> None:
    name, data = archives[0]
    src = zipfile.ZipFile(io.BytesIO(data))
    first = src.namelist()[0]
    forged_container = _rezip(src.read(first), message_xml=MESSAGE.replace(b"4f1c", b"dead"))
    # Rebuild the archive around the forged container: the linking info is then consistent,
    # but the container itself is not.
    containers = [(first, forged_container)] + [
        (n, src.read(n)) for n in src.namelist()[1:] if n.endswith(".asice")
    ]
    rebuilt, _, _ = build_archive(containers, None, start=T0, end=T1)
    result = verify_archive(rebuilt, factory.trust, name=name)
    assert not result.valid
    assert result.archive.valid
    assert result.code in (
        Code.INVALID_SIGNATURE_VALUE,
        "malformed_signature.invalid_hash_chain_ref",
    )
    # Without a trust policy only the linking is checked.
    assert verify_archive(rebuilt).valid


# --- hostile input -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def valid_pair(factory: Factory) -> tuple[bytes, AsicContainer]:
    data = factory.container(MESSAGE, [b"att"], batch_timestamp=True)
    return data, AsicContainer.parse(data)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(index=st.integers(0, 10**9), mask=st.integers(1, 255))
def test_flipped_byte_is_never_valid_forgery(
    factory: Factory, valid_pair: tuple[bytes, AsicContainer], index: int, mask: int
) -> None:
    data, original = valid_pair
    flipped = bytearray(data)
    flipped[index % len(data)] ^= mask
    report = verify_container(bytes(flipped), factory.trust)
    assert isinstance(report.valid, bool)
    if report.valid:
        parsed = AsicContainer.parse(bytes(flipped))
        assert parsed.message == original.message
        assert parsed.attachments == original.attachments
        assert parsed.signature == original.signature
    else:
        assert report.code
        assert report.code != Code.INTERNAL_ERROR, report.detail


_ENTRIES = ["message.xml", "attachment1", "META-INF/signatures.xml", "ts-hashchain.xml"]


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(entry=st.sampled_from(_ENTRIES), index=st.integers(0, 10**9), mask=st.integers(1, 255))
def test_changed_entry_is_never_valid(
    factory: Factory, valid_pair: tuple[bytes, AsicContainer], entry: str, index: int, mask: int
) -> None:
    # With a batch time-stamp even the raw bytes of signatures.xml are covered (its digest is
    # in the time-stamped hash chain), so no change of any signed entry may verify.
    data, _ = valid_pair
    content = bytearray(zipfile.ZipFile(io.BytesIO(data)).read(entry))
    content[index % len(content)] ^= mask
    key = entry.replace("/", "_").replace(".", "_")
    report = verify_container(_rezip(data, **{key: bytes(content)}), factory.trust)
    if report.valid:
        # The time-stamp hash chain is checked by what it says, not by its bytes: a change that
        # leaves the document's meaning intact (e.g. the XML declaration turned into a
        # processing instruction) is harmless.  Anything else must fail.
        assert entry == "ts-hashchain.xml"
        assert _c14n(bytes(content)) == _c14n(zipfile.ZipFile(io.BytesIO(data)).read(entry))
    assert report.code != Code.INTERNAL_ERROR, report.detail


def _c14n(xml: bytes) -> bytes:
    return etree.tostring(etree.fromstring(xml), method="c14n")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(index=st.integers(0, 10**9), mask=st.integers(1, 255))
def test_flipped_byte_in_archive(
    factory: Factory, archives: list[tuple[str, bytes]], index: int, mask: int
) -> None:
    name, data = archives[1]
    flipped = bytearray(data)
    flipped[index % len(data)] ^= mask
    result = verify_archive(bytes(flipped), factory.trust, name=name)
    if result.valid:
        original = verify_archive(data).archive
        assert isinstance(result.archive, type(original))
        assert result.archive.containers == original.containers  # type: ignore[union-attr]
    else:
        assert result.code
        assert result.code != Code.INTERNAL_ERROR, result.detail
