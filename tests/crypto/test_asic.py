"""ASiC-E containers: build/render/parse round trips, the loader's checks, signer detection."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import warnings
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossroad.crypto.asic import (
    MIMETYPE,
    ZIP_COMMENT,
    AsicContainer,
    asic_manifest_xml,
    signer_of,
)
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId

SOAP_REQUEST = b"""<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:id="http://x-road.eu/xsd/identifiers" xmlns:xroad="http://x-road.eu/xsd/xroad.xsd">
  <SOAP-ENV:Header>
    <xroad:client id:objectType="SUBSYSTEM">
      <id:xRoadInstance>EE</id:xRoadInstance><id:memberClass>COM</id:memberClass>
      <id:memberCode>111</id:memberCode><id:subsystemCode>client</id:subsystemCode>
    </xroad:client>
    <xroad:service id:objectType="SERVICE">
      <id:xRoadInstance>EE</id:xRoadInstance><id:memberClass>GOV</id:memberClass>
      <id:memberCode>222</id:memberCode><id:subsystemCode>svc</id:subsystemCode>
      <id:serviceCode>getThing</id:serviceCode>
    </xroad:service>
    <xroad:id>q1</xroad:id><xroad:protocolVersion>4.0</xroad:protocolVersion>
  </SOAP-ENV:Header>
  <SOAP-ENV:Body><ns:getThing xmlns:ns="urn:x"/></SOAP-ENV:Body>
</SOAP-ENV:Envelope>"""
SOAP_RESPONSE = SOAP_REQUEST.replace(b"<ns:getThing ", b"<ns:getThingResponse ")
REST_REQUEST = (
    b"GET\r\n/r1/EE/GOV/222/svc/things/1?x=1\r\nAccept:application/json\r\n"
    b"X-Road-Client:EE/COM/111/client\r\nx-road-id:EE-1\r\n"
)
REST_RESPONSE = (
    b"200\r\nOK\r\nContent-Type:application/json\r\nx-road-id:EE-1\r\n"
    b"x-road-client:EE/COM/111/client\r\nx-road-service:EE/GOV/222/svc/things\r\n"
    b"x-road-request-hash:AAAA\r\n"
)
SIGNATURE = b"<asic:XAdESSignatures xmlns:asic='http://uri.etsi.org/02918/v1.2.1#'/>"
WHEN = dt.datetime(2025, 3, 4, 5, 6, 8, tzinfo=dt.UTC)  # DOS times are even seconds


def _zip(entries: list[tuple[str, bytes]], comment: bytes = b"") -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are what some tests want
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.comment = comment
            for name, data in entries:
                zf.writestr(name, data)
    return out.getvalue()


def _code(data: bytes, **kw: int) -> str:
    with pytest.raises(XRoadError) as err:
        AsicContainer.parse(data, **kw)
    return err.value.code


SHAPES = {
    "simple": {},
    "attachments": {"attachments": [b"one", b"\x00\x01two"]},
    "sig-chain": {"sig_hash_chain": (b"<HashChainResult/>", b"<HashChain/>")},
    "batch-ts": {
        "ts_hash_chain": (b"<HashChainResult>ts</HashChainResult>", b"<HashChain>ts</HashChain>"),
        "timestamp": b"\x30\x03\x02\x01\x01",
        "attachments": [b"body"],
    },
}


@pytest.mark.parametrize("shape", SHAPES)
def test_round_trip(shape: str) -> None:
    built = AsicContainer.build(SOAP_REQUEST, SIGNATURE, created=WHEN, **SHAPES[shape])  # type: ignore[arg-type]
    data = built.render()
    assert data == built.render()  # deterministic
    parsed = AsicContainer.parse(data)
    assert parsed.message == built.message
    assert parsed.signature == built.signature
    assert parsed.attachments == built.attachments
    assert parsed.sig_hash_chain == built.sig_hash_chain
    assert parsed.sig_hash_chain_result == built.sig_hash_chain_result
    assert parsed.ts_hash_chain_result == built.ts_hash_chain_result
    assert parsed.timestamp == built.timestamp
    assert parsed.extra == ()
    # Re-rendering what was read gives the same bytes (manifests kept as read).
    assert parsed.render() == AsicContainer.parse(parsed.render()).render()


def test_render_layout_follows_niis() -> None:
    built = AsicContainer.build(
        SOAP_REQUEST,
        SIGNATURE,
        attachments=[b"a"],
        sig_hash_chain=(b"r", b"c"),
        ts_hash_chain=(b"tr", b"tc"),
        timestamp=b"tst",
        created=WHEN,
    )
    zf = zipfile.ZipFile(io.BytesIO(built.render()))
    assert zf.comment == ZIP_COMMENT
    assert [i.filename for i in zf.infolist()] == [
        "mimetype",
        "message.xml",
        "META-INF/signatures.xml",
        "sig-hashchainresult.xml",
        "sig-hashchain.xml",
        "ts-hashchainresult.xml",
        "ts-hashchain.xml",
        "META-INF/manifest.xml",
        "META-INF/ASiCManifest.xml",
        "META-INF/timestamp.tst",
        "attachment1",
    ]
    first = zf.infolist()[0]
    assert first.compress_type == zipfile.ZIP_STORED
    assert zf.read("mimetype") == MIMETYPE.encode()
    assert first.date_time == (2025, 3, 4, 5, 6, 8)
    manifest = zf.read("META-INF/manifest.xml").decode()
    paths = [line.split('full-path="')[1].split('"')[0] for line in manifest.splitlines()[2:-1]]
    assert paths == [
        "/",
        "sig-hashchain.xml",
        "message.xml",
        "ts-hashchainresult.xml",
        "sig-hashchainresult.xml",
        "ts-hashchain.xml",
        "attachment1",
    ]
    assert zf.read("META-INF/ASiCManifest.xml") == asic_manifest_xml(b"tr")


def test_single_timestamp_has_no_tst_entry() -> None:
    built = AsicContainer.build(SOAP_REQUEST, SIGNATURE)
    assert built.entry_names() == (
        "mimetype",
        "message.xml",
        "META-INF/signatures.xml",
        "META-INF/manifest.xml",
    )


def test_build_refuses_half_a_batch_timestamp() -> None:
    with pytest.raises(XRoadError) as err:
        AsicContainer.build(SOAP_REQUEST, SIGNATURE, timestamp=b"x")
    assert err.value.code == Code.ASIC_TIMESTAMP_NOT_FOUND


def test_entry_resolution() -> None:
    c = AsicContainer.build(SOAP_REQUEST, SIGNATURE, attachments=[b"a", b"b"])
    assert c.entry("/message.xml") == SOAP_REQUEST
    assert c.entry("/META-INF/signatures.xml") == SIGNATURE
    assert c.entry("/attachment2") == b"b"
    assert c.entry("/attachment3") is None
    assert c.entry("/attachment01") is None
    assert c.entry("/sig-hashchain.xml") is None
    assert c.entry("/other") is None


MIME = ("mimetype", MIMETYPE.encode())
MSG = ("message.xml", SOAP_REQUEST)
SIG = ("META-INF/signatures.xml", SIGNATURE)


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([MSG, SIG], Code.ASIC_MIME_TYPE_NOT_FOUND),
        ([("mimetype", b"  \n"), MSG, SIG], Code.ASIC_MIME_TYPE_NOT_FOUND),
        ([("mimetype", b"application/zip"), MSG, SIG], Code.ASIC_INVALID_MIME_TYPE),
        ([MIME, SIG], Code.ASIC_MESSAGE_NOT_FOUND),
        ([MIME, ("message.xml", b" \r\n"), SIG], Code.ASIC_MESSAGE_NOT_FOUND),
        ([MIME, ("MESSAGE.XML", SOAP_REQUEST), SIG], Code.ASIC_MESSAGE_NOT_FOUND),
        ([MIME, MSG], Code.ASIC_SIGNATURE_NOT_FOUND),
        ([MIME, MSG, ("META-INF/signatures0.xml", SIGNATURE)], Code.ASIC_SIGNATURE_NOT_FOUND),
        ([MIME, MSG, SIG, ("sig-hashchain.xml", b"x")], Code.ASIC_HASH_CHAIN_RESULT_NOT_FOUND),
        ([MIME, MSG, SIG, ("sig-hashchainresult.xml", b"x")], Code.ASIC_HASH_CHAIN_NOT_FOUND),
        ([MIME, MSG, SIG, ("ts-hashchainresult.xml", b"x")], Code.ASIC_HASH_CHAIN_NOT_FOUND),
        ([MIME, MSG, SIG, ("META-INF/timestamp.tst", b"")], Code.ASIC_TIMESTAMP_NOT_FOUND),
        ([MIME, MSG, SIG, ("META-INF/manifest.xml", b" ")], Code.ASIC_MANIFEST_NOT_FOUND),
        ([MIME, MSG, SIG, ("attachment2", b"x")], Code.INVALID_ASIC_CONTAINER),
        ([MIME, MSG, SIG, ("../message.xml", b"x")], Code.INVALID_ASIC_CONTAINER),
        ([MIME, MSG, SIG, ("/etc/passwd", b"x")], Code.INVALID_ASIC_CONTAINER),
        ([MIME, MSG, SIG, ("a\\b", b"x")], Code.INVALID_ASIC_CONTAINER),
        ([MIME, MSG, SIG, ("message.xml", b"<other/>")], Code.INVALID_ASIC_CONTAINER),
    ],
)
def test_loader_checks(entries: list[tuple[str, bytes]], code: str) -> None:
    assert _code(_zip(entries)) == code


def test_mimetype_is_checked_first() -> None:
    # NIIS order: mimetype → message → signature.
    assert _code(_zip([("x", b"y")])) == Code.ASIC_MIME_TYPE_NOT_FOUND


def test_unknown_entries_are_kept() -> None:
    c = AsicContainer.parse(_zip([MIME, MSG, SIG, ("META-INF/", b""), ("notes.txt", b"hi")]))
    assert c.extra == (("notes.txt", b"hi"),)
    assert AsicContainer.parse(c.render()).extra == (("notes.txt", b"hi"),)


@pytest.mark.parametrize("data", [b"", b"PK\x03\x04broken", b"not a zip at all" * 10])
def test_not_a_zip(data: bytes) -> None:
    assert _code(data) == Code.INVALID_ASIC_CONTAINER


def test_zip_bomb_is_refused() -> None:
    bomb = _zip([MIME, MSG, SIG, ("attachment1", b"\x00" * 5_000_000)])
    assert len(bomb) < 50_000
    assert _code(bomb, max_size=1_000_000) == Code.INVALID_ASIC_CONTAINER
    assert AsicContainer.parse(bomb).attachments[0] == b"\x00" * 5_000_000


def test_too_many_entries() -> None:
    data = _zip([MIME, MSG, SIG, *((f"x{i}", b"") for i in range(20))])
    assert _code(data, max_entries=10) == Code.INVALID_ASIC_CONTAINER


def test_corrupt_entry_data() -> None:
    data = bytearray(_zip([MIME, MSG, SIG]))
    offset = bytes(data).index(b"message.xml") + len("message.xml") + 5
    data[offset] ^= 0xFF
    assert _code(bytes(data)) == Code.INVALID_ASIC_CONTAINER


# --- signer detection ---------------------------------------------------------------------------


def test_signer_of_soap_request_is_client() -> None:
    assert signer_of(SOAP_REQUEST) == ClientId("EE", "COM", "111", "client")


def test_signer_of_soap_response_is_provider() -> None:
    assert signer_of(SOAP_RESPONSE) == ClientId("EE", "GOV", "222", "svc")


def test_signer_of_rest() -> None:
    assert signer_of(REST_REQUEST) == ClientId("EE", "COM", "111", "client")
    assert signer_of(REST_RESPONSE) == ClientId("EE", "GOV", "222", "svc")


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"\xff\xfe",
        b"<notsoap/>",
        b"GET\r\n/r1/x\r\nAccept:x\r\n",  # REST request without X-Road-Client
        b"200\r\nOK\r\nx-road-id:1\r\n",  # REST response without x-road-service
        b"GET\r\n/r1/x\r\nno colon here\r\n",
        SOAP_REQUEST.replace(b'<ns:getThing xmlns:ns="urn:x"/>', b""),
        SOAP_REQUEST.replace(b"xroad:client", b"xroad:other"),
        b'<!DOCTYPE x [<!ENTITY a "b">]><SOAP-ENV:Envelope '
        b'xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"/>',
    ],
)
def test_signer_of_rejects(message: bytes) -> None:
    with pytest.raises(XRoadError):
        signer_of(message)


# --- hostile input ------------------------------------------------------------------------------

VALID = AsicContainer.build(
    SOAP_REQUEST, SIGNATURE, attachments=[b"att"], sig_hash_chain=(b"r", b"c")
).render()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(VALID) - 1), st.integers(1, 255))
def test_flipped_byte_never_crashes(index: int, mask: int) -> None:
    data = bytearray(VALID)
    data[index] ^= mask
    try:
        parsed = AsicContainer.parse(bytes(data))
    except XRoadError:
        return
    # If a damaged ZIP still loads, the signed content is what was written (CRCs hold).
    original = AsicContainer.parse(VALID)
    assert parsed.message == original.message
    assert parsed.signature == original.signature
    assert parsed.attachments == original.attachments


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    with pytest.raises(XRoadError):
        AsicContainer.parse(data)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | st.sampled_from([SOAP_REQUEST, REST_REQUEST, REST_RESPONSE]))
def test_signer_of_random(message: bytes) -> None:
    with contextlib.suppress(XRoadError):
        assert isinstance(signer_of(message), ClientId)
