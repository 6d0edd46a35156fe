"""REST r1 requests, responses and their header parts (crossroad.wire.rest, §3, §4.5)."""

from __future__ import annotations

import base64
import hashlib

import pytest

from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId, ServiceId
from crossroad.wire.rest import (
    RestLimits,
    RestRequest,
    RestResponse,
    check_rest_response,
    decode_represented_party,
    encode_represented_party,
    is_rest_path,
    parse_header_part,
    parse_rest_path,
    provider_url,
    rest_request_hash,
    segment_decode,
)
from crossroad.wire.soap import RepresentedParty

PATH = "/r1/EE/GOV/70000001/sub/petstore/v2/pets/1124"
CLIENT = ("X-Road-Client", "EE/COM/12345678/client")


def request(headers: list[tuple[str, str]] | None = None, **kw: object) -> RestRequest:
    args: dict[str, object] = {
        "request_id": "6f0c",
        "instance": "EE",
        "query_uuid": "2b9e",
    }
    args.update(kw)
    return RestRequest.from_http(
        str(args.pop("method", "GET")),
        str(args.pop("path", PATH)),
        args.pop("query", "full=1"),  # type: ignore[arg-type]
        headers if headers is not None else [("Accept", "application/json"), CLIENT],
        **args,  # type: ignore[arg-type]
    )


def test_request_header_part_is_the_spec_example() -> None:
    r = request([("Accept", "application/json"), CLIENT, ("Host", "ss"), ("User-Agent", "curl")])
    assert r.header_part() == (
        b"GET\r\n/r1/EE/GOV/70000001/sub/petstore/v2/pets/1124?full=1\r\n"
        b"Accept:application/json\r\nX-Road-Client:EE/COM/12345678/client\r\n"
        b"x-road-request-id:6f0c\r\nx-road-id:EE-2b9e\r\n"
    )
    assert r.client == ClientId("EE", "COM", "12345678", "client")
    assert r.service == ServiceId(ClientId("EE", "GOV", "70000001", "sub"), "petstore")
    assert r.service_path == "/v2/pets/1124"
    assert (r.query_id, r.request_id) == ("EE-2b9e", "6f0c")
    assert r.filtered_header_part() == (
        b"GET\r\n/r1/EE/GOV/70000001/sub/petstore\r\nX-Road-Client:EE/COM/12345678/client\r\n"
        b"x-road-request-id:6f0c\r\nx-road-id:EE-2b9e\r\n"
    )
    assert r.digest() == hashlib.sha512(r.header_part()).digest()


def test_response_header_part_is_the_spec_example() -> None:
    r = request()
    request_digest = bytes(range(64))
    resp = RestResponse.build(
        status=200,
        reason="OK",
        headers=[
            ("Content-Type", "application/json"),
            ("Date", "Fri, 06 Feb 2026 10:00:00 GMT"),
            ("Connection", "close"),
            ("X-Road-Id", "forged"),
            ("x-road-request-hash", "forged"),
            ("X-Road-Client", "forged"),
            ("x-road-request-id", "forged"),
        ],
        request=r,
        request_hash=request_digest,
    )
    b64 = base64.b64encode(request_digest).decode()
    assert (
        resp.header_part()
        == (
            "200\r\nOK\r\nContent-Type:application/json\r\nDate:Fri, 06 Feb 2026 10:00:00 GMT\r\n"
            "x-road-id:EE-2b9e\r\nx-road-client:EE/COM/12345678/client\r\n"
            "x-road-service:EE/GOV/70000001/sub/petstore\r\nx-road-request-id:6f0c\r\n"
            f"x-road-request-hash:{b64}\r\n"
        ).encode()
    )
    parsed = RestResponse.parse_header_part(resp.header_part())
    assert parsed == resp
    assert parse_header_part(resp.header_part()) == resp
    assert parse_header_part(r.header_part()) == r
    assert not parsed.is_error
    assert RestResponse.parse_header_part(resp.header_part().replace(b"200", b"404", 1)).is_error
    assert parsed.filtered_header_part().startswith(b"200\r\nOK\r\nx-road-id:EE-2b9e\r\n")


def test_filtering_and_the_request_id() -> None:
    r = request(
        [
            ("X-Road-Client", "EE/A/1"),
            ("content-length", "3"),
            ("Transfer-Encoding", "chunked"),
            ("X-Road-Request-Id", "forged"),
            ("x-road-request-hash", "forged"),
            ("X-Road-Id", "mine"),
            ("Authorization", "Bearer x"),
            CLIENT,  # the last X-Road-Client wins
            ("X-Road-UserId", "EE1"),
            ("X-Road-Issue", "case-1"),
            ("X-Road-Security-Server", "EE/GOV/70000001/ss%201"),
            ("X-Road-Represented-Party", "COM/MEMBER3"),
        ],
        query=None,
    )
    assert [n for n, _ in r.headers] == [
        "X-Road-Client",
        "X-Road-Id",
        "Authorization",
        "X-Road-Client",
        "X-Road-UserId",
        "X-Road-Issue",
        "X-Road-Security-Server",
        "X-Road-Represented-Party",
        "x-road-request-id",
    ]
    assert r.client == ClientId("EE", "COM", "12345678", "client")
    assert r.query_id == "mine"
    assert (r.user_id, r.issue) == ("EE1", "case-1")
    assert r.security_server == SecurityServerId(ClientId("EE", "GOV", "70000001"), "ss 1")
    assert r.represented_party == RepresentedParty("COM", "MEMBER3")
    assert r.header_part().split(b"\r\n")[1] == PATH.encode()
    assert request(query="").header_part().split(b"\r\n")[1] == PATH.encode() + b"?"
    assert RestRequest.parse_header_part(r.header_part()) == r


def test_percent_encoded_identifiers_and_paths() -> None:
    # NIIS RestProxyTest.shouldAcceptPercentEncodedIdentifiers / shouldAcceptEmptyPath
    r = request(
        [("X-Road-Client", "EE/BUSINESS/consumer/sub%2Fsystem")],
        path="/r1/EE/BUSINESS/producer/s%2Fub/%C3%B6%C3%A4%C3%A5/path%3B/",
    )
    assert r.client.subsystem_code == "sub/system"
    assert r.service.client.subsystem_code == "s/ub"
    assert r.service.service_code == "öäå"
    assert r.service_path == "/path%3B/"
    assert parse_rest_path("/r1/EE/BUSINESS/producer/sub/service/").service_path == "/"
    assert parse_rest_path("/r1/EE/BUSINESS/producer/sub/service").service_path == ""
    assert segment_decode("a%2x".replace("x", "F")) == "a/"
    assert segment_decode("%FF") == "\ufffd"


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/r1/invalid", Code.INTERNAL_ERROR),
        ("/r1/EE/BUSINESS/producer/sub", Code.INTERNAL_ERROR),
        ("/r2/EE/BUSINESS/producer/sub/service", Code.INVALID_PROTOCOL_VERSION),
        ("/rx/EE/BUSINESS/producer/sub/service", Code.INVALID_PROTOCOL_VERSION),
        ("/r10/EE/BUSINESS/producer/sub/service", Code.INVALID_PROTOCOL_VERSION),
        ("/r1/EE/BUSINESS/producer/sub/s%2", Code.INTERNAL_ERROR),
        ("/r1/EE/BUSINESS/producer/sub/s%zz", Code.INTERNAL_ERROR),
        ("/r1/EE/BUSINESS/producer/s b/service", Code.INTERNAL_ERROR),
        ("/r1/EE/BUSINESS//sub/service", Code.INTERNAL_ERROR),
        ("/r1/EE/BUSINESS/%20/sub/service", Code.INTERNAL_ERROR),
    ],
)
def test_bad_paths(path: str, code: str) -> None:
    with pytest.raises(XRoadError) as err:
        parse_rest_path(path)
    assert err.value.code == code


@pytest.mark.parametrize(
    ("headers", "kw", "code"),
    [
        ([("Accept", "*/*")], {}, Code.INVALID_CLIENT_IDENTIFIER),
        ([("X-Road-Client", "EE/COM")], {}, Code.INVALID_CLIENT_IDENTIFIER),
        ([("X-Road-Client", "EE/COM/1/2/3")], {}, Code.INVALID_CLIENT_IDENTIFIER),
        ([("X-Road-Client", "EE//1")], {}, Code.INVALID_CLIENT_IDENTIFIER),
        ([("X-Road-Client", "EE/C/1/")], {}, Code.INVALID_CLIENT_IDENTIFIER),
        ([CLIENT, ("X-Road-Security-Server", "EE/C/1")], {}, Code.INVALID_SECURITY_SERVER),
        ([CLIENT, ("X-Road-Represented-Party", "a/b/c")], {}, Code.INTERNAL_ERROR),
        ([CLIENT], {"method": "get"}, Code.INVALID_HTTP_METHOD),
        ([CLIENT], {"method": "CONNECT"}, Code.INVALID_HTTP_METHOD),
    ],
)
def test_bad_requests(headers: list[tuple[str, str]], kw: dict[str, object], code: str) -> None:
    with pytest.raises(XRoadError) as err:
        request(headers, **kw)
    assert err.value.code == code


def test_too_many_headers() -> None:
    with pytest.raises(XRoadError) as err:
        request([CLIENT] * 5, limits=RestLimits(max_headers=4))
    assert err.value.code == Code.BAD_REQUEST


def test_represented_party_header() -> None:
    assert decode_represented_party("CODE") == RepresentedParty(None, "CODE")
    assert decode_represented_party("COM/") == RepresentedParty(None, "COM")
    assert decode_represented_party("/X") == RepresentedParty("", "X")
    assert encode_represented_party(RepresentedParty("C L", "x/y")) == "C%20L/x%2Fy"
    assert encode_represented_party(RepresentedParty(None, "x")) == "x"


@pytest.mark.parametrize(
    "part",
    [
        b"",
        b"GET",
        b"GET\r\nhttp://evil/r1/EE/C/M/S/svc\r\n",
        b"GET\r\n//evil/r1/EE/C/M/S/svc\r\n",
        b"GET\r\n/r1/EE/C/M/S/svc\r\nno-colon\r\n",
        b"GET\r\n/r1/EE/C/M/S/svc\r\nX-Road-Client:EE/C/M\r\n\r\n",
        b"GET\r\n/r1/EE/C/M/S/svc\r\nX-Road-Client:EE/C/M\r\nHost:x\r\n",
        b"GET\r\n/r1/EE/C/M/S/svc\r\n",
        b"FETCH\r\n/r1/EE/C/M/S/svc\r\nX-Road-Client:EE/C/M\r\n",
        b"GET\r\n/r2/EE/C/M/S/svc\r\nX-Road-Client:EE/C/M\r\n",
        b"GET\r\n/r1/EE/C/M/S/s vc\r\nX-Road-Client:EE/C/M\r\n",
    ],
)
def test_bad_request_header_parts(part: bytes) -> None:
    with pytest.raises(XRoadError) as err:
        RestRequest.parse_header_part(part)
    assert err.value.code == Code.INVALID_MESSAGE


def test_request_header_part_line_ends_and_values() -> None:
    part = b"POST\n/r1/EE/C/M/S/svc?a=b?c\rX-Road-Client:EE/C/M\r\nX-A: spaced :value\r\n"
    r = RestRequest.parse_header_part(part)
    assert (r.method, r.query) == ("POST", "a=b?c")
    assert r.headers[-1] == ("X-A", " spaced :value")
    with pytest.raises(XRoadError):
        RestRequest.parse_header_part(part, RestLimits(max_header_part_bytes=10))
    with pytest.raises(XRoadError):
        RestRequest.parse_header_part(part, RestLimits(max_headers=1))


@pytest.mark.parametrize(
    "part",
    [
        b"200\r\nOK\r\n",
        b"200\r\nOK\r\nx-road-id:1\r\n",
        b"200\r\nOK\r\nx-road-request-hash:AAAA\r\n",
        b"200\r\nOK\r\nx-road-id:\r\nx-road-request-hash:AAAA\r\n",
        b"200\r\nOK\r\nx-road-id:1\r\nx-road-request-hash:\r\n",
        b"200\r\nOK\r\nx-road-id:1\r\nx-road-request-hash:!!\r\n",
        b"2x0\r\nOK\r\nx-road-id:1\r\nx-road-request-hash:AAAA\r\n",
        b"200\r\nOK\r\nx-road-id:1\r\nx-road-request-hash:AAAA\r\nx-road-client:EE\r\n",
        b"200\r\nOK\r\nx-road-id:1\r\nx-road-request-hash:AAAA\r\nx-road-service:EE/C/M/S/s/v\r\n",
        b"200\r\nOK\r\nx-road-id:1\r\nx-road-request-hash:AAAA\r\nServer:x\r\n",
    ],
)
def test_bad_response_header_parts(part: bytes) -> None:
    with pytest.raises(XRoadError) as err:
        RestResponse.parse_header_part(part)
    assert err.value.code == Code.INVALID_MESSAGE


def test_request_hash_and_response_checks() -> None:
    r = request()
    head = hashlib.sha512(r.header_part()).digest()
    body = hashlib.sha512(b"body").digest()
    assert rest_request_hash(r.header_part(), None) == base64.b64encode(head).decode()
    with_body = hashlib.sha512(head + body).digest()
    assert rest_request_hash(r.header_part(), body) == base64.b64encode(with_body).decode()
    good = RestResponse.build(
        status=200, reason="OK", headers=[], request=r, request_hash=with_body
    )
    check_rest_response(r, good, body)
    with pytest.raises(XRoadError) as err:
        check_rest_response(r, good, None)
    assert err.value.code == Code.INCONSISTENT_RESPONSE
    other = request([("X-Road-Id", "other"), CLIENT])
    mismatch = RestResponse.build(
        status=200, reason="OK", headers=[], request=other, request_hash=head
    )
    with pytest.raises(XRoadError) as err:
        check_rest_response(r, mismatch, None)
    assert err.value.code == Code.INCONSISTENT_RESPONSE
    assert "message id" in err.value.detail


def test_helpers() -> None:
    assert is_rest_path("/r1/EE/x")
    assert not is_rest_path("/r2/EE/x")
    assert not is_rest_path("/")
    assert provider_url("http://h/base/", "/v1/x", "a=1") == "http://h/base/v1/x?a=1"
    assert provider_url("http://h/base", "/v1/x", None) == "http://h/base/v1/x"
    assert provider_url("http://h/base", "", "") == "http://h/base?"
