"""The signer's wire protocol and its parsers: round trips, and no crash on any input."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossroad.crypto.algorithms import SHA256, SHA512
from crossroad.crypto.xades import MessagePart, SignedMessage
from crossroad.errors import Code, XRoadError
from crossroad.signer import protocol
from crossroad.signer.keyconf import KeyConf, KeyConfStore, parse_member, parse_usage
from crossroad.signer.manager import Signer
from crossroad.signer.service import HANDLERS, signer_app
from crossroad.signer.tokens import SoftwareToken

from .conftest import PIN

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    ["member", "parts", "digest", "token", "pin", "key", "usage", "cert", "hashes", "server",
     "profile", "subject", "key_type", "active", "activate", "label"]
)  # fmt: skip
BODIES = st.dictionaries(FIELDS, JSON | st.text(max_size=40), max_size=6)


def test_parts_round_trip() -> None:
    data = b"<Envelope/>"
    parts = [
        MessagePart("/message.xml", SHA512, data=data),
        MessagePart("/attachment1", SHA512, digest_value=SHA512.digest(b"a")),
    ]
    wire = protocol.encode_parts(parts, SHA512)
    assert wire[0] == ["/message.xml", "SHA-512", protocol.b64(SHA512.digest(data))]
    back = protocol.decode_parts(json.loads(json.dumps(wire)))
    assert [(p.name, p.digest_with(SHA512)) for p in back] == [
        (p.name, p.digest_with(SHA512)) for p in parts
    ]
    as_objects = [{"name": n, "digest_alg": a, "digest": d} for n, a, d in wire]
    assert protocol.decode_parts(as_objects)[1].digest_value == SHA512.digest(b"a")
    with pytest.raises(XRoadError):  # the raw data is never sent, so it must be hashable
        protocol.encode_parts([MessagePart("/x", SHA256, digest_value=b"1" * 32)], SHA512)


def test_signed_round_trip_and_errors() -> None:
    for signed in (SignedMessage(b"<sig/>"), SignedMessage(b"<sig/>", b"<r/>", b"<c/>")):
        assert protocol.decode_signed(protocol.encode_signed(signed)) == signed
    err = XRoadError(Code.KEY_NOT_FOUND, "no such key")
    body = protocol.error_body(err)
    assert body == {"error": {"code": "signer.key_not_found", "message": "no such key"}}
    back = protocol.error_from_body(body, 404)
    assert (back.code, back.detail) == ("signer.key_not_found", "no such key")
    assert protocol.error_from_body("garbage", 502).code == "signer.internal_error"
    assert protocol.http_status(err) == 404
    assert protocol.http_status(XRoadError(Code.TOKEN_NOT_ACTIVE)) == 409
    assert protocol.http_status(XRoadError(Code.INTERNAL_ERROR)) == 500


@given(value=JSON)
@settings(max_examples=150, deadline=None)
def test_decode_parts_never_crashes(value: Any) -> None:
    try:
        protocol.decode_parts(value)
    except XRoadError as err:
        code = err.code
    else:
        return
    assert code == Code.INVALID_REQUEST


@given(data=st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()))
@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_keyconf_loader_never_crashes(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "keyconf.json").write_bytes(data)
    try:
        KeyConfStore(tmp_path).load()
    except XRoadError as err:
        code = err.code
    else:
        return
    assert code == Code.IO_ERROR


@given(text=st.text(max_size=40))
@settings(max_examples=100, deadline=None)
def test_identifier_and_usage_parsers(text: str) -> None:
    for parse in (parse_member, parse_usage):
        with contextlib.suppress(XRoadError):
            parse(text)


class _Rpc:
    """A signer (software token not logged in, no trust) behind its aiohttp app, in-process."""

    def __init__(self, state: Path) -> None:
        SoftwareToken(state / "softtoken").initialize(PIN, n=2**10)
        KeyConfStore(state).save(KeyConf())
        self.loop = asyncio.new_event_loop()
        self.signer = Signer(state)
        self.loop.run_until_complete(self.signer.start())

        async def start() -> TestClient[Any, Any]:
            client: TestClient[Any, Any] = TestClient(TestServer(signer_app(self.signer)))
            await client.start_server()
            return client

        self.client = self.loop.run_until_complete(start())

    def post(self, method: str, body: bytes) -> tuple[int, Any]:
        async def go() -> tuple[int, Any]:
            resp = await self.client.post(f"/{method}", data=body)
            return resp.status, await resp.json()

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.run_until_complete(self.signer.close())
        self.loop.close()


@pytest.fixture(scope="module")
def rpc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Rpc]:
    server = _Rpc(tmp_path_factory.mktemp("rpc"))
    yield server
    server.close()


@given(method=st.sampled_from(sorted(HANDLERS)), body=BODIES)
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_rpc_answers_any_body_with_a_code(rpc: _Rpc, method: str, body: dict[str, Any]) -> None:
    status, answer = rpc.post(method, json.dumps(body).encode())
    if status != 200:
        code = answer["error"]["code"]
        assert code.startswith("signer.")
        assert code != "signer.internal_error", answer


@given(raw=st.binary(max_size=100))
@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_rpc_refuses_non_json(rpc: _Rpc, raw: bytes) -> None:
    status, answer = rpc.post("sign", raw)
    assert status == 400
    assert answer["error"]["code"] == "signer.invalid_request"
