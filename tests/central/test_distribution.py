"""Publication (layout, signatures, atomicity, clean-up), HTTP serving, and key rotation."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossroad.central import distribution as d
from crossroad.central import generation as g
from crossroad.central.keys import SigningKey, new_key_and_certificate
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import ConfigurationSource, SharedParameters
from crossroad.globalconf.privateparams import parse_private_parameters
from crossroad.globalconf.signed import SignedDirectory

from .test_generation import optional_parts, registry_values

if TYPE_CHECKING:
    from crossroad.testing.pki import TestPKI

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=dt.UTC)
EXPIRE = dt.timedelta(seconds=600)


def _key(source: str, key_type: str = "rsa2048") -> SigningKey:
    private, cert = new_key_and_certificate(source, key_type)
    return SigningKey.from_key(private, cert)


@pytest.fixture(scope="module")
def keys() -> dict[str, SigningKey]:
    return {
        "internal": _key("internal"),
        "external": _key("external", "ec-p256"),
        "internal2": _key("internal"),
    }


def _sources(*internal: SigningKey, external: SigningKey) -> tuple[ConfigurationSource, ...]:
    return (
        ConfigurationSource(
            "127.0.0.1:8080", tuple(k.cert_der for k in internal), (external.cert_der,)
        ),
    )


def _generated(
    pki: TestPKI, srcs: tuple[ConfigurationSource, ...], **changes: Any
) -> tuple[g.GeneratedVersion, ...]:
    shared, private, auth = registry_values(pki)
    shared = dataclasses.replace(shared, **changes)
    return g.generate_versions(shared, private, srcs, optional_parts(), auth_certs=auth)


def _publish(
    public: Path,
    generated: tuple[g.GeneratedVersion, ...],
    keys: dict[str, SigningKey],
    now: dt.datetime = T0,
    internal: str = "internal",
) -> d.Publication:
    return d.publish(
        public,
        generated,
        now=now,
        expires=now + EXPIRE,
        internal_key=keys[internal],
        external_key=keys["external"],
    )


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_layout_signatures_and_hashes(
    tmp_path: Path, pki: TestPKI, keys: dict[str, SigningKey]
) -> None:
    srcs = _sources(keys["internal"], external=keys["external"])
    publication = _publish(tmp_path, _generated(pki, srcs), keys)
    stamp = publication.timestamp
    assert stamp == "20260301120000123456000"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["V2", "V3", "V4", "V5", "V6"]
    assert d.published_versions(tmp_path) == (6, 5, 4, 3, 2)
    for version in range(2, 7):
        vdir = tmp_path / f"V{version}"
        assert sorted(p.name for p in vdir.iterdir()) == [stamp, "externalconf", "internalconf"]
        for source, cert, ids in (
            ("internalconf", keys["internal"].cert_der, None),
            ("externalconf", keys["external"].cert_der, ["SHARED-PARAMETERS"]),
        ):
            data = (vdir / source).read_bytes()
            assert data == publication.directory(version, source[:8])
            directory = SignedDirectory.parse(data)
            directory.verify([cert], T0)
            assert directory.version == version
            assert directory.expires == (T0 + EXPIRE).replace(microsecond=0)
            found = [p.content_identifier for p in directory.parts]
            assert found == (ids or [p.content_identifier for p in publication_parts(version)])
            for part in directory.parts:
                assert part.instance == "DEV"
                assert part.location.startswith(f"/V{version}/{stamp}/")
                content = (tmp_path / part.location.lstrip("/")).read_bytes()
                assert part.matches(content)
            # The other source's key does not verify it.
            other = keys["external"] if source == "internalconf" else keys["internal"]
            with pytest.raises(XRoadError) as err:
                directory.verify([other.cert_der], T0)
            assert err.value.code == Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT
    private = parse_private_parameters(
        (tmp_path / "V6" / stamp / "private-params.xml").read_bytes()
    )
    assert private.instance_identifier == "DEV"


def publication_parts(version: int) -> list[g.ConfigurationPart]:
    names = ["PRIVATE-PARAMETERS", "SHARED-PARAMETERS", "MONITORING", "FETCHINTERVAL", "NEXTUPDATE"]
    return [g.ConfigurationPart(n, "x", b"") for n in names]


def test_headers_are_those_of_the_niis_central_server(
    tmp_path: Path, pki: TestPKI, keys: dict[str, SigningKey], vectors: Path
) -> None:
    """Line by line, our directory has the shape of the real central server's output (the
    boundaries, hashes, dates and the part order aside)."""
    srcs = _sources(keys["internal"], external=keys["external"])
    shared, private, _ = registry_values(pki)
    generated = g.generate_versions(shared, private, srcs)
    _publish(tmp_path, generated, keys)

    def shape(data: bytes) -> list[str]:
        text = data.decode("ascii")
        assert "\r\n" in text
        assert "\n" not in text.replace("\r\n", "")
        boundaries = re.findall(r"boundary=(\w+)", text)
        for i, b in enumerate(boundaries):
            text = text.replace(b, f"B{i}")
        text = re.sub(r"[0-9]{23}", "TS", text)
        text = re.sub(r"Expire-date: \S+", "Expire-date: D", text)
        text = re.sub(r"instance='\w+'", "instance='I'", text)
        text = re.sub(r"(?m)^[A-Za-z0-9+/=]{20,}\r$", "B64\r", text)
        text = re.sub(r"hash: [A-Za-z0-9+/=]+;", "hash: H;", text)
        return text.split("\r\n")

    ours = shape((tmp_path / "V6" / "internalconf").read_bytes())
    theirs = shape(
        (vectors / "configuration-directory/system-test/public/V6/internalconf").read_bytes()
    )
    # NIIS lists the parts in hash-set order; ours are private, shared.  Compare as multisets of
    # part blocks plus the exact outer frame.
    assert ours[:8] == theirs[:8]
    assert sorted(ours) == sorted(theirs)
    ours_ext = shape((tmp_path / "V6" / "externalconf").read_bytes())
    theirs_ext = shape(
        (vectors / "configuration-directory/system-test/public/V6/externalconf").read_bytes()
    )
    # The external key here is EC (the NIIS one is RSA): only the algorithm line differs.
    assert [line for line in ours_ext if "Signature-Algorithm-Id" not in line] == [
        line for line in theirs_ext if "Signature-Algorithm-Id" not in line
    ]


def test_failure_while_building_leaves_the_previous_publication(
    tmp_path: Path, pki: TestPKI, keys: dict[str, SigningKey]
) -> None:
    srcs = _sources(keys["internal"], external=keys["external"])
    first = _generated(pki, srcs)
    _publish(tmp_path, first, keys)
    before = _snapshot(tmp_path)
    # V6 cannot be signed (an instance that cannot be written in a header): V2..V5 were fine.
    broken = (*first[:-1], dataclasses.replace(first[-1], instance_identifier="D'EV"))
    with pytest.raises(XRoadError):
        _publish(tmp_path, broken, keys, now=T0 + dt.timedelta(seconds=60))
    assert _snapshot(tmp_path) == before
    # A key that cannot sign fails the same way.
    bad_key = dataclasses.replace(keys["internal"], algorithm=keys["external"].algorithm)
    with pytest.raises(XRoadError) as err:
        d.publish(
            tmp_path,
            first,
            now=T0 + dt.timedelta(seconds=60),
            expires=T0,
            internal_key=bad_key,
            external_key=keys["external"],
        )
    assert err.value.code == Code.CANNOT_CREATE_SIGNATURE
    assert _snapshot(tmp_path) == before


def test_failure_while_writing_leaves_the_previous_publication(
    tmp_path: Path, pki: TestPKI, keys: dict[str, SigningKey]
) -> None:
    srcs = _sources(keys["internal"], external=keys["external"])
    _publish(tmp_path, _generated(pki, srcs), keys)
    before = _snapshot(tmp_path)
    later = T0 + dt.timedelta(seconds=60)
    # The V5 folder of the next generation cannot be created: V2..V4 were already written.
    blocker = tmp_path / "V5" / "20260301120100123456000"
    blocker.mkdir()
    with pytest.raises(XRoadError) as err:
        _publish(tmp_path, _generated(pki, srcs, global_groups=()), keys, now=later)
    assert err.value.code == Code.IO_ERROR
    blocker.rmdir()
    assert _snapshot(tmp_path) == before
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    assert sorted(p.name for p in (tmp_path / "V2").iterdir()) == [
        "20260301120000123456000",
        "externalconf",
        "internalconf",
    ]


def test_old_folders_are_deleted_after_the_expiry_interval(
    tmp_path: Path, pki: TestPKI, keys: dict[str, SigningKey]
) -> None:
    srcs = _sources(keys["internal"], external=keys["external"])
    generated = _generated(pki, srcs)
    stamps = []
    for seconds in (0, 300, 700):
        stamps.append(
            _publish(tmp_path, generated, keys, now=T0 + dt.timedelta(seconds=seconds)).timestamp
        )
    folders = sorted(p.name for p in (tmp_path / "V6").iterdir() if p.is_dir())
    assert folders == stamps[1:]  # the first is 700 s old; the second only 400 s
    # Leftovers of an interrupted run are removed too, once old.
    stale = tmp_path / "V6" / ".tmp-20260301115000000000000"
    stale.mkdir()
    (tmp_path / "V6" / "internalconf.tmp").write_bytes(b"partial")
    os.utime(tmp_path / "V6" / "internalconf.tmp", (0, 0))
    deleted = d.delete_old_folders(tmp_path, now=T0 + dt.timedelta(seconds=2000))
    names = {p.name for p in deleted}
    assert names >= {stale.name, "internalconf.tmp", stamps[1]}
    # The folder the served directory names is never deleted, however old.
    assert stamps[2] not in names
    assert (tmp_path / "V6" / stamps[2]).is_dir()
    assert (tmp_path / "V6" / "internalconf").is_file()


def test_nothing_to_publish(tmp_path: Path, keys: dict[str, SigningKey]) -> None:
    with pytest.raises(XRoadError) as err:
        _publish(tmp_path, (), keys)
    assert err.value.code == Code.INVALID_REQUEST


# --- key rotation -----------------------------------------------------------------------------


def _source_certs(directory_dir: Path, version: int) -> list[bytes]:
    """The internal verification certificates in the served V{version} shared parameters."""
    data = (directory_dir / f"V{version}" / "internalconf").read_bytes()
    part = SignedDirectory.parse(data).part("SHARED-PARAMETERS")
    assert part is not None
    shared = SharedParameters.parse((directory_dir / part.location.lstrip("/")).read_bytes())
    return list(shared.sources[0].internal_verification_certs)


def test_key_rotation_without_loss_of_trust(
    tmp_path: Path, pki: TestPKI, keys: dict[str, SigningKey]
) -> None:
    old, new, ext = keys["internal"], keys["internal2"], keys["external"]
    anchor_certs = [old.cert_der]  # what clients were given before the rotation

    # 1. The new key is added (inactive): it is listed, the old one still signs.
    _publish(tmp_path, _generated(pki, _sources(old, new, external=ext)), keys)
    for version in range(2, 7):
        SignedDirectory.parse((tmp_path / f"V{version}" / "internalconf").read_bytes()).verify(
            anchor_certs, T0
        )
    for version in range(3, 7):
        assert _source_certs(tmp_path, version) == [old.cert_der, new.cert_der]
    learned = _source_certs(tmp_path, 6)

    # 2. The new key is activated: directories are signed with it.  The old anchor alone does
    # not know it, but the certificate learned from the previous shared parameters does.
    later = T0 + dt.timedelta(seconds=60)
    _publish(tmp_path, _generated(pki, _sources(new, old, external=ext)), keys, later, "internal2")
    for version in range(3, 7):
        directory = SignedDirectory.parse((tmp_path / f"V{version}" / "internalconf").read_bytes())
        with pytest.raises(XRoadError) as err:
            directory.verify(anchor_certs, later)
        assert err.value.code == Code.GLOBAL_CONF_MISSING_VERIFICATION_CERT
        assert directory.verify(anchor_certs + learned, later)
        assert _source_certs(tmp_path, version) == [new.cert_der, old.cert_der]


# --- HTTP ----------------------------------------------------------------------------------------


def _serve(public: Path, check: Callable[[TestClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(d.distribution_app(public))) as client:
            await check(client)

    asyncio.run(main())


def test_http_version_negotiation_and_content(
    tmp_path: Path, pki: TestPKI, keys: dict[str, SigningKey]
) -> None:
    srcs = _sources(keys["internal"], external=keys["external"])
    publication = _publish(tmp_path, _generated(pki, srcs), keys)

    async def check(client: TestClient) -> None:
        for name in ("internalconf", "externalconf"):
            for version in (6, 5, 4, 3, 2):
                resp = await client.get(f"/{name}", params={"version": str(version)})
                assert resp.status == 200
                assert resp.headers["Content-Type"] == "application/octet-stream"
                assert await resp.read() == publication.directory(version, name[:8])
            resp = await client.get(f"/{name}")
            assert await resp.read() == publication.directory(2, name[:8])
            for bad in ("7", "1", "0", "abc", "-2", "6.0", "", "0006"):
                resp = await client.get(f"/{name}", params={"version": bad})
                assert resp.status == 404, bad
            resp = await client.get(f"/V6/{name}")
            assert await resp.read() == publication.directory(6, name[:8])
        directory = SignedDirectory.parse(publication.directory(6))
        for part in directory.parts:
            resp = await client.get(part.location)
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "application/octet-stream"
            assert part.matches(await resp.read())
        resp = await client.head("/internalconf")
        assert resp.status == 200
        resp = await client.post("/internalconf")
        assert resp.status == 405

    _serve(tmp_path, check)


def test_http_refuses_everything_else(
    tmp_path: Path, pki: TestPKI, keys: dict[str, SigningKey]
) -> None:
    srcs = _sources(keys["internal"], external=keys["external"])
    publication = _publish(tmp_path, _generated(pki, srcs), keys)
    (tmp_path.parent / "secret.txt").write_text("secret")
    (tmp_path / "V6" / publication.timestamp / ".hidden").write_text("hidden")
    stamp = publication.timestamp

    async def check(client: TestClient) -> None:
        for path in (
            "/",
            "/V6",
            "/V6/",
            "/anything",
            "/internalconf/x",
            f"/V6/{stamp}",
            f"/V6/{stamp}/",
            f"/V6/{stamp}/missing.xml",
            f"/V6/{stamp}/.hidden",
            f"/V6/{stamp}/..%2f..%2fsecret.txt",
            f"/V6/{stamp}/%2e%2e",
            "/V6/../../secret.txt",
            "/V6/%2e%2e/%2e%2e/secret.txt",
            "/V6/..%2f..%2fsecret.txt/x/y",
            f"/V6/{stamp}/..%5c..%5csecret.txt",
            f"/V7/{stamp}/shared-params.xml",
            "/V6/123/shared-params.xml",
            f"/V6/{stamp}.tmp/shared-params.xml",
            "/V6/internalconf.tmp",
            "/V06/internalconf",
            "/../secret.txt",
        ):
            resp = await client.get(path)
            assert resp.status == 404, path
            assert b"secret" not in await resp.read()

    _serve(tmp_path, check)


def test_http_without_publication(tmp_path: Path) -> None:
    async def check(client: TestClient) -> None:
        assert (await client.get("/internalconf")).status == 404
        assert (await client.get("/internalconf?version=6")).status == 404

    _serve(tmp_path / "missing", check)


_SEGMENT = st.text(
    alphabet=st.sampled_from(list("V0123456789.%2fe/\\abcinternalconf-_?=&#~ ")), max_size=30
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(paths=st.lists(st.lists(_SEGMENT, min_size=1, max_size=4), min_size=1, max_size=15))
def test_http_random_paths_never_fail_or_escape(
    tmp_path_factory: pytest.TempPathFactory, paths: list[list[str]]
) -> None:
    root = tmp_path_factory.mktemp("pub")
    (root / "V2").mkdir()
    (root / "V2" / "internalconf").write_bytes(b"directory")
    (root / "secret").write_bytes(b"secret")

    async def check(client: TestClient) -> None:
        for segments in paths:
            path = "/" + "/".join(segments).lstrip("/")
            try:
                resp = await client.get(path, allow_redirects=False)
            except ValueError:
                continue  # not a URL aiohttp's client will send
            assert resp.status in (200, 404, 405), (path, resp.status)
            body = await resp.read()
            assert b"secret" not in body
            if resp.status == 200:
                assert body == b"directory"

    _serve(root, check)
