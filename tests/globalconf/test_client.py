"""The configuration client against in-process configuration sources (aiohttp on 127.0.0.1).

A :class:`Source` publishes signed directories for the versions it supports (built with
``build_signed_directory``) and serves the content files; tests change what it serves between
updates and check what the client keeps, stores and reports.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from crossroad.crypto import keys
from crossroad.crypto.algorithms import SHA512_WITH_RSA
from crossroad.crypto.certs import load_certificate
from crossroad.errors import XRoadError
from crossroad.globalconf.client import Backoff, ConfigurationClient, FederationFilter
from crossroad.globalconf.directory import load_directory
from crossroad.globalconf.model import (
    AnchorSource,
    ApprovedCAInfo,
    CaInfo,
    ConfigurationAnchor,
    ConfigurationSource,
    GlobalSettings,
    ManagementService,
    Member,
    MemberClass,
    PrivateParameters,
    SharedParameters,
)
from crossroad.globalconf.privateparams import render_private_parameters
from crossroad.globalconf.signed import DirectoryEntry, build_signed_directory
from crossroad.globalconf.store import escape_instance, part_file_name
from crossroad.identifiers import ClientId
from crossroad.testing.clock import FrozenClock
from crossroad.testing.pki import rsa_key

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
COM = MemberClass("COM", "Commercial")


def signing_cert(key: rsa.RSAPrivateKey, cn: str = "internalSigningKey") -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(dt.datetime(1970, 1, 1, tzinfo=dt.UTC))
        .not_valid_after(dt.datetime(2038, 1, 1, tzinfo=dt.UTC))
        .sign(key, hashes.SHA256())
    )


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(Encoding.DER)


def _signer(key: rsa.RSAPrivateKey) -> Callable[[bytes], bytes]:
    return lambda data: keys.sign(key, SHA512_WITH_RSA, data)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Source:
    """A configuration source (central server or partner) serving ``/<path>?version=N``."""

    def __init__(self, instance: str = "DEV", *, path: str = "internalconf", key_index: int = 30):
        self.instance = instance
        self.path = path
        self.key = rsa_key(key_index)
        self.cert = signing_cert(self.key)
        self.extra_source_certs: list[bytes] = []
        self.versions = {2, 3, 4, 5, 6}
        self.members = [Member(COM, "1234", "First member")]
        self.partners: list[ConfigurationAnchor] = []
        self.optional: dict[str, bytes] = {}
        self.expires_in = 600.0
        self.generation = 0
        self.directories: dict[int, bytes] = {}
        self.files: dict[str, bytes] = {}
        self.requests: list[str] = []
        self.drop: set[str] = set()  # content paths whose next download is cut off
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/{self.path}"

    def anchor(self) -> ConfigurationAnchor:
        return ConfigurationAnchor(self.instance, (AnchorSource(self.url, (der(self.cert),)),))

    def shared(self) -> SharedParameters:
        certs = (der(self.cert), *self.extra_source_certs)
        return SharedParameters(
            instance_identifier=self.instance,
            global_settings=GlobalSettings(600, (COM,)),
            sources=(ConfigurationSource(f"127.0.0.1:{self.port}", certs, certs),),
            approved_cas=(ApprovedCAInfo("CA", CaInfo(der(signing_cert(rsa_key(31)))), "p"),),
            members=tuple(self.members),
        )

    def private(self) -> PrivateParameters:
        provider = ClientId(self.instance, "COM", "1234", "MANAGEMENT")
        return PrivateParameters(
            instance_identifier=self.instance,
            management_service=ManagementService("https://cs:4001/managementservice/", provider),
            time_stamping_interval_seconds=60,
            configuration_anchors=tuple(self.partners),
        )

    def entries(self, version: int) -> list[DirectoryEntry]:
        loc = f"/V{version}/{self.generation:04d}"
        found = []
        if self.path == "internalconf":
            private = render_private_parameters(self.private(), 3 if version > 2 else 2)
            found.append(
                DirectoryEntry("PRIVATE-PARAMETERS", self.instance, f"{loc}/p.xml", private)
            )
        shared = self.shared().render(version)
        found.append(DirectoryEntry("SHARED-PARAMETERS", self.instance, f"{loc}/s.xml", shared))
        for i, (cid, data) in enumerate(self.optional.items()):
            found.append(DirectoryEntry(cid, self.instance, f"{loc}/opt{i}.xml", data))
        return found

    def publish(
        self,
        *,
        now: dt.datetime = NOW,
        key: rsa.RSAPrivateKey | None = None,
        cert: x509.Certificate | None = None,
        entries: Callable[[int], list[DirectoryEntry]] | None = None,
    ) -> None:
        self.generation += 1
        key = key or self.key
        for version in self.versions:
            listed = (entries or self.entries)(version)
            for entry in listed:
                self.files[entry.location] = entry.data
            self.directories[version] = build_signed_directory(
                listed,
                expires=now + dt.timedelta(seconds=self.expires_in),
                version=version,
                signing_cert=cert or self.cert,
                sign=_signer(key),
            )

    async def _directory(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        version = int(request.query.get("version", "2"))
        if version not in self.directories:
            raise web.HTTPNotFound()
        return web.Response(body=self.directories[version])

    async def _file(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        data = self.files.get(request.path)
        if data is None:
            raise web.HTTPNotFound()
        if request.path in self.drop:
            self.drop.discard(request.path)
            response = web.StreamResponse(headers={"Content-Length": str(len(data))})
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            assert request.transport is not None
            request.transport.close()  # the connection dies mid-body
            return response
        return web.Response(body=data)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(f"/{self.path}", self._directory)
        app.router.add_get("/{tail:.+}", self._file)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def content_requests(self) -> list[str]:
        return [r for r in self.requests if not r.startswith(f"/{self.path}")]


def run(scenario: Callable[..., Awaitable[Any]], *sources: Source) -> Any:
    async def main() -> Any:
        for s in sources:
            await s.start()
        try:
            return await scenario()
        finally:
            for s in sources:
                await s.stop()

    return asyncio.run(main())


def client_for(source: Source, tmp_path: Path, **kw: Any) -> ConfigurationClient:
    kw.setdefault("clock", FrozenClock(NOW))
    return ConfigurationClient(source.anchor(), tmp_path / "globalconf", **kw)


def metadata(root: Path, instance: str, name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((root / instance / f"{name}.metadata").read_bytes())
    return loaded


# --- downloading and storing ---------------------------------------------------------------------


def test_first_download_writes_the_niis_layout(tmp_path: Path) -> None:
    source = Source()
    source.publish()
    client = client_for(source, tmp_path)
    result = run(client.update_once, source)
    assert result.ok, result.error
    assert result.version == 6
    assert result.location == source.url + "?version=6"
    assert result.expires == NOW + dt.timedelta(seconds=600)
    root = tmp_path / "globalconf"
    assert root.is_symlink()
    assert (root / "instance-identifier").read_text() == "DEV"
    assert sorted(p.name for p in (root / "DEV").iterdir()) == [
        "private-params.xml",
        "private-params.xml.metadata",
        "shared-params.xml",
        "shared-params.xml.metadata",
    ]
    meta = metadata(root, "DEV", "shared-params.xml")
    assert meta["contentIdentifier"] == "SHARED-PARAMETERS"
    assert meta["instanceIdentifier"] == "DEV"
    assert meta["configurationVersion"] == "6"
    assert dt.datetime.fromisoformat(meta["expirationDate"]) == NOW + dt.timedelta(seconds=600)
    # what the directory loader (and NIIS) reads back
    loaded = load_directory(root)
    assert loaded.instance == "DEV"
    assert loaded.shared_version() == 6
    assert loaded.private() == source.private()
    snapshot = client.snapshot
    assert snapshot is not None
    assert snapshot.member_name(ClientId("DEV", "COM", "1234")) == "First member"
    assert client.is_valid(NOW)
    assert client.negotiated_version == 6


@pytest.mark.parametrize(
    ("served", "expected", "probes"),
    [
        ({2, 3, 4, 5, 6}, 6, ["6"]),
        ({2, 3}, 3, ["6", "5", "4", "3"]),
        ({2}, 2, ["6", "5", "4", "3", "2"]),
    ],
)
def test_version_negotiation(
    tmp_path: Path, served: set[int], expected: int, probes: list[str]
) -> None:
    source = Source()
    source.versions = served
    source.publish()
    client = client_for(source, tmp_path)
    result = run(client.update_once, source)
    assert result.ok, result.error
    assert result.version == expected
    asked = [r.rsplit("=", 1)[1] for r in source.requests if r.startswith("/internalconf")]
    assert asked == probes
    assert metadata(tmp_path / "globalconf", "DEV", "shared-params.xml")[
        "configurationVersion"
    ] == str(expected)


def test_fixed_version_is_not_negotiated(tmp_path: Path) -> None:
    source = Source()
    source.publish()
    client = client_for(source, tmp_path, version=4)
    result = run(client.update_once, source)
    assert result.ok
    assert result.version == 4
    assert [r for r in source.requests if r.startswith("/internalconf")] == [
        "/internalconf?version=4"
    ]
    source.versions = {2, 3, 4}  # a fixed version that disappears is a failure, not a fallback
    source.directories = {}
    source.publish()
    client5 = client_for(source, tmp_path / "b", version=5)
    failed = run(client5.update_once, source)
    assert failed.code == "global_conf_download_url_connection_failure"


def test_only_changed_files_are_downloaded(tmp_path: Path) -> None:
    source = Source()
    source.publish()
    client = client_for(source, tmp_path)

    async def scenario() -> None:
        first = await client.update_once()
        assert first.ok
        assert sorted(first.downloaded) == ["DEV/private-params.xml", "DEV/shared-params.xml"]
        source.requests.clear()
        source.members.append(Member(COM, "5678", "Second member"))
        source.publish(now=NOW + dt.timedelta(seconds=60))
        client.clock = FrozenClock(NOW + dt.timedelta(seconds=60))
        second = await client.update_once()
        assert second.ok, second.error
        assert second.downloaded == ("DEV/shared-params.xml",)
        assert second.kept == ("DEV/private-params.xml",)
        assert [r.rsplit("/", 1)[1] for r in source.content_requests()] == ["s.xml"]

    run(scenario, source)
    root = tmp_path / "globalconf"
    # the kept file's metadata carries the new expiry
    meta = metadata(root, "DEV", "private-params.xml")
    assert dt.datetime.fromisoformat(meta["expirationDate"]) == NOW + dt.timedelta(seconds=660)
    snapshot = client.snapshot
    assert snapshot is not None
    assert snapshot.member_name(ClientId("DEV", "COM", "5678")) == "Second member"
    # only the current and the previous generation are kept
    generations = [p for p in root.parent.glob(".globalconf.generations/gen-*")]
    assert len(generations) == 2


def _kept(client: ConfigurationClient, root: Path, before: dict[str, bytes]) -> None:
    after = {p.name: p.read_bytes() for p in (root / "DEV").iterdir()}
    assert after == before
    assert client.is_valid(NOW)


def _failing_update(
    tmp_path: Path, source: Source, change: Callable[[], None], code: str
) -> ConfigurationClient:
    client = client_for(source, tmp_path)
    root = tmp_path / "globalconf"

    async def scenario() -> None:
        assert (await client.update_once()).ok
        snapshot = client.snapshot
        before = {p.name: p.read_bytes() for p in (root / "DEV").iterdir()}
        change()
        result = await client.update_once()
        assert not result.ok
        assert result.code == code, result.error
        assert client.snapshot is snapshot
        _kept(client, root, before)
        assert client.failures == 1

    run(scenario, source)
    return client


def test_hash_mismatch_keeps_previous_configuration(tmp_path: Path) -> None:
    source = Source()
    source.publish()

    def tamper() -> None:
        source.members.append(Member(COM, "9", "Nine"))
        source.publish()
        for location in source.files:
            if location.endswith(f"{source.generation:04d}/s.xml"):
                source.files[location] = source.files[location].replace(b"Nine", b"Evil")

    _failing_update(tmp_path, source, tamper, "global_conf_part_downloaded_file_integrity_failure")


def test_tampered_signature_keeps_previous_configuration(tmp_path: Path) -> None:
    source = Source()
    source.publish()

    def tamper() -> None:
        source.publish()
        data = source.directories[6]
        source.directories[6] = data.replace(b"Version: 6", b"Version: 7")

    _failing_update(tmp_path, source, tamper, "global_conf_signature_verification_failure")


def test_unknown_signing_key_is_refused(tmp_path: Path) -> None:
    source = Source()
    source.publish()
    other = rsa_key(33)
    _failing_update(
        tmp_path,
        source,
        lambda: source.publish(key=other, cert=signing_cert(other)),
        "global_conf_missing_verification_cert",
    )


def test_expired_directory_is_refused_and_reported(tmp_path: Path) -> None:
    source = Source()
    source.publish()
    client = _failing_update(
        tmp_path,
        source,
        lambda: source.publish(now=NOW - dt.timedelta(seconds=601)),
        "global_conf_outdated",
    )
    # the configuration held stays in force until its own expiry, then it is outdated
    assert client.is_valid(NOW + dt.timedelta(seconds=600))
    with pytest.raises(XRoadError) as info:
        client.check_valid(NOW + dt.timedelta(seconds=601))
    assert info.value.code == "global_conf_outdated"


def test_part_of_another_instance_is_refused(tmp_path: Path) -> None:
    source = Source()
    source.publish()

    def relabel() -> None:
        other = Source("OTHER")
        source.publish(
            entries=lambda v: [
                DirectoryEntry(e.content_identifier, "DEV", e.location, e.data)
                for e in other.entries(v)
            ]
        )

    _failing_update(tmp_path, source, relabel, "global_conf_part_invalid_instance_identifier")


def test_directory_without_own_shared_parameters_is_refused(tmp_path: Path) -> None:
    source = Source()
    source.publish()
    _failing_update(
        tmp_path,
        source,
        lambda: source.publish(entries=lambda v: source.entries(v)[:1]),
        "malformed_globalconf",
    )


def test_malformed_parameters_are_refused(tmp_path: Path) -> None:
    source = Source()
    source.publish()

    def broken() -> None:
        source.publish(
            entries=lambda v: [
                *source.entries(v)[:1],
                DirectoryEntry("SHARED-PARAMETERS", "DEV", "/bad/s.xml", b"<not xml"),
            ]
        )

    _failing_update(tmp_path, source, broken, "malformed_globalconf")


def test_foreign_content_location_is_refused(tmp_path: Path) -> None:
    source = Source()
    source.publish()

    def foreign() -> None:
        entries = source.entries(6)
        evil = [DirectoryEntry(e[0], e[1], "http://evil.example" + e[2], e[3]) for e in entries]
        source.publish(entries=lambda v: evil)

    _failing_update(tmp_path, source, foreign, "global_conf_part_invalid_content_location")


def test_unknown_content_identifiers_are_stored(tmp_path: Path) -> None:
    source = Source()
    source.optional = {
        "FOO": b"foo content",
        "FETCHINTERVAL": b"<tns:conf xmlns:tns='http://x-road.eu/xsd/xroad.xsd'>"
        b"<ocspFetchInterval>77</ocspFetchInterval></tns:conf>",
    }
    source.publish()
    client = client_for(source, tmp_path)
    result = run(client.update_once, source)
    assert result.ok, result.error
    root = tmp_path / "globalconf"
    assert (root / "DEV" / "opt0.xml").read_bytes() == b"foo content"
    assert metadata(root, "DEV", "opt0.xml")["contentIdentifier"] == "FOO"
    snapshot = client.snapshot
    assert snapshot is not None
    assert snapshot.optional_parts["FOO"] == b"foo content"
    assert snapshot.ocsp_fetch_interval == 77
    # a client started later reads the same from disk
    again = client_for(source, tmp_path)
    assert again.snapshot is not None
    assert again.snapshot.ocsp_fetch_interval == 77
    assert again.snapshot.optional_parts["FOO"] == b"foo content"


# --- federation ----------------------------------------------------------------------------------


def test_federation_only_where_allowed(tmp_path: Path) -> None:
    partner = Source("EXT", path="externalconf", key_index=34)
    partner.publish()
    source = Source()
    source.partners = [partner.anchor()]
    source.publish()
    root = tmp_path / "globalconf"

    async def scenario() -> None:
        denied = client_for(source, tmp_path)
        result = await denied.update_once()
        assert result.ok
        assert result.federation == {}
        assert not (root / "EXT").exists()

        allowed = client_for(source, tmp_path, allowed_federations=["ext"])
        result = await allowed.update_once()
        assert result.ok
        assert result.federation == {"EXT": None}
        assert sorted(p.name for p in (root / "EXT").iterdir()) == [
            "shared-params.xml",
            "shared-params.xml.metadata",
        ]
        assert allowed.snapshot is not None
        assert allowed.snapshot.instances() == ("DEV", "EXT")

        # a partner that fails keeps its previous files; the update still succeeds
        await partner.stop()
        result = await allowed.update_once()
        assert result.ok
        assert result.federation["EXT"] is not None
        assert (root / "EXT" / "shared-params.xml").is_file()
        assert allowed.snapshot.instances() == ("DEV", "EXT")
        await partner.start()

        # no longer allowed: the partner's directory goes
        result = await client_for(
            source, tmp_path, allowed_federations=["none", "EXT"]
        ).update_once()
        assert result.ok
        assert not (root / "EXT").exists()

    run(scenario, source, partner)


def test_federation_filter() -> None:
    assert not FederationFilter().allows("EXT", "DEV")
    assert FederationFilter().allows("dev", "DEV")
    assert FederationFilter(["ALL"]).allows("EXT", "DEV")
    assert not FederationFilter(["all", "none"]).allows("EXT", "DEV")
    assert FederationFilter(["a", " Ext "]).allows("EXT", "DEV")
    assert not FederationFilter(["a"]).allows("EXT", "DEV")


# --- key rotation and locations ------------------------------------------------------------------


def test_key_rotation_announced_in_shared_parameters(tmp_path: Path) -> None:
    source = Source()
    new_key = rsa_key(35)
    new_cert = signing_cert(new_key)
    source.publish()
    client = client_for(source, tmp_path)
    v2 = client_for(source, tmp_path / "v2", version=2)

    async def scenario() -> None:
        assert (await client.update_once()).ok
        assert (await v2.update_once()).ok
        source.extra_source_certs = [der(new_cert)]  # keys add: announced, not yet signing
        source.publish()
        assert (await client.update_once()).ok
        source.publish(key=new_key, cert=new_cert)  # keys activate
        result = await client.update_once()
        assert result.ok, result.error
        # V2 parameters carry no sources: a V2-only client needs a new anchor
        assert (await v2.update_once()).code == "global_conf_missing_verification_cert"

    run(scenario, source)


def test_dead_location_falls_through_and_the_good_one_is_remembered(tmp_path: Path) -> None:
    source = Source()
    source.publish()
    dead = AnchorSource(f"http://127.0.0.1:{free_port()}/internalconf", (der(source.cert),))
    anchor = ConfigurationAnchor("DEV", (dead, source.anchor().sources[0]))
    client = ConfigurationClient(anchor, tmp_path / "gc", clock=FrozenClock(NOW))

    async def scenario() -> None:
        first = await client.update_once()
        assert first.ok, first.error
        assert first.location == source.url + "?version=6"
        source.requests.clear()
        assert (await client.update_once()).ok
        assert source.requests[0] == "/internalconf?version=6"

    run(scenario, source)


def test_all_locations_failing_reports_each(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/internalconf"
    anchor = ConfigurationAnchor("DEV", (AnchorSource(url, (b"x",)),))
    client = ConfigurationClient(anchor, tmp_path / "gc", connect_timeout=2)
    result = asyncio.run(client.update_once())
    assert result.code == "global_conf_download_url_connection_failure"
    assert [u for u, _ in result.failures] == [url]
    assert not client.is_valid()
    with pytest.raises(XRoadError) as info:
        client.check_valid()
    assert info.value.code == "global_conf_outdated"


# --- recovery and back-off -----------------------------------------------------------------------


def test_dropped_connection_recovers_on_the_next_attempt(tmp_path: Path) -> None:
    source = Source()
    source.publish()
    client = client_for(source, tmp_path)

    async def scenario() -> None:
        assert (await client.update_once()).ok
        source.members.append(Member(COM, "42", "Later"))
        source.publish()
        source.drop.add(f"/V6/{source.generation:04d}/s.xml")
        failed = await client.update_once()
        assert failed.code == "global_conf_part_download_failure", failed.error
        assert client.snapshot is not None
        assert client.snapshot.member_name(ClientId("DEV", "COM", "42")) is None
        recovered = await client.update_once()
        assert recovered.ok, recovered.error
        assert client.snapshot.member_name(ClientId("DEV", "COM", "42")) == "Later"
        assert client.failures == 0

    run(scenario, source)


def test_run_loop_backs_off_and_recovers(tmp_path: Path) -> None:
    source = Source()
    source.publish()
    client = client_for(
        source, tmp_path, interval=30, backoff=Backoff(initial=0.05, cap=0.2, jitter=0)
    )

    async def scenario() -> None:
        source.drop.add(f"/V6/{source.generation:04d}/s.xml")
        stop = asyncio.Event()
        task = asyncio.create_task(client.run(stop))
        for _ in range(100):
            await asyncio.sleep(0.05)
            if client.last_result is not None and client.last_result.ok:
                break
        stop.set()
        await asyncio.wait_for(task, 5)
        assert client.last_result is not None
        assert client.last_result.ok
        assert client.is_valid(NOW)

    run(scenario, source)


def test_backoff_schedule() -> None:
    backoff = Backoff()
    assert [backoff.delay(n) for n in range(8)] == [0, 5, 10, 20, 40, 60, 60, 60]
    assert Backoff(initial=1, factor=3, cap=100).delay(5) == 81
    assert backoff.delay(10**6) == 60
    for n in range(1, 10):
        assert backoff.delay(n) <= backoff.randomized(n) <= backoff.delay(n) * 1.1


# --- atomic swap ---------------------------------------------------------------------------------


def test_readers_never_see_a_mix_of_two_downloads(tmp_path: Path) -> None:
    source = Source()
    source.publish()
    clock = FrozenClock(NOW)
    client = client_for(source, tmp_path, clock=clock)
    root = tmp_path / "globalconf"
    seen: list[tuple[str, str]] = []
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            try:
                if not root.exists():
                    continue
                tree = root.resolve()  # a reader resolves the link once, then reads
                a = metadata(tree, "DEV", "private-params.xml")["expirationDate"]
                b = metadata(tree, "DEV", "shared-params.xml")["expirationDate"]
                seen.append((a, b))
            except BaseException as exc:
                errors.append(exc)

    async def scenario() -> None:
        assert (await client.update_once()).ok
        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for i in range(1, 25):
                source.publish(now=NOW + dt.timedelta(seconds=i))
                clock.advance(1)
                assert (await client.update_once()).ok
        finally:
            done.set()
            thread.join()

    run(scenario, source)
    assert not errors
    assert seen
    assert all(a == b for a, b in seen)


def test_a_plain_directory_is_taken_over(tmp_path: Path, vectors: Path) -> None:
    import shutil

    root = tmp_path / "globalconf"
    shutil.copytree(vectors / "globalconf" / "globalconf_good_v3", root)
    source = Source("EE")
    source.publish()
    client = client_for(source, tmp_path)
    snapshot = client.snapshot
    assert snapshot is not None
    assert snapshot.instance == "EE"
    result = run(client.update_once, source)
    assert result.ok, result.error
    assert root.is_symlink()
    assert not (root / "foo_v2").exists()  # federation partners not allowed by default
    assert load_directory(root).instances() == ("EE",)


# --- the NIIS vector --------------------------------------------------------------------------


def test_niis_test_conf_simple(tmp_path: Path, vectors: Path) -> None:
    base = vectors / "configuration-directory" / "client"
    body = (base / "test-conf-simple.txt").read_bytes()
    files = base / "test-conf-simple" / "EE"
    port = free_port()

    async def conf(request: web.Request) -> web.StreamResponse:
        if request.query.get("version") != "2":
            raise web.HTTPNotFound()
        return web.Response(body=body)

    async def content(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(files / request.match_info["name"])

    async def scenario() -> Any:
        app = web.Application()
        app.router.add_get("/conf", conf)
        app.router.add_get("/{name}", content)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        consumer = load_certificate((vectors / "certs/common-test/consumer.pem").read_bytes())
        anchor = ConfigurationAnchor(
            "EE", (AnchorSource(f"http://127.0.0.1:{port}/conf", (der(consumer),)),)
        )
        clock = FrozenClock(dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
        client = ConfigurationClient(anchor, tmp_path / "gc", clock=clock)
        try:
            return await client.update_once()
        finally:
            await runner.cleanup()

    result = asyncio.run(scenario())
    assert result.ok, result.error
    assert result.version == 2
    assert sorted(result.downloaded) == [
        "EE/foo.xml",
        "EE/private-params.xml",
        "EE/shared-params.xml",
    ]
    stored = tmp_path / "gc" / "EE"
    for name in ("foo.xml", "private-params.xml", "shared-params.xml"):
        assert (stored / name).read_bytes() == (files / name).read_bytes()
    assert json.loads((stored / "foo.xml.metadata").read_bytes())["contentIdentifier"] == "FOO"


# --- names on disk -------------------------------------------------------------------------------


def test_part_file_names() -> None:
    assert part_file_name("PRIVATE-PARAMETERS", "/V6/1/x.xml") == "private-params.xml"
    assert part_file_name("SHARED-PARAMETERS", "/V6/1/x.xml") == "shared-params.xml"
    assert part_file_name("FOO", "/V6/1/foo.xml") == "foo.xml"
    assert part_file_name("FOO", "/V6/1/foo.xml", "bar.xml") == "bar.xml"
    for bad in ("/", "", "/..", "/x/.", "/a/instance-identifier", "/a/b.xml.metadata"):
        with pytest.raises(XRoadError):
            part_file_name("FOO", bad)
    assert escape_instance("EE") == "EE"
    assert escape_instance("a b/c") == "a+b%2Fc"
    assert escape_instance("ä") == "%C3%A4"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20), st.text(max_size=40), st.one_of(st.none(), st.text(max_size=20)))
def test_names_never_leave_the_instance_directory(
    instance: str, location: str, hint: str | None
) -> None:
    codes: list[str] = []
    try:
        name = part_file_name("FOO", location, hint)
    except XRoadError as exc:
        codes.append(exc.code)
    else:
        assert "/" not in name
        assert name not in ("", ".", "..")
        assert os.sep not in name
        assert "\x00" not in name
    try:
        escaped = escape_instance(instance)
    except XRoadError as exc:
        codes.append(exc.code)
    else:
        assert "/" not in escaped
        assert escaped not in (".", "..")
    assert set(codes) <= {"malformed_globalconf"}


# --- crossroad configuration-client run ----------------------------------------------------------


def test_configuration_client_cli_once(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from crossroad.cli.confclient import register
    from crossroad.globalconf.privateparams import render_anchor

    app = typer.Typer()
    register(app)

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        result = CliRunner().invoke(app, ["configuration-client", "run", *args])
        assert "Traceback" not in result.output
        return result

    source = Source()
    source.publish(now=dt.datetime.now(dt.UTC))
    anchor = tmp_path / "anchor.xml"
    anchor.write_bytes(render_anchor(source.anchor()))
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(source.start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(source.stop())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    target = tmp_path / "gc"
    try:
        ok = invoke(str(target), "--anchor", str(anchor), "--once")
        assert ok.exit_code == 0, ok.output
        assert "updated from" in ok.output
        again = invoke(str(target), "--anchor", str(anchor), "--once", "--json")
        assert again.exit_code == 0, again.output
        report = json.loads(again.output)
        assert report["ok"] is True
        assert report["version"] == 6
        assert report["downloaded"] == []
        assert sorted(report["kept"]) == ["DEV/private-params.xml", "DEV/shared-params.xml"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
    down = invoke(str(target), "--anchor", str(anchor), "--once")
    assert down.exit_code == 1
    assert "error: global_conf_download_url_connection_failure:" in down.output
    assert load_directory(target).instance == "DEV"  # the previous configuration is kept
    bad = tmp_path / "bad.xml"
    bad.write_text("")
    refused = invoke(str(target), "--anchor", str(bad), "--once")
    assert refused.exit_code == 1
    assert "error: malformed_anchor:" in refused.output
