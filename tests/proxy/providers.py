"""Sample provider information systems for the exchange tests: a REST service with an OpenAPI
description and a SOAP service with a WSDL (aiohttp, on 127.0.0.1).

The SOAP service echoes the request's X-Road header fields in its response, as PR-MESS §2.2
requires, and answers SwA/MTOM requests with the same attachments; a few service codes
misbehave on purpose (a changed ``id``, a fault, an empty answer).
"""

from __future__ import annotations

import copy
import hashlib
import json

from aiohttp import web
from lxml import etree

from crossroad.wire.mime import MULTIPART_RELATED, ContentType, MultipartWriter
from crossroad.wire.swa import decode_package

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
XROAD = "http://x-road.eu/xsd/xroad.xsd"
TNS = "http://test.x-road.example/producer"

WSDL_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema"
    xmlns:xrd="http://x-road.eu/xsd/xroad.xsd"
    xmlns:tns="{tns}" name="producer" targetNamespace="{tns}">
  <wsdl:types>
    <xsd:schema elementFormDefault="qualified" targetNamespace="{tns}">
      <xsd:element name="echo"><xsd:complexType><xsd:sequence>
        <xsd:element name="text" type="xsd:string"/>
      </xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="echoResponse"><xsd:complexType><xsd:sequence>
        <xsd:element name="text" type="xsd:string"/>
        <xsd:element name="attachments" type="xsd:int"/>
      </xsd:sequence></xsd:complexType></xsd:element>
      <xsd:element name="getState" type="xsd:string"/>
      <xsd:element name="getStateResponse" type="xsd:string"/>
      <xsd:element name="test" type="xsd:string"/>
      <xsd:element name="testResponse" type="xsd:string"/>
      <xsd:element name="changeId" type="xsd:string"/>
      <xsd:element name="changeIdResponse" type="xsd:string"/>
      <xsd:element name="fail" type="xsd:string"/>
      <xsd:element name="testQuery" type="xsd:string"/>
      <xsd:element name="testQueryResponse" type="xsd:string"/>
      <xsd:element name="generateMtom" type="xsd:string"/>
      <xsd:element name="generateMtomResponse" type="xsd:string"/>
      <xsd:element name="failResponse" type="xsd:string"/>
    </xsd:schema>
  </wsdl:types>
  {messages}
  <wsdl:portType name="producerPortType">{port_ops}</wsdl:portType>
  <wsdl:binding name="producerBinding" type="tns:producerPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    {binding_ops}
  </wsdl:binding>
  <wsdl:service name="producerService">
    <wsdl:port name="producerPort" binding="tns:producerBinding">
      <soap:address location="{location}"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
"""

OPERATIONS = ("echo", "getState", "test", "changeId", "fail", "testQuery", "generateMtom")


def wsdl(location: str) -> bytes:
    messages = "".join(
        f'<wsdl:message name="{op}"><wsdl:part name="body" element="tns:{op}"/></wsdl:message>'
        f'<wsdl:message name="{op}Response"><wsdl:part name="body" element="tns:{op}Response"/>'
        "</wsdl:message>"
        for op in OPERATIONS
    )
    port_ops = "".join(
        f'<wsdl:operation name="{op}"><wsdl:input message="tns:{op}"/>'
        f'<wsdl:output message="tns:{op}Response"/></wsdl:operation>'
        for op in OPERATIONS
    )
    binding_ops = "".join(
        f'<wsdl:operation name="{op}"><soap:operation soapAction="{TNS}/{op}"/>'
        '<wsdl:input><soap:body use="literal"/></wsdl:input>'
        '<wsdl:output><soap:body use="literal"/></wsdl:output></wsdl:operation>'
        for op in OPERATIONS
    )
    return WSDL_TEMPLATE.format(
        tns=TNS,
        messages=messages,
        port_ops=port_ops,
        binding_ops=binding_ops,
        location=location,
    ).encode()


def openapi(base_url: str) -> bytes:
    doc = {
        "openapi": "3.0.0",
        "info": {"title": "Pets", "version": "1"},
        "servers": [{"url": base_url}],
        "paths": {
            "/pets": {
                "get": {"responses": {"200": {"description": "all pets"}}},
                "post": {"responses": {"201": {"description": "created"}}},
            },
            "/pets/{id}": {"get": {"responses": {"200": {"description": "one pet"}}}},
            "/big": {"get": {"responses": {"200": {"description": "bytes"}}}},
            "/upload": {"post": {"responses": {"200": {"description": "digest"}}}},
            "/headers": {"get": {"responses": {"200": {"description": "echo"}}}},
        },
    }
    return json.dumps(doc, indent=2).encode()


# --------------------------------------------------------------------------- REST

PETS = [{"id": 1, "name": "Tom"}, {"id": 2, "name": "Garfield"}]


def rest_app() -> web.Application:
    async def pets(request: web.Request) -> web.Response:
        return web.json_response(PETS, headers={"X-Pet-Count": str(len(PETS))})

    async def pet(request: web.Request) -> web.Response:
        pet_id = int(request.match_info["id"])
        found = next((p for p in PETS if p["id"] == pet_id), None)
        if found is None:
            return web.json_response({"error": "no such pet"}, status=404, reason="No Pet")
        return web.json_response(found)

    async def add_pet(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(
            status=201,
            body=body,
            content_type=request.content_type,
            headers={"Location": "/v1/pets/3", "X-Query": request.rel_url.raw_query_string},
        )

    async def big(request: web.Request) -> web.StreamResponse:
        size = int(request.query.get("size", "1024"))
        out = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        out.content_length = size
        await out.prepare(request)
        block = bytes(range(256)) * 256
        sent = 0
        while sent < size:
            piece = block[: min(len(block), size - sent)]
            await out.write(piece)
            sent += len(piece)
        await out.write_eof()
        return out

    async def upload(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        size = 0
        async for chunk in request.content.iter_chunked(64 * 1024):
            digest.update(chunk)
            size += len(chunk)
        return web.json_response({"sha256": digest.hexdigest(), "size": size})

    async def headers(request: web.Request) -> web.Response:
        return web.json_response([[k, v] for k, v in request.headers.items()])

    app = web.Application(client_max_size=1024**3)
    app.router.add_get("/v1/pets", pets)
    app.router.add_post("/v1/pets", add_pet)
    app.router.add_get("/v1/pets/{id}", pet)
    app.router.add_get("/v1/big", big)
    app.router.add_post("/v1/upload", upload)
    app.router.add_get("/v1/headers", headers)
    return app


# --------------------------------------------------------------------------- SOAP


def _response_envelope(request_xml: bytes, change_id: bool = False) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    request = etree.fromstring(request_xml, parser)
    header = request.find(f"{{{SOAP_ENV}}}Header")
    body = request.find(f"{{{SOAP_ENV}}}Body")
    assert header is not None
    assert body is not None
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"SOAP-ENV": SOAP_ENV})
    out_header = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
    for child in header:
        copied = copy.deepcopy(child)
        if change_id and copied.tag == f"{{{XROAD}}}id":
            copied.text = (copied.text or "") + "-changed"
        out_header.append(copied)
    etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    return envelope


def _service_code(request_xml: bytes) -> str:
    root = etree.fromstring(request_xml, etree.XMLParser(resolve_entities=False))
    code = root.find(f".//{{{XROAD}}}service/{{http://x-road.eu/xsd/identifiers}}serviceCode")
    return code.text if code is not None and code.text else ""


FAULT = (
    b'<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/">'
    b"<SOAP-ENV:Body><SOAP-ENV:Fault><faultcode>SOAP-ENV:Server</faultcode>"
    b"<faultstring>The service failed on purpose</faultstring></SOAP-ENV:Fault>"
    b"</SOAP-ENV:Body></SOAP-ENV:Envelope>"
)


def soap_app(
    vectors_getstate_query: bytes | None = None,
    wsdl_box: list[bytes] | None = None,
    calls: list[bytes] | None = None,
    canned: list[tuple[str, bytes]] | None = None,
) -> web.Application:
    """``vectors_getstate_query``: what service ``test`` answers (NIIS ServerClientInconsistency:
    the request of another exchange); ``wsdl_box[0]``: the WSDL served on ``/wsdl``;
    ``calls`` records every request; ``canned`` answers staged by a test, used first."""
    box = wsdl_box if wsdl_box is not None else [b""]

    async def handle(request: web.Request) -> web.Response:
        content_type = request.headers.get("Content-Type", "")
        raw = await request.read()
        if calls is not None:
            calls.append(raw)
        if canned:  # a test staged this exact answer (content type, bytes)
            content_type_out, body_out = canned.pop(0)
            return web.Response(body=body_out, headers={"Content-Type": content_type_out})
        soap_part, attachments = decode_package(raw, content_type)
        soap_xml = soap_part.message.raw
        code = _service_code(soap_xml)
        if code == "fail":
            return web.Response(body=FAULT, content_type="text/xml", charset="utf-8")
        if code == "test" and vectors_getstate_query is not None:
            return web.Response(
                body=vectors_getstate_query, headers={"Content-Type": "text/xml; charset=utf-8"}
            )
        envelope = _response_envelope(soap_xml, change_id=code == "changeId")
        body = envelope[1]
        answer = etree.SubElement(body, f"{{{TNS}}}{code}Response", nsmap={"tns": TNS})
        if code == "echo":
            text = etree.fromstring(soap_xml).find(f".//{{{TNS}}}text")
            etree.SubElement(answer, f"{{{TNS}}}text").text = text.text if text is not None else ""
            etree.SubElement(answer, f"{{{TNS}}}attachments").text = str(len(attachments))
        else:
            answer.text = "ok"
        soap_bytes = etree.tostring(envelope, xml_declaration=True, encoding="UTF-8")
        headers = {"X-Soap-Action-Seen": request.headers.get("SOAPAction", "<none>")}
        if not attachments:
            headers["Content-Type"] = "text/xml; charset=UTF-8"
            return web.Response(body=soap_bytes, headers=headers)
        original = ContentType.parse(content_type)
        writer = MultipartWriter("provider-boundary-0123456789")
        out = writer.start_part(soap_part.content_type, soap_part.headers) + soap_bytes
        for start, data in attachments:
            out += writer.start_part(start.content_type, start.headers) + data
        out += writer.close()
        params = "".join(
            f'; {k}="{v}"' for k, v in original.params if k not in ("boundary", "charset")
        )
        headers["Content-Type"] = f"{MULTIPART_RELATED}{params}; boundary={writer.boundary}"
        return web.Response(body=out, headers=headers)

    async def get_wsdl(request: web.Request) -> web.Response:
        return web.Response(body=box[0], content_type="text/xml")

    app = web.Application(client_max_size=1024**3)
    app.router.add_post("/soap", handle)
    app.router.add_get("/wsdl", get_wsdl)
    return app
