"""The configuration proxy: mirror cycles, re-signing, source rewriting, serving, key rotation
(its own and the upstream's), upstream failure and clean-up."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from upstream import Upstream, der, free_port, self_signed

from crossroad.confproxy import config as cp
from crossroad.confproxy.mirror import Mirror, referenced_generations
from crossroad.confproxy.server import proxy_app
from crossroad.errors import XRoadError
from crossroad.globalconf.client import ConfigurationClient
from crossroad.globalconf.model import Member, MemberClass
from crossroad.globalconf.privateparams import parse_anchor
from crossroad.globalconf.sharedparams import parse_shared_parameters
from crossroad.globalconf.signed import SignedDirectory
from crossroad.identifiers import ClientId
from crossroad.testing.clock import FrozenClock
from crossroad.testing.pki import rsa_key

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


class Proxy:
    """A proxy directory with one source, its mirror and its HTTP server."""

    def __init__(self, tmp_path: Path, upstream: Upstream, **kw: Any) -> None:
        self.port = free_port()
        self.dir = tmp_path / "proxy"
        config = cp.init_proxy(self.dir, "PROXY1", f"127.0.0.1:{self.port}", **kw)
        cp.add_source(config, upstream.anchor_file(tmp_path).read_bytes())
        self.clock = FrozenClock(NOW)
        self.mirror = Mirror(self.dir, clock=self.clock)
        self.runner: web.AppRunner | None = None

    @property
    def config(self) -> cp.ProxyConfig:
        return cp.ProxyConfig.load(self.dir)

    def anchor(self) -> Any:
        return parse_anchor(cp.proxy_anchor(self.config))

    def client(self, directory: Path, **kw: Any) -> ConfigurationClient:
        kw.setdefault("clock", self.clock)
        return ConfigurationClient(self.anchor(), directory, **kw)

    async def start(self) -> None:
        self.runner = web.AppRunner(proxy_app(self.config.public_dir()))
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def run(scenario: Callable[[], Awaitable[Any]], upstream: Upstream, proxy: Proxy) -> Any:
    async def main() -> Any:
        await upstream.start()
        await proxy.start()
        try:
            return await scenario()
        finally:
            await proxy.stop()
            await upstream.stop()

    return asyncio.run(main())


@pytest.fixture
def upstream() -> Upstream:
    source = Upstream()
    source.publish(NOW)
    return source


def test_a_cycle_publishes_every_version_re_signed(tmp_path: Path, upstream: Upstream) -> None:
    proxy = Proxy(tmp_path, upstream, validity_interval_seconds=300)

    async def scenario() -> None:
        outcomes = await proxy.mirror.cycle()
        assert [o.ok for o in outcomes] == [True]
        assert [v.version for v in outcomes[0].versions if v.ok] == [6, 5, 4, 3, 2]

    run(scenario, upstream, proxy)
    config = proxy.config
    public = config.public_dir("DEV")
    proxy_certs = cp.verification_certs(config)
    for version in (2, 3, 4, 5, 6):
        directory = SignedDirectory.parse((public / f"conf-v{version}").read_bytes())
        directory.verify(proxy_certs, NOW)
        assert directory.version == version
        # the proxy's validity, since the source granted more (600 s)
        assert directory.expires == NOW + dt.timedelta(seconds=300)
        parts = {p.content_identifier: p for p in directory.parts}
        assert set(parts) == {"PRIVATE-PARAMETERS", "SHARED-PARAMETERS"}
        for part in parts.values():
            assert part.instance == "DEV"
            assert part.location.startswith(f"/DEV/{NOW:%Y%m%d%H%M%S}")
            stored = public / part.location.split("/", 2)[2]
            assert part.matches(stored.read_bytes())
        private = (public / parts["PRIVATE-PARAMETERS"].location.split("/", 2)[2]).read_bytes()
        assert private in upstream.files.values()  # carried unchanged
        shared_bytes = (public / parts["SHARED-PARAMETERS"].location.split("/", 2)[2]).read_bytes()
        shared = parse_shared_parameters(shared_bytes)
        if version == 2:
            assert shared_bytes in upstream.files.values()
        else:  # V3+: the proxy is the only source, with every proxy key
            assert len(shared.sources) == 1
            assert shared.sources[0].address == f"127.0.0.1:{proxy.port}"
            assert shared.sources[0].internal_verification_certs == proxy_certs
            assert shared.sources[0].external_verification_certs == proxy_certs
    assert referenced_generations(public) == {f"{NOW:%Y%m%d%H%M%S}" + f"{0:09d}"}


def test_expiry_never_exceeds_the_source(tmp_path: Path, upstream: Upstream) -> None:
    upstream.expires_in = 100
    upstream.publish(NOW)
    proxy = Proxy(tmp_path, upstream)
    run(proxy.mirror.cycle, upstream, proxy)
    directory = SignedDirectory.parse((proxy.config.public_dir("DEV") / "conf-v6").read_bytes())
    assert directory.expires == NOW + dt.timedelta(seconds=100)


def test_a_client_downloads_through_the_proxy(tmp_path: Path, upstream: Upstream) -> None:
    proxy = Proxy(tmp_path, upstream)
    client = proxy.client(tmp_path / "client")

    async def scenario() -> None:
        assert all(o.ok for o in await proxy.mirror.cycle())
        result = await client.update_once()
        assert result.ok, result.error
        assert result.version == 6
        assert result.location == f"http://127.0.0.1:{proxy.port}/DEV/conf?version=6"
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{proxy.port}"
            async with http.get(f"{base}/DEV/conf") as response:
                assert response.status == 200
                body = await response.read()
                assert SignedDirectory.parse(body).version == 2  # no version: V2
            for path in (
                "/DEV/conf?version=7",
                "/DEV/conf?version=x",
                "/NOPE/conf",
                "/DEV/../confproxy.json",
                "/DEV/%2e%2e/conf-v2",
                "/DEV/20260101000000000000000/V6/../../conf-v6",
                "/DEV/20260101000000000000000/V6/DEV/..",
            ):
                async with http.get(base + path) as response:
                    assert response.status == 404, path

    run(scenario, upstream, proxy)
    snapshot = client.snapshot
    assert snapshot is not None
    assert snapshot.member_name(ClientId("DEV", "COM", "1234")) == "First member"
    assert client.is_valid(NOW)


def test_proxy_key_rotation_keeps_clients_trusting(tmp_path: Path, upstream: Upstream) -> None:
    proxy = Proxy(tmp_path, upstream)
    client = proxy.client(tmp_path / "client")  # holds the anchor with the first key only

    async def scenario() -> None:
        await proxy.mirror.cycle()
        assert (await client.update_once()).ok
        _, record = cp.add_key(proxy.config, "ec-p256", None)
        assert proxy.config.active_key != record.key_id
        await proxy.mirror.cycle()  # announces the new key in the served shared parameters
        assert (await client.update_once()).ok
        cp.activate_key(proxy.config, record.key_id)
        await proxy.mirror.cycle()
        directory = SignedDirectory.parse((proxy.config.public_dir("DEV") / "conf-v6").read_bytes())
        signer = directory.verify(cp.verification_certs(proxy.config), NOW)
        assert der(signer) == der(cp.key_certificate(proxy.config, record.key_id))
        result = await client.update_once()
        assert result.ok, result.error
        # a client that never saw the announcement needs the re-exported anchor
        late = ConfigurationClient(client.anchor, tmp_path / "late", clock=proxy.clock)
        assert (await late.update_once()).code == "global_conf_missing_verification_cert"
        fresh = proxy.client(tmp_path / "fresh")
        assert (await fresh.update_once()).ok

    run(scenario, upstream, proxy)


def test_upstream_key_rotation_reaches_every_version(tmp_path: Path, upstream: Upstream) -> None:
    proxy = Proxy(tmp_path, upstream)
    new_key = rsa_key(42)
    new_cert = self_signed(new_key, "internalSigningKey")

    async def scenario() -> None:
        assert all(o.ok for o in await proxy.mirror.cycle())
        upstream.announced = [der(new_cert)]
        upstream.publish(NOW)
        assert all(o.ok for o in await proxy.mirror.cycle())
        upstream.publish(NOW, key=new_key, cert=new_cert)
        outcomes = await proxy.mirror.cycle()
        # V2 has no source list of its own; it borrows what V3+ announced
        assert [(v.version, v.ok) for v in outcomes[0].versions] == [
            (6, True),
            (5, True),
            (4, True),
            (3, True),
            (2, True),
        ]

    run(scenario, upstream, proxy)


def test_upstream_failure_publishes_nothing_new(tmp_path: Path, upstream: Upstream) -> None:
    proxy = Proxy(tmp_path, upstream)
    public = proxy.config.public_dir("DEV")

    async def scenario() -> None:
        await proxy.mirror.cycle()
        before = {p.name: p.read_bytes() for p in public.glob("conf-v*")}
        await upstream.stop()
        proxy.clock.advance(30)
        outcomes = await proxy.mirror.cycle()
        assert not outcomes[0].ok
        assert {v.error.code for v in outcomes[0].versions if v.error} == {
            "global_conf_download_url_connection_failure"
        }
        assert {p.name: p.read_bytes() for p in public.glob("conf-v*")} == before
        await upstream.start()

    run(scenario, upstream, proxy)


def test_old_generations_are_purged(tmp_path: Path, upstream: Upstream) -> None:
    proxy = Proxy(tmp_path, upstream, validity_interval_seconds=60)
    public = proxy.config.public_dir("DEV")

    async def scenario() -> None:
        await proxy.mirror.cycle()
        first = {p.name for p in public.iterdir() if p.is_dir()}
        for _ in range(3):
            proxy.clock.advance(40)
            upstream.publish(proxy.clock.now())
            await proxy.mirror.cycle()
        remaining = {p.name for p in public.iterdir() if p.is_dir()}
        assert not first & remaining
        assert referenced_generations(public) <= remaining
        assert len(remaining) == 2  # the current one and one younger than the validity

    run(scenario, upstream, proxy)


def test_several_sources(tmp_path: Path, upstream: Upstream) -> None:
    proxy = Proxy(tmp_path, upstream)
    other = Upstream("OTHER")
    other.members = [Member(MemberClass("GOV", "Government"), "1", "Gov")]
    other.publish(NOW)
    cp.add_source(proxy.config, other.anchor_file(tmp_path).read_bytes(), name="mirror-2")

    async def scenario() -> None:
        await other.start()
        try:
            outcomes = await proxy.mirror.cycle()
        finally:
            await other.stop()
        assert [(o.source, o.ok) for o in outcomes] == [("DEV", True), ("mirror-2", True)]
        client = ConfigurationClient(
            parse_anchor(cp.proxy_anchor(proxy.config, "mirror-2")),
            tmp_path / "c2",
            clock=proxy.clock,
        )
        assert (await client.update_once()).ok
        assert client.snapshot is not None
        assert client.snapshot.instance == "OTHER"

    run(scenario, upstream, proxy)
    with pytest.raises(XRoadError, match="2 sources"):
        cp.proxy_anchor(proxy.config)
