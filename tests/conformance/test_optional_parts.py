"""certs/common-core optional-part rows: a valid part and an XXE part (MANIFEST "certs")."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from crossroad.errors import Code, XRoadError
from crossroad.globalconf.privateparams import read_optional_part


def test_valid_part_reads_and_matches_its_schema(vectors: Path) -> None:
    base = vectors / "certs" / "common-core"
    root = read_optional_part((base / "test-part.xml").read_bytes())
    assert root.findtext("data") == "Test data"
    schema = etree.XMLSchema(etree.parse(str(base / "test-conf.xsd")))
    assert schema.validate(etree.ElementTree(root))


def test_xxe_part_is_refused(vectors: Path) -> None:
    data = (vectors / "certs" / "common-core" / "test-part-with-xxe.xml").read_bytes()
    with pytest.raises(XRoadError) as err:
        read_optional_part(data)
    assert err.value.code == Code.MALFORMED_OPTIONAL_PARTS_CONF
    assert "root:" not in err.value.detail  # the entity was never expanded


@pytest.mark.parametrize("data", [b"", b"not xml", b"<other/>", b"<?xml version='1.0'?>"])
def test_garbage_is_a_coded_error(data: bytes) -> None:
    with pytest.raises(XRoadError) as err:
        read_optional_part(data)
    assert err.value.code == Code.MALFORMED_OPTIONAL_PARTS_CONF
