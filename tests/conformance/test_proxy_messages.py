"""NIIS ``messages/soap`` rows (MANIFEST.md) end to end through both security servers.

The parse-level outcome of every row is in ``test_messages.py``; here the rows are sent as
the NIIS proxy test suite sends them: requests of an information system to the client proxy
(``Client.*`` faults), answers of a provider information system (``Server.ServerProxy.
service_failed.*`` faults, or a verified response), transport messages straight to the server
proxy, and the integration-level rows that need configurations (``missing-org``,
``notAllowed``, ``xml.query``).  The world (tests/proxy/world.py) registers the vectors'
identifiers: EE/BUSINESS/consumer on ss1, EE/BUSINESS/producer on ss2.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from crossroad.errors import normalize_code
from crossroad.proxy import tls
from crossroad.wire.faults import SoapFault
from crossroad.wire.soap import parse_soap
from crossroad.wire.swa import decode_package

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from proxy.world import ADDRESS2, CONSUMER, PRODUCER, World, running_world

pytestmark = pytest.mark.integration

JETTY = "jetty771207119h3h10dty"
XML = "text/xml; charset=UTF-8"
RELATED = f"multipart/related; charset=UTF-8; boundary={JETTY}"
RELATED_BARE = f"multipart/related; boundary={JETTY}"
MTOM = (
    'Multipart/Related; start-info="application/soap+xml"; type="application/xop+xml"; '
    f'boundary="{JETTY}"'
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, vectors: Path) -> Iterator[World]:
    getstate = (vectors / "messages/soap/getstate.query").read_bytes()
    with running_world(tmp_path_factory.mktemp("vectors-world"), getstate) as built:
        yield built


def read(vectors: Path, name: str) -> bytes:
    return (vectors / "messages/soap" / name).read_bytes()


def send(world: World, body: bytes, content_type: str) -> httpx.Response:
    return httpx.post(
        world.consumer.url, content=body, headers={"Content-Type": content_type}, timeout=60
    )


def fault(response: httpx.Response) -> SoapFault:
    assert response.status_code == 200
    parsed = parse_soap(response.content, response.headers["content-type"])
    assert isinstance(parsed, SoapFault), response.text[:500]
    return parsed


# NIIS testsuite: requests of an information system the client proxy refuses.
CLIENT_ROWS = {
    "no-header.query": (XML, "Client.MissingHeader"),
    "missing-body.query": (XML, "Client.MissingBody"),
    "faulty-header.query": (XML, "Client.MissingHeaderField"),
    "malformed-body1.query": (XML, "Client.InvalidBody"),
    "malformed-body3.query": (XML, "Client.InconsistentHeaders"),
    "missingobjecttype.query": (XML, "Client.InvalidXml"),
    "empty.query": (XML, "Client.InvalidSoap"),
    "wrong-protocolVersion.query": (XML, "Client.InvalidProtocolVersion"),
    "malformed-protocolVersion.query": (XML, "Client.InvalidProtocolVersion"),
    "missing-protocolVersion.query": (XML, "Client.MissingHeaderField"),
    "attachm-error.query": (RELATED_BARE, "Client.InvalidContentType"),
    "attachm-faulty-soap.query": (RELATED_BARE, "Client.MissingHeaderField"),
    "attachm-no-soap.query": (RELATED_BARE, "Client.InvalidContentType"),
}


@pytest.mark.parametrize("name", sorted(CLIENT_ROWS))
def test_client_proxy_refuses(world: World, vectors: Path, name: str) -> None:
    content_type, code = CLIENT_ROWS[name]
    assert fault(send(world, read(vectors, name), content_type)).code == normalize_code(code)


def test_empty_multipart_request(world: World, vectors: Path) -> None:
    response = send(world, read(vectors, "empty.query"), RELATED)
    assert fault(response).code == "client.missing_soap"


# Pairs the provider information system answers; the client gets the verified answer.
PAIRS = {
    "getstate.query": (XML, "getstate.answer", XML),
    "getstate-defaultnamespace.query": (XML, "getstate.answer", XML),
    "simple.query": (XML, "simple.answer", XML),
    "simple-representedparty.query": (XML, None, XML),
    "missing-userId.query": (XML, "missing-userId.answer", XML),
    "cdata.query": (XML, "cdata.answer", XML),
    "xmlencoded.query": (XML, "xmlencoded.answer", XML),
    "nowhitespace.query": (XML, "nowhitespace.answer", XML),
    "split-header.query": (XML, "split-header.answer", XML),
    "attachm.query": (RELATED, "attachm.answer", XML),
    "attachm2.query": (RELATED_BARE, "attachm2.answer", RELATED),
    "attachments.query": (RELATED, "attachments.answer", RELATED),
    "mimesoap.query": (RELATED, "mimesoap.answer", RELATED),
}


@pytest.mark.parametrize("name", sorted(PAIRS))
def test_valid_exchange(world: World, vectors: Path, name: str) -> None:
    content_type, answer, answer_type = PAIRS[name]
    if answer is not None:
        world.soap_canned.append((answer_type, read(vectors, answer)))
    response = send(world, read(vectors, name), content_type)
    world.soap_canned.clear()
    assert response.status_code == 200
    part, attachments = decode_package(response.content, response.headers["content-type"])
    assert not isinstance(part.message, SoapFault), response.text[:400]
    assert part.message.request_hash is not None
    if answer is not None and answer_type != XML:
        _, expected = decode_package(read(vectors, answer), answer_type)
        assert [data for _, data in attachments] == [data for _, data in expected]


# These answers carry another ``id`` than their queries (the NIIS suite does not compare
# them): our client proxy's consistency check must refuse them.
MISMATCHED = {
    "attachm2-utf8bom-inside.query": (RELATED_BARE, "attachm2-utf8bom-inside.answer", RELATED),
    "attachm-mtom.query": (MTOM, "attachm-mtom.answer", MTOM + ";charset=UTF-8"),
}


@pytest.mark.parametrize("name", sorted(MISMATCHED))
def test_answer_with_another_id(world: World, vectors: Path, name: str) -> None:
    content_type, answer, answer_type = MISMATCHED[name]
    world.soap_canned.append((answer_type, read(vectors, answer)))
    code = fault(send(world, read(vectors, name), content_type)).code
    assert code == "server.clientproxy.service_failed.inconsistent_response"


def test_simple_comment_answer(world: World, vectors: Path) -> None:
    world.soap_canned.append((XML, read(vectors, "simple-comment.answer")))
    response = send(world, read(vectors, "simple.query"), XML)
    assert b"<!--" in response.content
    assert b"requestHash" in response.content


def test_request_hash_of_the_service_is_replaced(world: World, vectors: Path) -> None:
    world.soap_canned.append((XML, read(vectors, "requesthash.answer")))
    response = send(world, read(vectors, "getstate.query"), XML)
    assert response.status_code == 200
    assert response.content.count(b"requestHash>") == 1  # one element: ours
    assert not isinstance(parse_soap(response.content, XML), SoapFault)


def test_non_utf8_answer(world: World, vectors: Path) -> None:
    world.soap_canned.append(
        ("text/xml; charset=ISO-8859-1", read(vectors, "getstate-iso88591.answer"))
    )
    response = send(world, read(vectors, "getstate.query"), XML)
    assert response.status_code == 200
    assert "ISO-8859-1" in response.headers["content-type"]
    assert not isinstance(parse_soap(response.content, response.headers["content-type"]), SoapFault)


# Answers of the provider information system the server proxy refuses.
SERVICE_ROWS = {
    "no-header.query": (XML, "Server.ServerProxy.ServiceFailed.MissingHeader"),
    "missing-body.query": (XML, "Server.ServerProxy.ServiceFailed.MissingBody"),
    "faulty-header.query": (XML, "Server.ServerProxy.ServiceFailed.MissingHeaderField"),
    "attachm-error.query": (RELATED_BARE, "Server.ServerProxy.ServiceFailed.InvalidContentType"),
    "attachm-faulty-soap.query": (
        RELATED_BARE,
        "Server.ServerProxy.ServiceFailed.MissingHeaderField",
    ),
    "attachm-no-soap.query": (RELATED_BARE, "Server.ServerProxy.ServiceFailed.InvalidContentType"),
    "faulty-multipart.query": (
        f"multipart/related; boundary={JETTY}; charset=utf-8",
        "Server.ServerProxy.ServiceFailed.InvalidMessage",
    ),
}


@pytest.mark.parametrize("name", sorted(SERVICE_ROWS))
def test_service_answer_refused(world: World, vectors: Path, name: str) -> None:
    content_type, code = SERVICE_ROWS[name]
    world.soap_canned.append((content_type, read(vectors, name)))
    response = send(world, read(vectors, "getstate.query"), XML)
    world.soap_canned.clear()
    assert fault(response).code == normalize_code(code)


def test_empty_service_answer_is_a_fault(world: World, vectors: Path) -> None:
    world.soap_canned.append((XML, read(vectors, "empty.query")))
    code = fault(send(world, read(vectors, "getstate.query"), XML)).code or ""
    assert code.startswith("server.serverproxy.service_failed."), code


@pytest.mark.parametrize(
    ("query", "query_type", "answer", "answer_type", "code"),
    [
        ("getstate.query", XML, "faulty-fault.answer", XML, "soap:Server"),
        ("soapfault-mtom.query", MTOM, "soapfault-mtom.answer", MTOM + ";charset=UTF-8", None),
    ],
    ids=["faulty-fault", "soapfault-mtom"],
)
def test_service_fault_passes_through(
    world: World,
    vectors: Path,
    query: str,
    query_type: str,
    answer: str,
    answer_type: str,
    code: str | None,
) -> None:
    world.soap_canned.append((answer_type, read(vectors, answer)))
    got = fault(send(world, read(vectors, query), query_type))
    if code is None:
        sent, _ = decode_package(read(vectors, answer), answer_type)
        assert isinstance(sent.message, SoapFault)
        code = sent.message.code
    assert got.code == code


# Integration-level rows.


def test_missing_org(world: World, vectors: Path) -> None:
    code = fault(send(world, read(vectors, "missing-org.query"), XML)).code
    assert code == normalize_code("Server.ClientProxy.UnknownMember")


def test_not_allowed(world: World, vectors: Path) -> None:
    store = world.provider.store
    store.remove_access_rights(PRODUCER, "test", [CONSUMER])
    denied = store.snapshot()
    store.add_access_rights(PRODUCER, "test", [CONSUMER])
    with world.swapped(world.provider, serverconf=denied):
        code = fault(send(world, read(vectors, "notAllowed.query"), XML)).code
    assert code == normalize_code("Server.ServerProxy.AccessDenied")


def test_server_client_inconsistency(world: World, vectors: Path) -> None:
    code = fault(send(world, read(vectors, "xml.query"), XML)).code
    assert code == "server.clientproxy.service_failed.inconsistent_response"


# Transport messages straight to the server proxy (the NIIS suite runs these with TLS off, so
# no OCSP parts are expected; the TLS connection itself is still mutual).


def _direct(world: World, body: bytes, content_type: str) -> httpx.Response:
    material = world.run(world.consumer.ctx.auth_material())
    ctx = tls.client_context(material.chain, material.key_pem, session_seconds=0)
    provider = world.provider.ctx
    old = provider.settings
    import dataclasses

    provider.settings = dataclasses.replace(old, ssl_enabled=False)
    try:
        with httpx.Client(verify=ctx, timeout=60) as http:
            return http.post(
                f"https://{ADDRESS2}:{world.server_port}/",
                content=body,
                headers={"Content-Type": content_type, "x-hash-algorithm": "SHA-512"},
            )
    finally:
        provider.settings = old


def test_no_soap_to_server_proxy(world: World, vectors: Path) -> None:
    content_type = "multipart/mixed; charset=UTF-8; boundary=jetty771207119h3h10dty"
    got = fault(_direct(world, read(vectors, "no-soap.query"), content_type))
    assert got.code == normalize_code("Server.ServerProxy.ServiceFailed.InvalidSoap")


def test_no_signature_to_server_proxy(world: World, vectors: Path) -> None:
    content_type = "multipart/mixed; boundary=jetty42534330h7vzfqv2;charset=ISO-8859-1"
    got = fault(_direct(world, read(vectors, "no-signature.query"), content_type))
    assert got.code == normalize_code("Server.ServerProxy.MissingSignature")
