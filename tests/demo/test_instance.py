"""``crossroad demo --check`` end to end (what CI runs), and the sample providers it serves."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from lxml import etree

from crossroad.demo.exchanges import soap_request
from crossroad.demo.instance import CLIENT, pick_addresses
from crossroad.demo.providers import openapi_document, soap_answer, wsdl_document
from crossroad.errors import XRoadError
from crossroad.serverconf.descriptions import parse_openapi, parse_wsdl

CROSSROAD = [sys.executable, "-m", "crossroad.cli.main"]


@pytest.mark.integration
def test_demo_check_end_to_end(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CROSSROAD, "demo", "--dir", str(tmp_path), "--check"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    result = json.loads(lines[-1])
    assert done.returncode == 0, f"{result}\n{done.stderr[-5000:]}"
    assert result["rest"] == result["soap"] == result["denied"] == result["evidence"] == "ok"
    assert result["up_seconds"] < 60  # the aim is 30 s; CI machines are slower than ours
    assert len(lines) == 1  # everything but the JSON line went to stderr
    assert "management requests authCertReg and clientReg are not built yet" in done.stderr
    assert "curl -H 'X-Road-Client: DEV/COM/1111/CLIENT'" in done.stderr
    # "evidence" is the REST exchange's, from both security servers' message logs
    for side in ("consumer", "provider"):
        assert f"evidence on the {side}'s server: 2 containers valid" in done.stderr
    # The state of the run is left for a look, and no process of it is left running.
    instance = tmp_path / "instance"
    assert (instance / "logs" / "provider.log").is_file()
    assert not list(instance.glob("*/run.json"))


def test_addresses() -> None:
    assert pick_addresses("127.0.0.2") == ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    first, *_ = pick_addresses(None)
    assert first.startswith("127.")
    assert first.endswith(".2")
    for bad in ("10.0.0.2", "127.0.0.1", "127.0.0.254", "localhost"):
        with pytest.raises(XRoadError):
            pick_addresses(bad)


def test_provider_descriptions_give_the_services() -> None:
    services = parse_wsdl(wsdl_document("http://127.0.0.1:1/soap"))
    assert [(s.service_code, s.version) for s in services] == [
        ("getRandom", "v1"),
        ("echo", "v1"),
        ("getSecret", "v1"),
    ]
    described = parse_openapi(
        json.dumps(openapi_document("http://127.0.0.1:1/api")).encode(),
        "http://127.0.0.1:1/openapi.json",
    )
    assert described.base_url == "http://127.0.0.1:1/api"
    assert ("GET", "/pets/*") in described.operations
    assert ("DELETE", "/pets/*") in described.operations


def test_soap_provider_answers_with_the_request_header() -> None:
    request = soap_request("echo", "<ns1:text>hello</ns1:text>", query_id="q-1")
    status, body = soap_answer(request)
    assert status == 200
    root = etree.fromstring(body)
    ns = {"s": "http://schemas.xmlsoap.org/soap/envelope/", "x": "http://x-road.eu/xsd/xroad.xsd"}
    assert root.findtext("s:Header/x:id", namespaces=ns) == "q-1"
    assert root.find("s:Header/x:client", ns) is not None
    assert b"echoResponse" in body
    assert b"hello" in body
    assert CLIENT.subsystem_code is not None
    assert CLIENT.subsystem_code.encode() in body


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"<x/>",
        b"not xml",
        b'<!DOCTYPE x [<!ENTITY e "boom">]><x>&e;</x>',
        soap_request("noSuchOperation"),
    ],
)
def test_soap_provider_refuses_what_it_cannot_answer(request_bytes: bytes) -> None:
    with pytest.raises((ValueError, LookupError, etree.XMLSyntaxError)):
        soap_answer(request_bytes)
