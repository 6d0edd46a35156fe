"""``GET /asic`` and ``GET /verificationconf`` through aiohttp's test client: entitled, not
entitled, not found, not stamped, force (with the TSA up and down), the parameter errors, and
the downloaded containers verified offline with the downloaded verification configuration
(also through ``crossroad verify``)."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

from crossroad.cli.main import app as cli
from crossroad.crypto.asic import MIMETYPE
from crossroad.errors import Code, XRoadError
from crossroad.evidence.verifier import verify_container
from crossroad.globalconf.directory import load_directory
from crossroad.globalconf.sharedparams import render_shared_parameters
from crossroad.identifiers import ClientId
from crossroad.messagelog.asic_service import AsicQuery, HttpError, SignedDocuments
from crossroad.messagelog.manager import MessageLog
from crossroad.messagelog.records import Side, container_name

from .conftest import CLIENT, OTHER, PROVIDER, Conf, Signers, make_record

pytestmark = pytest.mark.integration

Call = Callable[[str], Awaitable[tuple[int, dict[str, str], bytes]]]


def params(query_id: str, client: ClientId = CLIENT, *flags: str) -> str:
    text = (
        f"queryId={query_id}&xRoadInstance={client.instance}&memberClass={client.member_class}"
        f"&memberCode={client.member_code}"
    )
    if client.subsystem_code:
        text += f"&subsystemCode={client.subsystem_code}"
    return "&".join([text, *flags])


def serve(service: SignedDocuments, test: Callable[[Call], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(service.app())) as client:

            async def call(path: str) -> tuple[int, dict[str, str], bytes]:
                resp = await client.get(path)
                return resp.status, dict(resp.headers), await resp.read()

            try:
                await test(call)
            finally:
                await service.mlog.close()

    asyncio.run(main())


def exchange(mlog: MessageLog, signers: Signers, query_id: str) -> None:
    """What the consumer's server logs for one exchange: the request and the response."""
    mlog.log(make_record(signers, query_id=query_id))
    mlog.log(make_record(signers, query_id=query_id, response=True))
    # the provider's server (another client of ours here) logged the same query id
    mlog.log(make_record(signers, query_id=query_id, side=Side.SERVER))


async def stamp(mlog: MessageLog) -> None:
    result = await mlog.timestamper.stamp_once()
    assert result.ok, result.error


def test_download_all_and_unique(mlog: MessageLog, conf: Conf, signers: Signers) -> None:
    exchange(mlog, signers, "q 1/x")
    trust = conf().trust_policy()  # type: ignore[union-attr]

    async def test(call: Call) -> None:
        await stamp(mlog)
        status, headers, body = await call("/asic?" + params("q+1%2Fx"))
        assert status == 200, body
        assert headers["Content-Type"] == "application/zip"
        assert 'filename="q+1%2Fx.zip"' in headers["Content-Disposition"]
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            names = zf.namelist()
            containers = [zf.read(n) for n in names]
        ids = [r.id for r in mlog.store.find("q 1/x", CLIENT)]
        assert names == [
            container_name("q 1/x", False, ids[0]),
            container_name("q 1/x", True, ids[1]),
        ]
        assert names[0].startswith("q+1%2Fx-request-")
        for data in containers:
            assert verify_container(data, trust).valid
        status, headers, body = await call("/asic?" + params("q+1%2Fx", CLIENT, "responseOnly"))
        assert status == 200
        assert 'filename="q+1%2Fx-response.zip"' in headers["Content-Disposition"]
        status, headers, body = await call(
            "/asic?" + params("q+1%2Fx", CLIENT, "requestOnly", "unique")
        )
        assert status == 200
        assert headers["Content-Type"] == MIMETYPE
        assert headers["Content-Disposition"] == f'attachment; filename="{names[0]}"'
        assert body == containers[0]
        # the provider's record is found under the provider only
        status, _, body = await call("/asic?" + params("q+1%2Fx", PROVIDER))
        assert status == 200
        with zipfile.ZipFile(io.BytesIO(body)) as zf:
            assert len(zf.namelist()) == 1

    serve(SignedDocuments(mlog), test)


def test_errors_in_niis_order(mlog: MessageLog, conf: Conf, signers: Signers) -> None:
    exchange(mlog, signers, "q2")

    async def test(call: Call) -> None:
        assert (await call("/asic?xRoadInstance=EE&memberClass=COM&memberCode=111"))[0] == 400
        status, _, body = await call("/asic?" + params("q2", CLIENT, "requestOnly", "responseOnly"))
        assert (status, body.decode()) == (
            400,
            'Parameters "requestOnly" and "responseOnly" cannot be used at the same time.',
        )
        status, headers, body = await call("/asic?" + params("nope"))
        assert (status, body) == (404, b"No signed documents found")
        assert headers["Content-Type"].startswith("text/plain")
        assert (await call("/asic?" + params("q2", OTHER)))[0] == 404
        status, _, body = await call("/asic?" + params("q2"))
        assert (status, body) == (500, b"Message signature has not been timestamped yet!")
        await stamp(mlog)
        status, _, body = await call("/asic?" + params("q2", CLIENT, "unique"))
        assert status == 400
        assert b"unique" in body
        assert (await call("/asic?" + params("q2", ClientId("EE", "COM", "", None))))[0] == 400

    serve(SignedDocuments(mlog), test)


def test_force(mlog: MessageLog, conf: Conf, signers: Signers) -> None:
    exchange(mlog, signers, "q3")
    exchange(mlog, signers, "q4")

    async def test(call: Call) -> None:
        conf.set(False)
        status, _, body = await call("/asic?" + params("q3", CLIENT, "force"))
        assert (status, body) == (500, b"Could not create missing timestamp!")
        conf.set(True)
        status, _, body = await call("/asic?" + params("q3", CLIENT, "force"))
        assert status == 200, body
        # only the records asked for were stamped
        assert [r.stamped for r in mlog.store.find("q3", CLIENT)] == [True, True]
        assert [r.stamped for r in mlog.store.find("q4", CLIENT)] == [False, False]
        assert [r.stamped for r in mlog.store.find("q3", PROVIDER)] == [False]

    serve(SignedDocuments(mlog), test)


def test_only_the_entitled_information_system(
    mlog: MessageLog, conf: Conf, signers: Signers
) -> None:
    exchange(mlog, signers, "q5")
    asked: list[ClientId] = []

    async def authenticate(request: web.Request, client: ClientId) -> None:
        asked.append(client)
        if request.headers.get("X-Test-Cert") != "client-is":
            raise XRoadError(Code.SSL_AUTHENTICATION_FAILED, f"Client ({client}) has no cert")

    service = SignedDocuments(mlog, authenticate=authenticate)

    async def main() -> None:
        await stamp(mlog)
        async with TestClient(TestServer(service.app())) as client:
            resp = await client.get("/asic?" + params("q5"))
            assert resp.status == 401
            assert "has no cert" in await resp.text()
            resp = await client.get("/asic?" + params("q5"), headers={"X-Test-Cert": "client-is"})
            assert resp.status == 200
        await mlog.close()

    asyncio.run(main())
    assert asked == [CLIENT, CLIENT]


def test_verificationconf_verifies_downloaded_containers(
    mlog: MessageLog, conf: Conf, signers: Signers, tmp_path: Path
) -> None:
    snapshot = conf()
    assert snapshot is not None
    confdir = tmp_path / "globalconf"
    (confdir / "EE").mkdir(parents=True)
    (confdir / "instance-identifier").write_text("EE")
    (confdir / "EE" / "shared-params.xml").write_bytes(
        render_shared_parameters(snapshot.own_shared, 2)
    )
    (confdir / "EE" / "shared-params.xml.metadata").write_text(
        json.dumps({"contentIdentifier": "SHARED-PARAMETERS", "configurationVersion": "2"})
    )
    (confdir / "EE" / "private-params.xml").write_text("<not needed/>")
    exchange(mlog, signers, "q6")
    got: dict[str, Any] = {}

    async def test(call: Call) -> None:
        await stamp(mlog)
        status, headers, body = await call("/verificationconf")
        assert status == 200
        assert headers["Content-Type"] == "application/zip"
        got["conf"] = body
        got["asice"] = (await call("/asic?" + params("q6", CLIENT, "requestOnly", "unique")))[2]

    serve(SignedDocuments(mlog, conf_dir=lambda: confdir), test)
    with zipfile.ZipFile(io.BytesIO(got["conf"])) as zf:
        assert sorted(zf.namelist()) == [
            "verificationconf/EE/shared-params.xml",
            "verificationconf/EE/shared-params.xml.metadata",
            "verificationconf/instance-identifier",
        ]
        zf.extractall(tmp_path / "download")
    offline = load_directory(tmp_path / "download" / "verificationconf")
    assert verify_container(got["asice"], offline.trust_policy("EE")).valid
    (tmp_path / "doc.asice").write_bytes(got["asice"])
    result = CliRunner().invoke(
        cli,
        ["verify", "--json", "--globalconf", str(tmp_path / "download" / "verificationconf"),
         str(tmp_path / "doc.asice")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["valid"] is True


def test_verificationconf_without_directory(mlog: MessageLog) -> None:
    async def test(call: Call) -> None:
        assert (await call("/verificationconf"))[0] == 500

    serve(SignedDocuments(mlog, conf_dir=None), test)


def test_query_parameters() -> None:
    q = AsicQuery.parse({"queryId": "a", "xRoadInstance": "EE", "memberClass": "C",
                         "memberCode": "1", "responseOnly": "", "force": "no"})  # fmt: skip
    assert q == AsicQuery("a", ClientId("EE", "C", "1"), True, False, True)
    with pytest.raises(HttpError) as err:
        AsicQuery.parse({"queryId": "a"})
    assert err.value.status == 400
    assert "xRoadInstance" in err.value.detail
