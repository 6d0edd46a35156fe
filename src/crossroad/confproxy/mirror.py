"""One configuration proxy cycle: download every version of every source, re-sign, publish
(a shell; protocols.md §5.1, §5.2, §11.2).

For each source and each version (newest first) the configuration client downloads the source's
directory at that fixed version into ``download/<NAME>/V<n>``.  What it holds is then published
under ``public/<NAME>``: the content files are copied to a new generation folder
``<GEN>/V<n>/<INSTANCE>/<file>`` and a directory listing them, signed with the proxy's active key,
replaces ``conf-v<n>`` in one ``os.replace``.  The main instance's V3+ shared parameters get the
proxy's own ``source`` (its address and every proxy key's certificate), as NIIS does, so clients
follow the proxy's key rotation.

The re-signed directory expires with the proxy's validity interval, but never later than what the
source itself granted: a proxy must not extend a configuration's life.  When a download fails,
nothing new is published for that version and the previous directory simply expires.  Generation
folders no directory names any more are deleted once older than the validity interval (clients
fetch content right after the directory).

The V2 mirror cannot follow a rotation of the source's key from its own parameters (V2 has no
``source``); it borrows the certificates the newer versions' parameters announce.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from crossroad.clock import SYSTEM, Clock
from crossroad.confproxy.config import (
    ProxyConfig,
    Signer,
    SourceConfig,
    active_signer,
    load_source_anchor,
    verification_certs,
)
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.client import ConfigurationClient
from crossroad.globalconf.directory import INSTANCE_IDENTIFIER_FILE, METADATA_SUFFIX, Metadata
from crossroad.globalconf.model import ConfigurationSource
from crossroad.globalconf.sharedparams import parse_shared_parameters
from crossroad.globalconf.signed import (
    DirectoryEntry,
    SignedDirectory,
    build_signed_directory,
    directory_timestamp,
)

log = logging.getLogger(__name__)

SHARED_PARAMETERS = "SHARED-PARAMETERS"
_GENERATION = re.compile(r"\d{23}\Z")


@dataclass(frozen=True)
class VersionOutcome:
    version: int
    error: XRoadError | None = None
    expires: dt.datetime | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class SourceOutcome:
    """A source's cycle: published when at least one version was."""

    source: str
    versions: tuple[VersionOutcome, ...] = ()
    error: XRoadError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and any(v.ok for v in self.versions)


class Mirror:
    """Runs proxy cycles for the proxy in ``directory``; keeps one configuration client per
    source and version between cycles (they remember locations and hold the downloads)."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        clock: Clock = SYSTEM,
        passphrase: bytes | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
    ) -> None:
        self.directory = Path(directory)
        self.clock = clock
        self.passphrase = passphrase
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._clients: dict[tuple[str, int], tuple[bytes, ConfigurationClient]] = {}

    async def cycle(self) -> tuple[SourceOutcome, ...]:
        """Mirror every source once (settings re-read, so CLI changes apply)."""
        config = ProxyConfig.load(self.directory)
        try:
            signer = active_signer(config, self.passphrase)
        except XRoadError as exc:
            log.error("Configuration proxy %s cannot sign: %s", config.name, exc)
            return tuple(SourceOutcome(s.name, error=exc) for s in config.sources)
        now = self.clock.now()
        generation = directory_timestamp(now)
        outcomes = []
        for source in config.sources:
            outcomes.append(await self._mirror(config, source, signer, generation, now))
        purge(config, now)
        return tuple(outcomes)

    def _client(
        self, config: ProxyConfig, source: SourceConfig, version: int
    ) -> ConfigurationClient:
        anchor, raw = load_source_anchor(config, source.name)
        key = (source.name, version)
        held = self._clients.get(key)
        if held is not None and held[0] == raw:
            return held[1]
        client = ConfigurationClient(
            anchor,
            config.download_dir(source.name, version),
            clock=self.clock,
            version=version,
            allowed_federations=source.allowed_federations,
            extra_verification_certs=lambda: self._borrowed_certs(source.name, version),
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
        )
        self._clients[key] = (raw, client)
        return client

    def _borrowed_certs(self, source: str, version: int) -> list[bytes]:
        certs: list[bytes] = []
        for (name, other), (_, client) in self._clients.items():
            snapshot = client.snapshot
            if name != source or other == version or snapshot is None:
                continue
            for s in snapshot.own_shared.sources:
                certs.extend(s.internal_verification_certs + s.external_verification_certs)
        return certs

    async def _mirror(
        self,
        config: ProxyConfig,
        source: SourceConfig,
        signer: Signer,
        generation: str,
        now: dt.datetime,
    ) -> SourceOutcome:
        outcomes = []
        for version in config.versions:
            try:
                client = self._client(config, source, version)
                result = await client.update_once()
                if result.error is not None:
                    raise result.error
                root = client.store.current()
                if root is None:  # pragma: no cover - an update that succeeded wrote a tree
                    raise XRoadError(Code.INTERNAL_ERROR, "Nothing downloaded")
                expires = publish_version(config, source, version, root, signer, generation, now)
                outcomes.append(VersionOutcome(version, expires=expires))
            except XRoadError as exc:
                log.warning("%s version %d not mirrored: %s", source.name, version, exc)
                outcomes.append(VersionOutcome(version, error=exc))
        return SourceOutcome(source.name, tuple(outcomes))


# --- publication ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    entry: DirectoryEntry
    relative: str
    expires: dt.datetime | None


def _collect(
    config: ProxyConfig, source: SourceConfig, version: int, tree: Path, generation: str
) -> list[_File]:
    """Every stored part (with its metadata) of the downloaded tree, own instance first."""
    own = (tree / INSTANCE_IDENTIFIER_FILE).read_text(encoding="utf-8").strip()
    dirs = sorted((d for d in tree.iterdir() if d.is_dir()), key=lambda d: (d.name != own, d.name))
    found = []
    for directory in dirs:
        for path in sorted(directory.iterdir()):
            meta_path = path.with_name(path.name + METADATA_SUFFIX)
            if path.name.endswith(METADATA_SUFFIX) or not path.is_file() or not meta_path.is_file():
                continue
            meta = Metadata.parse(meta_path.read_bytes())
            if not meta.content_identifier:
                continue
            instance = meta.instance_identifier or directory.name
            data = path.read_bytes()
            if (
                meta.content_identifier == SHARED_PARAMETERS
                and meta.configuration_version > 2
                and instance == own
            ):
                data = _own_source(config, data, meta.configuration_version)
            relative = f"{generation}/V{version}/{directory.name}/{path.name}"
            entry = DirectoryEntry(
                meta.content_identifier, instance, f"/{source.name}/{relative}", data
            )
            found.append(_File(entry, relative, meta.expiration_date))
    return found


def _own_source(config: ProxyConfig, data: bytes, version: int) -> bytes:
    """The shared parameters with the proxy as their only ``source``.  Both internal and external
    certificate lists carry every proxy key (clients of either kind look in their own list)."""
    certs = verification_certs(config)
    shared = parse_shared_parameters(data)
    source = ConfigurationSource(config.served_address, certs, certs)
    return dataclasses.replace(shared, sources=(source,)).render(version)


def publish_version(
    config: ProxyConfig,
    source: SourceConfig,
    version: int,
    tree: Path,
    signer: Signer,
    generation: str,
    now: dt.datetime,
) -> dt.datetime:
    """Publish the downloaded ``tree`` as ``conf-v<version>``; returns its expiry."""
    try:
        files = _collect(config, source, version, tree, generation)
    except OSError as exc:
        raise XRoadError(Code.IO_ERROR, f"Cannot read the downloaded configuration: {exc}") from exc
    expires = now + dt.timedelta(seconds=config.validity_interval_seconds)
    granted = [f.expires for f in files if f.expires is not None]
    if granted:
        expires = min(expires, *granted)
    directory = build_signed_directory(
        [f.entry for f in files],
        expires=expires,
        version=version,
        signing_cert=signer.cert,
        sign=signer.sign,
        algorithm=signer.algorithm,
        hash_algorithm=config.hash_digest,
    )
    public = config.public_dir(source.name)
    target = public / generation / f"V{version}"
    staging = public / generation / f".V{version}.tmp"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        for f in files:
            path = staging / f.relative.split("/", 2)[2]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f.entry.data)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)  # the content is complete before the directory names it
        conf = public / f"conf-v{version}"
        tmp = public / f".conf-v{version}.tmp"
        tmp.write_bytes(directory)
        os.replace(tmp, conf)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise XRoadError(Code.IO_ERROR, f"Cannot publish {source.name} V{version}: {exc}") from exc
    return expires


def referenced_generations(public: Path) -> set[str]:
    """Generation folders named by the directories served now."""
    names: set[str] = set()
    for conf in public.glob("conf-v*"):
        with contextlib.suppress(OSError, XRoadError):
            for part in SignedDirectory.parse(conf.read_bytes()).parts:
                segments = part.location.split("/")
                if len(segments) > 2:
                    names.add(segments[2])
    return names


def purge(config: ProxyConfig, now: dt.datetime) -> None:
    """Delete generation folders that no directory names and that are older than the validity
    interval (a client may still fetch content named by a directory it just downloaded)."""
    keep_after = now - dt.timedelta(seconds=config.validity_interval_seconds)
    for source in config.sources:
        public = config.public_dir(source.name)
        if not public.is_dir():
            continue
        referenced = referenced_generations(public)
        for child in public.iterdir():
            if not child.is_dir() or not _GENERATION.match(child.name):
                continue
            if child.name in referenced:
                continue
            made = dt.datetime.strptime(child.name[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
            if made < keep_after:
                shutil.rmtree(child, ignore_errors=True)
