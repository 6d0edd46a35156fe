"""MANIFEST "metaservice" rows: the service descriptions getWsdl and getOpenAPI serve.

* ``wsdl.wsdl``: getWsdl output equals the input once soap:address is rewritten (compared as
  XML ignoring whitespace, as NIIS's XMLUnit check); parsing yields getRandom and helloService.
* ``wsdl_response.xml``: informational (not referenced by NIIS tests); its WSDL part parses.
* ``petstore.yaml`` / ``petstore.json``: the server URL rewriting of getOpenAPI.
"""

from __future__ import annotations

from pathlib import Path

from lxml import etree

from crossroad.serverconf.descriptions import (
    SOAP11_NS,
    anonymise_openapi,
    parse_openapi,
    parse_wsdl,
    rewrite_wsdl_addresses,
)


def _canonical(data: bytes) -> bytes:
    parser = etree.XMLParser(remove_blank_text=True, resolve_entities=False, no_network=True)
    root = etree.fromstring(data, parser)
    for element in root.iter():
        if isinstance(element.tag, str):
            if element.text is not None and not element.text.strip():
                element.text = None
            if element.tail is not None and not element.tail.strip():
                element.tail = None
    return etree.tostring(root, method="c14n")


def test_get_wsdl_output_is_the_input_with_the_address_rewritten(vectors: Path) -> None:
    data = (vectors / "metaservice" / "wsdl.wsdl").read_bytes()
    original = "https://172.28.128.2:8084/mocktestServiceBinding"
    # Rewriting to the same value leaves an identical document.
    assert _canonical(rewrite_wsdl_addresses(data, original)) == _canonical(data)
    rewritten = rewrite_wsdl_addresses(data)
    root = etree.fromstring(rewritten)
    locations = [a.get("location") for a in root.iter(f"{{{SOAP11_NS}}}address")]
    assert locations == ["http://example.org/xroad-endpoint"]
    assert original.encode() not in rewritten
    # Nothing but the address changed.
    assert _canonical(rewritten) == _canonical(
        data.replace(original.encode(), b"http://example.org/xroad-endpoint")
    )


def test_wsdl_services(vectors: Path) -> None:
    services = parse_wsdl((vectors / "metaservice" / "wsdl.wsdl").read_bytes())
    assert sorted((s.service_code, s.version) for s in services) == [
        ("getRandom", "v1"),
        ("helloService", "v1"),
    ]
    assert {s.url for s in services} == {"https://172.28.128.2:8084/mocktestServiceBinding"}


def test_wsdl_response_sample_carries_a_parsable_wsdl(vectors: Path) -> None:
    raw = (vectors / "metaservice" / "wsdl_response.xml").read_bytes()
    boundary = raw.split(b"\n", 1)[0].strip()
    parts = [p for p in raw.split(boundary) if p.strip(b"-\r\n ")]
    wsdl_part = next(p for p in parts if b"wsdl:definitions" in p)
    body = wsdl_part.split(b"\n\n", 1)[1].rstrip(b"\r\n-")
    assert {s.service_code for s in parse_wsdl(body)} == {"getRandom", "helloService"}


def test_get_openapi_yaml(vectors: Path) -> None:
    yaml_text = anonymise_openapi((vectors / "metaservice" / "petstore.yaml").read_bytes()).decode()
    assert "http://petstore.swagger.io/v1/cats" not in yaml_text
    assert yaml_text.count("/v1/cats") == 1
    assert yaml_text.count("null") == 2
    for item in ('- "this"', '- "should"', '- "be"', '- "a string"', '- url: ""'):
        assert item in yaml_text


def test_get_openapi_json(vectors: Path) -> None:
    json_text = anonymise_openapi((vectors / "metaservice" / "petstore.json").read_bytes()).decode()
    assert "https://petstore.swagger.io/v2" not in json_text
    assert '"/v2"' in json_text
    assert "https://{username}.petstore.swagger.io:{port}/{basePath}" in json_text


def test_petstore_endpoints(vectors: Path) -> None:
    described = parse_openapi(
        (vectors / "metaservice" / "petstore.yaml").read_bytes(), "http://h/petstore.yaml"
    )
    assert described.operations == (("GET", "/pets"), ("POST", "/pets"), ("GET", "/pets/*"))
    assert described.base_url == "http://petstore.swagger.io/v1/cats"
    as_json = parse_openapi((vectors / "metaservice" / "petstore.json").read_bytes())
    assert as_json.format == "json"
    assert ("GET", "/pet/*") in as_json.operations
