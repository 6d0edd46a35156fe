"""The central server process: its state, the generation cycle, signing keys, anchors, and the
``run`` loop that generates, publishes and serves (a shell).

protocols.md §5.1–5.3 (what is published and served), §11.1 (generation every 60 s, all
versions or none, signing keys with one active per source, anchors regenerated when keys
change).

One generation cycle (:func:`generate_once`) reads the registry in one transaction (shared
parameters with SHA-256 and, for V2, SHA-1 ``authCertHash``; private parameters; signing keys;
optional parts; system parameters), generates every version from
``minimumGlobalConfigurationVersion`` to 6 (:mod:`.generation`), loads the active internal and
external keys, and publishes (:mod:`.distribution`).  It also refreshes the two source anchors,
so an anchor exported after a key change already lists the new key.  The outcome is written to
``STATE/generation-status.json`` for the management API and operators.

:func:`run` does that every ``generation_interval_seconds`` while serving the distribution app
on the configured address, and the management API (:mod:`crossroad.central.api`, when present)
with uvicorn, until SIGTERM or SIGINT.  Generation runs in a worker thread: it reads the
database and signs, neither of which belongs in the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib
import json
import logging
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web

from crossroad.central import anchor as anchors
from crossroad.central import distribution, generation
from crossroad.central.config import CentralConfig
from crossroad.central.keys import KeySource, SigningKey, create_key, delete_key_file
from crossroad.central.keys import load_signing_key as load_key_file
from crossroad.central.registry import Registry, SigningKeyRecord
from crossroad.clock import SYSTEM, Clock
from crossroad.crypto.algorithms import SHA1, SHA256, digest_algorithm
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import ConfigurationSource
from crossroad.identifiers import ClientId
from crossroad.storage.engine import create_engine, migrate

__all__ = [
    "CentralState",
    "GenerationStatus",
    "add_signing_key",
    "configuration_sources",
    "delete_signing_key",
    "export_anchor",
    "generate_once",
    "initialize",
    "read_status",
    "refresh_anchors",
    "run",
]

log = logging.getLogger(__name__)

STATUS_FILE = "generation-status.json"
CONF_EXPIRE = "confExpireIntervalSeconds"


@dataclass
class CentralState:
    """An opened state directory: its settings, database engine and registry."""

    config: CentralConfig
    engine: sa.Engine
    registry: Registry

    @classmethod
    def open(
        cls,
        state_dir: str | os.PathLike[str],
        *,
        actor: str = "cli",
        clock: Clock = SYSTEM,
        migrate_schema: bool = True,
    ) -> CentralState:
        config = CentralConfig.load(Path(state_dir))
        engine = create_engine(config.database_url)
        if migrate_schema:
            migrate(engine, "central")
        return cls(config, engine, Registry(engine, actor, clock=clock))

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> CentralState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def public_address(self) -> str:
        """``host[:port]`` clients download from (central server address + distribution port)."""
        address = self.registry.parameters().get("centralServerAddress")
        if not address:
            raise XRoadError(
                Code.CENTRAL_SERVER_ADDRESS_NOT_SET, "The central server address is not set"
            )
        return anchors.public_address(address, self.config.distribution_port)


# --- signing keys --------------------------------------------------------------------------------


def _ordered(records: tuple[SigningKeyRecord, ...]) -> list[SigningKeyRecord]:
    # Active key first, then the others oldest first: clients try certificates in this order.
    return sorted(records, key=lambda r: not r.active)


def configuration_sources(registry: Registry, address: str) -> tuple[ConfigurationSource, ...]:
    """The V3+ ``source`` entries: per central server node, every key's certificate, active
    first, so clients trust a key before it signs anything (§5.5)."""
    nodes: dict[str, dict[str, list[bytes]]] = {}
    for record in _ordered(registry.signing_keys()):
        node = nodes.setdefault(record.ha_node_name, {"internal": [], "external": []})
        node[record.source_type.value].append(record.cert)
    return tuple(
        ConfigurationSource(address, tuple(n["internal"]), tuple(n["external"]))
        for _, n in sorted(nodes.items())
    )


def _active_key(state: CentralState, source: KeySource, digest: str) -> SigningKey:
    record = state.registry.active_signing_key(source.value)
    if record is None:
        raise XRoadError(
            Code.SIGNING_KEY_NOT_FOUND,
            f"There is no active {source.value} configuration signing key "
            f"(crossroad central keys add --source {source.value})",
        )
    return load_key_file(
        state.config.keys_dir,
        record.key_reference,
        record.cert,
        state.config.key_passphrase(),
        digest_algorithm(digest),
    )


def add_signing_key(
    state: CentralState,
    source: KeySource | str,
    *,
    key_type: str = "rsa2048",
    activate: bool | None = None,
    now: dt.datetime | None = None,
) -> SigningKeyRecord:
    """Generate a key for ``source`` and record it (the first key of a source is active;
    later ones are added inactive so clients can learn them first)."""
    src = KeySource(source)
    new = create_key(state.config.keys_dir, src, state.config.key_passphrase(), key_type)
    try:
        record = state.registry.add_signing_key(
            src.value, new.key_id, new.cert_der, new.file_name, activate=activate
        )
    except BaseException:
        delete_key_file(state.config.keys_dir, new.file_name)
        raise
    log.info("added %s configuration signing key %s", src.value, new.key_id)
    _refresh_quietly(state, now)
    return record


def activate_signing_key(
    state: CentralState, key_id: str, *, now: dt.datetime | None = None
) -> SigningKeyRecord:
    record = state.registry.signing_key(key_id)
    # Refuse a key whose file is gone or locked before it becomes the one that must sign.
    load_key_file(
        state.config.keys_dir, record.key_reference, record.cert, state.config.key_passphrase()
    )
    record = state.registry.activate_signing_key(key_id)
    log.info("activated %s configuration signing key %s", record.source_type.value, key_id)
    _refresh_quietly(state, now)
    return record


def delete_signing_key(
    state: CentralState, key_id: str, *, now: dt.datetime | None = None
) -> SigningKeyRecord:
    """Delete an inactive key: its record, then its file."""
    record = state.registry.delete_signing_key(key_id)
    delete_key_file(state.config.keys_dir, record.key_reference)
    log.info("deleted %s configuration signing key %s", record.source_type.value, key_id)
    _refresh_quietly(state, now)
    return record


# --- anchors -------------------------------------------------------------------------------------


def export_anchor(
    state: CentralState,
    source: KeySource | str,
    *,
    now: dt.datetime | None = None,
    force: bool = False,
) -> anchors.ExportedAnchor:
    """The anchor of ``source`` (regenerated and stored only when keys or address changed, or
    when ``force``)."""
    src = KeySource(source)
    registry = state.registry
    certs = [r.cert for r in _ordered(registry.signing_keys(src.value))]
    stored = next(
        (
            s.anchor_file
            for s in registry.configuration_sources()
            if s.source_type.value == src.value
        ),
        None,
    )
    moment = now or registry.clock.now()
    exported, changed = anchors.refresh_anchor(
        None if force else stored,
        src,
        instance=registry.instance_identifier(),
        urls=anchors.download_urls(state.public_address, src),
        certs=certs,
        now=moment,
    )
    if changed:
        registry.save_source_anchor(src.value, exported.data, moment)
        log.info("%s anchor regenerated, hash %s", src.value, exported.hash)
    return exported


def refresh_anchors(
    state: CentralState, now: dt.datetime | None = None
) -> dict[KeySource, anchors.ExportedAnchor]:
    """Both anchors, for the sources that have keys."""
    have = {r.source_type.value for r in state.registry.signing_keys()}
    return {s: export_anchor(state, s, now=now) for s in KeySource if s.value in have}


def _refresh_quietly(state: CentralState, now: dt.datetime | None) -> None:
    # Anchors follow key changes; before the instance or address is set there is none yet.
    try:
        refresh_anchors(state, now)
    except XRoadError as exc:
        log.info("anchors not refreshed: %s", exc.detail)


# --- a new central server ------------------------------------------------------------------------

#: Member classes a new instance starts with.
DEFAULT_MEMBER_CLASSES = (
    ("GOV", "Government"),
    ("COM", "Commercial"),
    ("ORG", "Organisation"),
)


@dataclass(frozen=True)
class Initialized:
    config: CentralConfig
    keys: tuple[SigningKeyRecord, ...]
    anchors: dict[KeySource, anchors.ExportedAnchor]
    encrypted: bool


def initialize(
    state_dir: str | os.PathLike[str],
    *,
    instance: str,
    address: str,
    database_url: str = "",
    distribution_host: str = "127.0.0.1",
    distribution_port: int = 8080,
    api_port: int = 4000,
    key_type: str = "rsa2048",
    management_provider: ClientId | None = None,
    management_name: str = "X-Road Operator",
    generation_interval_seconds: int = 60,
    conf_expire_interval_seconds: int = 600,
) -> Initialized:
    """Create a central server: ``central.toml``, the schema, the instance with its default
    member classes, an active internal and external signing key, and both anchors.  With
    ``management_provider`` its member and subsystem are created and it is made the management
    service provider, so generation can start at once."""
    state = Path(state_dir)
    if (state / "central.toml").exists():
        raise XRoadError(Code.INIT_ALREADY_INITIALIZED, f"{state} is already initialised")
    config = CentralConfig(
        state_dir=state.resolve(),
        instance_identifier=instance,
        central_server_address=address,
        database_url=database_url,
        distribution_host=distribution_host,
        distribution_port=distribution_port,
        api_port=api_port,
        generation_interval_seconds=generation_interval_seconds,
        conf_expire_interval_seconds=conf_expire_interval_seconds,
    )
    config.save()
    try:
        with CentralState.open(state, actor="cli:init") as opened:
            registry = opened.registry
            registry.initialize(instance, address)
            if str(conf_expire_interval_seconds) != registry.parameters()[CONF_EXPIRE]:
                # Generation reads the registry parameter (the management API changes it).
                registry.set_parameter(CONF_EXPIRE, str(conf_expire_interval_seconds))
            existing = {mc.code for mc in registry.member_classes()}
            for code, description in DEFAULT_MEMBER_CLASSES:
                if code not in existing:
                    registry.add_member_class(code, description)
            if management_provider is not None:
                _set_management_provider(registry, management_provider, management_name)
            keys = tuple(
                registry.active_signing_key(s.value)
                or add_signing_key(opened, s, key_type=key_type)
                for s in KeySource
            )
            exported = refresh_anchors(opened)
            return Initialized(opened.config, keys, exported, config.key_passphrase() is not None)
    except BaseException:
        # Let a corrected ``init`` run again (what the database already holds is reused).
        config.path.unlink(missing_ok=True)
        raise


def _set_management_provider(registry: Registry, provider: ClientId, name: str) -> None:
    member = provider.member_id()
    if member.member_class not in {mc.code for mc in registry.member_classes()}:
        registry.add_member_class(member.member_class, member.member_class)
    try:
        record = registry.member(member)
    except XRoadError as exc:
        if exc.code != Code.MEMBER_NOT_FOUND:
            raise
        record = registry.add_member(member, name)
    if provider.subsystem_code is not None and provider not in {s.id for s in record.subsystems}:
        registry.add_subsystem(provider)
    registry.set_management_service(provider)


# --- one generation cycle ------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationStatus:
    success: bool
    at: dt.datetime
    versions: tuple[int, ...] = ()
    timestamp: str | None = None
    expires: dt.datetime | None = None
    error_code: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "at": self.at.isoformat(),
            "versions": list(self.versions),
            "timestamp": self.timestamp,
            "expires": self.expires.isoformat() if self.expires else None,
            "error_code": self.error_code,
            "error": self.error,
        }


def _write_status(state: CentralState, status: GenerationStatus) -> None:
    path = state.config.state_dir / STATUS_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(status.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_status(state_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The outcome of the last generation cycle (``None`` before the first)."""
    try:
        data = json.loads((Path(state_dir) / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _cycle(state: CentralState, now: dt.datetime) -> distribution.Publication:
    registry = state.registry
    address = state.public_address
    with registry.batch():  # one consistent read of everything generation needs
        shared = registry.shared_parameters(auth_cert_hash=SHA256)
        shared_v2 = registry.shared_parameters(auth_cert_hash=SHA1)
        private = registry.private_parameters()
        params = registry.parameters()
        sources = configuration_sources(registry, address)
        parts = tuple(
            generation.ConfigurationPart(p.content_identifier, p.file_name, p.data)
            for p in registry.configuration_parts()
        )
    minimum = int(params.get("minimumGlobalConfigurationVersion", generation.MIN_VERSION))
    versions = generation.generate_versions(
        shared, private, sources, parts, min_version=minimum, shared_v2=shared_v2
    )
    digest = params.get("confSignDigestAlgoId", "SHA-512")
    internal = _active_key(state, KeySource.INTERNAL, digest)
    external = _active_key(state, KeySource.EXTERNAL, digest)
    expire = dt.timedelta(seconds=int(params.get(CONF_EXPIRE, "600")))
    publication = distribution.publish(
        state.config.public_dir,
        versions,
        now=now,
        expires=now + expire,
        internal_key=internal,
        external_key=external,
        hash_algorithm=digest_algorithm(params.get("confHashAlgoUri", "SHA-512")),
        cert_hash_algorithm=digest_algorithm(params.get("confSignCertHashAlgoUri", "SHA-512")),
    )
    _refresh_quietly(state, now)
    return publication


def generate_once(state: CentralState, now: dt.datetime | None = None) -> GenerationStatus:
    """Generate, sign and publish every version once.  Failures leave the previous publication
    served; the outcome is returned and recorded in ``STATE/generation-status.json``."""
    moment = now or state.registry.clock.now()
    try:
        publication = _cycle(state, moment)
    except XRoadError as exc:
        log.warning("global configuration not generated: %s: %s", exc.code, exc.detail)
        status = GenerationStatus(False, moment, error_code=exc.code, error=exc.detail)
    except OSError as exc:
        log.warning("global configuration not published: %s", exc)
        status = GenerationStatus(False, moment, error_code=Code.IO_ERROR, error=str(exc))
    else:
        status = GenerationStatus(
            True,
            moment,
            tuple(v.version for v in publication.versions),
            publication.timestamp,
            publication.expires,
        )
        log.info("global configuration %s published", publication.timestamp)
    with contextlib.suppress(OSError):
        _write_status(state, status)
    return status


# --- the run loop --------------------------------------------------------------------------------


def _management_app(state: CentralState) -> Any | None:
    """The management API app, if this installation has one."""
    try:
        api = importlib.import_module("crossroad.central.api")
    except ModuleNotFoundError as exc:
        if exc.name != "crossroad.central.api":
            raise
        return None
    return api.create_app(state.engine, config=state.config)


async def _serve_api(app: Any, host: str, port: int, stop: asyncio.Event) -> None:
    import uvicorn

    class _Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the run loop owns SIGTERM/SIGINT

    server = _Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task


@dataclass(frozen=True)
class Running:
    """What :func:`run` listens on, given to ``on_ready``."""

    distribution_url: str
    api_url: str | None
    status: GenerationStatus


async def run(
    state_dir: str | os.PathLike[str],
    *,
    once: bool = False,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[Running], None] | None = None,
    serve_api: bool = True,
) -> GenerationStatus:
    """Generate now and then every interval while serving, until ``stop`` (by default SIGTERM
    or SIGINT).  With ``once``: generate once and return without serving."""
    state = await asyncio.to_thread(CentralState.open, state_dir, actor="generator")
    try:
        status = await asyncio.to_thread(generate_once, state)
        if once:
            return status
        return await _serve(state, status, stop, on_ready, serve_api)
    finally:
        state.close()


async def _serve(
    state: CentralState,
    status: GenerationStatus,
    stop: asyncio.Event | None,
    on_ready: Callable[[Running], None] | None,
    serve_api: bool,
) -> GenerationStatus:
    config = state.config
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
    runner = web.AppRunner(distribution.distribution_app(config.public_dir), access_log=None)
    await runner.setup()
    tasks: list[asyncio.Task[None]] = []
    try:
        site = web.TCPSite(runner, config.distribution_host, config.distribution_port)
        await site.start()
        api_url = None
        app = _management_app(state) if serve_api else None
        if app is not None:
            tasks.append(
                asyncio.create_task(_serve_api(app, config.api_host, config.api_port, stop))
            )
            api_url = f"http://{config.api_host}:{config.api_port}/"
        url = f"http://{config.distribution_host}:{config.distribution_port}/"
        if on_ready is not None:
            on_ready(Running(url, api_url, status))
        interval = config.generation_interval_seconds
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if not stop.is_set():
                status = await asyncio.to_thread(generate_once, state)
        log.info("central server stopping")
    finally:
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception):
                await task
        await runner.cleanup()
        for sig in installed:
            loop.remove_signal_handler(sig)
    return status
