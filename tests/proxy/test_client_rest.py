"""The client proxy's REST errors, end to end: X-Road-Error, status by the code's origin,
XML or JSON body by Accept (protocols.md §3.3), endpoint-level access rights."""

from __future__ import annotations

import httpx
import pytest
from lxml import etree

from .world import CLIENT, GLOBAL, LOCAL, PLAIN, STRANGER, World, rest_client, rest_path

pytestmark = pytest.mark.integration


def call(
    world: World, method: str, path: str, client: object = CLIENT, **headers: str
) -> httpx.Response:
    all_headers = dict(headers)
    if client is not None:
        all_headers["X-Road-Client"] = rest_client(client)  # type: ignore[arg-type]
    return httpx.request(method, world.consumer.url + path, headers=all_headers, timeout=60)


def error(response: httpx.Response, code: str, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["x-road-error"] == code
    assert response.json()["type"] == code


def test_missing_client_header(world: World) -> None:
    response = call(world, "GET", rest_path(), client=None)
    error(response, "server.clientproxy.invalid_client_identifier", 500)


def test_unsupported_protocol_version(world: World) -> None:
    path = rest_path().replace("/r1/", "/r2/")
    error(call(world, "GET", path), "server.clientproxy.invalid_protocol_version", 500)


def test_service_id_needs_a_subsystem(world: World) -> None:
    error(call(world, "GET", "/r1/EE/BUSINESS/producer"), "server.clientproxy.internal_error", 500)


def test_unknown_client_and_provider(world: World) -> None:
    error(
        call(world, "GET", rest_path(), client=STRANGER), "server.clientproxy.unknown_member", 500
    )
    path = "/r1/EE/GOV/stranger/sub/petstore/pets"
    error(call(world, "GET", path), "server.clientproxy.unknown_member", 500)


def test_unknown_service(world: World) -> None:
    error(call(world, "GET", rest_path("nosuch")), "server.serverproxy.unknown_service", 500)


def test_service_of_another_provider_subsystem(world: World) -> None:
    from .world import PRODUCER

    path = rest_path("getState", "", PRODUCER.subsystem("rest"))
    error(call(world, "GET", path), "server.serverproxy.unknown_service", 500)


def test_subject_without_rights(world: World) -> None:
    error(call(world, "GET", rest_path(), PLAIN), "server.serverproxy.access_denied", 500)


def test_endpoint_rights_of_a_global_group_member(world: World) -> None:
    assert call(world, "GET", rest_path(path="/pets/2"), GLOBAL).status_code == 200
    error(call(world, "GET", rest_path(), GLOBAL), "server.serverproxy.access_denied", 500)
    error(call(world, "POST", rest_path(), GLOBAL), "server.serverproxy.access_denied", 500)


def test_endpoint_rights_of_a_local_group_member(world: World) -> None:
    assert call(world, "GET", rest_path(), LOCAL).status_code == 200
    error(
        call(world, "GET", rest_path(path="/pets/1"), LOCAL),
        "server.serverproxy.access_denied",
        500,
    )


def test_path_traversal_is_refused(world: World) -> None:
    path = rest_path(path="/pets/%2E%2E/%2E%2E/admin")
    error(call(world, "GET", path, GLOBAL), "server.serverproxy.access_denied", 500)


def test_error_body_as_xml(world: World) -> None:
    response = call(world, "GET", rest_path(), PLAIN, Accept="text/xml")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/xml")
    root = etree.fromstring(response.content)
    assert root.findtext("type") == "server.serverproxy.access_denied"
    assert root.findtext("detail")
