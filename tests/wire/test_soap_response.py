"""Response checks and requestHash insertion (crossroad.wire.soap_response, §2.2, §2.4)."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from crossroad.errors import Code, XRoadError
from crossroad.wire.faults import build_fault
from crossroad.wire.soap import SoapMessage
from crossroad.wire.soap_response import (
    check_consistency,
    check_response,
    insert_request_hash,
    request_hash,
)

SHA512_URI = "http://www.w3.org/2001/04/xmlenc#sha512"


def envelope(header: str, body: str = "<getXResponse/>") -> bytes:
    return (
        '<?xml version="1.0"?>\n<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:id="http://x-road.eu/xsd/identifiers">\n  <e:Header>'
        f"{header}</e:Header>\n  <e:Body>{body}</e:Body>\n</e:Envelope>\n"
    ).encode()


def fields(pfx: str = "x:", decl: str = ' xmlns:x="http://x-road.eu/xsd/xroad.xsd"') -> str:
    return (
        f'\n    <{pfx}client{decl} id:objectType="MEMBER"><id:xRoadInstance>EE</id:xRoadInstance>'
        f"<id:memberClass>C</id:memberClass><id:memberCode>1</id:memberCode></{pfx}client>"
        f'\n    <{pfx}service{decl} id:objectType="SERVICE"><id:xRoadInstance>EE</id:xRoadInstance>'
        f"<id:memberClass>C</id:memberClass><id:memberCode>2</id:memberCode>"
        f"<id:serviceCode>getX</id:serviceCode></{pfx}service>"
        f"\n    <{pfx}protocolVersion{decl}>4.0</{pfx}protocolVersion>"
    )


REQUEST = envelope(
    fields() + '\n    <x:id xmlns:x="http://x-road.eu/xsd/xroad.xsd">q</x:id>\n  ', "<getX/>"
)
HASH = request_hash(REQUEST)


def test_request_hash_is_sha512_base64() -> None:
    assert base64.b64encode(hashlib.sha512(REQUEST).digest()).decode() == HASH


def test_insertion_after_id_with_its_prefix_and_indentation() -> None:
    response = envelope(
        fields() + '\n    <x:id xmlns:x="http://x-road.eu/xsd/xroad.xsd">q</x:id>\n  '
    )
    signed = insert_request_hash(response, HASH)
    expected_element = (
        f'\n    <x:requestHash algorithmId="{SHA512_URI}" '
        f'xmlns:x="http://x-road.eu/xsd/xroad.xsd">{HASH}</x:requestHash>'
    )
    assert signed == response.replace(b"q</x:id>", b"q</x:id>" + expected_element.encode())
    check_response(SoapMessage.parse(REQUEST), SoapMessage.parse(signed))


def test_insertion_with_default_namespace_and_empty_id() -> None:
    decl = ' xmlns="http://x-road.eu/xsd/xroad.xsd"'
    response = envelope(fields("", decl) + f"<id{decl}/>")
    signed = insert_request_hash(response, HASH)
    assert f'<id{decl}/>\n    <requestHash algorithmId="{SHA512_URI}"{decl}>'.encode() in signed
    found = SoapMessage.parse(signed).request_hash
    assert found is not None
    assert found.value == HASH


def test_existing_request_hash_is_dropped_wherever_it_is() -> None:
    old = '\n    <x:requestHash xmlns:x="http://x-road.eu/xsd/xroad.xsd">old</x:requestHash>'
    idx = '\n    <x:id xmlns:x="http://x-road.eu/xsd/xroad.xsd">q</x:id>'
    for header in (fields() + old + idx, old + fields() + idx, fields() + idx + old):
        signed = insert_request_hash(envelope(header + "\n  "), HASH)
        assert b"old" not in signed
        assert signed.count(b"<x:requestHash") == 1
        assert b"\n    \n" not in signed  # the whitespace before the old one went with it


def test_no_indentation_when_the_header_has_none() -> None:
    header = (
        fields().replace("\n    ", "") + '<x:id xmlns:x="http://x-road.eu/xsd/xroad.xsd">q</x:id>'
    )
    signed = insert_request_hash(envelope(header), HASH)
    assert b"</x:id><x:requestHash" in signed


def test_utf16_response() -> None:
    response = envelope(fields() + '<x:id xmlns:x="http://x-road.eu/xsd/xroad.xsd">q</x:id>')
    text = response.decode().replace(
        '<?xml version="1.0"?>', '<?xml version="1.0" encoding="UTF-16"?>'
    )
    for data in (text.encode("utf-16"), text.encode("utf-16-be")):
        signed = insert_request_hash(data, HASH)
        message = SoapMessage.parse(signed)
        assert message.request_hash is not None
        assert message.request_hash.value == HASH


def test_faults_pass_unchanged() -> None:
    fault = build_fault("server.x", "y", "z")
    assert insert_request_hash(fault, HASH) == fault


def test_an_already_parsed_response_is_not_parsed_again() -> None:
    response = envelope(fields() + '<x:id xmlns:x="http://x-road.eu/xsd/xroad.xsd">q</x:id>')
    parsed = SoapMessage.parse(response)
    assert insert_request_hash(response, HASH, parsed=parsed) == insert_request_hash(response, HASH)


def test_invalid_responses_keep_their_codes() -> None:
    with pytest.raises(XRoadError) as err:
        insert_request_hash(envelope(fields()), HASH)
    assert err.value.code == Code.MISSING_HEADER_FIELD
    with pytest.raises(XRoadError) as err:
        insert_request_hash(b"<broken", HASH)
    assert err.value.code == Code.INVALID_SOAP


def test_request_hash_with_comments_cdata_and_pis() -> None:
    header = (
        "<!-- a > b --><?pi x?>"
        + fields()
        + "<![CDATA[ ]]>"
        + '\n    <x:id xmlns:x="http://x-road.eu/xsd/xroad.xsd" a=">">q</x:id>'
    )
    signed = insert_request_hash(envelope(header), HASH)
    assert SoapMessage.parse(signed).request_hash is not None


def test_vector_answer_gets_exactly_one_line(vectors: Path) -> None:
    answer = (vectors / "messages" / "soap" / "getstate.answer").read_bytes()
    signed = insert_request_hash(answer, HASH)
    line = (
        f'\n        <xroad:requestHash algorithmId="{SHA512_URI}">{HASH}</xroad:requestHash>'
    ).encode()
    marker = b"411d6755661409fed365ad8135f8210be07613da</xroad:id>"
    assert signed == answer.replace(marker, marker + line)


def test_check_response_errors() -> None:
    request = SoapMessage.parse(REQUEST)
    base = fields() + '<x:id xmlns:x="http://x-road.eu/xsd/xroad.xsd">q</x:id>'
    unsigned = SoapMessage.parse(envelope(base))
    with pytest.raises(XRoadError) as err:
        check_response(request, unsigned)
    assert err.value.code == Code.INCONSISTENT_RESPONSE
    for value in ("AAAA", "not base64!"):
        wrong = SoapMessage.parse(insert_request_hash(envelope(base), value))
        with pytest.raises(XRoadError) as err:
            check_response(request, wrong)
        assert err.value.code == Code.INCONSISTENT_RESPONSE
    other = SoapMessage.parse(envelope(base.replace(">q<", ">other<")))
    with pytest.raises(XRoadError) as err:
        check_consistency(request, other)
    assert err.value.code == Code.INCONSISTENT_HEADERS
    assert "queryId" in err.value.detail
    with pytest.raises(XRoadError) as err:
        check_response(request, other)
    assert err.value.code == "service_failed.inconsistent_response"
