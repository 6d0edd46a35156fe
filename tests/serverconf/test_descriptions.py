"""WSDL and OpenAPI parsing: structure, NIIS rules, hardened parsing, coded failures."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroad.errors import Code, XRoadError
from crossroad.serverconf.descriptions import (
    anonymise_openapi,
    openapi_format,
    parse_openapi,
    parse_wsdl,
    rewrite_wsdl_addresses,
)


def wsdl(
    operations: str = '<wsdl:operation name="getX"><xrd:version>v2</xrd:version></wsdl:operation>',
    transport: str = "http://schemas.xmlsoap.org/soap/http",
    binding_ns: str = "http://schemas.xmlsoap.org/wsdl/soap/",
    doc: str = "",
) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/" xmlns:tns="urn:t"
    xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:soap="{binding_ns}" targetNamespace="urn:t">
  <wsdl:portType name="pt">
    <wsdl:operation name="getX">{doc}</wsdl:operation>
  </wsdl:portType>
  <wsdl:binding name="b" type="tns:pt">
    <soap:binding style="document" transport="{transport}"/>
    {operations}
  </wsdl:binding>
  <wsdl:service name="s">
    <wsdl:port name="p" binding="tns:b"><soap:address location="http://is.example/soap"/></wsdl:port>
  </wsdl:service>
</wsdl:definitions>""".encode()


def test_wsdl_code_version_title_url() -> None:
    doc = (
        "<wsdl:documentation><xrd:title>Get an X</xrd:title>"
        '<xrd:title xml:lang="et">X</xrd:title></wsdl:documentation>'
    )
    (service,) = parse_wsdl(wsdl(doc=doc))
    assert service.service_code == "getX"
    assert service.version == "v2"
    assert service.title == "Get an X"
    assert service.url == "http://is.example/soap"


def test_wsdl_soap12_binding_counts() -> None:
    services = parse_wsdl(wsdl(binding_ns="http://schemas.xmlsoap.org/wsdl/soap12/"))
    assert [s.service_code for s in services] == ["getX"]


def test_wsdl_without_version() -> None:
    (service,) = parse_wsdl(wsdl(operations='<wsdl:operation name="getX"/>'))
    assert service.version is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not xml",
        b"<definitions/>",  # no WSDL namespace
        wsdl(transport="http://example.org/other"),  # no SOAP over HTTP port
        wsdl(operations=""),  # no operations
        wsdl(operations='<wsdl:operation name="get/X"/>'),  # illegal service code
        wsdl().replace(b'binding="tns:b"', b'binding="tns:nope"'),
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/">&x;</wsdl:definitions>',
        b'<!DOCTYPE d><wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"/>',
    ],
)
def test_bad_wsdl_is_invalid_wsdl(data: bytes) -> None:
    with pytest.raises(XRoadError) as err:
        parse_wsdl(data)
    assert err.value.code == Code.INVALID_WSDL
    assert "root:" not in err.value.detail


def test_rewrite_only_touches_soap11_addresses() -> None:
    out = rewrite_wsdl_addresses(wsdl(), "http://elsewhere/")
    assert b'location="http://elsewhere/"' in out
    assert b"is.example" not in out
    soap12 = wsdl(binding_ns="http://schemas.xmlsoap.org/wsdl/soap12/")
    assert b"is.example" in rewrite_wsdl_addresses(soap12)


OPENAPI = {
    "openapi": "3.0.3",
    "servers": [{"url": "/v1"}],
    "paths": {
        "/items": {"get": {}, "post": {}, "parameters": []},
        "/items/{id}": {"get": {}, "delete": {}},
        "/items/{id}/parts/{part}": {"patch": {}},
    },
}


def test_openapi_endpoints_and_base_url() -> None:
    described = parse_openapi(json.dumps(OPENAPI).encode(), "https://api.example/spec/openapi.json")
    assert described.format == "json"
    assert described.base_url == "https://api.example/v1"
    assert described.operations == (
        ("GET", "/items"),
        ("POST", "/items"),
        ("GET", "/items/*"),
        ("DELETE", "/items/*"),
        ("PATCH", "/items/*/parts/*"),
    )


def test_openapi_templated_server_is_kept() -> None:
    doc = {**OPENAPI, "servers": [{"url": "https://{host}/v1"}]}
    assert parse_openapi(json.dumps(doc).encode(), "http://x/y").base_url == "https://{host}/v1"


@pytest.mark.parametrize("version", ["3.0.0", "3.0.3", "3.1.0"])
def test_supported_versions(version: str) -> None:
    parse_openapi(json.dumps({**OPENAPI, "openapi": version}).encode())


@pytest.mark.parametrize("version", ["2.0", "3.1.1", "4.0.0"])
def test_unsupported_versions(version: str) -> None:
    with pytest.raises(XRoadError) as err:
        parse_openapi(json.dumps({**OPENAPI, "openapi": version}).encode())
    assert err.value.code == Code.UNSUPPORTED_OPENAPI_VERSION


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"[1, 2]",
        b"{",
        b"openapi: [unclosed",
        b'{"paths": {}}',  # no version
        b'{"openapi": "3.0.0", "paths": []}',
        b'{"openapi": "3.0.0", "paths": {"/a": 5}}',
        b"\xff\xfe",
        b"a: &a [x]\nb: &b [*a, *a, *a, *a]\n"
        + b"".join(b"c%d: &c%d [" % (i, i) + b", ".join([b"*b"] * 10) + b"]\n" for i in range(200)),
    ],
)
def test_bad_openapi_is_coded(data: bytes) -> None:
    with pytest.raises(XRoadError) as err:
        parse_openapi(data)
    assert err.value.code == Code.OPENAPI_PARSING_ERROR


def test_yaml_scalars_stay_data() -> None:
    doc = b"openapi: 3.0.0\ninfo:\n  version: 2024-01-01\n  x-flag: yes\nservers:\n- url: http://h/a\n"
    text = anonymise_openapi(doc).decode()
    assert 'version: "2024-01-01"' in text  # not turned into a date
    assert 'x-flag: "yes"' in text  # not turned into a boolean
    assert 'url: "/a"' in text


def test_anonymise_rejects_other_versions_as_internal_error() -> None:
    with pytest.raises(XRoadError) as err:
        anonymise_openapi(b'{"openapi": "2.0"}')
    assert err.value.code == Code.INTERNAL_ERROR


def test_format_detection() -> None:
    assert openapi_format(b"a: b", content_type="application/json; charset=utf-8") == "json"
    assert openapi_format(b"{}", content_type="application/x-yaml") == "yaml"
    assert openapi_format(b"a: b", url="http://h/spec.json") == "json"
    assert openapi_format(b'  {"a": 1}') == "json"
    assert openapi_format(b"a: 1") == "yaml"


# --- fuzzing: any input gives a value or a coded error ------------------------------------------


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300))
def test_wsdl_parser_never_crashes(data: bytes) -> None:
    try:
        parse_wsdl(data)
    except XRoadError as exc:
        assert exc.code == Code.INVALID_WSDL  # noqa: PT017


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2000), st.binary(min_size=1, max_size=8))
def test_mutated_wsdl_never_crashes(position: int, junk: bytes) -> None:
    base = wsdl()
    data = base[:position] + junk + base[position + len(junk) :]
    try:
        parse_wsdl(data)
        rewrite_wsdl_addresses(data)
    except XRoadError as exc:
        assert exc.code == Code.INVALID_WSDL  # noqa: PT017  # noqa: PT017


_OPENAPI_CODES = (Code.OPENAPI_PARSING_ERROR, Code.UNSUPPORTED_OPENAPI_VERSION, Code.INTERNAL_ERROR)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_openapi_parsers_never_crash(data: bytes) -> None:
    for call in (parse_openapi, anonymise_openapi):
        try:
            call(data)
        except XRoadError as exc:
            assert exc.code in _OPENAPI_CODES  # noqa: PT017


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(_json, _json)
def test_structured_openapi_never_crashes(servers: object, paths: object) -> None:
    doc = json.dumps({"openapi": "3.0.0", "servers": servers, "paths": paths}).encode()
    for fmt in ("json", "yaml"):
        try:
            parse_openapi(doc, fmt=fmt)  # type: ignore[arg-type]
            anonymise_openapi(doc, fmt)  # type: ignore[arg-type]
        except XRoadError as exc:
            assert exc.code in _OPENAPI_CODES  # noqa: PT017
