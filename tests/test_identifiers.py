"""Identifiers: string, XML, REST and JSON forms round-trip; character rules reject bad input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from crossroad.errors import XRoadError
from crossroad.identifiers import (
    ID_NS,
    XROAD_NS,
    ClientId,
    GlobalGroupId,
    LocalGroupId,
    ObjectType,
    SecurityServerId,
    ServiceId,
    XRoadId,
    identifier_from_json,
    identifier_from_xml,
    parse_identifier,
)

# Components as the runtime accepts them: anything but the forbidden characters, 1..255 long.
_FORBIDDEN = set("%:;/\\\u200b\ufeff")
component = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cc", "Cs"),
        blacklist_characters="".join(_FORBIDDEN),
    ),
    min_size=1,
    max_size=20,
).filter(lambda s: not any("\x80" <= c <= "\x9f" for c in s))

clients = st.builds(ClientId, component, component, component, st.none() | component)
services = st.builds(ServiceId, clients, component, st.none() | component)
servers = st.builds(
    SecurityServerId, st.builds(ClientId, component, component, component), component
)
groups = st.builds(GlobalGroupId, component, component)
local_groups = st.builds(LocalGroupId, component)
any_id = clients | services | servers | groups | local_groups

FAST = settings(max_examples=60, deadline=None)


def xml_roundtrip(ident: XRoadId) -> tuple[XRoadId, XRoadId]:
    element = ident.to_xml(f"{{{XROAD_NS}}}x")
    data = etree.tostring(element)
    parsed = etree.fromstring(data)
    return type(ident).from_xml(parsed), identifier_from_xml(parsed)


@FAST
@given(any_id)
def test_string_form_roundtrips(ident) -> None:  # type: ignore[no-untyped-def]
    assert type(ident).parse(str(ident)) == ident
    assert parse_identifier(str(ident)) == ident
    ident.validate()


@FAST
@given(any_id)
def test_xml_form_roundtrips(ident) -> None:  # type: ignore[no-untyped-def]
    specific, generic = xml_roundtrip(ident)
    assert specific == ident
    assert generic == ident


@FAST
@given(any_id)
def test_json_form_roundtrips(ident) -> None:  # type: ignore[no-untyped-def]
    assert type(ident).from_json(ident.to_json()) == ident
    assert identifier_from_json(ident.to_json()) == ident


@FAST
@given(clients, st.text(min_size=1, max_size=10))
def test_rest_forms_roundtrip_with_any_characters(client: ClientId, odd: str) -> None:
    # Percent-encoding lets even '/' and '%' through the REST forms.
    weird = ClientId(client.instance, client.member_class, odd + "/%", client.subsystem_code)
    assert ClientId.from_header(weird.to_header()) == weird
    sub = weird if weird.subsystem_code else weird.subsystem("s")
    service = ServiceId(sub, odd)
    assert ServiceId.from_path(service.to_path()) == service
    server = SecurityServerId(weird.member_id(), odd)
    assert SecurityServerId.from_header(server.to_header()) == server


def test_string_forms() -> None:
    member = ClientId("EE", "GOV", "70000001")
    sub = member.subsystem("sub")
    assert str(member) == "MEMBER:EE/GOV/70000001"
    assert str(sub) == "SUBSYSTEM:EE/GOV/70000001/sub"
    assert sub.object_type is ObjectType.SUBSYSTEM
    assert sub.is_subsystem
    assert sub.member_id() == member
    assert member.member_id() is member
    assert str(ServiceId(sub, "getX", "v1")) == "SERVICE:EE/GOV/70000001/sub/getX/v1"
    assert str(ServiceId(sub, "getX")) == "SERVICE:EE/GOV/70000001/sub/getX"
    assert str(ServiceId(member, "getX")) == "SERVICE:EE/GOV/70000001/getX"
    # A member-level service with a version keeps an empty subsystem slot.
    assert str(ServiceId(member, "getX", "v1")) == "SERVICE:EE/GOV/70000001//getX/v1"
    assert ServiceId.parse("SERVICE:EE/GOV/70000001//getX/v1") == ServiceId(member, "getX", "v1")
    assert str(SecurityServerId(member, "ss1")) == "SERVER:EE/GOV/70000001/ss1"
    assert str(GlobalGroupId("EE", "security-server-owners")) == (
        "GLOBALGROUP:EE/security-server-owners"
    )
    assert str(LocalGroupId("mygroup")) == "LOCALGROUP:mygroup"


@pytest.mark.parametrize(
    ("text", "parser"),
    [
        ("EE/GOV/1", ClientId.parse),
        ("MEMBER:EE/GOV", ClientId.parse),
        ("MEMBER:EE/GOV/1/sub", ClientId.parse),
        ("SUBSYSTEM:EE/GOV/1", ClientId.parse),
        ("SERVICE:EE/GOV/1/a", ClientId.parse),
        ("THING:EE/GOV/1", parse_identifier),
        ("SERVICE:EE/GOV/1", ServiceId.parse),
        ("SERVICE:EE/GOV/1/a/b/c/d", ServiceId.parse),
        ("SERVER:EE/GOV/1", SecurityServerId.parse),
        ("GLOBALGROUP:EE", GlobalGroupId.parse),
        ("LOCALGROUP:a/b", LocalGroupId.parse),
    ],
)
def test_bad_strings(text: str, parser) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(XRoadError):
        parser(text)


def test_xml_order_and_qualification() -> None:
    service = ServiceId(ClientId("EE", "GOV", "1", "sub"), "getX", "v1")
    element = service.to_xml(f"{{{XROAD_NS}}}service")
    assert element.get(f"{{{ID_NS}}}objectType") == "SERVICE"
    names = [etree.QName(c).localname for c in element]
    assert names == [
        "xRoadInstance",
        "memberClass",
        "memberCode",
        "subsystemCode",
        "serviceCode",
        "serviceVersion",
    ]
    assert all(etree.QName(c).namespace == ID_NS for c in element)
    assert b'xmlns:id="http://x-road.eu/xsd/identifiers"' in etree.tostring(element)
    parent = etree.Element(f"{{{XROAD_NS}}}header", nsmap={"xroad": XROAD_NS, "id": ID_NS})
    child = service.client.to_xml(f"{{{XROAD_NS}}}client", parent=parent)
    assert child.getparent() is parent


def _xml(body: str, object_type: str = "MEMBER") -> etree._Element:
    return etree.fromstring(
        f'<x:c xmlns:x="{XROAD_NS}" xmlns:id="{ID_NS}" id:objectType="{object_type}">{body}</x:c>'
    )


BASE = "<id:xRoadInstance>EE</id:xRoadInstance><id:memberClass>C</id:memberClass>"


@pytest.mark.parametrize(
    ("element", "parser", "code"),
    [
        (_xml(BASE), ClientId.from_xml, "invalid_client_identifier"),  # no memberCode
        (
            _xml(BASE + "<id:memberCode>1</id:memberCode>", "SUBSYSTEM"),
            ClientId.from_xml,
            "invalid_client_identifier",
        ),
        (
            _xml(BASE + "<id:memberCode>1</id:memberCode>", "SERVER"),
            ClientId.from_xml,
            "invalid_client_identifier",
        ),
        (
            _xml(BASE + "<id:memberCode>1</id:memberCode><id:foo>x</id:foo>"),
            ClientId.from_xml,
            "invalid_client_identifier",
        ),
        (
            _xml(BASE + "<id:memberCode>1</id:memberCode><memberCode>2</memberCode>"),
            ClientId.from_xml,
            "invalid_client_identifier",
        ),
        (
            _xml(BASE + "<id:memberCode>1</id:memberCode><id:memberCode>2</id:memberCode>"),
            ClientId.from_xml,
            "invalid_client_identifier",
        ),
        (_xml(BASE, "NOPE"), ClientId.from_xml, "invalid_client_identifier"),
        (
            _xml(BASE + "<id:memberCode>1</id:memberCode>", "SERVICE"),
            ServiceId.from_xml,
            "invalid_service_identifier",
        ),
        (
            _xml(BASE + "<id:memberCode>1</id:memberCode>", "SERVER"),
            SecurityServerId.from_xml,
            "invalid_security_server",
        ),
        (
            _xml("<id:xRoadInstance>EE</id:xRoadInstance>", "GLOBALGROUP"),
            GlobalGroupId.from_xml,
            "invalid_identifier",
        ),
        (_xml("", "LOCALGROUP"), LocalGroupId.from_xml, "invalid_identifier"),
    ],
)
def test_bad_xml(element, parser, code: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(XRoadError) as info:
        parser(element)
    assert info.value.code == code


def test_missing_object_type() -> None:
    element = etree.fromstring(f'<c xmlns:id="{ID_NS}">{BASE}</c>')
    with pytest.raises(XRoadError) as info:
        ClientId.from_xml(element)
    assert info.value.code == "invalid_client_identifier"
    with pytest.raises(XRoadError):
        ClientId.from_xml("not an element")


@pytest.mark.parametrize(
    "bad",
    ["", "a" * 256, "a%b", "a:b", "a;b", "a/b", "a\\b", "a\u200bb", "\ufeffa", "a\nb", "a\x7f"],
)
def test_lenient_character_rules(bad: str) -> None:
    with pytest.raises(XRoadError) as info:
        ClientId("EE", "GOV", bad).validate()
    assert info.value.code == "invalid_client_identifier"
    with pytest.raises(XRoadError) as info:
        ServiceId(ClientId("EE", "GOV", "1"), bad).validate()
    assert info.value.code == "invalid_service_identifier"
    with pytest.raises(XRoadError) as info:
        SecurityServerId(ClientId("EE", "GOV", "1"), bad).validate()
    assert info.value.code == "invalid_security_server"


def test_strict_character_rules() -> None:
    ClientId("EE", "GOV", "A-z0.9'()+,=?").validate(strict=True)
    ClientId("EE", "GOV", "ä ü").validate()  # the runtime is lenient
    for bad in ("ä", "a b", "a_b", "a*b", "a@b"):
        with pytest.raises(XRoadError):
            ClientId("EE", "GOV", bad).validate(strict=True)
    assert ClientId("EE", "GOV", "a" * 255).validate() is not None


def test_rest_forms() -> None:
    client = ClientId.from_header("EE/GOV/1/sub")
    assert client == ClientId("EE", "GOV", "1", "sub")
    assert ClientId.from_header("EE/GOV/1") == ClientId("EE", "GOV", "1")
    assert ClientId.from_header("EE/GOV/a%2Fb").member_code == "a/b"
    assert ClientId("EE", "GOV", "a/b c").to_header() == "EE/GOV/a%2Fb%20c"
    service = ServiceId.from_path("EE/GOV/1/sub/getX")
    assert service == ServiceId(client, "getX")
    assert service.to_path() == "EE/GOV/1/sub/getX"
    assert SecurityServerId.from_header("EE/GOV/1/ss1") == SecurityServerId(
        ClientId("EE", "GOV", "1"), "ss1"
    )
    for bad in ("EE/GOV", "EE/GOV/1/sub/x", "EE//1", "EE/GOV/%ff"):
        with pytest.raises(XRoadError) as info:
            ClientId.from_header(bad)
        assert info.value.code == "invalid_client_identifier"
    for bad in ("EE/GOV/1/getX", "EE/GOV/1/sub/getX/extra"):
        with pytest.raises(XRoadError) as info:
            ServiceId.from_path(bad)
        assert info.value.code == "invalid_service_identifier"
    with pytest.raises(XRoadError):
        ServiceId(ClientId("EE", "GOV", "1"), "getX").to_path()
    with pytest.raises(XRoadError) as info:
        SecurityServerId.from_header("EE/GOV/1")
    assert info.value.code == "invalid_security_server"
    with pytest.raises(XRoadError):
        SecurityServerId(ClientId("EE", "GOV", "1", "sub"), "ss")


def test_json_forms() -> None:
    service = ServiceId(ClientId("EE", "GOV", "1", "sub"), "getX", "v1")
    assert service.to_json() == {
        "object_type": "SERVICE",
        "xroad_instance": "EE",
        "member_class": "GOV",
        "member_code": "1",
        "subsystem_code": "sub",
        "service_code": "getX",
        "service_version": "v1",
    }
    bad: object
    for bad in (
        [],
        {"object_type": "MEMBER"},
        {"object_type": "X"},
        {"object_type": "MEMBER", "xroad_instance": 1, "member_class": "a", "member_code": "b"},
        {
            "object_type": "MEMBER",
            "xroad_instance": "EE",
            "member_class": "a",
            "member_code": "b",
            "subsystem_code": "c",
        },
    ):
        with pytest.raises(XRoadError):
            ClientId.from_json(bad)
        with pytest.raises(XRoadError):
            identifier_from_json(bad)


@FAST
@given(st.text(max_size=60))
def test_string_parser_never_crashes(text: str) -> None:
    with contextlib.suppress(XRoadError):
        parse_identifier(text)


@FAST
@given(st.text(max_size=40))
def test_rest_parsers_never_crash(text: str) -> None:
    for parser in (ClientId.from_header, ServiceId.from_path, SecurityServerId.from_header):
        with contextlib.suppress(XRoadError):
            parser(text)


@FAST
@given(
    st.sampled_from([*ObjectType, "X"]),
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "xRoadInstance",
                    "memberClass",
                    "memberCode",
                    "subsystemCode",
                    "groupCode",
                    "serviceCode",
                    "serviceVersion",
                    "serverCode",
                    "other",
                ]
            ),
            st.text(alphabet="abc", max_size=3),
        ),
        max_size=6,
    ),
)
def test_xml_parser_never_crashes(object_type: str, fields: list[tuple[str, str]]) -> None:
    element = etree.Element("x", nsmap={"id": ID_NS})
    element.set(f"{{{ID_NS}}}objectType", str(object_type))
    for name, value in fields:
        etree.SubElement(element, f"{{{ID_NS}}}{name}").text = value
    with contextlib.suppress(XRoadError):
        identifier_from_xml(element)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "object_type",
                "xroad_instance",
                "member_class",
                "member_code",
                "subsystem_code",
                "service_code",
                "service_version",
                "server_code",
                "group_code",
            ]
        ),
        st.sampled_from([*ObjectType, "X"]) | st.text(max_size=3) | st.integers() | st.none(),
    )
)
def test_json_parser_never_crashes(data: dict[str, object]) -> None:
    with contextlib.suppress(XRoadError):
        identifier_from_json(data)
