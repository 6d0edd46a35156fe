"""The core exchanges on every key store × database combination (issue 4).

Both security servers' signers keep their keys on the software token or on SoftHSM2 tokens
(PKCS#11; the authentication key stays on the software token, as in NIIS), and both server
configurations are in SQLite or in PostgreSQL.  One world per
combination, built once for this module (software × SQLite is the session's world); REST GET
and POST with a body, SOAP plain and with an SwA attachment, a request refused by access
rights, and the signatures of a response and its request as the message log receives them,
verified against the trust services.  CI skips none of it.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterator

import httpx
import pytest

from crossroad.crypto import xades
from crossroad.crypto.algorithms import SHA512
from crossroad.identifiers import ClientId
from crossroad.proxy.context import LoggedMessage
from crossroad.wire.faults import SoapFault
from crossroad.wire.soap import parse_soap
from crossroad.wire.swa import decode_package

from .conftest import postgres_databases, softhsm_tokens
from .world import (
    CLIENT,
    CONSUMER,
    PLAIN,
    PRODUCER,
    Pkcs11Tokens,
    World,
    rest_client,
    rest_path,
    running_world,
    soap_request,
    trust_policy,
)

pytestmark = pytest.mark.integration

COMBINATIONS = [
    ("software", "sqlite"),
    ("software", "postgresql"),
    ("softhsm", "sqlite"),
    ("softhsm", "postgresql"),
]
XML = "text/xml; charset=UTF-8"
REQUEST_HASH = re.compile(rb"\s*<xrd:requestHash [^>]*>[^<]*</xrd:requestHash>")


@pytest.fixture(scope="module", params=COMBINATIONS, ids=["-".join(c) for c in COMBINATIONS])
def mworld(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    token, database = request.param
    if (token, database) == ("software", "sqlite"):
        yield request.getfixturevalue("world")
        return
    root = tmp_path_factory.mktemp(f"{token}-{database}")
    with contextlib.ExitStack() as stack:  # left in reverse: world, databases, tokens
        hsm = None
        if token == "softhsm":
            made = stack.enter_context(softhsm_tokens(root / f"hsm-{database}", 2))
            hsm = Pkcs11Tokens(made.lib, (made.labels[0], made.labels[1]))
        url = stack.enter_context(postgres_databases()) if database == "postgresql" else None
        yield stack.enter_context(running_world(root, hsm=hsm, database_url=url))


def rest(
    world: World,
    method: str,
    path: str,
    client: ClientId = CLIENT,
    body: bytes | None = None,
    content_type: str | None = None,
) -> httpx.Response:
    headers = {"X-Road-Client": rest_client(client)}
    if content_type is not None:
        headers["Content-Type"] = content_type
    url = world.consumer.url + rest_path(path=path)
    return httpx.request(method, url, headers=headers, content=body, timeout=60)


def soap(world: World, body: bytes, content_type: str = XML) -> httpx.Response:
    return httpx.post(
        world.consumer.url, content=body, headers={"Content-Type": content_type}, timeout=60
    )


# --------------------------------------------------------------------------- the combination


def test_keys_and_configuration_are_where_the_combination_says(
    mworld: World, request: pytest.FixtureRequest
) -> None:
    token, database = request.node.callspec.params["mworld"]
    kind = "pkcs11" if token == "softhsm" else "software"
    assert (mworld.token, mworld.database) == (kind, database)
    for node in (mworld.consumer, mworld.provider):
        keys = node.signer.conf.keys
        assert node.signer.token(node.token_id).kind == kind
        assert {k.token_id for k in keys if k.usage == "sign"} == {node.token_id}
        # The authentication key stays on the software token (the TLS stack needs it).
        assert {k.token_id for k in keys if k.usage == "auth"} == {"0"}
        assert node.store.engine.dialect.name == database
    assert mworld.consumer.token_id != mworld.provider.token_id or kind == "software"


# --------------------------------------------------------------------------- REST


def test_rest_get(mworld: World) -> None:
    proxied = rest(mworld, "GET", "/pets")
    direct = httpx.get(mworld.rest_base + "/pets")
    assert proxied.status_code == direct.status_code == 200
    assert proxied.content == direct.content
    assert proxied.headers["x-pet-count"] == direct.headers["x-pet-count"]
    assert proxied.headers["x-road-service"] == "EE/BUSINESS/producer/rest/petstore"
    assert proxied.headers["x-road-request-hash"]


def test_rest_post_with_body(mworld: World) -> None:
    body = json.dumps({"name": "Felix", "tags": ["ä", "ö"]}).encode()
    proxied = rest(mworld, "POST", "/pets?q=a%20b", body=body, content_type="application/json")
    assert proxied.status_code == 201, proxied.text
    assert proxied.content == body
    assert proxied.headers["location"] == "/v1/pets/3"
    assert proxied.headers["x-query"] == "q=a%20b"


# --------------------------------------------------------------------------- SOAP


def test_soap_plain(mworld: World) -> None:
    request = soap_request(CLIENT, "echo")
    proxied = soap(mworld, request)
    direct = httpx.post(mworld.soap_url, content=request, headers={"Content-Type": XML})
    assert proxied.status_code == 200
    found = re.search(rb"<xrd:requestHash [^>]*>([^<]*)<", proxied.content)
    assert found is not None
    assert base64.b64decode(found.group(1)) == hashlib.sha512(request).digest()
    assert REQUEST_HASH.sub(b"", proxied.content) == direct.content


def test_soap_with_swa_attachment(mworld: World) -> None:
    boundary = "matrix-boundary-42"
    attachment = bytes(range(256)) * 1024 + b"\r\n--not-a-boundary\r\n"
    body = (
        f"--{boundary}\r\nContent-Type: {XML}\r\nContent-ID: <root@x>\r\n\r\n".encode()
        + soap_request(CLIENT, "echo")
        + f"\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\n".encode()
        + b"Content-ID: <att@x>\r\n\r\n"
        + attachment
        + f"\r\n--{boundary}--\r\n".encode()
    )
    content_type = f'multipart/related; type="text/xml"; start="<root@x>"; boundary={boundary}'
    proxied = soap(mworld, body, content_type)
    assert proxied.status_code == 200, proxied.text
    part, attachments = decode_package(proxied.content, proxied.headers["content-type"])
    assert b"<tns:attachments>1</tns:attachments>" in part.message.raw
    assert [(s.content_type, data) for s, data in attachments] == [
        ("application/octet-stream", attachment)
    ]


# --------------------------------------------------------------------------- access rights


def test_access_denied_reaches_no_provider(mworld: World) -> None:
    before = len(mworld.soap_calls)
    response = soap(mworld, soap_request(PLAIN, "echo"))
    fault = parse_soap(response.content, response.headers["content-type"])
    assert isinstance(fault, SoapFault), response.text
    assert fault.code == "server.serverproxy.access_denied"
    assert len(mworld.soap_calls) == before
    denied = rest(mworld, "GET", "/pets", client=PLAIN)
    assert denied.status_code == 500
    assert denied.headers["x-road-error"] == "server.serverproxy.access_denied"


# --------------------------------------------------------------------------- signatures


def _verify(world: World, logged: LoggedMessage, signer: ClientId) -> xades.SignatureInfo:
    digests: dict[str, bytes | None] = {"/message.xml": SHA512.digest(logged.message)}
    for i, digest in enumerate(logged.attachment_digests, 1):
        digests[f"/attachment{i}"] = digest
    return xades.verify_signature(
        logged.signature,
        signer=signer,
        trust=trust_policy(world.services),
        at=dt.datetime.now(dt.UTC),
        resolve={"/message.xml": logged.message}.get,
        hash_chain=logged.hash_chain,
        hash_chain_result=logged.hash_chain_result,
        part_digests=digests,
    )


def test_signed_response_and_request_verify(mworld: World) -> None:
    seen: list[LoggedMessage] = []
    consumer, provider = mworld.consumer, mworld.provider
    tokens = [n.signer.token(n.token_id) for n in (consumer, provider)]
    before = [t.sign_operations for t in tokens]
    for node in (consumer, provider):
        node.ctx.loggers.append(seen.append)
    try:
        body = b'{"name": "Signed"}'
        response = rest(mworld, "POST", "/pets", body=body, content_type="application/json")
    finally:
        for node in (consumer, provider):
            node.ctx.loggers.remove(seen.append)
    assert response.status_code == 201
    logged = {(m.side, m.direction): m for m in seen}
    answer = logged["client", "response"]  # as the consumer received and verified it
    assert answer.attachment_digests == (SHA512.digest(body),)
    info = _verify(mworld, answer, PRODUCER)
    assert info.signing_cert == provider.sign_certs[PRODUCER]
    asked = logged["server", "request"]  # as the provider received and verified it
    info = _verify(mworld, asked, CONSUMER)
    assert info.signing_cert == consumer.sign_certs[CONSUMER]
    # Both signatures were made by the private keys on this combination's tokens.
    assert all(t.sign_operations > b for t, b in zip(tokens, before, strict=True))
