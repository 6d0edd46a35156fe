"""The message log plugged into the real proxies (two security servers over real TLS, the real
trust services): every exchange is logged on both servers, both servers' ``/asic`` give
containers that verify, a logging failure aborts the exchange with nothing released, and a
time-stamping failure past the acceptable period refuses new exchanges."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import zipfile
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp.test_utils import TestClient, TestServer

from crossroad.crypto.certs import cert_der
from crossroad.errors import Code
from crossroad.evidence.verifier import verify_container
from crossroad.globalconf.model import ApprovedTSAInfo
from crossroad.messagelog.integration import (
    EvidenceCheck,
    attach,
    check_evidence,
    detach,
    signed_documents,
)
from crossroad.messagelog.manager import MessageLog
from crossroad.messagelog.settings import LogSettings
from crossroad.proxy.context import LoggedMessage

# The proxy tests' two-server world (tests/proxy is a package beside this one).
from proxy.world import (
    CLIENT,
    PRODUCER,
    REST_PROVIDER,
    SSLAUTH,
    World,
    globalconf_of,
    rest_client,
    rest_path,
    running_world,
    soap_request,
)

from .conftest import write_globalconf

pytestmark = pytest.mark.integration


@dataclasses.dataclass
class Logged:
    world: World
    consumer: MessageLog
    provider: MessageLog


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    root = tmp_path_factory.mktemp("mlog-world")
    with running_world(root) as world:
        services = world.services
        tsa = ApprovedTSAInfo("Test TSA", services.tsa_url, cert_der(services.tsa_cert))
        shared = world.globalconf.own_shared
        conf = globalconf_of(dataclasses.replace(shared, approved_tsas=(tsa,)))
        logs = []
        with (
            world.swapped(world.consumer, globalconf=conf),
            world.swapped(world.provider, globalconf=conf),
        ):
            for node in (world.consumer, world.provider):
                name = node.server.server_code
                settings = LogSettings(
                    database_url=f"sqlite:///{root / f'{name}-mlog.db'}",
                    archive_dir=root / f"{name}-archive",
                    status_refresh=0,
                )
                mlog = MessageLog.open(settings, partial(_globalconf, node.ctx))
                hook = attach(node.ctx, mlog)
                logs.append((node, mlog, hook))
            try:
                yield Logged(world, logs[0][1], logs[1][1])
            finally:
                for node, mlog, hook in logs:
                    detach(node.ctx, mlog, hook)
                    mlog.shutdown()


def _globalconf(ctx: Any) -> Any:
    return ctx.globalconf


def rest(world: World, method: str = "POST", path: str = "/pets", **kw: Any) -> httpx.Response:
    headers = {"X-Road-Client": rest_client(CLIENT), **kw.pop("headers", {})}
    return httpx.request(
        method, world.consumer.url + rest_path(path=path), headers=headers, timeout=60, **kw
    )


def download(mlog: MessageLog, world: World, node: Any, query: str) -> tuple[int, bytes]:
    service = signed_documents(node.ctx, mlog, None)

    async def main() -> tuple[int, bytes]:
        async with TestClient(TestServer(service.app())) as client:
            resp = await client.get("/asic?" + query)
            body = await resp.read()
        await mlog.timestamper.stamp_once()  # (a no-op here; the session closes in this loop)
        await mlog.close()
        return resp.status, body

    return asyncio.run(main())


def stamp(*logs: MessageLog) -> None:
    async def main() -> None:
        for mlog in logs:
            result = await mlog.timestamper.stamp_once()
            assert result.ok, result.error
            await mlog.close()

    asyncio.run(main())


def query(query_id: str, client: Any, *flags: str) -> str:
    parts = [f"queryId={query_id}", f"xRoadInstance={client.instance}",
             f"memberClass={client.member_class}", f"memberCode={client.member_code}"]  # fmt: skip
    if client.subsystem_code is not None:
        parts.append(f"subsystemCode={client.subsystem_code}")
    parts += flags
    return "&".join(parts)


def test_every_exchange_is_logged_on_both_servers(logged: Logged) -> None:
    world = logged.world
    answer = rest(world, json={"name": "Felix"})
    assert answer.status_code in (200, 201), answer.text
    query_id = answer.headers["x-road-id"]
    soap = httpx.post(
        world.consumer.url,
        content=soap_request(CLIENT, "echo", query_id="soap-q-1"),
        headers={"Content-Type": "text/xml; charset=UTF-8"},
        timeout=60,
    )
    assert soap.status_code == 200
    assert b"Fault" not in soap.content
    for query_id_, kind in ((query_id, True), ("soap-q-1", False)):
        consumer = logged.consumer.store.find(query_id_, CLIENT)
        assert [(r.record.response, r.record.rest) for r in consumer] == [
            (False, kind),
            (True, kind),
        ]
    provider_client = REST_PROVIDER
    provider = logged.provider.store.find(query_id, provider_client)
    assert [r.record.response for r in provider] == [False, True]
    stamp(logged.consumer, logged.provider)
    trust = world.consumer.ctx.globalconf.trust_policy()
    for mlog, node, client in (
        (logged.consumer, world.consumer, CLIENT),
        (logged.provider, world.provider, provider_client),
    ):
        status, body = download(mlog, world, node, query(query_id, client))
        assert status == 200, body
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            names = zf.namelist()
            assert len(names) == 2
            for name in names:
                report = verify_container(zf.read(name), trust, name=name)
                assert report.valid, (name, report.code, report.detail)
                if "attachments" in LoggedMessage.__dataclass_fields__:
                    assert report.notes == ()  # the REST bodies are in the containers


def test_only_the_entitled_information_system(logged: Logged) -> None:
    world = logged.world
    answer = rest(world, "GET")
    assert answer.status_code == 200
    query_id = answer.headers["x-road-id"]
    stamp(logged.consumer)
    # SSLAUTH needs a TLS client certificate: over plain HTTP it gets nothing
    status, _ = download(logged.consumer, world, world.consumer, query(query_id, SSLAUTH))
    assert status == 401
    status, _ = download(logged.consumer, world, world.consumer, query(query_id, CLIENT))
    assert status == 200


def test_logging_failure_aborts_the_exchange(logged: Logged, tmp_path: Path) -> None:
    world = logged.world
    before = logged.consumer.store.counts()["messages"]
    with logged.consumer.store.write() as conn:
        conn.exec_driver_sql("ALTER TABLE logrecord RENAME TO logrecord_gone")
    try:
        answer = rest(world, json={"name": "Tom"})
    finally:
        with logged.consumer.store.write() as conn:
            conn.exec_driver_sql("ALTER TABLE logrecord_gone RENAME TO logrecord")
    assert answer.status_code == 500
    assert Code.LOGGING_FAILED in answer.headers["X-Road-Error"]
    assert logged.consumer.store.counts()["messages"] == before


def test_timestamping_failure_refuses_exchanges(logged: Logged) -> None:
    world = logged.world
    mlog = logged.consumer
    mlog.settings = mlog.settings.replace(acceptable_timestamp_failure_period=1)
    mlog.store.set_failed(0, "the TSA was down in 1970")
    try:
        answer = rest(world, "GET")
        assert answer.status_code == 500
        assert Code.TIMESTAMPING_FAILED in answer.headers["X-Road-Error"]
    finally:
        mlog.store.set_succeeded(1, None)
        mlog.settings = mlog.settings.replace(acceptable_timestamp_failure_period=14_400)
    assert rest(world, "GET").status_code == 200


def test_check_evidence_as_an_auditor(logged: Logged, tmp_path: Path) -> None:
    world = logged.world
    answer = rest(world, json={"name": "Rex"})
    assert answer.status_code in (200, 201)
    query_id = answer.headers["x-road-id"]
    write_globalconf(tmp_path / "globalconf", world.consumer.ctx.globalconf)
    service = signed_documents(world.consumer.ctx, logged.consumer, tmp_path / "globalconf")

    async def main() -> tuple[EvidenceCheck, EvidenceCheck]:
        async with TestServer(service.app()) as server, aiohttp.ClientSession() as session:
            url = str(server.make_url("/"))
            found = await check_evidence(session, url, query_id, CLIENT)  # force stamps
            missing = await check_evidence(session, url, "no-such-query", CLIENT)
        await logged.consumer.close()
        return found, missing

    found, missing = asyncio.run(main())
    assert found.valid, found.detail
    assert [n.split("-")[-2] for n, _ in found.containers] == ["request", "response"]
    assert not missing.valid
    assert "404" in missing.detail


def test_soap_attachments_are_in_the_containers(logged: Logged) -> None:
    world = logged.world
    attachments = [b"binary\x00\x01" * 3000, bytes(range(256)) * 1200]
    boundary = "mlog-boundary-7"
    out = bytearray()
    parts = [("text/xml; charset=UTF-8", soap_request(CLIENT, "echo", query_id="soap-att-1"))]
    parts += [("application/octet-stream", data) for data in attachments]
    for i, (content_type, data) in enumerate(parts):
        out += (
            f"--{boundary}\r\nContent-Type: {content_type}\r\nContent-ID: <p{i}@x>\r\n\r\n".encode()
        )
        out += data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    answer = httpx.post(
        world.consumer.url,
        content=bytes(out),
        headers={
            "Content-Type": f'multipart/related; type="text/xml"; start="<p0@x>"; '
            f"boundary={boundary}"
        },
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert b"Fault" not in answer.content
    stamp(logged.consumer, logged.provider)
    trust = world.consumer.ctx.globalconf.trust_policy()
    containers: list[tuple[str, bytes]] = []
    for mlog, client in ((logged.consumer, CLIENT), (logged.provider, PRODUCER)):
        records = mlog.store.find("soap-att-1", client)
        assert [mlog.store.attachments(r) for r in records] == [attachments, attachments]
        containers += [(f"{client}-{r.id}", mlog.store.container(r).render()) for r in records]
    # PRODUCER's IS connects over HTTPS only: its /asic is not reachable over plain HTTP here
    status, body = download(logged.consumer, world, world.consumer, query("soap-att-1", CLIENT))
    assert status == 200, body
    with zipfile.ZipFile(io.BytesIO(body)) as zf:
        containers += [(name, zf.read(name)) for name in zf.namelist()]
    assert len(containers) == 6
    for name, data in containers:
        report = verify_container(data, trust, name=name)
        assert report.valid, (name, report.code, report.detail)
        assert report.notes == ()
