"""Large inline payloads: a single text node above libxml2's default 10 MB node limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossroad.errors import Code, XRoadError
from crossroad.wire.soap import SoapLimits, SoapParser, parse_soap


def _request(vectors: Path, payload: bytes) -> bytes:
    query = (vectors / "messages" / "soap" / "getstate.query").read_bytes()
    head, sep, tail = query.partition(b"</xroad:getState>")
    assert sep, "getstate.query changed shape"
    return head + payload + sep + tail


def test_a_20_mb_text_node_parses(vectors: Path) -> None:
    data = _request(vectors, b"QUJD" * (5 * 1024 * 1024))
    message = parse_soap(data)
    assert message.raw == data


def test_the_size_limit_still_holds(vectors: Path) -> None:
    data = _request(vectors, b"QUJD" * 1024)
    parser = SoapParser(limits=SoapLimits(max_bytes=len(data) - 1))
    with pytest.raises(XRoadError) as err:
        parser.feed(data)
    assert err.value.code == Code.INVALID_SOAP
