"""The demo's exchanges through its security servers, and what it tells the user to try.

:func:`exchanges` runs, through the consumer's security server (protocols.md §2, §3): REST
``GET /pets/1`` (the body must be byte-identical to the provider's own answer), SOAP
``getRandom``, and SOAP ``getSecret``, which the provider's access rights deny
(``server.serverproxy.access_denied``, §10.4).  :func:`evidence` then downloads the REST
exchange's signed containers from both security servers, as their information systems may
(``GET /asic``, time-stamped now with ``force``, and ``GET /verificationconf``; §9.4), and
verifies them offline.  :func:`describe` lists URLs, identifiers and ready-to-paste ``curl``
commands; :func:`write_samples` writes the SOAP requests they use.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable

import aiohttp

from crossroad.demo.instance import (
    CLIENT,
    INSTANCE,
    MANAGEMENT,
    NOT_BUILT,
    PROVIDER,
    REST_CODE,
    Instance,
    Say,
)
from crossroad.identifiers import ClientId


def soap_request(service: str, body: str = "", query_id: str | None = None) -> bytes:
    """An X-Road SOAP 4.0 request of ``CLIENT`` for ``PROVIDER``'s ``service`` (version v1)."""
    qid = query_id or f"demo-{secrets.token_hex(8)}"

    def ident(kind: str, c: ClientId, extra: str = "") -> str:
        return (
            f'<xrd:{kind} id:objectType="{"SERVICE" if extra else "SUBSYSTEM"}">'
            f"<id:xRoadInstance>{c.instance}</id:xRoadInstance>"
            f"<id:memberClass>{c.member_class}</id:memberClass>"
            f"<id:memberCode>{c.member_code}</id:memberCode>"
            f"<id:subsystemCode>{c.subsystem_code}</id:subsystemCode>{extra}</xrd:{kind}>"
        )

    service_xml = (
        f"<id:serviceCode>{service}</id:serviceCode><id:serviceVersion>v1</id:serviceVersion>"
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:id="http://x-road.eu/xsd/identifiers" '
        'xmlns:ns1="http://demo.crossroad.example/producer">'
        f"<SOAP-ENV:Header>{ident('client', CLIENT)}{ident('service', PROVIDER, service_xml)}"
        f"<xrd:id>{qid}</xrd:id><xrd:protocolVersion>4.0</xrd:protocolVersion></SOAP-ENV:Header>"
        f"<SOAP-ENV:Body><ns1:{service}>{body}</ns1:{service}></SOAP-ENV:Body></SOAP-ENV:Envelope>\n"
    ).encode()


def rest_path(path: str) -> str:
    return f"/r1/{PROVIDER.to_header()}/{REST_CODE}{path}"


def write_samples(inst: Instance) -> None:
    for name in ("getRandom", "getSecret"):
        path = inst.directory / f"{name}.xml"
        path.write_bytes(soap_request(name))
        inst.samples[name] = path


# -- the exchanges -------------------------------------------------------------------------


async def _retrying(what: str, call: Callable[[], Awaitable[str]], timeout: float = 20) -> str:
    """The first good outcome of ``call`` within ``timeout`` (the servers may still be taking
    in the configuration), else the last failure."""
    deadline = time.monotonic() + timeout
    outcome = "not tried"
    while time.monotonic() < deadline:
        try:
            outcome = await call()
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = f"failed: {what}: {exc!r}"
        if outcome == "ok":
            return outcome
        await asyncio.sleep(0.5)
    return outcome


async def exchanges(inst: Instance, say: Say) -> dict[str, str]:
    """The REST and SOAP exchanges and the denied one; ``{"rest": "ok", ...}``."""
    consumer = inst.nodes["consumer"].client_url
    direct_url = inst.providers.rest_base + "/pets/1"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.get(direct_url) as resp:
            direct = await resp.read()

        async def rest() -> str:
            headers = {"X-Road-Client": CLIENT.to_header()}
            async with session.get(consumer + rest_path("/pets/1"), headers=headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    return f"failed: HTTP {resp.status} {resp.headers.get('X-Road-Error')}"
                if body != direct:
                    return f"failed: body differs from the provider's: {body[:100]!r}"
                say(f"REST  GET {rest_path('/pets/1')} -> {resp.status} {body.decode()}")
                inst.rest_query_id = resp.headers.get("x-road-id")
                return "ok"

        async def soap(service: str, denied: bool) -> str:
            headers = {"Content-Type": "text/xml; charset=UTF-8"}
            async with session.post(consumer, data=soap_request(service), headers=headers) as r:
                text = (await r.read()).decode("utf-8", "replace")
            fault = _between(text, "<faultcode>", "</faultcode>")
            if denied:
                if "accessdenied" in fault.replace("_", "").lower():
                    say(f"SOAP  {service} -> denied as it must be: {fault}")
                    return "ok"
                why = _between(text, "<faultstring>", "</faultstring>")
                return f"failed: expected access_denied, got {fault} {why}" if fault else text[:200]
            if r.status == 200 and not fault and f"{service}Response" in text:
                start = text.find("<ns1:data>")
                data = text[start + 10 : text.find("</ns1:data>")] if start >= 0 else "?"
                say(f"SOAP  {service} -> {r.status}, data {data}")
                return "ok"
            return f"failed: HTTP {r.status} {fault or text[:200]!r}"

        results = {"rest": await _retrying("REST exchange", rest)}
        results["soap"] = await _retrying("SOAP exchange", lambda: soap("getRandom", False))
        results["denied"] = await _retrying("denied exchange", lambda: soap("getSecret", True), 5)
    inst.results.update(results)
    return results


async def evidence(inst: Instance, say: Say) -> str:
    """The REST exchange's containers from the consumer's server (as ``CLIENT``) and the
    provider's (as ``PROVIDER``), each with its verification configuration, verified offline:
    ``"ok"`` only when every container of both sides is valid and complete."""
    from crossroad.messagelog.integration import check_evidence

    query_id = inst.rest_query_id
    if query_id is None:
        return "failed: no REST exchange to take evidence of"
    sides = (("consumer", CLIENT), ("provider", PROVIDER))
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        for name, client in sides:
            found = await check_evidence(session, inst.nodes[name].client_url, query_id, client)
            if not found.valid:
                return f"failed: {name}: {found.detail}"
            if len(found.containers) != 2:
                return f"failed: {name}: {len(found.containers)} containers, expected 2"
            incomplete = [n for n, report in found.containers if report.notes]
            if incomplete:  # a body not in the container: its digest would be unverified
                return f"failed: {name}: {incomplete[0]} lacks the REST body"
            say(f"evidence on the {name}'s server: {found.detail} ({query_id})")
    inst.results["evidence"] = "ok"
    return "ok"


def _between(text: str, start: str, end: str) -> str:
    i = text.find(start)
    j = text.find(end, i + len(start))
    return text[i + len(start) : j] if i >= 0 and j >= 0 else ""


def describe(inst: Instance) -> list[str]:
    """What to show the user: URLs, identifiers and ready-to-paste commands."""
    c, p, m = inst.nodes["consumer"], inst.nodes["provider"], inst.nodes["management"]
    lines = [
        f"instance {INSTANCE}; state and logs in {inst.directory}",
        f"  central server     distribution {inst.central_distribution}   "
        f"management API {inst.central_api}api/v1   (API key {inst.central_key})",
        f"  management server  {m.spec.server_id} at {m.spec.address}  (client {MANAGEMENT})",
        f"  consumer server    {c.spec.server_id} at {c.spec.address}  (client {CLIENT})",
        f"  provider server    {p.spec.server_id} at {p.spec.address}  (client {PROVIDER})",
        f"  security server management APIs at http://<address>:4000/api/v1 "
        f"(consumer's API key {c.api_key})",
        f"  trust services     CA {inst.trust.ca_url}  OCSP {inst.trust.ocsp_url}  "
        f"TSA {inst.trust.tsa_url}",
        f"  providers          REST {inst.providers.rest_base} (OpenAPI "
        f"{inst.providers.openapi_url})  SOAP {inst.providers.soap_url} "
        f"(WSDL {inst.providers.wsdl_url})",
        f"  note: servers, authentication certificates and clients were {NOT_BUILT}",
        "",
        "Try (through the consumer's security server):",
        f"  curl -H 'X-Road-Client: {CLIENT.to_header()}' {c.client_url}{rest_path('/pets')}",
        f"  curl -H 'X-Road-Client: {CLIENT.to_header()}' {c.client_url}{rest_path('/pets/2')}",
        f"  curl -H 'Content-Type: text/xml' --data-binary @{inst.samples['getRandom']} "
        f"{c.client_url}/",
        f"  curl -H 'Content-Type: text/xml' --data-binary @{inst.samples['getSecret']} "
        f"{c.client_url}/    # denied by access rights",
        f"  curl -H 'X-Road-Client: {CLIENT.to_header()}' "
        f"{c.client_url}/r1/{PROVIDER.to_header()}/listMethods",
        f"  curl -H 'Accept: application/json' {c.client_url}/listClients",
        "  # the REST exchange's signed containers, as the consumer's information system:",
        f"  curl -o evidence.zip '{c.client_url}/asic?queryId={inst.rest_query_id or 'ID'}"
        f"&xRoadInstance={CLIENT.instance}&memberClass={CLIENT.member_class}"
        f"&memberCode={CLIENT.member_code}&subsystemCode={CLIENT.subsystem_code}&force'",
        f"  curl -o verificationconf.zip {c.client_url}/verificationconf",
        f"  curl -H 'Authorization: X-Road-ApiKey token={p.api_key}' {p.admin_url}/clients",
    ]
    return lines
