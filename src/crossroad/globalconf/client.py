"""The configuration client: download, verify, store and swap the global configuration (a shell;
protocols.md §5.1, §5.2, §5.7, §12.4).

One update (:meth:`ConfigurationClient.update_once`):

1. Locations: the anchor's download URLs (``https`` before ``http``), then the V3+ ``source``
   addresses of the shared parameters currently held (central server HA nodes, key rotation);
   the location that worked last time is tried first.
2. Version negotiation (§5.1): ``?version=6``, 5, 4, 3 — the first answer that is not 404 wins —
   then ``?version=2``.  The probe *is* the download, so negotiation costs only the 404s.
3. The signed directory is verified with the anchor's certificates plus the ``source``
   certificates of the held shared parameters (a rotated key is announced there one cycle before
   it signs), and refused once expired (``global_conf_outdated``).
4. Content files are downloaded only when their hash differs from the held file, and every file
   (downloaded or kept) must match its hash; the parameters are parsed and their instance checked
   before anything is written.
5. Federation (§5.7): partners listed in the private parameters' ``configurationAnchor`` entries
   are fetched (shared parameters only) when allowed (default: none); directories of other
   instances disappear.  A partner that fails keeps its previous files (they carry their own
   expiry).
6. A complete new tree is written and swapped in atomically (:mod:`.store`), and the immutable
   :class:`~crossroad.globalconf.snapshot.GlobalConfSnapshot` is replaced in one assignment.

Any failure leaves the previous configuration in force and is reported as a coded error in the
:class:`UpdateResult`.  Every update opens fresh connections and writes nothing until it has
succeeded, so nothing a broken download left behind can stick to the next attempt (the NIIS
client once stayed stuck until expiry after a dropped connection, issue #2849).
:meth:`ConfigurationClient.run` repeats updates every ``interval`` seconds and, after failures,
retries with capped exponential back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import random
import ssl
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import aiohttp
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.clock import SYSTEM, Clock
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import ConfigurationAnchor, PrivateParameters, SharedParameters
from crossroad.globalconf.privateparams import parse_private_parameters
from crossroad.globalconf.sharedparams import parse_shared_parameters
from crossroad.globalconf.signed import DirectoryPart, SignedDirectory, check_content
from crossroad.globalconf.snapshot import GlobalConfSnapshot, locations
from crossroad.globalconf.store import (
    CONTENT_ID_PRIVATE_PARAMETERS,
    CONTENT_ID_SHARED_PARAMETERS,
    ConfigurationStore,
    Generation,
    PartMetadata,
    load_snapshot,
    part_file_name,
)

__all__ = ["Backoff", "ConfigurationClient", "FederationFilter", "UpdateResult"]

log = logging.getLogger(__name__)

#: Versions probed, newest first; the last resort is requested without a probe (§5.1).
PROBED_VERSIONS = (6, 5, 4, 3)
FALLBACK_VERSION = 2
MAX_DIRECTORY_BYTES = 16 * 1024 * 1024
MAX_FILE_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Backoff:
    """Capped exponential back-off: ``initial * factor**(failures-1)``, at most ``cap`` seconds,
    with up to ``jitter`` (a fraction) added at random so that many clients do not retry in
    step after an outage of their central server."""

    initial: float = 5.0
    factor: float = 2.0
    cap: float = 60.0
    jitter: float = 0.1

    def delay(self, failures: int) -> float:
        """The delay before the next attempt after ``failures`` consecutive failures."""
        if failures <= 0:
            return 0.0
        return min(self.cap, self.initial * self.factor ** min(failures - 1, 64))

    def randomized(self, failures: int) -> float:
        base = self.delay(failures)
        return base + base * self.jitter * random.random()  # noqa: S311 (not security)


class FederationFilter:
    """``configuration-client.allowed-federations``: ``none`` (default), ``all``, or instance
    identifiers (case-insensitive).  ``none`` anywhere wins.  The own instance always passes."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        names = [a.strip() for a in allowed if a.strip()]
        lowered = {n.lower() for n in names}
        self.all = "all" in lowered and "none" not in lowered
        self.names = frozenset() if "none" in lowered else lowered - {"all"}

    def allows(self, instance: str, own: str) -> bool:
        if instance.lower() == own.lower():
            return True
        return self.all or instance.lower() in self.names


@dataclass(frozen=True)
class UpdateResult:
    """What one update did.  ``error`` is set exactly when ``ok`` is false; the previous
    configuration then stays in force."""

    ok: bool
    at: dt.datetime
    location: str | None = None
    version: int | None = None
    expires: dt.datetime | None = None
    signer: bytes | None = None  # DER of the certificate that verified the directory
    downloaded: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    error: XRoadError | None = None
    # every location that failed on the way (also when a later one succeeded)
    failures: tuple[tuple[str, XRoadError], ...] = ()
    federation: Mapping[str, XRoadError | None] = field(default_factory=dict)

    @property
    def code(self) -> str | None:
        return self.error.code if self.error is not None else None


@dataclass(frozen=True)
class _Part:
    """A verified content file, ready to be stored."""

    part: DirectoryPart
    instance: str
    name: str
    data: bytes
    existing: Path | None  # the held file with the same content, if any
    parsed: SharedParameters | PrivateParameters | None = None


@dataclass(frozen=True)
class _Download:
    url: str
    version: int
    expires: dt.datetime
    parts: tuple[_Part, ...]
    signer: bytes


def _with_version(url: str, version: int) -> str:
    scheme, netloc, path, query, fragment = urlsplit(url)
    params = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "version"]
    params.append(("version", str(version)))
    return urlunsplit((scheme, netloc, path, urlencode(params), fragment))


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


class ConfigurationClient:
    """Keeps the configuration in ``directory`` current with the source named by ``anchor``.

    ``version`` fixes the configuration version (a configuration proxy mirrors each version
    separately); by default it is negotiated.  ``extra_verification_certs`` supplies further
    trusted signing certificates at each update (the proxy lends its V2 mirror the ``source``
    certificates its V3+ mirrors hold, since V2 parameters carry none).
    """

    def __init__(
        self,
        anchor: ConfigurationAnchor,
        directory: str | Path,
        *,
        clock: Clock = SYSTEM,
        allowed_federations: Iterable[str] = (),
        version: int | None = None,
        interval: float = 60.0,
        backoff: Backoff | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | bool = True,
        extra_verification_certs: Callable[[], Iterable[bytes]] | None = None,
    ) -> None:
        self.anchor = anchor
        self.store = ConfigurationStore(directory)
        self.clock = clock
        self.federation = FederationFilter(allowed_federations)
        self.fixed_version = version
        self.interval = interval
        self.backoff = backoff or Backoff()
        self.timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self.ssl_context = ssl_context
        self.extra_verification_certs = extra_verification_certs
        self.negotiated_version: int | None = None
        self.last_result: UpdateResult | None = None
        self.failures = 0
        self._last_location: dict[str, str] = {}
        self._attempts: list[tuple[str, XRoadError]] = []
        self._lock = asyncio.Lock()
        self._snapshot: GlobalConfSnapshot | None = None
        self._snapshot_error: XRoadError | None = None
        self._loaded = False

    @property
    def directory(self) -> Path:
        return self.store.path

    @property
    def instance(self) -> str:
        return self.anchor.instance_identifier

    # -- the configuration in force ------------------------------------------------------------

    @property
    def snapshot(self) -> GlobalConfSnapshot | None:
        """The configuration in force (read from disk on first use), or None."""
        self._load_existing()
        return self._snapshot

    def _load_existing(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        root = self.store.current()
        if root is None:
            return
        try:
            self._snapshot = load_snapshot(root)
        except XRoadError as exc:
            self._snapshot_error = exc
            log.warning("Configuration held in %s is unusable: %s", root, exc)

    def check_valid(self, at: dt.datetime | None = None) -> None:
        """``global_conf_outdated`` unless the own instance's parameters are held and unexpired
        at ``at`` (default: now)."""
        snapshot = self.snapshot
        if snapshot is None:
            raise XRoadError(
                Code.GLOBAL_CONF_OUTDATED, f"No global configuration in {self.directory}"
            )
        if snapshot.instance != self.instance:
            raise XRoadError(
                Code.GLOBAL_CONF_OUTDATED,
                f"The configuration held is of instance {snapshot.instance}, not {self.instance}",
            )
        snapshot.check_valid(at or self.clock.now())

    def is_valid(self, at: dt.datetime | None = None) -> bool:
        try:
            self.check_valid(at)
        except XRoadError:
            return False
        return True

    # -- updating --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Update every ``interval`` seconds until ``stop`` is set; after a failure, retry
        after the back-off delay instead."""
        while not stop.is_set():
            result = await self.update_once()
            delay = self.interval if result.ok else self.backoff.randomized(self.failures)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)

    async def update_once(self) -> UpdateResult:
        """Download and swap in the configuration once.  Never raises (except cancellation):
        failures come back as the result's coded ``error``."""
        async with self._lock:
            now = self.clock.now()
            self._attempts = []
            try:
                result = await self._update(now)
            except XRoadError as exc:
                result = UpdateResult(ok=False, at=now, error=exc, failures=tuple(self._attempts))
            except Exception as exc:  # the loop must survive anything and try again
                log.exception("Unexpected failure while updating the global configuration")
                result = UpdateResult(
                    ok=False, at=now, error=XRoadError(Code.INTERNAL_ERROR, repr(exc))
                )
            self.failures = 0 if result.ok else self.failures + 1
            self.last_result = result
            if result.ok:
                log.info(
                    "Global configuration of %s updated from %s", self.instance, result.location
                )
            else:
                log.warning("Global configuration update failed: %s", result.error)
            return result

    async def _update(self, now: dt.datetime) -> UpdateResult:
        self._load_existing()
        held = self._snapshot
        own = self.instance
        connector = aiohttp.TCPConnector(ssl=self.ssl_context, limit=4)
        async with aiohttp.ClientSession(timeout=self.timeout, connector=connector) as http:
            main = await self._download_source(
                http, self.anchor, held.shared.get(own) if held else None, None, now
            )
            parts = [p for p in main.parts if self.federation.allows(p.instance, own)]
            shared, private = _parameters(parts, own)
            federation: dict[str, XRoadError | None] = {}
            federated: dict[str, _Download] = {}
            for partner in private.configuration_anchors if private else ():
                name = partner.instance_identifier
                if not self.federation.allows(name, own) or name in federated:
                    continue
                if name == own and shared is not None:
                    continue  # the own directory already brought the shared parameters
                held_shared = held.shared.get(name) if held else None
                try:
                    federated[name] = await self._download_source(
                        http, partner, held_shared, {CONTENT_ID_SHARED_PARAMETERS}, now
                    )
                    federation[name] = None
                except XRoadError as exc:
                    log.warning("Shared parameters of %s not updated: %s", name, exc)
                    federation[name] = exc
        return self._commit(now, main, parts, federated, federation)

    def _commit(
        self,
        now: dt.datetime,
        main: _Download,
        parts: list[_Part],
        federated: Mapping[str, _Download],
        federation: dict[str, XRoadError | None],
    ) -> UpdateResult:
        own = self.instance
        stored: list[tuple[_Part, _Download]] = [(p, main) for p in parts]
        taken = {(p.instance, p.name) for p in parts}
        for download in federated.values():
            for p in download.parts:
                if (p.instance, p.name) not in taken:
                    stored.append((p, download))
                    taken.add((p.instance, p.name))
        # A partner that failed this time keeps what is held (it carries its own expiry).
        present = {p.instance for p, _ in stored}
        held = self._snapshot
        kept = {
            name: (held.shared[name], held.expires_at(name))
            for name, error in federation.items()
            if error is not None and name not in present and held and name in held.shared
        }
        snapshot = _build_snapshot(own, stored, main.version, kept)
        with self.store.begin(own) as generation:
            for p, download in stored:
                _write(generation, p, download)
            for name in kept:
                generation.keep_instance(name)
            generation.commit()
        self._snapshot = snapshot
        self._snapshot_error = None
        self.negotiated_version = main.version
        return UpdateResult(
            ok=True,
            at=now,
            location=main.url,
            version=main.version,
            expires=snapshot.expires_at(),
            signer=main.signer,
            downloaded=tuple(f"{p.instance}/{p.name}" for p, _ in stored if p.existing is None),
            kept=tuple(f"{p.instance}/{p.name}" for p, _ in stored if p.existing is not None),
            federation=federation,
            failures=tuple(self._attempts),
        )

    # -- one source ---------------------------------------------------------------------------

    def _verification_certs(
        self, anchor: ConfigurationAnchor, held: SharedParameters | None
    ) -> list[bytes]:
        certs = [c for s in anchor.sources for c in s.verification_certs]
        urls = [s.download_url for s in anchor.sources]
        for location in locations(urls, held):
            certs.extend(location.verification_certs)
        if self.extra_verification_certs is not None:
            certs.extend(self.extra_verification_certs())
        return list(dict.fromkeys(certs))

    def _locations(self, anchor: ConfigurationAnchor, held: SharedParameters | None) -> list[str]:
        urls = [s.download_url for s in anchor.sources]
        ordered = sorted(urls, key=lambda u: not u.lower().startswith("https:"))
        ordered += [loc.download_url for loc in locations(urls, held)]
        ordered = list(dict.fromkeys(ordered))
        last = self._last_location.get(anchor.instance_identifier)
        if last in ordered:
            ordered.remove(last)
            ordered.insert(0, last)
        return ordered

    async def _download_source(
        self,
        http: aiohttp.ClientSession,
        anchor: ConfigurationAnchor,
        held: SharedParameters | None,
        only: set[str] | None,
        now: dt.datetime,
    ) -> _Download:
        certs = self._verification_certs(anchor, held)
        failures: list[tuple[str, XRoadError]] = []
        for url in self._locations(anchor, held):
            try:
                download = await self._download_location(http, url, certs, only, now)
            except XRoadError as exc:
                log.info("Download from %s failed: %s", url, exc)
                failures.append((url, exc))
                self._attempts.append((url, exc))
                continue
            self._last_location[anchor.instance_identifier] = url
            return download
        self._last_location.pop(anchor.instance_identifier, None)
        if not failures:
            raise XRoadError(
                Code.INVALID_DOWNLOAD_URL_FORMAT,
                f"No download location for instance {anchor.instance_identifier}",
            )
        # A source that answered with something wrong says more than one that did not answer.
        unreachable = (Code.GLOBAL_CONF_DOWNLOAD_URL_CONNECTION_FAILURE,)
        telling = next((e for _, e in failures if e.code not in unreachable), failures[0][1])
        tried = "; ".join(f"{url}: {exc}" for url, exc in failures)
        raise XRoadError(
            telling.code,
            f"Failed to download the configuration of {anchor.instance_identifier}"
            f" from any location ({tried})",
        )

    async def _download_location(
        self,
        http: aiohttp.ClientSession,
        url: str,
        certs: Sequence[bytes],
        only: set[str] | None,
        now: dt.datetime,
    ) -> _Download:
        versioned, body = await self._fetch_directory(http, url)
        directory = SignedDirectory.parse(body)
        signer = directory.verify(certs, now).public_bytes(Encoding.DER)
        version = directory.version or FALLBACK_VERSION
        parts: list[_Part] = []
        for part in directory.parts:
            if only is not None and part.content_identifier not in only:
                continue
            if not part.instance or not part.instance.strip():
                log.warning("Skipping configuration part %s without an instance", part.location)
                continue
            name = part_file_name(part.content_identifier, part.location, part.file_name)
            target = _content_url(versioned, part)
            existing = self.store.current_file(part.instance, name)
            data = _read_if_same(existing, part)
            if data is None:
                existing = None
                data = await _http_get(http, target, _PART)
            check_content(part, data)
            parts.append(_Part(part, part.instance, name, data, existing, _parse(part, data)))
        return _Download(versioned, version, directory.expires, tuple(parts), signer)

    async def _fetch_directory(self, http: aiohttp.ClientSession, url: str) -> tuple[str, bytes]:
        """Negotiate the version at ``url`` and return the versioned URL and the directory."""
        if any(k == "version" for k, _ in parse_qsl(urlsplit(url).query)):
            return url, await _http_get(http, url, _DIRECTORY)  # the URL names its version
        if self.fixed_version:
            versioned = _with_version(url, self.fixed_version)
            return versioned, await _http_get(http, versioned, _DIRECTORY)
        for version in PROBED_VERSIONS:
            versioned = _with_version(url, version)
            with contextlib.suppress(_NotFound):
                return versioned, await _http_get(http, versioned, _DIRECTORY)
        versioned = _with_version(url, FALLBACK_VERSION)
        return versioned, await _http_get(http, versioned, _DIRECTORY)


# --- helpers -------------------------------------------------------------------------------------

_DIRECTORY = (Code.GLOBAL_CONF_DOWNLOAD_URL_CONNECTION_FAILURE, MAX_DIRECTORY_BYTES)
_PART = (Code.GLOBAL_CONF_PART_DOWNLOAD_FAILURE, MAX_FILE_BYTES)


class _NotFound(XRoadError):
    """HTTP 404: during version negotiation, the next version is tried."""


async def _http_get(http: aiohttp.ClientSession, url: str, kind: tuple[str, int]) -> bytes:
    """GET ``url``: a directory or a content file (``kind``: the fault code and size limit)."""
    code, limit = kind
    try:
        async with http.get(url, allow_redirects=False) as response:
            if response.status == 404:
                raise _NotFound(code, f"{url} answered HTTP 404")
            if response.status != 200:
                raise XRoadError(code, f"{url} answered HTTP {response.status}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.content.iter_chunked(65536):
                size += len(chunk)
                if size > limit:
                    raise XRoadError(code, f"{url} is larger than {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
        raise XRoadError(code, f"Cannot download {url}: {exc or type(exc).__name__}") from exc


def _content_url(base: str, part: DirectoryPart) -> str:
    """Where a content file is fetched: its location resolved against the directory URL, which
    must stay on the directory's origin (NIIS refuses a foreign one)."""
    target = urljoin(base, part.location)
    if _origin(target) != _origin(base) or not urlsplit(target).hostname:
        raise XRoadError(
            Code.GLOBAL_CONF_PART_INVALID_CONTENT_LOCATION,
            f"Content location {part.location!r} resolves to a foreign origin ({target})",
        )
    return target


def _read_if_same(path: Path | None, part: DirectoryPart) -> bytes | None:
    if path is None:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return data if part.matches(data) else None


def _parse(part: DirectoryPart, data: bytes) -> SharedParameters | PrivateParameters | None:
    """Parse the parameters and check they belong to the instance the directory names
    (NIIS ``ContentHandler``); other parts are stored unread."""
    parsed: SharedParameters | PrivateParameters
    if part.content_identifier == CONTENT_ID_PRIVATE_PARAMETERS:
        parsed = parse_private_parameters(data)
    elif part.content_identifier == CONTENT_ID_SHARED_PARAMETERS:
        parsed = parse_shared_parameters(data)
    else:
        return None
    found = parsed.instance_identifier
    if part.instance and found != part.instance:
        raise XRoadError(
            Code.GLOBAL_CONF_PART_INVALID_INSTANCE_IDENTIFIER,
            f"Content part {part.content_identifier} has invalid instance identifier"
            f" (expected {part.instance}, but was {found})",
        )
    return parsed


def _parameters(
    parts: Sequence[_Part], own: str
) -> tuple[SharedParameters | None, PrivateParameters | None]:
    shared: SharedParameters | None = None
    private: PrivateParameters | None = None
    for p in parts:
        if p.instance != own:
            continue
        if isinstance(p.parsed, SharedParameters):
            shared = p.parsed
        elif isinstance(p.parsed, PrivateParameters):
            private = p.parsed
    return shared, private


def _build_snapshot(
    own: str,
    stored: Sequence[tuple[_Part, _Download]],
    version: int,
    kept: Mapping[str, tuple[SharedParameters, dt.datetime | None]],
) -> GlobalConfSnapshot:
    """The snapshot of what is about to be stored; a configuration that cannot be indexed is
    refused before it reaches the disk."""
    shared: dict[str, tuple[SharedParameters, dt.datetime | None]] = dict(kept)
    private: tuple[PrivateParameters, dt.datetime] | None = None
    optional: dict[str, bytes] = {}
    for p, download in stored:
        cid = p.part.content_identifier
        if isinstance(p.parsed, SharedParameters):
            shared[p.instance] = (p.parsed, download.expires)
        elif isinstance(p.parsed, PrivateParameters):
            if p.instance == own:
                private = (p.parsed, download.expires)
        elif p.instance == own and cid:
            optional[cid] = p.data
    if own not in shared:
        raise XRoadError(
            Code.MALFORMED_GLOBALCONF,
            f"The configuration holds no shared parameters for own instance {own}",
        )
    own_shared, own_expires = shared.pop(own)
    return GlobalConfSnapshot.build(
        own_shared,
        private[0] if private else None,
        federated=[params for params, _ in shared.values()],
        shared_expires=own_expires,
        private_expires=private[1] if private else None,
        federated_expires={
            params.instance_identifier: when for params, when in shared.values() if when is not None
        },
        version=version,
        optional_parts=optional,
    )


def _write(generation: Generation, p: _Part, download: _Download) -> None:
    metadata = PartMetadata(
        content_identifier=p.part.content_identifier,
        instance_identifier=p.instance,
        expiration_date=download.expires,
        configuration_version=download.version,
        content_location=p.part.location,
        content_file_name=p.part.file_name,
    )
    generation.write(p.instance, p.name, p.existing or p.data, metadata)
