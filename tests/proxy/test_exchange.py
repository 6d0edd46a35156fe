"""End to end through both security servers over real sockets: REST (httpx and curl) and SOAP
(plain, SwA, MTOM, zeep driven by the sample WSDL), compared with direct calls."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess

import httpx
import pytest
from lxml import etree

from crossroad.wire.swa import decode_package

from . import providers
from .world import CLIENT, PRODUCER, World, rest_client, rest_path, soap_request

pytestmark = pytest.mark.integration

HOP = {"date", "server", "connection", "keep-alive", "transfer-encoding"}
REQUEST_HASH = re.compile(rb"\s*<xrd:requestHash [^>]*>[^<]*</xrd:requestHash>")


def _proxied_headers(response: httpx.Response) -> dict[str, str]:
    return {
        k.lower(): v
        for k, v in response.headers.items()
        if not k.lower().startswith("x-road-") and k.lower() not in HOP
    }


def _direct_headers(response: httpx.Response) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items() if k.lower() not in HOP}


def rest_call(world: World, method: str, path: str, **kwargs: object) -> httpx.Response:
    headers = {"X-Road-Client": rest_client(CLIENT), **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.request(
        method, world.consumer.url + rest_path(path=path), headers=headers, timeout=60, **kwargs
    )  # type: ignore[arg-type]


# --------------------------------------------------------------------------- REST


def test_rest_get_is_the_direct_answer_plus_xroad_headers(world: World) -> None:
    proxied = rest_call(world, "GET", "/pets")
    direct = httpx.get(world.rest_base + "/pets")
    assert proxied.status_code == direct.status_code == 200
    assert proxied.content == direct.content
    assert _proxied_headers(proxied) == _direct_headers(direct)
    assert proxied.headers["x-road-client"] == "EE/BUSINESS/consumer/client"
    assert proxied.headers["x-road-service"] == "EE/BUSINESS/producer/rest/petstore"
    assert proxied.headers["x-road-id"].startswith("EE-")
    assert proxied.headers["x-road-request-hash"]


def test_rest_post_with_body_query_and_status(world: World) -> None:
    body = json.dumps({"name": "Felix", "tags": ["ä", "ö"]}).encode()
    path = "/pets?full=1&q=a%20b"
    headers = {"Content-Type": "application/json", "X-Road-Id": "my-own-id"}
    proxied = rest_call(world, "POST", path, content=body, headers=headers)
    direct = httpx.post(world.rest_base + path, content=body, headers=headers)
    assert proxied.status_code == direct.status_code == 201
    assert proxied.content == direct.content == body
    assert proxied.headers["location"] == "/v1/pets/3"
    assert proxied.headers["x-query"] == "full=1&q=a%20b"  # the raw query travelled unchanged
    assert proxied.headers["x-road-id"] == "my-own-id"
    assert _proxied_headers(proxied) == _direct_headers(direct)


def test_rest_error_status_and_reason_of_the_service_are_relayed(world: World) -> None:
    proxied = rest_call(world, "GET", "/pets/99")
    assert proxied.status_code == 404
    assert proxied.reason_phrase == "No Pet"
    assert proxied.json() == {"error": "no such pet"}
    assert "x-road-error" not in proxied.headers


def test_rest_provider_sees_the_xroad_headers_and_passed_headers(world: World) -> None:
    proxied = rest_call(
        world, "GET", "/headers", headers={"Authorization": "Bearer t", "X-Custom": "v"}
    )
    seen = {k.lower(): v for k, v in proxied.json()}
    assert seen["x-road-client"] == "EE/BUSINESS/consumer/client"
    assert seen["authorization"] == "Bearer t"
    assert seen["x-custom"] == "v"
    assert seen["x-road-request-id"] == proxied.headers["x-road-request-id"]
    assert seen["x-road-id"] == proxied.headers["x-road-id"]


def test_rest_with_curl(world: World) -> None:
    url = world.consumer.url + rest_path(path="/pets/2")
    done = subprocess.run(
        ["curl", "-s", "-i", "-H", f"X-Road-Client: {rest_client(CLIENT)}", url],
        capture_output=True,
        check=True,
        timeout=60,
    )
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body) == {"id": 2, "name": "Garfield"}
    assert b"x-road-request-hash:" in head.lower()


def test_rest_large_bodies_stream_both_ways(world: World) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    up = rest_call(world, "POST", "/upload", content=payload)
    assert up.status_code == 200
    assert up.json() == {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)}
    size = 5 * 1024 * 1024 + 3
    down = rest_call(world, "GET", f"/big?size={size}")
    assert down.status_code == 200
    assert down.content == httpx.get(world.rest_base + f"/big?size={size}").content
    assert down.headers["content-length"] == str(size)


def test_rest_metaservices(world: World) -> None:
    provider = "/r1/EE/BUSINESS/producer/rest"
    headers = {"X-Road-Client": rest_client(CLIENT), "Accept": "application/json"}
    listed = httpx.get(world.consumer.url + provider + "/listMethods", headers=headers)
    assert listed.status_code == 200
    assert [s["service_code"] for s in listed.json()["service"]] == ["petstore"]
    spec = httpx.get(
        world.consumer.url + provider + "/getOpenAPI?serviceCode=petstore", headers=headers
    )
    assert spec.status_code == 200
    assert "/pets" in spec.json()["paths"]


def test_list_clients(world: World) -> None:
    as_json = httpx.get(world.consumer.url + "/listClients", headers={"Accept": "application/json"})
    codes = {m["id"]["member_code"] for m in as_json.json()["member"]}
    assert {"consumer", "producer", "other", "stranger"} <= codes
    as_xml = httpx.get(world.consumer.url + "/listClients")
    assert as_xml.headers["content-type"].startswith("text/xml")
    assert b"clientList" in as_xml.content


# --------------------------------------------------------------------------- SOAP


def soap_call(world: World, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(
        world.consumer.url,
        content=body,
        headers={"Content-Type": content_type, **headers},
        timeout=60,
    )


def test_soap_plain_is_the_direct_answer_plus_request_hash(world: World) -> None:
    request = soap_request(CLIENT, "echo")
    proxied = soap_call(world, request, "text/xml; charset=UTF-8", SOAPAction='"urn:echo"')
    direct = httpx.post(
        world.soap_url, content=request, headers={"Content-Type": "text/xml; charset=UTF-8"}
    )
    assert proxied.status_code == 200
    assert proxied.headers["content-type"] == "text/xml; charset=UTF-8"
    expected = base64_sha512(request)
    found = re.search(rb'<xrd:requestHash algorithmId="([^"]+)"[^>]*>([^<]*)<', proxied.content)
    assert found is not None
    assert found.group(1) == b"http://www.w3.org/2001/04/xmlenc#sha512"
    assert found.group(2) == expected.encode()
    assert REQUEST_HASH.sub(b"", proxied.content) == direct.content


def base64_sha512(data: bytes) -> str:
    import base64

    return base64.b64encode(hashlib.sha512(data).digest()).decode()


BOUNDARY = "MIME_boundary_test_123"
ATTACHMENTS = [
    ("application/octet-stream", b"binary\x00\x01\x02" * 5000, [("Content-ID", "<att1@x>")]),
    (
        "text/plain; charset=UTF-8",
        "\ufeffBOM inside stays".encode(),
        [("Content-ID", "<att2@x>"), ("Content-Transfer-Encoding", "8bit")],
    ),
    ("application/pdf", os.urandom(300_000), [("Content-ID", "<big@x>")]),
]


def multipart(soap: bytes, soap_type: str, extra: list[tuple[str, str]]) -> bytes:
    out = bytearray()
    parts = [(soap_type, soap, extra), *ATTACHMENTS]
    for content_type, data, headers in parts:
        out += f"--{BOUNDARY}\r\nContent-Type: {content_type}\r\n".encode()
        for name, value in headers:
            out += f"{name}: {value}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    out += f"--{BOUNDARY}--\r\n".encode()
    return bytes(out)


@pytest.mark.parametrize(
    ("content_type", "soap_type"),
    [
        (
            f'multipart/related; type="text/xml"; start="<root@x>"; boundary={BOUNDARY}',
            "text/xml; charset=UTF-8",
        ),
        (
            'multipart/related; type="application/xop+xml"; start-info="text/xml";'
            f' start="<root@x>"; boundary="{BOUNDARY}"',
            'application/xop+xml; charset=UTF-8; type="text/xml"',
        ),
    ],
    ids=["swa", "mtom"],
)
def test_soap_attachments_arrive_intact(world: World, content_type: str, soap_type: str) -> None:
    soap = soap_request(CLIENT, "echo")
    body = multipart(soap, soap_type, [("Content-ID", "<root@x>")])
    proxied = soap_call(world, body, content_type)
    assert proxied.status_code == 200, proxied.text
    assert "provider-boundary-0123456789" in proxied.headers["content-type"]
    part, attachments = decode_package(proxied.content, proxied.headers["content-type"])
    assert part.content_type == soap_type
    assert b"<tns:attachments>3</tns:attachments>" in part.message.raw
    assert [(s.content_type, data) for s, data in attachments] == [
        (t, d) for t, d, _ in ATTACHMENTS
    ]
    assert [[(h.name, h.value) for h in s.headers] for s, _ in attachments] == [
        h for _, _, h in ATTACHMENTS
    ]


def test_soap_with_zeep(world: World) -> None:
    zeep = pytest.importorskip("zeep")
    from zeep.transports import Transport

    wsdl_file = world.root / "producer.wsdl"
    wsdl_file.write_bytes(world.wsdl)
    client = zeep.Client(str(wsdl_file), transport=Transport(timeout=60))
    service = client.create_service(
        f"{{{providers.TNS}}}producerBinding", world.consumer.url + "/cgi-bin/consumer_proxy"
    )
    headers = etree.fromstring(soap_request(CLIENT, "echo"))[0]
    result = service.echo(text="hello from zeep", _soapheaders=list(headers))
    assert result.text == "hello from zeep"
    assert result.attachments == 0


def test_soap_metaservice_list_methods(world: World) -> None:
    body = soap_request(CLIENT, "listMethods", body="<xrd:listMethods/>")
    proxied = soap_call(world, body, "text/xml; charset=UTF-8")
    assert proxied.status_code == 200
    codes = re.findall(rb"<[^>]*serviceCode>([^<]+)<", proxied.content.split(b"Body")[1])
    assert set(codes) == {c.encode() for c in providers.OPERATIONS}


def test_soap_member_to_member(world: World) -> None:
    from .world import CONSUMER

    proxied = soap_call(world, soap_request(CONSUMER, "getState"), "text/xml")
    assert proxied.status_code == 200
    assert b">ok</tns:getStateResponse>" in proxied.content
    assert PRODUCER.member_code.encode() in proxied.content


def test_message_log_hook_sees_every_signed_message(world: World) -> None:
    from crossroad.proxy.context import LoggedMessage

    seen: list[LoggedMessage] = []
    for node in (world.consumer, world.provider):
        node.ctx.loggers.append(seen.append)
    try:
        assert rest_call(world, "GET", "/pets").status_code == 200
    finally:
        for node in (world.consumer, world.provider):
            node.ctx.loggers.remove(seen.append)
    assert sorted((m.side, m.direction) for m in seen) == [
        ("client", "request"),
        ("client", "response"),
        ("server", "request"),
        ("server", "response"),
    ]
    assert len({m.request_id for m in seen}) == 1
    assert all(m.rest and m.signature for m in seen)
