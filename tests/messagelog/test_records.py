"""Message-log records: the fields taken from SOAP and REST messages, body logging switched off
(globally and per provider subsystem: headers kept, such records cannot verify), container
names as NIIS writes them, the containers' structure against NIIS's vectors, the settings file,
and Hypothesis over every parser here."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from crossroad.errors import XRoadError
from crossroad.evidence.verifier import verify_container
from crossroad.messagelog.manager import MessageLog
from crossroad.messagelog.records import (
    BodyLogging,
    Grouping,
    Side,
    StoredRecord,
    container_for,
    container_name,
    escape_query_id,
    group_name,
    parse_message,
    record_id_from_name,
)
from crossroad.messagelog.settings import LogSettings
from crossroad.messagelog.store import MessageLogStore

from .conftest import CLIENT, PROVIDER, Conf, Signers, make_record

SOAP_ENV = "{http://schemas.xmlsoap.org/soap/envelope/}"


def test_fields_of_soap_and_rest(signers: Signers) -> None:
    soap = make_record(signers, query_id="abc")
    assert soap.service is not None
    assert (soap.query_id, soap.client, soap.service.client) == ("abc", CLIENT, PROVIDER)
    assert soap.body_logged
    rest = make_record(signers, query_id="r1", rest=True, side=Side.SERVER)
    assert (rest.query_id, rest.client, rest.x_request_id) == ("r1", PROVIDER, "f00d")
    response = make_record(signers, query_id="r1", rest=True, response=True)
    assert (response.client, response.response) == (CLIENT, True)


def test_body_logging_off_keeps_headers(signers: Signers) -> None:
    off = BodyLogging(enabled=False)
    soap = make_record(signers, query_id="s", body_logging=off)
    assert not soap.body_logged
    root = etree.fromstring(soap.message)
    body_element = root.find(f"{SOAP_ENV}Body")
    assert body_element is not None
    (element,) = list(body_element)
    assert element.tag == "{urn:x}getThing"
    assert len(element) == 0
    assert element.text is None
    assert b"<xroad:id>s</xroad:id>" in soap.message
    response = make_record(signers, query_id="s", response=True, body_logging=off)
    assert b"getThingResponse" in response.message
    rest = make_record(signers, query_id="r", rest=True, body_logging=off)
    assert rest.message == (
        b"POST\r\n/r1/EE/GOV/222/svc/things\r\nx-road-client:EE/COM/111/client\r\n"
        b"x-road-id:r\r\nx-road-request-id:f00d\r\n"
    )
    # per provider subsystem: the global setting inverted for the listed ones
    local = BodyLogging(enabled=True, local_overrides=frozenset({PROVIDER}))
    assert not local.logs_body(Side.SERVER, PROVIDER)
    assert local.logs_body(Side.CLIENT, PROVIDER)
    remote = BodyLogging(enabled=False, remote_overrides=frozenset({PROVIDER}))
    assert remote.logs_body(Side.CLIENT, PROVIDER)
    assert not remote.logs_body(Side.SERVER, PROVIDER)


def test_body_off_records_are_kept_but_cannot_verify(
    mlog: MessageLog, conf: Conf, signers: Signers
) -> None:
    body = b"secret body"
    record = make_record(
        signers, rest=True, attachments=[body], body_logging=BodyLogging(enabled=False)
    )
    rid = mlog.log(record, [[body]])

    async def go() -> None:
        assert (await mlog.timestamper.stamp_once()).ok
        await mlog.close()

    asyncio.run(go())
    stored = mlog.store.get(rid)
    assert stored is not None
    assert stored.attachments == 0  # the body is dropped
    report = verify_container(mlog.store.container(stored).render(), conf().trust_policy())  # type: ignore[union-attr]
    assert not report.valid


def test_container_names() -> None:
    assert container_name("abc", False, 1) == "abc-request-1.asice"
    assert container_name("abc", True, 32) == "abc-response-10.asice"
    assert container_name("a b/c~d*", False, 31) == "a+b%2Fc%7Ed*-request-v.asice"
    assert escape_query_id("ü") == "%C3%BC"
    assert record_id_from_name("x-y-request-10.asice") == 32
    assert record_id_from_name("linkinginfo") is None
    assert record_id_from_name("a-request-!.asice") is None
    long = container_name("q" * 300, True, 5)
    assert long == "q" * 226 + "-response-5.asice"


def test_group_names() -> None:
    assert group_name(CLIENT, Grouping.NONE) == ""
    assert group_name(CLIENT, Grouping.MEMBER) == "EE/COM/111"
    assert group_name(CLIENT, Grouping.SUBSYSTEM) == "EE/COM/111/client"


def test_unstamped_record_has_no_container(signers: Signers) -> None:
    with pytest.raises(XRoadError) as err:
        container_for(StoredRecord(1, make_record(signers)))
    assert err.value.code == "asic_timestamp_not_found"


def entries(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [n for n in zf.namelist() if not n.endswith("/")]


def test_structure_matches_niis(
    mlog: MessageLog, store: MessageLogStore, signers: Signers, vectors: Path
) -> None:
    for _ in range(2):
        mlog.log(make_record(signers))
    body = b'{"a": 1}'
    mlog.log(make_record(signers, rest=True, response=True, attachments=[body]), [[body]])

    async def go() -> None:
        assert (await mlog.timestamper.stamp_once()).ok  # the first three in a batch
        await mlog.close()

    asyncio.run(go())
    first = store.records(limit=1, newest_first=False)[0]
    ours = store.container(first).render()
    niis = (vectors / "asic/verifier/valid-batch-ts.asice").read_bytes()
    assert entries(ours) == entries(niis)
    with zipfile.ZipFile(io.BytesIO(ours)) as a, zipfile.ZipFile(io.BytesIO(niis)) as b:
        assert a.comment == b.comment
        for name in ("META-INF/manifest.xml", "META-INF/ASiCManifest.xml"):
            mine, theirs = etree.fromstring(a.read(name)), etree.fromstring(b.read(name))
            assert mine.nsmap == theirs.nsmap
            assert [e.tag for e in mine.iter()] == [e.tag for e in theirs.iter()]
    rest = store.records(limit=3, newest_first=False)[2]
    rest_entries = entries(store.container(rest).render())
    niis_rest = entries((vectors / "asic/verifier/valid-non-batch-rest.asice").read_bytes())
    # our signer signs a message with a body through a hash chain: two more entries
    assert [e for e in rest_entries if not e.startswith("sig-")] == niis_rest
    single = mlog.log(make_record(signers))
    asyncio.run(_stamp_single(mlog, single))
    stored = store.get(single)
    assert stored is not None
    niis_single = (vectors / "asic/verifier/valid-signed-message.asice").read_bytes()
    assert sorted(entries(store.container(stored).render())) == sorted(entries(niis_single))


async def _stamp_single(mlog: MessageLog, record_id: int) -> None:
    assert await mlog.timestamper.stamp_records([record_id]) == 1
    await mlog.close()


def test_settings_file(tmp_path: Path) -> None:
    default = LogSettings.load(tmp_path)
    assert default.database_url == f"sqlite:///{(tmp_path / 'messagelog.db').resolve()}"
    assert default.archive_dir == tmp_path / "archive"
    assert default.acceptable_timestamp_failure_period == 14_400
    assert default.keep_records_for == 30
    (tmp_path / "message-log.toml").write_text(
        'archive_grouping = "member"\nacceptable_timestamp_failure_period = 5\n'
        "body_logging = false\n"
        'body_logging_local_overrides = ["SUBSYSTEM:EE/GOV/222/svc"]\n'
        'archive_dir = "/var/x"\nhash_algorithm = "SHA-256"\n'
    )
    loaded = LogSettings.load(tmp_path)
    assert loaded.archive_grouping is Grouping.MEMBER
    assert loaded.acceptable_timestamp_failure_period == 5.0
    assert loaded.body_logging == BodyLogging(False, frozenset({PROVIDER}))
    assert loaded.archive_dir == Path("/var/x")
    assert loaded.hash_algorithm.name == "SHA-256"
    for text in ("nonsense = 1", "archive_grouping = 3", "keep_records_for = -1", "x = [",
                 'tsa_prioritization = "cheapest"', 'archive_grouping = "planet"'):  # fmt: skip
        (tmp_path / "message-log.toml").write_text(text)
        with pytest.raises(XRoadError) as err:
            LogSettings.load(tmp_path)
        assert err.value.code == "invalid_configuration"


# --------------------------------------------------------------------------- Hypothesis


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300), st.booleans(), st.integers(0, 2**63 - 1))
def test_names_round_trip(query_id: str, response: bool, record_id: int) -> None:
    name = container_name(query_id, response, record_id)
    assert record_id_from_name(name) == record_id
    assert not any(c.isspace() for c in name)
    assert "/" not in name


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_record_id_from_any_name(name: str) -> None:
    value = record_id_from_name(name)
    assert value is None or value >= 0


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=400), st.booleans())
def test_parse_message_never_crashes(data: bytes, rest: bool) -> None:
    code = None
    try:
        parse_message(data, rest)
    except XRoadError as err:
        code = err.code
    assert code in (None, "logging_failed")


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["queryId", "xRoadInstance", "memberClass",
                                          "memberCode", "subsystemCode", "requestOnly",
                                          "responseOnly", "unique", "force"]),
                       st.text(max_size=10)))  # fmt: skip
def test_asic_parameters_never_crash(params: dict[str, str]) -> None:
    from crossroad.messagelog.asic_service import AsicQuery, HttpError

    status = 200
    try:
        AsicQuery.parse(params)
    except HttpError as err:
        status = err.status
    assert status in (200, 400)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(["keep_records_for", "archive_grouping",
                                          "hash_algorithm", "body_logging", "archive_dir",
                                          "body_logging_remote_overrides", "unknown"]),
                       st.one_of(st.integers(-5, 5), st.text(max_size=8), st.booleans(),
                                 st.lists(st.text(max_size=8), max_size=2))))  # fmt: skip
def test_settings_never_crash(data: dict[str, object]) -> None:
    code = None
    try:
        LogSettings.from_mapping(data, Path("/state"))
    except XRoadError as err:
        code = err.code
    assert code in (None, "invalid_configuration")
