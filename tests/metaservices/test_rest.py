"""REST metaservices (§7.3): listMethods/allowedMethods JSON shapes and access rights,
getOpenAPI, the response header set, query parsing and fuzzing."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroad.errors import Code, XRoadError
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId
from crossroad.metaservices import GET_OPENAPI
from crossroad.metaservices.rest import (
    handle_rest_meta,
    is_rest_meta_service,
    openapi_service,
    openapi_service_code,
    rest_meta_response,
)
from crossroad.serverconf.model import ServerConf
from crossroad.wire.rest import RestRequest, RestResponse

from .conftest import (
    CONSUMER,
    CONSUMER_MEMBER,
    IN_GLOBAL,
    IN_LOCAL,
    OPENAPI_YAML,
    PROVIDER,
    STRANGER,
)

BASE = "/r1/EE/GOV/1/prov"


def _request(
    client: ClientId,
    code: str,
    query: str | None = None,
    method: str = "GET",
    headers: tuple[tuple[str, str], ...] = (),
) -> RestRequest:
    return RestRequest.from_http(
        method,
        f"{BASE}/{code}",
        query,
        [("X-Road-Client", client.to_header()), *headers],
        request_id="req-1",
        instance="EE",
        query_uuid="uuid",
    )


def _call(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot, client: ClientId, code: str
) -> dict[str, Any]:
    response = handle_rest_meta(_request(client, code), serverconf, globalconf)
    assert (response.status, response.reason, response.content_type) == (
        200,
        "OK",
        "application/json",
    )
    doc = json.loads(response.body)
    assert isinstance(doc, dict)
    return doc


def test_is_rest_meta_service() -> None:
    for code in ("listMethods", "allowedMethods", "getOpenAPI"):
        assert is_rest_meta_service(code)
        assert not is_rest_meta_service(code, "POST")
    assert not is_rest_meta_service("getWsdl")
    assert not is_rest_meta_service("pets")


def test_list_methods_shape(serverconf: ServerConf, globalconf: GlobalConfSnapshot) -> None:
    doc = _call(serverconf, globalconf, STRANGER, "listMethods")
    assert list(doc) == ["service"]
    assert doc["service"] == [
        {
            "member_class": "GOV",
            "member_code": "1",
            "object_type": "SERVICE",
            "service_code": "pets",
            "service_type": "OPENAPI",
            "subsystem_code": "prov",
            "xroad_instance": "EE",
            "endpoint_list": [
                {"method": "GET", "path": "/pets"},
                {"method": "GET", "path": "/pets/*"},
                {"method": "POST", "path": "/pets"},
            ],
        },
        {
            "member_class": "GOV",
            "member_code": "1",
            "object_type": "SERVICE",
            "service_code": "api",
            "service_type": "REST",
            "subsystem_code": "prov",
            "xroad_instance": "EE",
            "endpoint_list": [{"method": "GET", "path": "/files/**"}],
        },
    ]


def _summary(doc: dict[str, Any]) -> list[tuple[str, list[str]]]:
    services = doc["service"]
    assert isinstance(services, list)
    return [
        (s["service_code"], [f"{e['method']} {e['path']}" for e in s["endpoint_list"]])
        for s in services
    ]


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        # a right on the base endpoint covers every endpoint of the service
        (CONSUMER, [("pets", ["GET /pets/*"]), ("api", ["GET /files/**"])]),
        (IN_LOCAL, [("pets", ["GET /pets"])]),  # local group, one endpoint
        (IN_GLOBAL, [("api", ["GET /files/**"])]),  # global group, one endpoint
        (CONSUMER_MEMBER, []),  # holds only a SOAP right
        (STRANGER, []),
    ],
)
def test_allowed_methods_follow_access_rights(
    serverconf: ServerConf,
    globalconf: GlobalConfSnapshot,
    client: ClientId,
    expected: list[tuple[str, list[str]]],
) -> None:
    assert _summary(_call(serverconf, globalconf, client, "allowedMethods")) == expected


def test_service_with_a_base_right_lists_every_endpoint(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    # CONSUMER holds the base endpoint of "api" (id 8): all its endpoints are listed.
    doc = _call(serverconf, globalconf, CONSUMER, "allowedMethods")
    api = [s for s in doc["service"] if s["service_code"] == "api"]
    assert api[0]["endpoint_list"] == [{"method": "GET", "path": "/files/**"}]


def test_get_openapi_serves_the_anonymised_description(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    request = _request(CONSUMER, GET_OPENAPI, "serviceCode=pets")
    response = handle_rest_meta(request, serverconf, globalconf)
    assert response.content_type == "application/x-yaml"
    assert b"internal.example" not in response.body
    doc = yaml.safe_load(response.body)
    assert doc["servers"] == [{"url": "/v1"}]
    assert doc["paths"] == yaml.safe_load(OPENAPI_YAML)["paths"]


def test_get_openapi_with_fetched_json(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    fetched = json.dumps(
        {"openapi": "3.0.1", "servers": [{"url": "https://is.example/api/v2"}], "paths": {}}
    ).encode()
    request = _request(CONSUMER, GET_OPENAPI, "servicecode=pets")
    response = handle_rest_meta(
        request,
        serverconf,
        globalconf,
        openapi=fetched,
        openapi_content_type="application/json; charset=UTF-8",
    )
    assert response.content_type == "application/json; charset=UTF-8"
    assert json.loads(response.body)["servers"] == [{"url": "/api/v2"}]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        (None, Code.INVALID_REQUEST),
        ("", Code.INVALID_REQUEST),
        ("serviceCode=", Code.INVALID_REQUEST),
        ("serviceCode=pets&serviceCode", Code.INVALID_REQUEST),  # the last one wins
        ("other=pets", Code.INVALID_REQUEST),
        ("serviceCode=nothing", Code.INTERNAL_ERROR),  # NIIS: "Service not found"
        ("serviceCode=api", Code.INTERNAL_ERROR),  # plain REST: no description to serve
        ("serviceCode=getRandom", Code.INTERNAL_ERROR),  # a WSDL service
    ],
)
def test_get_openapi_errors(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot, query: str | None, code: str
) -> None:
    with pytest.raises(XRoadError) as err:
        handle_rest_meta(_request(CONSUMER, GET_OPENAPI, query), serverconf, globalconf)
    assert err.value.code == code


def test_get_openapi_of_a_broken_description(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    request = _request(CONSUMER, GET_OPENAPI, "serviceCode=pets")
    for bad in (b"{", b"openapi: 2.0\n", b"- a list"):
        with pytest.raises(XRoadError) as err:
            handle_rest_meta(request, serverconf, globalconf, openapi=bad)
        assert err.value.code == Code.INTERNAL_ERROR


def test_service_code_query_rules() -> None:
    assert openapi_service_code("a=1;serviceCode=x%2By+z&b") == "x+y z"
    assert openapi_service_code("SERVICECODE=a&serviceCode=b") == "b"
    assert openapi_service_code("serviceCode=%zz") == "%zz"


def test_openapi_service_names_the_description_to_fetch(serverconf: ServerConf) -> None:
    entry = openapi_service(serverconf, PROVIDER, "serviceCode=pets")
    assert entry.description.url == "http://is/openapi.yaml"
    assert entry.service.ssl_authentication


def test_non_get_requests_are_not_metaservices(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    with pytest.raises(XRoadError) as err:
        handle_rest_meta(_request(CONSUMER, "listMethods", method="POST"), serverconf, globalconf)
    assert err.value.code == Code.UNKNOWN_SERVICE


def test_response_header_set(serverconf: ServerConf, globalconf: GlobalConfSnapshot) -> None:
    request = _request(
        CONSUMER,
        "listMethods",
        headers=(("Accept", "application/json"), ("User-Agent", "curl"), ("Content-Type", "x/y")),
    )
    meta = handle_rest_meta(request, serverconf, globalconf)
    response = rest_meta_response(request, b"\x01" * 64, meta)
    names = [n.lower() for n, _ in response.headers]
    assert names == [
        "accept",
        "x-road-id",
        "x-road-client",
        "x-road-service",
        "x-road-request-id",
        "x-road-request-hash",
        "content-type",
    ]
    assert dict(response.headers)["content-type"] == "application/json"
    assert (response.status, response.reason) == (200, "OK")
    # The header part round-trips as the consumer reads it.
    parsed = RestResponse.parse_header_part(response.header_part())
    assert parsed.client == CONSUMER
    assert parsed.request_hash == b"\x01" * 64
    assert parsed.service is not None
    assert parsed.service.service_code == "listMethods"


@settings(max_examples=200, deadline=None)
@given(query=st.text(max_size=60))
def test_get_openapi_query_fuzz(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot, query: str
) -> None:
    request = _request(CONSUMER, GET_OPENAPI)
    try:
        from dataclasses import replace

        handle_rest_meta(replace(request, query=query), serverconf, globalconf)
    except XRoadError as exc:
        assert exc.code in (Code.INVALID_REQUEST, Code.INTERNAL_ERROR)  # noqa: PT017


@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=200))
def test_get_openapi_content_fuzz(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot, data: bytes
) -> None:
    request = _request(CONSUMER, GET_OPENAPI, "serviceCode=pets")
    try:
        handle_rest_meta(request, serverconf, globalconf, openapi=data)
    except XRoadError as exc:
        assert exc.code == Code.INTERNAL_ERROR  # noqa: PT017
