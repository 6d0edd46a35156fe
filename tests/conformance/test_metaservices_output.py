"""MANIFEST "metaservice" rows through the metaservice handlers, and metaservice output
against the official ``service-metainfo.xsd``.

* ``wsdl.wsdl``: served by getWsdl, the attachment equals the input except soap:address
  (compared as XML ignoring whitespace, as NIIS's XMLUnit check does);
* ``wsdl_response.xml``: informational; our SOAP part carries the same headers and body as its
  SOAP part (apart from the requestHash the server proxy inserts later);
* ``petstore.yaml`` / ``petstore.json``: the getOpenAPI server URL rewriting expectations;
* listClients from the real V6 configuration and the method lists validate against the XSD.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lxml import etree

from crossroad.globalconf.directory import load_directory
from crossroad.globalconf.model import GlobalSettings, SharedParameters
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ID_NS, XROAD_NS, ClientId, ServiceId
from crossroad.metaservices import handle_rest_meta, handle_soap_meta, list_clients
from crossroad.serverconf.descriptions import ANONYMOUS_ENDPOINT
from crossroad.serverconf.model import (
    AccessRight,
    Client,
    ClientStatus,
    DescriptionType,
    Endpoint,
    ServerConf,
    Service,
    ServiceDescription,
)
from crossroad.wire.faults import SOAP_ENV_NS
from crossroad.wire.mime import ContentType, parse_multipart
from crossroad.wire.rest import RestRequest
from crossroad.wire.soap import SoapMessage

_SCHEMAS = Path("schemas/src/common/common-domain/src/main/resources")
ORIGINAL = "https://172.28.128.2:8084/mocktestServiceBinding"
PROVIDER = ClientId("EE", "BUSINESS", "producer")
CONSUMER = ClientId("EE", "BUSINESS", "consumer")
REST_PROVIDER = ClientId("EE", "BUSINESS", "producer", "rest")


class _Resolver(etree.Resolver):
    def __init__(self, vectors: Path) -> None:
        super().__init__()
        self.vectors = vectors

    def resolve(self, system_url, public_id, context):  # type: ignore[no-untyped-def,override]
        if system_url.endswith("identifiers.xsd"):
            return self.resolve_filename(  # type: ignore[attr-defined]
                str(self.vectors / _SCHEMAS / "identifiers.xsd"), context
            )
        return None


@pytest.fixture(scope="module")
def schema(vectors: Path) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_Resolver(vectors))
    return etree.XMLSchema(etree.parse(str(vectors / _SCHEMAS / "service-metainfo.xsd"), parser))


def _assert_valid(schema: etree.XMLSchema, element: etree._Element) -> None:
    doc = etree.fromstring(etree.tostring(element))
    assert schema.validate(doc), str(schema.error_log)


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


@pytest.fixture(scope="module")
def serverconf(vectors: Path) -> ServerConf:
    meta = vectors / "metaservice"
    wsdl = ServiceDescription(
        1,
        PROVIDER,
        DescriptionType.WSDL,
        "http://mock/wsdl.wsdl",
        # As the NIIS test's server configuration: the sample asks for getRandom without version.
        (Service("getRandom", id=1), Service("helloService", "v1", id=2)),
        disabled=False,
        content=(meta / "wsdl.wsdl").read_bytes(),
    )
    yaml_desc = ServiceDescription(
        2,
        REST_PROVIDER,
        DescriptionType.OPENAPI3,
        "http://mock/petstore.yaml",
        (Service("yaml", id=3),),
        disabled=False,
        content=(meta / "petstore.yaml").read_bytes(),
    )
    json_desc = ServiceDescription(
        3,
        REST_PROVIDER,
        DescriptionType.OPENAPI3,
        "http://mock/petstore.json",
        (Service("json", id=4),),
        disabled=False,
        content=(meta / "petstore.json").read_bytes(),
    )
    return ServerConf(
        PROVIDER,
        "producerServerCode",
        (
            Client(
                PROVIDER,
                ClientStatus.REGISTERED,
                descriptions=(wsdl,),
                endpoints=(Endpoint(1, "getRandom"),),
                access_rights=(AccessRight(CONSUMER, 1),),
            ),
            Client(REST_PROVIDER, ClientStatus.REGISTERED, descriptions=(yaml_desc, json_desc)),
        ),
    )


@pytest.fixture(scope="module")
def globalconf() -> GlobalConfSnapshot:
    return GlobalConfSnapshot.build(SharedParameters("EE", GlobalSettings(600)), None)


def _sample_soap_part(vectors: Path) -> bytes:
    raw = (vectors / "metaservice" / "wsdl_response.xml").read_bytes()
    boundary = raw.split(b"\n", 1)[0].strip()
    first = next(p for p in raw.split(boundary) if p.strip(b"-\r\n "))
    return first.split(b"\n\n", 1)[1].strip()


def _get_wsdl_request(vectors: Path) -> tuple[bytes, SoapMessage]:
    """The request the sample answers: its SOAP part with getWsdl (and no requestHash)."""
    sample = etree.fromstring(_sample_soap_part(vectors))
    header = sample.find(f"{{{SOAP_ENV_NS}}}Header")
    body = sample.find(f"{{{SOAP_ENV_NS}}}Body")
    assert header is not None
    assert body is not None
    for found in header.findall(f"{{{XROAD_NS}}}requestHash"):
        header.remove(found)
    body[0].tag = f"{{{XROAD_NS}}}getWsdl"
    raw = etree.tostring(sample, xml_declaration=True, encoding="UTF-8")
    return raw, SoapMessage.parse(raw)


def test_get_wsdl_serves_wsdl_wsdl_with_only_the_address_changed(
    vectors: Path, serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    original = (vectors / "metaservice" / "wsdl.wsdl").read_bytes()
    _, request = _get_wsdl_request(vectors)
    response = handle_soap_meta(request, serverconf, globalconf, boundary="xroadB")
    parts = parse_multipart(response.body, "xroadB")
    assert [h.content_type for h, _ in parts] == ["text/xml; charset=UTF-8", "text/xml"]
    served = parts[1][1]
    assert ORIGINAL.encode() not in served
    assert _canonical(served) == _canonical(
        original.replace(ORIGINAL.encode(), ANONYMOUS_ENDPOINT.encode())
    )
    assert ContentType.parse(response.content_type).param("type") == "text/xml"


def test_get_wsdl_soap_part_matches_the_informational_sample(
    vectors: Path, serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    _, request = _get_wsdl_request(vectors)
    ours = SoapMessage.parse(handle_soap_meta(request, serverconf, globalconf).soap)
    sample = SoapMessage.parse(_sample_soap_part(vectors))
    assert ours.header.client == sample.header.client == CONSUMER
    assert ours.service == sample.service == ServiceId(PROVIDER, "getWsdl")
    assert ours.query_id == sample.query_id
    assert ours.protocol_version == sample.protocol_version
    assert (ours.body_namespace, ours.body_name) == (sample.body_namespace, sample.body_name)
    assert ours.request_hash is None
    assert sample.request_hash is not None
    ours_body = etree.fromstring(ours.raw).find(f"{{{SOAP_ENV_NS}}}Body")
    sample_body = etree.fromstring(sample.raw).find(f"{{{SOAP_ENV_NS}}}Body")
    assert ours_body is not None
    assert sample_body is not None
    assert etree.tostring(ours_body[0], method="c14n") == etree.tostring(
        sample_body[0], method="c14n"
    )


def _rest(code: str, query: str | None = None) -> RestRequest:
    return RestRequest.from_http(
        "GET",
        f"/r1/EE/BUSINESS/producer/rest/{code}",
        query,
        [("X-Road-Client", "EE/BUSINESS/consumer")],
        request_id="r",
        instance="EE",
        query_uuid="u",
    )


def test_get_openapi_petstore_yaml(serverconf: ServerConf, globalconf: GlobalConfSnapshot) -> None:
    response = handle_rest_meta(_rest("getOpenAPI", "serviceCode=yaml"), serverconf, globalconf)
    text = response.body.decode()
    assert "http://petstore.swagger.io/v1/cats" not in text
    assert text.count("/v1/cats") == 1
    assert text.count("null") == 2
    for item in ('- "this"', '- "should"', '- "be"', '- "a string"', '- url: ""'):
        assert item in text


def test_get_openapi_petstore_json(serverconf: ServerConf, globalconf: GlobalConfSnapshot) -> None:
    response = handle_rest_meta(_rest("getOpenAPI", "serviceCode=json"), serverconf, globalconf)
    text = response.body.decode()
    assert "https://petstore.swagger.io/v2" not in text
    assert '"/v2"' in text
    assert "https://{username}.petstore.swagger.io:{port}/{basePath}" in text
    assert response.content_type == "application/json"


def test_rest_list_methods_counts_services(
    serverconf: ServerConf, globalconf: GlobalConfSnapshot
) -> None:
    doc = json.loads(handle_rest_meta(_rest("listMethods"), serverconf, globalconf).body)
    assert [s["service_code"] for s in doc["service"]] == ["yaml", "json"]
    assert {s["service_type"] for s in doc["service"]} == {"OPENAPI"}


@pytest.mark.parametrize("code", ["listMethods", "allowedMethods"])
def test_method_lists_validate_against_service_metainfo_xsd(
    vectors: Path,
    serverconf: ServerConf,
    globalconf: GlobalConfSnapshot,
    schema: etree.XMLSchema,
    code: str,
) -> None:
    raw, _request = _get_wsdl_request(vectors)
    raw = raw.replace(b"getWsdl", code.encode())
    response = handle_soap_meta(SoapMessage.parse(raw), serverconf, globalconf)
    body = etree.fromstring(response.soap).find(f"{{{SOAP_ENV_NS}}}Body")
    assert body is not None
    _assert_valid(schema, body[0])
    assert body[0].tag == f"{{{XROAD_NS}}}{code}Response"
    assert [ServiceId.from_xml(s).service_code for s in body[0]] == (
        ["getRandom", "helloService"] if code == "listMethods" else ["getRandom"]
    )


def test_list_clients_of_the_v6_configuration(vectors: Path, schema: etree.XMLSchema) -> None:
    snapshot = GlobalConfSnapshot.from_directory(
        load_directory(vectors / "globalconf/globalconf_good_v6")
    )
    response = list_clients(snapshot)
    root = etree.fromstring(response.body)
    _assert_valid(schema, root)
    ids = [ClientId.from_xml(m.find(f"{{{XROAD_NS}}}id")) for m in root]
    assert ids
    assert all(i.instance == "EE" for i in ids)
    assert [str(i) for i in ids] == [
        str(e)
        for m in snapshot.members("EE")
        for e in (
            m.client_id("EE"),
            *(m.client_id("EE").subsystem(s.subsystem_code) for s in m.subsystems),
        )
    ]
    first = root.find(f"{{{XROAD_NS}}}member/{{{XROAD_NS}}}id")
    assert first is not None
    assert first.get(f"{{{ID_NS}}}objectType") == "MEMBER"
    with_names = [m for m in root if m.find(f"{{{XROAD_NS}}}subsystemName") is not None]
    assert len(with_names) == 1  # the only subsystemName of the V6 EE parameters
    for instance in snapshot.instances():
        other = list_clients(snapshot, query=f"xRoadInstance={instance}", accept="application/json")
        members = json.loads(other.body)["member"]
        assert all(m["id"]["xroad_instance"] == instance for m in members)
