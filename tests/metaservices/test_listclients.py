"""listClients (§7.1): XML and JSON bodies, instance selection, Accept parsing, fuzzing."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from crossroad.errors import Code, XRoadError
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ID_NS, XROAD_NS, ClientId
from crossroad.metaservices.listclients import (
    JSON_CONTENT_TYPE,
    XML_CONTENT_TYPE,
    accepts_json,
    client_list,
    instance_from_query,
    list_clients,
)

X = f"{{{XROAD_NS}}}"


def test_entries_follow_configuration_order_with_subsystems(globalconf: GlobalConfSnapshot) -> None:
    entries = client_list(globalconf)
    assert [str(e.id) for e in entries][:4] == [
        "MEMBER:EE/GOV/1",
        "SUBSYSTEM:EE/GOV/1/prov",
        "MEMBER:EE/COM/2",
        "SUBSYSTEM:EE/COM/2/cons",
    ]
    assert len(entries) == 9
    by_id = {e.id: e for e in entries}
    sub = by_id[ClientId("EE", "GOV", "1", "prov")]
    assert (sub.name, sub.subsystem_name) == ("Provider Agency", "Provider system")
    assert by_id[ClientId("EE", "COM", "2", "cons")].subsystem_name is None
    assert by_id[ClientId("EE", "GOV", "1")].subsystem_name is None


def test_xml_body_validates_and_reads_back(
    globalconf: GlobalConfSnapshot, validate: Callable[[etree._Element], None]
) -> None:
    response = list_clients(globalconf)
    assert response.status == 200
    assert response.content_type == XML_CONTENT_TYPE
    assert response.body.startswith(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>')
    root = etree.fromstring(response.body)
    validate(root)
    assert root.tag == f"{X}clientList"
    members = root.findall(f"{X}member")
    assert len(members) == 9
    first_id = members[1].find(f"{X}id")
    assert first_id is not None
    assert first_id.get(f"{{{ID_NS}}}objectType") == "SUBSYSTEM"
    assert ClientId.from_xml(first_id) == ClientId("EE", "GOV", "1", "prov")
    assert members[1].findtext(f"{X}name") == "Provider Agency"
    assert members[1].findtext(f"{X}subsystemName") == "Provider system"
    assert members[0].find(f"{X}subsystemName") is None
    # Special characters are escaped, not lost.
    assert members[-1].findtext(f"{X}name") == "Ströngér & <Co>"


def test_json_body_has_the_niis_shape(globalconf: GlobalConfSnapshot) -> None:
    response = list_clients(globalconf, accept="text/xml;q=1.0, application/json;q=0.9")
    assert response.content_type == JSON_CONTENT_TYPE
    doc = json.loads(response.body)
    assert list(doc) == ["member"]
    assert doc["member"][0] == {
        "id": {
            "member_class": "GOV",
            "member_code": "1",
            "object_type": "MEMBER",
            "xroad_instance": "EE",
        },
        "name": "Provider Agency",
    }
    assert doc["member"][1] == {
        "id": {
            "member_class": "GOV",
            "member_code": "1",
            "object_type": "SUBSYSTEM",
            "subsystem_code": "prov",
            "xroad_instance": "EE",
        },
        "name": "Provider Agency",
        "subsystem_name": "Provider system",
    }
    # nulls are omitted, non-ASCII kept as UTF-8
    assert "subsystem_name" not in doc["member"][3]
    assert "Ströngér".encode() in response.body


def test_federated_instance_and_unknown_instance(globalconf: GlobalConfSnapshot) -> None:
    doc = json.loads(
        list_clients(globalconf, query="xRoadInstance=FI", accept="application/json").body
    )
    assert [m["id"]["xroad_instance"] for m in doc["member"]] == ["FI", "FI"]
    # blank means own instance
    own = list_clients(globalconf, query="xRoadInstance=%20&x=1")
    assert own.body == list_clients(globalconf).body
    with pytest.raises(XRoadError) as err:
        list_clients(globalconf, query="xRoadInstance=XX")
    assert err.value.code == Code.INTERNAL_ERROR


def test_query_parameter_rules() -> None:
    assert instance_from_query(None) is None
    assert instance_from_query("") is None
    assert instance_from_query("xRoadInstance=EE&xRoadInstance=FI") == "EE"
    assert instance_from_query("xroadinstance=EE") is None  # names are case-sensitive (Jetty)
    assert instance_from_query("xRoadInstance=A%2FB+C") == "A/B C"
    assert instance_from_query("xRoadInstance") is None


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, False),
        ([], False),
        ("application/json", True),
        ("APPLICATION/JSON; charset=utf-8", True),
        (["text/xml;q=1.0", "application/json;q=0.9 , text/*"], True),
        (["x-this/that;q=1.0;param=value", "text/xml, */*"], False),
        ("application/jsonx", False),
    ],
)
def test_accepts_json(accept: str | list[str] | None, expected: bool) -> None:
    assert accepts_json(accept) is expected


def test_empty_instance_lists_nothing() -> None:
    from crossroad.globalconf.model import GlobalSettings, SharedParameters

    empty = GlobalConfSnapshot.build(SharedParameters("XX", GlobalSettings(600)), None)
    assert json.loads(list_clients(empty, accept="application/json").body) == {"member": []}
    root = etree.fromstring(list_clients(empty).body)
    assert root.tag == f"{X}clientList"
    assert len(root) == 0


@settings(max_examples=200, deadline=None)
@given(query=st.text(max_size=80), accept=st.text(max_size=40))
def test_request_fuzz_gives_coded_errors_only(
    globalconf: GlobalConfSnapshot, query: str, accept: str
) -> None:
    try:
        response = list_clients(globalconf, query=query, accept=accept)
    except XRoadError as exc:
        assert exc.code in (Code.INTERNAL_ERROR, Code.INVALID_REQUEST)  # noqa: PT017
    else:
        assert response.status == 200
