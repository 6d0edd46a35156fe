"""The central server process on SQLite and PostgreSQL: a registry generated, signed, published
and served; key rotation through the registry; failures that leave the previous publication."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.central import server as srv
from crossroad.central.keys import KeySource
from crossroad.crypto.algorithms import SHA1, SHA256
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import SharedParameters
from crossroad.globalconf.privateparams import anchor_hash, parse_anchor, parse_private_parameters
from crossroad.globalconf.signed import SignedDirectory
from crossroad.identifiers import ClientId, SecurityServerId

if TYPE_CHECKING:
    from crossroad.testing.pki import TestPKI

MANAGEMENT = ClientId("DEV", "GOV", "1234", "MANAGEMENT")
OWNER = ClientId("DEV", "GOV", "1234")
COM = ClientId("DEV", "COM", "5678")
SS1 = SecurityServerId(OWNER, "ss1")
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _init(state: Path, database_url: str = "", port: int = 8080, **kw: object) -> srv.Initialized:
    return srv.initialize(
        state,
        instance="DEV",
        address="127.0.0.1",
        database_url=database_url,
        distribution_port=port,
        key_type="ec-p256",  # fast to generate; RSA is the default
        management_provider=MANAGEMENT,
        **kw,  # type: ignore[arg-type]
    )


def _populate(state: srv.CentralState, pki: TestPKI) -> bytes:
    registry = state.registry
    registry.add_member(COM, "Company")
    registry.add_subsystem(COM.subsystem("sub"), "Sub")
    registry.add_security_server(SS1, "ss1.example")
    auth = pki.auth_cert("EE", "ss1").cert.public_bytes(Encoding.DER)
    registry.add_auth_cert(SS1, auth)
    registry.add_server_client(SS1, COM.subsystem("sub"))
    registry.add_approved_tsa("http://tsa:8899/", pki.tsa.cert.public_bytes(Encoding.DER))
    return auth


def _directory(state: srv.CentralState, version: int, name: str = "internalconf") -> bytes:
    return (state.config.public_dir / f"V{version}" / name).read_bytes()


def _content(state: srv.CentralState, directory: SignedDirectory, ident: str) -> bytes:
    part = directory.part(ident)
    assert part is not None
    data = (state.config.public_dir / part.location.lstrip("/")).read_bytes()
    assert part.matches(data)
    return data


def test_generation_on_both_databases(tmp_path: Path, database_url: str, pki: TestPKI) -> None:
    created = _init(tmp_path / "cs", database_url)
    assert [r.source_type for r in created.keys] == [KeySource.INTERNAL, KeySource.EXTERNAL]
    assert all(r.active for r in created.keys)
    with srv.CentralState.open(tmp_path / "cs") as state:
        auth = _populate(state, pki)
        status = srv.generate_once(state, T0)
        assert status.success, status
        assert status.versions == (2, 3, 4, 5, 6)
        assert srv.read_status(state.config.state_dir) == status.to_json()
        internal_anchor = parse_anchor(srv.export_anchor(state, "internal").data)
        external_anchor = parse_anchor(srv.export_anchor(state, "external").data)
        assert internal_anchor.sources[0].download_url == "http://127.0.0.1:8080/internalconf"
        for version in range(2, 7):
            directory = SignedDirectory.parse(_directory(state, version))
            directory.verify(list(internal_anchor.sources[0].verification_certs), T0)
            assert directory.expires == T0 + dt.timedelta(seconds=600)
            shared = SharedParameters.parse(_content(state, directory, "SHARED-PARAMETERS"))
            private = parse_private_parameters(_content(state, directory, "PRIVATE-PARAMETERS"))
            assert private.management_service.management_request_service_provider_id == MANAGEMENT
            server = shared.security_server(SS1)
            assert server is not None
            assert server.clients == (COM.subsystem("sub"),)
            assert server.auth_cert_hashes == ((SHA1 if version == 2 else SHA256).digest(auth),)
            assert [m.member_class.code for m in shared.members] == ["GOV", "COM"]
            if version >= 3:
                assert shared.sources[0].address == "127.0.0.1:8080"
                assert shared.sources[0].internal_verification_certs == (created.keys[0].cert,)
                assert shared.sources[0].external_verification_certs == (created.keys[1].cert,)
            external = SignedDirectory.parse(_directory(state, version, "externalconf"))
            external.verify(list(external_anchor.sources[0].verification_certs), T0)
            assert [p.content_identifier for p in external.parts] == ["SHARED-PARAMETERS"]
        # The stored anchor is what export gives (stable hash).
        record = next(
            s for s in state.registry.configuration_sources() if s.source_type == "internal"
        )
        assert record.anchor_file == srv.export_anchor(state, "internal").data
        assert record.anchor_file_hash == anchor_hash(record.anchor_file)


def test_key_rotation_through_the_registry(tmp_path: Path, pki: TestPKI) -> None:
    _init(tmp_path / "cs")
    with srv.CentralState.open(tmp_path / "cs") as state:
        srv.generate_once(state, T0)
        old_anchor = srv.export_anchor(state, "internal", now=T0)
        old_certs = list(parse_anchor(old_anchor.data).sources[0].verification_certs)

        new = srv.add_signing_key(state, "internal", key_type="ec-p256", now=T0)
        assert not new.active
        t1 = T0 + dt.timedelta(minutes=1)
        assert srv.generate_once(state, t1).success
        directory = SignedDirectory.parse(_directory(state, 6))
        directory.verify(old_certs, t1)  # the old key still signs
        shared = SharedParameters.parse(_content(state, directory, "SHARED-PARAMETERS"))
        learned = list(shared.sources[0].internal_verification_certs)
        assert learned[1] == new.cert  # the new key is announced, after the active one
        rotated = srv.export_anchor(state, "internal", now=t1)
        assert rotated.hash != old_anchor.hash
        assert new.cert in parse_anchor(rotated.data).sources[0].verification_certs

        srv.activate_signing_key(state, new.key_id, now=t1)
        t2 = T0 + dt.timedelta(minutes=2)
        assert srv.generate_once(state, t2).success
        directory = SignedDirectory.parse(_directory(state, 6))
        with pytest.raises(XRoadError) as err:
            directory.verify(old_certs, t2)
        assert err.value.code == Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT
        directory.verify(old_certs + learned, t2)  # a client that read the previous version
        shared = SharedParameters.parse(_content(state, directory, "SHARED-PARAMETERS"))
        assert shared.sources[0].internal_verification_certs[0] == new.cert

        # The old key is inactive now and can go; the active one cannot.
        old_id = next(r.key_id for r in state.registry.signing_keys("internal") if not r.active)
        with pytest.raises(XRoadError) as err:
            srv.delete_signing_key(state, new.key_id)
        assert err.value.code == Code.SIGNING_KEY_ACTION_NOT_POSSIBLE
        deleted = srv.delete_signing_key(state, old_id, now=t2)
        assert not (state.config.keys_dir / deleted.key_reference).exists()
        assert srv.generate_once(state, t2 + dt.timedelta(minutes=1)).success
        assert [r.key_id for r in state.registry.signing_keys("internal")] == [new.key_id]


def test_failures_leave_the_previous_publication(tmp_path: Path) -> None:
    _init(tmp_path / "cs")
    with srv.CentralState.open(tmp_path / "cs") as state:
        assert srv.generate_once(state, T0).success
        before = {p: p.read_bytes() for p in state.config.public_dir.rglob("*") if p.is_file()}
        # The active key's file is gone: nothing is published, the status says why.
        internal = state.registry.active_signing_key("internal")
        assert internal is not None
        key_file = state.config.keys_dir / internal.key_reference
        saved = key_file.read_bytes()
        key_file.unlink()
        status = srv.generate_once(state, T0 + dt.timedelta(minutes=1))
        assert not status.success
        assert status.error_code == Code.CANNOT_CREATE_SIGNATURE
        assert srv.read_status(state.config.state_dir)["error_code"] == Code.CANNOT_CREATE_SIGNATURE  # type: ignore[index]
        after = {p: p.read_bytes() for p in state.config.public_dir.rglob("*") if p.is_file()}
        assert after == before
        key_file.write_bytes(saved)
        # A key that cannot be loaded is never activated.
        spare = srv.add_signing_key(state, "internal", key_type="ec-p256")
        (state.config.keys_dir / spare.key_reference).unlink()
        with pytest.raises(XRoadError):
            srv.activate_signing_key(state, spare.key_id)
        assert not state.registry.signing_key(spare.key_id).active


def test_generation_needs_a_management_service(tmp_path: Path) -> None:
    srv.initialize(tmp_path / "cs", instance="DEV", address="cs.example", key_type="ec-p256")
    with srv.CentralState.open(tmp_path / "cs") as state:
        status = srv.generate_once(state, T0)
    assert not status.success
    assert status.error_code == Code.MANAGEMENT_SERVICE_PROVIDER_NOT_SET
    with pytest.raises(XRoadError) as err:
        srv.initialize(tmp_path / "cs", instance="DEV", address="cs.example")
    assert err.value.code == Code.INIT_ALREADY_INITIALIZED


def test_run_generates_and_serves_until_stopped(tmp_path: Path) -> None:
    from crossroad.central.registry import Role

    port, api_port = _free_port(), _free_port()
    _init(tmp_path / "cs", port=port, generation_interval_seconds=1, api_port=api_port)
    with srv.CentralState.open(tmp_path / "cs") as state:
        _, secret = state.registry.create_api_key("observer", [Role.OBSERVER])
    auth = {"Authorization": f"X-Road-ApiKey token={secret}"}

    async def main() -> None:
        stop = asyncio.Event()
        ready: list[srv.Running] = []
        task = asyncio.create_task(srv.run(tmp_path / "cs", stop=stop, on_ready=ready.append))
        for _ in range(100):
            if ready or task.done():
                break
            await asyncio.sleep(0.05)
        assert ready, task
        assert ready[0].distribution_url == f"http://127.0.0.1:{port}/"
        first = ready[0].status.timestamp
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/internalconf?version=6") as resp:
                assert resp.status == 200
                SignedDirectory.parse(await resp.read())
            # The next cycle publishes again within the interval.
            for _ in range(60):
                status = srv.read_status(tmp_path / "cs")
                if status and status["timestamp"] != first:
                    break
                await asyncio.sleep(0.05)
            assert status
            assert status["timestamp"] != first
            async with session.get(f"http://127.0.0.1:{port}/externalconf") as resp:
                assert resp.status == 200
            # The management API is served by the same process.
            assert ready[0].api_url == f"http://127.0.0.1:{api_port}/"
            for _ in range(100):
                try:
                    async with session.get(
                        f"{ready[0].api_url}api/v1/generation-status", headers=auth
                    ) as resp:
                        assert resp.status == 200
                        assert (await resp.json())["success"] is True
                        break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            else:
                pytest.fail("the management API did not answer")
        stop.set()
        final = await asyncio.wait_for(task, 10)
        assert final.success

    asyncio.run(main())


def test_run_once(tmp_path: Path) -> None:
    _init(tmp_path / "cs")
    status = asyncio.run(srv.run(tmp_path / "cs", once=True))
    assert status.success
    assert (tmp_path / "cs" / "public" / "V6" / "internalconf").is_file()


# --- management API routes of the distribution side ----------------------------------------------


def test_management_api_sources_keys_and_anchors(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from crossroad.central.api import create_app
    from crossroad.central.registry import Role

    _init(tmp_path / "cs")
    with srv.CentralState.open(tmp_path / "cs") as state:
        _, officer = state.registry.create_api_key("officer", [Role.SECURITY_OFFICER])
        _, observer = state.registry.create_api_key("observer", [Role.OBSERVER])
        assert srv.generate_once(state).success
        app = create_app(state.engine, config=state.config)
        h_off = {"Authorization": f"X-Road-ApiKey token={officer}"}
        h_obs = {"Authorization": f"X-Road-ApiKey token={observer}"}
        with TestClient(app) as client:
            base = "/api/v1/configuration-sources"
            source = client.get(f"{base}/INTERNAL", headers=h_obs).json()
            assert source["download_url"] == "http://127.0.0.1:8080/internalconf"
            assert [k["active"] for k in source["signing_keys"]] == [True]
            download = client.get(f"{base}/internal/anchor/download", headers=h_obs)
            assert download.headers["content-type"] == "application/xml"
            assert anchor_hash(download.content) == source["anchor"]["hash"]
            assert client.get(f"{base}/internal/anchor", headers=h_obs).json() == source["anchor"]
            url = client.get(f"{base}/EXTERNAL/download-url", headers=h_obs).json()
            assert url == {"url": "http://127.0.0.1:8080/externalconf"}
            assert client.get(f"{base}/middle/anchor", headers=h_obs).status_code == 400
            assert client.get(f"{base}/internal/anchor").status_code == 401

            body = {"key_type": "ec-p256"}
            denied = client.post(f"{base}/internal/signing-keys", json=body, headers=h_obs)
            assert denied.status_code == 403
            added = client.post(f"{base}/internal/signing-keys", json=body, headers=h_off)
            assert added.status_code == 201, added.text
            key = added.json()
            assert key["active"] is False
            assert key["subject"] == "CN=internalSigningKey"
            listed = client.get(f"{base}/internal/signing-keys", headers=h_obs).json()
            assert [k["key_id"] for k in listed][1] == key["key_id"]
            rotated = client.get(f"{base}/internal/anchor", headers=h_obs).json()
            assert rotated["hash"] != source["anchor"]["hash"]
            again = client.put(f"{base}/internal/anchor/re-create", headers=h_off).json()
            assert again["hash"] != rotated["hash"]  # a new generatedAt, a new hash

            old_id = source["signing_keys"][0]["key_id"]
            busy = client.delete(f"/api/v1/signing-keys/{old_id}", headers=h_off)
            assert busy.status_code == 409
            assert busy.json()["error"]["code"] == Code.SIGNING_KEY_ACTION_NOT_POSSIBLE
            active = client.put(f"/api/v1/signing-keys/{key['key_id']}/activate", headers=h_off)
            assert active.json()["active"] is True
            assert client.delete(f"/api/v1/signing-keys/{old_id}", headers=h_off).status_code == 204
            missing = client.put(f"/api/v1/signing-keys/{old_id}/activate", headers=h_off)
            assert missing.status_code == 404

            status = client.get("/api/v1/generation-status", headers=h_obs).json()
            assert status["success"] is True
            assert status["versions"] == [2, 3, 4, 5, 6]
        unconfigured = create_app(state.engine, require_api_key=False)
        with TestClient(unconfigured) as client:
            failed = client.get("/api/v1/generation-status")
            assert failed.status_code == 500
            assert failed.json()["error"]["code"] == Code.INTERNAL_ERROR


def test_init_settings_and_a_failed_init_can_be_repeated(tmp_path: Path) -> None:
    with pytest.raises(XRoadError) as err:
        _init(tmp_path / "cs", conf_expire_interval_seconds=30)
    assert err.value.code == Code.INVALID_SYSTEM_PARAMETER
    assert not (tmp_path / "cs" / "central.toml").exists()
    created = _init(tmp_path / "cs", conf_expire_interval_seconds=900)
    assert created.config.conf_expire_interval_seconds == 900
    with srv.CentralState.open(tmp_path / "cs") as state:
        assert len(state.registry.signing_keys()) == 2
        status = srv.generate_once(state, T0)
        assert status.expires == T0 + dt.timedelta(seconds=900)
        directory = SignedDirectory.parse(_directory(state, 2))
        assert directory.expires == T0 + dt.timedelta(seconds=900)
