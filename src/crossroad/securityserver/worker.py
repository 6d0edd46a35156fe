"""One proxy worker process of a security server (design brief §4: use both cores).

Each worker serves the client proxy (HTTP and HTTPS, protocols.md §2–§3, §10.6) and the server
proxy (§4) of :mod:`crossroad.proxy.app` with its own :class:`~crossroad.proxy.context.
ProxyContext`.  Every worker binds the same ports with ``SO_REUSEPORT``, so the kernel spreads
new connections over the workers; nothing is shared between them but the signer (over its
socket), the database and the configuration directory.

The worker keeps its snapshots current (arch. §3: immutable values swapped atomically): every
``RELOAD_SECONDS`` it looks at which configuration generation ``STATE/globalconf`` points to
and at the server configuration's change counter, and swaps in new snapshots when they moved.
Until a global configuration is held, every exchange is refused with ``global_conf_outdated``
(an empty configuration of the anchor's instance stands in).  The server proxy's port is
reserved at start but listens only once the signer hands out an authentication key: without
one there is nothing to complete a TLS handshake with.

Each worker opens the message log (§9.1) before it listens: every signed message its proxies
handle is logged before it is released, and its client proxy answers ``GET /asic`` and
``GET /verificationconf`` (:mod:`crossroad.messagelog.integration`); time-stamping and archiving
are the supervisor's.

It prints ``ready`` once its listeners are up, and stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from aiohttp import web

from crossroad.errors import XRoadError
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.securityserver.settings import SecurityServerSettings

log = logging.getLogger(__name__)

RELOAD_SECONDS = 1.0
AUTH_RETRY_SECONDS = 1.0
SHUTDOWN_SECONDS = 5.0
#: When set, each worker writes cProfile statistics to ``$CROSSROAD_WORKER_PROFILE.<pid>``
#: (its event loop and its verification threads, merged).
PROFILE_ENV = "CROSSROAD_WORKER_PROFILE"
#: The profilers of the verification threads while profiling (cProfile is per thread).
_THREAD_PROFILES: list[Any] = []


def _profile_thread() -> None:
    import cProfile

    prof = cProfile.Profile()
    _THREAD_PROFILES.append(prof)
    prof.enable()


def shared_socket(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT`` (not yet listening)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def empty_globalconf(instance: str) -> GlobalConfSnapshot:
    """A configuration of ``instance`` with no private parameters: never valid."""
    from crossroad.globalconf.model import GlobalSettings, SharedParameters

    shared = SharedParameters(
        instance_identifier=instance, global_settings=GlobalSettings(ocsp_freshness_seconds=3600)
    )
    return GlobalConfSnapshot.build(shared, None)


class Worker:
    def __init__(self, settings: SecurityServerSettings, index: int) -> None:
        self.settings = settings
        self.index = index
        self.ctx: Any = None
        self.store: Any = None
        self.engine: Any = None
        self.signer: Any = None
        self.mlog: Any = None
        self.runners: list[web.AppRunner] = []
        self.sockets: list[socket.socket] = []
        self.tasks: list[asyncio.Task[None]] = []
        self._generation: Path | None = None

    # -- snapshots ------------------------------------------------------------------------

    def _current_generation(self) -> Path | None:
        from crossroad.globalconf.store import ConfigurationStore

        return ConfigurationStore(self.settings.globalconf_dir).current()

    def _load_globalconf(self) -> GlobalConfSnapshot | None:
        """The configuration held now, if it differs from the one in use."""
        from crossroad.globalconf.store import load_snapshot

        generation = self._current_generation()
        if generation is None or generation == self._generation:
            return None
        snapshot = load_snapshot(generation)
        self._generation = generation
        return snapshot

    async def _reload(self) -> None:
        while True:
            await asyncio.sleep(RELOAD_SECONDS)
            try:
                snapshot = await asyncio.to_thread(self._load_globalconf)
                if snapshot is not None:
                    self.ctx.update_globalconf(snapshot)
                    log.info("worker %d: global configuration %s", self.index, self._generation)
                conf = await asyncio.to_thread(self.store.snapshot)
                if conf is not self.ctx.serverconf:
                    self.ctx.update_serverconf(conf)
            except XRoadError as err:
                log.warning("worker %d: configuration not reloaded: %s", self.index, err)
            except Exception:  # the loop must survive a bad file and try again
                log.exception("worker %d: configuration reload failed", self.index)

    # -- starting ------------------------------------------------------------------------

    def _open(self) -> tuple[GlobalConfSnapshot, Any]:
        from crossroad.globalconf.privateparams import parse_anchor
        from crossroad.serverconf.store import ServerConfStore
        from crossroad.storage.engine import create_engine

        self.engine = create_engine(self.settings.resolved_database_url())
        self.store = ServerConfStore(self.engine, migrate=False)  # the supervisor migrated
        try:
            globalconf = self._load_globalconf()
        except XRoadError as err:
            log.warning("worker %d: held configuration unusable: %s", self.index, err)
            globalconf = None
        if globalconf is None:
            anchor = parse_anchor(self.settings.anchor_path.read_bytes())
            globalconf = empty_globalconf(anchor.instance_identifier)
        return globalconf, self.store.snapshot()

    def _internal_tls(self) -> tuple[list[Any], bytes] | None:
        from crossroad.crypto.certs import load_certificate
        from crossroad.securityserver.state import INTERNAL_CERT, INTERNAL_KEY

        cert, key = self.settings.tls_dir / INTERNAL_CERT, self.settings.tls_dir / INTERNAL_KEY
        if not (cert.is_file() and key.is_file()):
            return None
        return [load_certificate(cert.read_bytes())], key.read_bytes()

    async def start(self) -> None:
        from crossroad.proxy.app import client_app, server_app
        from crossroad.proxy.context import ProxyContext
        from crossroad.proxy.tls import ServerTls
        from crossroad.signer.client import SignerClient

        s = self.settings
        globalconf, serverconf = await asyncio.to_thread(self._open)
        self.signer = SignerClient(s.socket_path)
        self.ctx = ProxyContext(
            globalconf=globalconf,
            serverconf=serverconf,
            signer=self.signer,
            internal_tls=self._internal_tls(),
        )
        if os.environ.get(PROFILE_ENV):  # profile the verification threads too
            from concurrent.futures import ThreadPoolExecutor

            self.ctx.executor.shutdown()
            self.ctx.executor = ThreadPoolExecutor(
                max_workers=self.ctx.settings.verify_workers,
                thread_name_prefix="crossroad-verify",
                initializer=_profile_thread,
            )
        await self._open_message_log()
        # Bind everything first: a port that is taken fails the start, not a later moment.
        http = shared_socket(s.client_host, s.client_http_port)
        https = shared_socket(s.client_host, s.client_https_port)
        peer = shared_socket(s.server_host, s.server_port)
        self.sockets += [http, https, peer]
        client = web.AppRunner(
            client_app(self.ctx), access_log=None, shutdown_timeout=SHUTDOWN_SECONDS
        )
        await client.setup()
        self.runners.append(client)
        http.listen(1024)
        await web.SockSite(client, http).start()
        if self.ctx.internal_tls is not None:
            self.ctx.is_tls = ServerTls(self.ctx.is_server_context())
            https.listen(1024)
            await web.SockSite(client, https, ssl_context=self.ctx.is_tls.context).start()
        else:
            log.warning("worker %d: no internal TLS certificate: HTTPS is off", self.index)
        server = web.AppRunner(
            server_app(self.ctx), access_log=None, shutdown_timeout=SHUTDOWN_SECONDS
        )
        await server.setup()
        self.runners.append(server)
        self.tasks.append(asyncio.create_task(self._serve_peers(server, peer)))
        self.tasks.append(asyncio.create_task(self._reload()))

    async def _open_message_log(self) -> None:
        from crossroad.messagelog.integration import attach, open_for_server, signed_documents

        ctx = self.ctx
        self.mlog = await asyncio.to_thread(
            open_for_server, self.settings.state_dir, lambda: ctx.globalconf
        )
        if self.mlog is None:
            return
        attach(ctx, self.mlog)
        ctx.signed_documents = signed_documents(ctx, self.mlog, self.settings.globalconf_dir)

    async def _serve_peers(self, runner: web.AppRunner, sock: socket.socket) -> None:
        """Listen on the server proxy port once there is an authentication key."""
        waited = False
        while True:
            try:
                await self.ctx.auth_material()
                break
            except XRoadError as err:
                if not waited:
                    log.info(
                        "worker %d: server proxy waits for an authentication key (%s)",
                        self.index,
                        err.detail,
                    )
                    waited = True
                await asyncio.sleep(AUTH_RETRY_SECONDS)
        assert self.ctx.server_tls is not None
        sock.listen(1024)
        await web.SockSite(runner, sock, ssl_context=self.ctx.server_tls.context).start()
        log.info("worker %d: server proxy listening", self.index)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for runner in reversed(self.runners):
            await runner.cleanup()
        for sock in self.sockets:
            sock.close()
        if self.mlog is not None:  # after the listeners: the last exchanges were logged
            await self.mlog.close()
            await asyncio.to_thread(self.mlog.shutdown)
        if self.ctx is not None:
            await self.ctx.close()
        if self.signer is not None:
            await self.signer.close()
        if self.engine is not None:
            self.engine.dispose()


async def serve(state_dir: Path, index: int) -> None:
    settings = SecurityServerSettings.load(state_dir)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(settings, index)
    try:
        await worker.start()
        print(f"ready: worker {index}", flush=True)
        await stop.wait()
    finally:
        await worker.stop()


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="crossroad security-server worker")
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format=f"%(asctime)s %(levelname)s worker-{args.index} %(name)s: %(message)s",
    )
    profile = os.environ.get(PROFILE_ENV)
    try:
        if profile:  # a developer's view of where a worker's time goes
            import cProfile
            import pstats

            with cProfile.Profile() as prof:
                asyncio.run(serve(args.state_dir, args.index))
            stats = pstats.Stats(prof)
            for thread_prof in _THREAD_PROFILES:
                stats.add(thread_prof)
            stats.dump_stats(f"{profile}.{os.getpid()}")
        else:
            asyncio.run(serve(args.state_dir, args.index))
    except XRoadError as err:
        print(f"error: {err.code}: {err.detail}", file=sys.stderr)
        sys.exit(1)
    except OSError as err:
        print(f"error: cannot listen: {err}", file=sys.stderr)
        sys.exit(1)
