"""Private parameters, anchors and optional parts: parse, render (checked against the XSDs)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from crossroad.errors import XRoadError
from crossroad.globalconf.model import (
    AnchorSource,
    ConfigurationAnchor,
    ManagementService,
    PrivateParameters,
)
from crossroad.globalconf.privateparams import (
    anchor_hash,
    parse_anchor,
    parse_fetch_interval,
    parse_monitoring_params,
    parse_next_update,
    parse_private_parameters,
    render_anchor,
    render_private_parameters,
)
from crossroad.identifiers import ClientId

Schema = Callable[[str, int], etree.XMLSchema]

ANCHOR = ConfigurationAnchor(
    instance_identifier="bar",
    sources=(
        AnchorSource("http://cs/internalconf", (b"cert-1", b"cert-2")),
        AnchorSource("https://cs/internalconf", (b"cert-3",)),
    ),
    generated_at=dt.datetime(2026, 2, 6, 10, 0, 0, 123000, tzinfo=dt.UTC),
)
PRIVATE = PrivateParameters(
    instance_identifier="EE",
    management_service=ManagementService(
        "https://cs:4001/managementservice/",
        ClientId("EE", "GOV", "1", "MANAGEMENT"),
        b"tls-cert",
    ),
    time_stamping_interval_seconds=60,
    configuration_anchors=(ANCHOR,),
    extensions=(b'<x:e xmlns:x="urn:x">1</x:e>',),
)


@pytest.mark.parametrize("version", [2, 3])
def test_private_parameters_render_valid_and_roundtrip(
    globalconf_schema: Schema, version: int
) -> None:
    rendered = render_private_parameters(PRIVATE, version)
    schema = globalconf_schema("private", version)
    assert schema.validate(etree.fromstring(rendered)), schema.error_log
    again = parse_private_parameters(rendered)
    expected = (
        PRIVATE if version == 3 else PrivateParameters(**{**PRIVATE.__dict__, "extensions": ()})
    )
    assert again == expected
    assert again.instance == "EE"


def test_private_parameters_without_optional_parts(globalconf_schema: Schema) -> None:
    minimal = PrivateParameters(
        "EE", ManagementService("http://cs:4001", ClientId("EE", "GOV", "1")), 120
    )
    rendered = render_private_parameters(minimal, 2)
    assert globalconf_schema("private", 2).validate(etree.fromstring(rendered))
    assert parse_private_parameters(rendered) == minimal
    with pytest.raises(XRoadError):
        render_private_parameters(minimal, 4)


def test_anchor_roundtrip_and_hash() -> None:
    rendered = render_anchor(ANCHOR)
    assert parse_anchor(rendered) == ANCHOR
    assert b"<generatedAt>2026-02-06T10:00:00.123Z</generatedAt>" in rendered
    assert anchor_hash(b"") == (
        "D1:4A:02:8C:2A:3A:2B:C9:47:61:02:BB:28:82:34:C4:15:A2:B0:1F:82:8E:A6:2A:C5:B3:E4:2F"
    )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"   ",
        b"<x/>",
        b'<tns:configurationAnchor xmlns:tns="http://x-road.eu/xsd/xroad.xsd">'
        b"<instanceIdentifier>EE</instanceIdentifier></tns:configurationAnchor>",
        b'<tns:configurationAnchor xmlns:tns="http://x-road.eu/xsd/xroad.xsd">'
        b"<generatedAt>yesterday</generatedAt><instanceIdentifier>EE</instanceIdentifier>"
        b"<source><downloadURL>u</downloadURL><verificationCert>AA==</verificationCert></source>"
        b"</tns:configurationAnchor>",
        b'<tns:configurationAnchor xmlns:tns="http://x-road.eu/xsd/xroad.xsd">'
        b"<instanceIdentifier>EE</instanceIdentifier>"
        b"<source><downloadURL>u</downloadURL><verificationCert>*</verificationCert></source>"
        b"</tns:configurationAnchor>",
    ],
)
def test_malformed_anchor(data: bytes) -> None:
    with pytest.raises(XRoadError) as info:
        parse_anchor(data)
    assert info.value.code == "malformed_anchor"


@pytest.mark.parametrize(
    "data",
    [
        b"xxx",
        b'<tns:conf xmlns:tns="http://x-road.eu/xsd/xroad.xsd"/>',
        render_private_parameters(PRIVATE).replace(
            b"<timeStampingIntervalSeconds>60", b"<timeStampingIntervalSeconds>x"
        ),
        render_private_parameters(PRIVATE).replace(
            b'id:objectType="SUBSYSTEM"', b'id:objectType="MEMBER"'
        ),
    ],
)
def test_malformed_private_parameters(data: bytes) -> None:
    with pytest.raises(XRoadError) as info:
        parse_private_parameters(data)
    assert info.value.code == "malformed_globalconf"


NS = b'xmlns:tns="http://x-road.eu/xsd/xroad.xsd"'


def test_optional_parts() -> None:
    assert (
        parse_next_update(
            b"<tns:conf %s><verifyNextUpdate>false</verifyNextUpdate></tns:conf>" % NS
        )
        is False
    )
    assert (
        parse_next_update(b"<tns:conf %s><verifyNextUpdate>true</verifyNextUpdate></tns:conf>" % NS)
        is True
    )
    assert (
        parse_fetch_interval(
            b"<tns:conf %s><ocspFetchInterval> 30 </ocspFetchInterval></tns:conf>" % NS
        )
        == 30
    )
    for bad in (
        b"<tns:conf %s/>" % NS,
        b"<tns:conf %s><verifyNextUpdate>perhaps</verifyNextUpdate></tns:conf>" % NS,
        b"<tns:conf %s><verifyNextUpdate>true</verifyNextUpdate><x/></tns:conf>" % NS,
    ):
        with pytest.raises(XRoadError) as info:
            parse_next_update(bad)
        assert info.value.code == "malformed_optional_parts_conf"
    with pytest.raises(XRoadError):
        parse_monitoring_params(b"<tns:conf %s/>" % NS)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=120))
def test_parsers_never_crash(data: bytes) -> None:
    for parser in (
        parse_private_parameters,
        parse_anchor,
        parse_fetch_interval,
        parse_next_update,
        parse_monitoring_params,
    ):
        try:
            parser(data)
        except XRoadError:
            continue
