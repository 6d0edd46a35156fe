"""MANIFEST "identifiers": the NIIS identifier XML fragments (IdentifierTypeConverterTest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from crossroad.errors import XRoadError
from crossroad.identifiers import (
    ClientId,
    GlobalGroupId,
    SecurityServerId,
    ServiceId,
    identifier_from_xml,
    parse_identifier,
)

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def _load(vectors: Path, name: str) -> etree._Element:
    return etree.fromstring((vectors / "identifiers" / name).read_bytes(), _PARSER)


@pytest.mark.parametrize(
    ("name", "cls", "expected"),
    [
        ("clientid.xml", ClientId, "MEMBER:EE/COMPANY/FOOBAR"),
        ("clientid-subsystem.xml", ClientId, "SUBSYSTEM:EE/COMPANY/FOOBAR/SUBSYSTEM"),
        ("serviceid.xml", ServiceId, "SERVICE:EE/BUSINESS/JODA/getState"),
        ("securityserverid.xml", SecurityServerId, "SERVER:EE/BUSINESS/123456789/bambi"),
        ("globalgroupid.xml", GlobalGroupId, "GLOBALGROUP:EE/perearstid"),
    ],
)
def test_valid_identifier_fragments(vectors: Path, name: str, cls, expected: str) -> None:  # type: ignore[no-untyped-def]
    element = _load(vectors, name)
    ident = cls.from_xml(element)
    assert str(ident) == expected
    assert identifier_from_xml(element) == ident
    assert parse_identifier(expected) == ident
    ident.validate(strict=True)
    # Re-serialised under the same tag, it parses back to the same value.
    again = etree.fromstring(etree.tostring(ident.to_xml(element.tag)), _PARSER)
    assert cls.from_xml(again) == ident


def test_serviceid_has_no_version(vectors: Path) -> None:
    service = ServiceId.from_xml(_load(vectors, "serviceid.xml"))
    assert service.service_version is None
    assert service.client == ClientId("EE", "BUSINESS", "JODA")


def test_member_with_subsystem_code_is_invalid(vectors: Path) -> None:
    element = _load(vectors, "invalid-clientid-member.xml")
    with pytest.raises(XRoadError) as info:
        ClientId.from_xml(element)
    assert info.value.code == "invalid_client_identifier"
    with pytest.raises(XRoadError) as info:
        identifier_from_xml(element)
    assert info.value.code == "invalid_client_identifier"
