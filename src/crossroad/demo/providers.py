"""The demo's information systems: a sample REST provider described by OpenAPI 3 and a sample SOAP
provider described by a WSDL (protocols.md §2.6, §3.4), both aiohttp applications.

REST provider, under ``/api`` (its description at ``/openapi.json``)::

    GET    /api/pets            the pets, JSON
    GET    /api/pets/{petId}    one pet (404 for an unknown one)
    DELETE /api/pets/{petId}    removes a pet (the demo grants nobody this endpoint)
    POST   /api/echo            the request body back, same content type (at most 16 MiB)
    GET    /api/blob/{size}     ``size`` bytes of application/octet-stream, streamed
    POST   /api/upload          reads the body as it streams in: {"bytes": n, "sha256": hex}

SOAP provider, at ``/soap`` (its WSDL at ``/wsdl``), X-Road SOAP 4.0 document/literal
operations ``getRandom``, ``echo`` (the request's payload back) and ``getSecret`` (the demo
grants nobody this one).  As an X-Road service provider must, it answers with the request's
header copied (§2.2).  Requests are parsed with a hardened parser (no DTD, no entities, no
network); anything else is a SOAP fault.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from lxml import etree

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
PRODUCER_NS = "http://demo.crossroad.example/producer"
XROAD_NS = "http://x-road.eu/xsd/xroad.xsd"
MAX_ECHO = 16 * 1024 * 1024
_CHUNK = bytes(range(256)) * 256  # 64 KiB of a recognisable pattern

PETS = {
    1: {"id": 1, "name": "Rex", "species": "dog", "status": "available"},
    2: {"id": 2, "name": "Tom", "species": "cat", "status": "adopted"},
    3: {"id": 3, "name": "Goldie", "species": "fish", "status": "available"},
}


def openapi_document(base_url: str) -> dict[str, object]:
    """The REST provider's OpenAPI 3 description; ``base_url`` ends in ``/api``."""

    def op(op_id: str, summary: str, *, params: bool = False) -> dict[str, object]:
        found: dict[str, object] = {
            "operationId": op_id,
            "summary": summary,
            "responses": {"200": {"description": "OK"}},
        }
        if params:
            found["parameters"] = [
                {"name": "petId", "in": "path", "required": True, "schema": {"type": "integer"}}
            ]
        return found

    size = [{"name": "size", "in": "path", "required": True, "schema": {"type": "integer"}}]
    return {
        "openapi": "3.0.3",
        "info": {"title": "Demo pet store", "version": "1.0.0"},
        "servers": [{"url": base_url}],
        "paths": {
            "/pets": {"get": op("listPets", "List the pets")},
            "/pets/{petId}": {
                "get": op("getPet", "One pet", params=True),
                "delete": op("deletePet", "Remove a pet", params=True),
            },
            "/echo": {"post": op("echo", "The request body back")},
            "/blob/{size}": {"get": {**op("blob", "Bytes, streamed"), "parameters": size}},
            "/upload": {"post": op("upload", "Count and hash a streamed body")},
        },
    }


def wsdl_document(location: str) -> bytes:
    """The SOAP provider's WSDL: X-Road document/literal operations with ``xrd:version``."""
    operations = ("getRandom", "echo", "getSecret")
    types = "".join(
        f'<xs:element name="{name}"><xs:complexType><xs:sequence>'
        f'<xs:any minOccurs="0" maxOccurs="unbounded" processContents="lax"/>'
        f"</xs:sequence></xs:complexType></xs:element>"
        f'<xs:element name="{name}Response"><xs:complexType><xs:sequence>'
        f'<xs:any minOccurs="0" maxOccurs="unbounded" processContents="lax"/>'
        f"</xs:sequence></xs:complexType></xs:element>"
        for name in operations
    )
    messages = "".join(
        f'<wsdl:message name="{n}"><wsdl:part name="body" element="tns:{n}"/></wsdl:message>'
        f'<wsdl:message name="{n}Response"><wsdl:part name="body" element="tns:{n}Response"/>'
        f"</wsdl:message>"
        for n in operations
    )
    port_ops = "".join(
        f'<wsdl:operation name="{n}"><wsdl:documentation><xrd:title>{n}</xrd:title>'
        f'</wsdl:documentation><wsdl:input message="tns:{n}"/>'
        f'<wsdl:output message="tns:{n}Response"/></wsdl:operation>'
        for n in operations
    )
    header = (
        '<soap:header message="tns:requestheader" part="client" use="literal"/>'
        '<soap:header message="tns:requestheader" part="service" use="literal"/>'
        '<soap:header message="tns:requestheader" part="id" use="literal"/>'
        '<soap:header message="tns:requestheader" part="protocolVersion" use="literal"/>'
    )
    binding_ops = "".join(
        f'<wsdl:operation name="{n}"><soap:operation soapAction="" style="document"/>'
        f"<xrd:version>v1</xrd:version>"
        f'<wsdl:input>{header}<soap:body use="literal"/></wsdl:input>'
        f'<wsdl:output>{header}<soap:body use="literal"/></wsdl:output></wsdl:operation>'
        for n in operations
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<wsdl:definitions xmlns:wsdl="http://schemas.xmlsoap.org/wsdl/"
    xmlns:soap="http://schemas.xmlsoap.org/wsdl/soap/"
    xmlns:xs="http://www.w3.org/2001/XMLSchema"
    xmlns:xrd="{XROAD_NS}" xmlns:tns="{PRODUCER_NS}"
    name="demo" targetNamespace="{PRODUCER_NS}">
  <wsdl:types>
    <xs:schema elementFormDefault="qualified" targetNamespace="{PRODUCER_NS}">
      <xs:import namespace="{XROAD_NS}" schemaLocation="http://x-road.eu/xsd/xroad.xsd"/>
      {types}
    </xs:schema>
  </wsdl:types>
  <wsdl:message name="requestheader">
    <wsdl:part name="client" element="xrd:client"/>
    <wsdl:part name="service" element="xrd:service"/>
    <wsdl:part name="id" element="xrd:id"/>
    <wsdl:part name="protocolVersion" element="xrd:protocolVersion"/>
  </wsdl:message>
  {messages}
  <wsdl:portType name="demoPortType">{port_ops}</wsdl:portType>
  <wsdl:binding name="demoBinding" type="tns:demoPortType">
    <soap:binding style="document" transport="http://schemas.xmlsoap.org/soap/http"/>
    {binding_ops}
  </wsdl:binding>
  <wsdl:service name="demoService">
    <wsdl:port name="demoServicePort" binding="tns:demoBinding">
      <soap:address location="{location}"/>
    </wsdl:port>
  </wsdl:service>
</wsdl:definitions>
""".encode()


# -- REST ----------------------------------------------------------------------------------


def rest_app(base_url: str) -> web.Application:
    pets = dict(PETS)

    async def openapi(_request: web.Request) -> web.Response:
        return web.json_response(openapi_document(base_url))

    async def list_pets(_request: web.Request) -> web.Response:
        return web.json_response(list(pets.values()))

    def pet_id(request: web.Request) -> int:
        text = request.match_info["pet_id"]
        if not text.isdigit():
            raise web.HTTPBadRequest(text="petId must be a number")
        return int(text)

    async def get_pet(request: web.Request) -> web.Response:
        pet = pets.get(pet_id(request))
        if pet is None:
            return web.json_response({"error": "no such pet"}, status=404)
        return web.json_response(pet)

    async def delete_pet(request: web.Request) -> web.Response:
        pets.pop(pet_id(request), None)
        return web.Response(status=204)

    async def echo(request: web.Request) -> web.Response:
        if (request.content_length or 0) > MAX_ECHO:
            return web.json_response({"error": "body too large"}, status=413)
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > MAX_ECHO:
                return web.json_response({"error": "body too large"}, status=413)
        ctype = request.headers.get("Content-Type", "application/octet-stream")
        return web.Response(body=bytes(body), headers={"Content-Type": ctype})

    async def blob(request: web.Request) -> web.StreamResponse:
        text = request.match_info["size"]
        if not text.isdigit() or int(text) > 64 * 1024**3:
            raise web.HTTPBadRequest(text="size must be a number of bytes up to 64 GiB")
        size = int(text)
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        response.content_length = size
        await response.prepare(request)
        left = size
        while left > 0:
            piece = _CHUNK if left >= len(_CHUNK) else _CHUNK[:left]
            await response.write(piece)
            left -= len(piece)
        await response.write_eof()
        return response

    async def upload(request: web.Request) -> web.Response:
        digest = hashlib.sha256()
        total = 0
        async for chunk in request.content.iter_any():
            digest.update(chunk)
            total += len(chunk)
        return web.json_response({"bytes": total, "sha256": digest.hexdigest()})

    app = web.Application(client_max_size=MAX_ECHO)
    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/api/pets", list_pets)
    app.router.add_get("/api/pets/{pet_id}", get_pet)
    app.router.add_delete("/api/pets/{pet_id}", delete_pet)
    app.router.add_post("/api/echo", echo)
    app.router.add_get("/api/blob/{size}", blob)
    app.router.add_post("/api/upload", upload)
    return app


# -- SOAP ----------------------------------------------------------------------------------


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, load_dtd=False)


def soap_fault(code: str, text: str, status: int = 500) -> web.Response:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP_ENV}"><SOAP-ENV:Body><SOAP-ENV:Fault>'
        f"<faultcode>{code}</faultcode><faultstring>{_escape(text)}</faultstring>"
        "</SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"
    )
    return web.Response(status=status, body=body.encode(), content_type="text/xml", charset="utf-8")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def soap_answer(request_bytes: bytes) -> tuple[int, bytes]:
    """(HTTP status, response envelope) for a request envelope."""
    if b"<!DOCTYPE" in request_bytes[:1024].upper():
        raise ValueError("DTDs are not accepted")
    root = etree.fromstring(request_bytes, _parser())
    if root.tag != f"{{{SOAP_ENV}}}Envelope":
        raise ValueError("not a SOAP 1.1 envelope")
    header = root.find(f"{{{SOAP_ENV}}}Header")
    body = root.find(f"{{{SOAP_ENV}}}Body")
    if header is None or body is None or len(body) == 0:
        raise ValueError("the envelope needs a header and a body")
    operation = body[0]
    name = etree.QName(operation).localname
    response = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"SOAP-ENV": SOAP_ENV})
    response.append(header)  # the X-Road header is answered as it came (§2.2)
    out_body = etree.SubElement(response, f"{{{SOAP_ENV}}}Body")
    ns = etree.QName(operation).namespace or PRODUCER_NS
    answer = etree.SubElement(out_body, f"{{{ns}}}{name}Response", nsmap={"ns1": ns})
    if name == "getRandom":
        etree.SubElement(answer, f"{{{ns}}}data").text = str(secrets.randbelow(1000))
    elif name == "echo":
        for child in list(operation):
            answer.append(child)
        if operation.text and operation.text.strip():
            answer.text = operation.text
    elif name == "getSecret":
        etree.SubElement(answer, f"{{{ns}}}secret").text = "the demo's secret"
    else:
        raise LookupError(name)
    return 200, etree.tostring(response, xml_declaration=True, encoding="UTF-8")


def soap_app(location: str) -> web.Application:
    wsdl = wsdl_document(location)

    async def get_wsdl(_request: web.Request) -> web.Response:
        return web.Response(body=wsdl, content_type="text/xml", charset="utf-8")

    async def handle(request: web.Request) -> web.Response:
        if request.content_type not in ("text/xml", "application/soap+xml"):
            return soap_fault("SOAP-ENV:Client", f"Unsupported content type {request.content_type}")
        data = await request.read()
        try:
            status, body = soap_answer(data)
        except LookupError as exc:
            return soap_fault("SOAP-ENV:Client", f"Unknown operation {exc}")
        except (ValueError, etree.XMLSyntaxError) as exc:
            return soap_fault("SOAP-ENV:Client", f"Malformed request: {exc}")
        return web.Response(status=status, body=body, content_type="text/xml", charset="utf-8")

    app = web.Application(client_max_size=MAX_ECHO)
    app.router.add_get("/wsdl", get_wsdl)
    app.router.add_post("/soap", handle)
    return app


# -- running -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Providers:
    rest_base: str  # the service URL: http://host:port/api
    openapi_url: str
    soap_url: str
    wsdl_url: str


@contextlib.asynccontextmanager
async def start_providers(
    host: str = "127.0.0.1", rest_port: int = 0, soap_port: int = 0
) -> AsyncIterator[Providers]:
    """Run both providers in this event loop (port 0: a free port)."""
    socks = [socket.create_server((host, p), backlog=1024) for p in (rest_port, soap_port)]
    runners: list[web.AppRunner] = []
    try:
        rest_root = f"http://{host}:{socks[0].getsockname()[1]}"
        soap_root = f"http://{host}:{socks[1].getsockname()[1]}"
        found = Providers(
            rest_base=f"{rest_root}/api",
            openapi_url=f"{rest_root}/openapi.json",
            soap_url=f"{soap_root}/soap",
            wsdl_url=f"{soap_root}/wsdl",
        )
        for app, sock in (
            (rest_app(found.rest_base), socks[0]),
            (soap_app(found.soap_url), socks[1]),
        ):
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            await web.SockSite(runner, sock).start()
        yield found
    finally:
        for runner in runners:
            await runner.cleanup()
        for sock in socks:
            sock.close()
