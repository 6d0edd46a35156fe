"""One security server, one command: the supervisor behind ``crossroad security-server run``.

protocols.md §0.3 (ports), §4.2 (OCSP download service), §5.1 (configuration client), §10.1 and
§10.3 (the signer and its OCSP refresh), §12.4 (client statuses follow the global
configuration); design brief §4 (both cores: several proxy workers on shared ports).

What runs, and where:

* **configuration client** (this process): downloads the global configuration of the anchor's
  instance into ``STATE/globalconf`` every ``conf_interval_seconds`` (back-off after failures;
  SIGHUP asks for an update now).  The first download happens before anything else starts,
  within ``first_download_timeout``, so that the signer and the proxies begin with a trust
  policy; a server that cannot reach its central server still starts and keeps trying.  After
  every update the clients' statuses follow the configuration (NIIS's ``GlobalConfChecker``:
  registered there → ``registered``).
* **signer** (its own process, ``crossroad signer run``): the only holder of private keys; it
  refreshes the OCSP responses of its own certificates in the background.  Logged in at start
  from ``signer.pin_file`` when one is set.
* **proxy workers** (``proxy.workers`` processes): each serves the client proxy (HTTP and
  HTTPS) and the server proxy on the same ports, bound with ``SO_REUSEPORT`` so the kernel
  spreads connections over the workers (:mod:`crossroad.securityserver.worker`).
* **OCSP download service** and **management API** (this process): light, and they share its
  signer client and configuration store.
* **message-log jobs** (this process, §9.2–9.5): time-stamping, archiving and cleaning run once
  per server, not per worker (:func:`crossroad.messagelog.integration.run_jobs`); the message
  log's database is opened (migrated) here before any worker opens it to log exchanges.

Children start in sessions of their own and die with the supervisor; on SIGTERM or SIGINT the
supervisor stops the workers, then the signer, closes its own listeners, removes ``run.json``
and returns 0.  A child that dies on its own is restarted, at most 5 times a minute; beyond
that the server stops with status 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import signal
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from crossroad.errors import Code, XRoadError
from crossroad.globalconf.client import ConfigurationClient, UpdateResult
from crossroad.globalconf.privateparams import parse_anchor
from crossroad.identifiers import SecurityServerId
from crossroad.securityserver.children import Child, RestartBudget
from crossroad.securityserver.settings import SecurityServerSettings

log = logging.getLogger(__name__)

SIGNER_READY_TIMEOUT = 30.0
WORKER_READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Ready:
    """Where a running security server listens, given to ``on_ready`` and kept in ``run.json``."""

    server_id: SecurityServerId
    client_http: str
    client_https: str
    server_proxy: str
    ocsp_service: str
    admin_api: str | None
    signer_socket: Path
    pid: int
    signer_pid: int | None
    worker_pids: tuple[int, ...]
    globalconf: str
    globalconf_ok: bool
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def to_json(self) -> dict[str, Any]:
        return {
            "server_id": str(self.server_id),
            "client_http": self.client_http,
            "client_https": self.client_https,
            "server_proxy": self.server_proxy,
            "ocsp_service": self.ocsp_service,
            "admin_api": self.admin_api,
            "signer_socket": str(self.signer_socket),
            "pid": self.pid,
            "signer_pid": self.signer_pid,
            "worker_pids": list(self.worker_pids),
            "globalconf": self.globalconf,
            "globalconf_ok": self.globalconf_ok,
            "started_at": self.started_at.isoformat(),
        }


def url(scheme: str, host: str, port: int, path: str = "/") -> str:
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
        host = "127.0.0.1"
    return f"{scheme}://[{host}]:{port}{path}" if ":" in host else f"{scheme}://{host}:{port}{path}"


def listen(host: str, port: int, what: str) -> socket.socket:
    """A listening TCP socket, or ``network_error`` naming what could not listen where."""
    try:
        return socket.create_server((host, port), backlog=1024)
    except OSError as exc:
        raise XRoadError(
            Code.NETWORK_ERROR, f"The {what} cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc


def describe(result: UpdateResult | None, client: ConfigurationClient) -> tuple[str, bool]:
    """A line on the global configuration in force, and whether it is valid now."""
    snapshot = client.snapshot
    valid = client.is_valid()
    if snapshot is not None and valid:
        expires = snapshot.expires_at()
        return (
            f"instance {snapshot.instance}, expires {expires.isoformat() if expires else '?'}",
            True,
        )
    if result is not None and result.error is not None:
        return f"not usable yet ({result.error.code}: {result.error.detail})", False
    return "not downloaded yet", False


class Supervisor:
    """Starts, watches and stops the parts of one security server (module docstring)."""

    def __init__(
        self, settings: SecurityServerSettings, *, workers: int | None = None, debug: bool = False
    ) -> None:
        self.settings = settings
        self.workers = workers or settings.workers
        self.debug = debug
        anchor_bytes = _read(settings.anchor_path)
        self.anchor = parse_anchor(anchor_bytes)
        self.conf = ConfigurationClient(
            self.anchor, settings.globalconf_dir, interval=settings.conf_interval_seconds
        )
        self.stop_event = asyncio.Event()
        self.wake = asyncio.Event()
        self.failed: XRoadError | None = None
        self.signer: Child | None = None
        self.worker_children: list[Child] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._runners: list[web.AppRunner] = []
        self._sockets: list[socket.socket] = []
        self._store: Any = None
        self._engine: Any = None
        self._signer_client: Any = None
        self._api_server: Any = None
        self.server_id: SecurityServerId | None = None
        self.ready: Ready | None = None
        self._lock_fd: int | None = None

    # -- starting ---------------------------------------------------------------------------

    async def start(self) -> Ready:
        s = self.settings
        self._lock_state()
        # The supervisor's own ports first: a port that is taken fails the start at once.
        ocsp_sock = listen(s.ocsp_host, s.ocsp_port, "OCSP download service")
        self._sockets.append(ocsp_sock)
        admin_sock = None
        if s.admin_enabled:
            admin_sock = listen(s.admin_host, s.admin_port, "management API")
            self._sockets.append(admin_sock)
        await asyncio.to_thread(self._open_store)
        assert self.server_id is not None
        await self._start_message_log()
        if not self.conf.is_valid():
            log.info("downloading the global configuration of %s", self.anchor.instance_identifier)
            try:
                await asyncio.wait_for(self._update(), s.conf_first_timeout)
            except TimeoutError:
                log.warning(
                    "no global configuration within %g s; still trying", s.conf_first_timeout
                )
                self.wake.set()  # try again at once, in the background
        self.signer = Child("signer", self._signer_argv())
        await self.signer.start()
        await self.signer.wait_ready(SIGNER_READY_TIMEOUT)
        from crossroad.signer.client import SignerClient

        self._signer_client = SignerClient(s.socket_path)
        self.worker_children = [
            Child(f"worker {i}", ["worker", str(s.state_dir), "--index", str(i)])
            for i in range(self.workers)
        ]
        await asyncio.gather(*(w.start() for w in self.worker_children))
        await asyncio.gather(*(w.wait_ready(WORKER_READY_TIMEOUT) for w in self.worker_children))
        await self._start_ocsp_service(ocsp_sock)
        admin = await self._start_admin_api(admin_sock) if admin_sock is not None else None
        self._tasks.append(asyncio.create_task(self._conf_loop()))
        for child in (self.signer, *self.worker_children):
            self._tasks.append(asyncio.create_task(self._watch(child)))
        text, ok = describe(self.conf.last_result, self.conf)
        self.ready = Ready(
            server_id=self.server_id,
            client_http=url("http", s.client_host, s.client_http_port),
            client_https=url("https", s.client_host, s.client_https_port),
            server_proxy=url("https", s.server_host, s.server_port),
            ocsp_service=url("http", s.ocsp_host, s.ocsp_port),
            admin_api=admin,
            signer_socket=s.socket_path,
            pid=os.getpid(),
            signer_pid=self.signer.pid,
            worker_pids=tuple(w.pid for w in self.worker_children if w.pid is not None),
            globalconf=text,
            globalconf_ok=ok,
        )
        _write_json(s.run_file, self.ready.to_json())
        return self.ready

    def _open_store(self) -> None:
        from crossroad.serverconf.store import ServerConfStore
        from crossroad.storage.engine import create_engine

        self._engine = create_engine(self.settings.resolved_database_url())
        self._store = ServerConfStore(self._engine)
        self.server_id = self._store.require_server_id()

    async def _start_message_log(self) -> None:
        from crossroad.messagelog.integration import open_for_jobs, run_jobs

        state_dir = self.settings.state_dir
        mlog = await asyncio.to_thread(open_for_jobs, state_dir)
        if mlog is None:
            log.warning("the message log is switched off: exchanges are not logged")
            return
        self._tasks.append(asyncio.create_task(run_jobs(state_dir, self.stop_event, mlog)))

    def _signer_argv(self) -> list[str]:
        s = self.settings
        argv = [
            "signer",
            "run",
            str(s.signer_dir),
            "--socket",
            str(s.socket_path),
            "--globalconf",
            str(s.globalconf_dir),
            "--ocsp-retry",
            str(s.signer_ocsp_retry),
        ]
        pin = s.pin_path
        if pin is not None:
            argv += ["--pin-file", str(pin)]
        return argv

    def _lock_state(self) -> None:
        """One supervisor per state directory: a second one would share the workers' ports
        (``SO_REUSEPORT``) and take over the signer's socket."""
        import fcntl

        fd = os.open(self.settings.state_dir / ".run.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise XRoadError(
                Code.INVALID_REQUEST, f"{self.settings.state_dir} is already running"
            ) from None
        self._lock_fd = fd

    async def _start_ocsp_service(self, sock: socket.socket) -> None:
        from crossroad.proxy.ocsp_service import ocsp_app

        runner = web.AppRunner(ocsp_app(self._signer_client.ocsp_responses), access_log=None)
        await runner.setup()
        self._runners.append(runner)
        await web.SockSite(runner, sock).start()

    async def _start_admin_api(self, sock: socket.socket) -> str:
        import uvicorn

        from crossroad.serverconf.api import create_app

        s = self.settings

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield  # the supervisor owns SIGTERM/SIGINT

        config = uvicorn.Config(
            create_app(self._store), log_level="warning", lifespan="off", access_log=False
        )
        self._api_server = _Server(config)
        self._tasks.append(asyncio.create_task(self._api_server.serve(sockets=[sock])))
        return url("http", s.admin_host, s.admin_port, "/api/v1/")

    # -- while running ----------------------------------------------------------------------

    async def _update(self) -> UpdateResult:
        result = await self.conf.update_once()
        if result.ok:
            try:
                await asyncio.to_thread(self._sync_client_statuses)
            except XRoadError as err:
                log.warning("client statuses not updated: %s", err)
        return result

    def _sync_client_statuses(self) -> None:
        snapshot, server = self.conf.snapshot, self.server_id
        if snapshot is None or server is None or self._store is None:
            return
        changed = self._store.sync_client_statuses(
            lambda c: snapshot.is_client_registered(c, server)
        )
        for client in changed:
            log.info("client %s follows the global configuration", client)

    async def _conf_loop(self) -> None:
        while not self.stop_event.is_set():
            failures = self.conf.failures
            ok = self.conf.last_result is not None and self.conf.last_result.ok
            delay = (
                self.settings.conf_interval_seconds
                if ok or failures == 0
                else self.conf.backoff.randomized(failures)
            )
            stop = asyncio.create_task(self.stop_event.wait())
            wake = asyncio.create_task(self.wake.wait())
            await asyncio.wait({stop, wake}, timeout=delay, return_when="FIRST_COMPLETED")
            stop.cancel()
            wake.cancel()
            self.wake.clear()
            if not self.stop_event.is_set():
                await self._update()

    def update_now(self) -> None:
        """Download the global configuration now (SIGHUP)."""
        log.info("global configuration update requested")
        self.wake.set()

    async def _watch(self, child: Child) -> None:
        budget = RestartBudget()
        while True:
            status = await child.wait()
            if self.stop_event.is_set():
                return
            log.error("%s (pid %s) exited with status %s", child.name, child.pid, status)
            if not budget.allow():
                self.failed = XRoadError(
                    Code.INTERNAL_ERROR, f"{child.name} keeps exiting; stopping the server"
                )
                self.stop_event.set()
                return
            await asyncio.sleep(1.0)
            if self.stop_event.is_set():
                return
            try:
                await child.start()
                await child.wait_ready(
                    SIGNER_READY_TIMEOUT if child is self.signer else WORKER_READY_TIMEOUT
                )
                log.info("%s restarted (pid %s)", child.name, child.pid)
                self._refresh_run_file()
            except XRoadError as err:
                log.error("%s did not restart: %s", child.name, err.detail)

    def _refresh_run_file(self) -> None:
        if self.ready is None:
            return
        import dataclasses

        self.ready = dataclasses.replace(
            self.ready,
            signer_pid=self.signer.pid if self.signer else None,
            worker_pids=tuple(w.pid for w in self.worker_children if w.pid is not None),
        )
        with contextlib.suppress(OSError):
            _write_json(self.settings.run_file, self.ready.to_json())

    # -- stopping ---------------------------------------------------------------------------

    async def stop(self) -> None:
        self.stop_event.set()
        if self._api_server is not None:
            self._api_server.should_exit = True
        # Workers first: they need the signer until their last exchange is done.
        await asyncio.gather(*(w.stop(STOP_TIMEOUT) for w in self.worker_children))
        if self.signer is not None:
            await self.signer.stop(STOP_TIMEOUT)
        for task in self._tasks:
            if not task.done():
                with contextlib.suppress(asyncio.TimeoutError, Exception):
                    await asyncio.wait_for(task, 5.0)
        for task in self._tasks:
            task.cancel()
        for runner in self._runners:
            await runner.cleanup()
        for sock in self._sockets:
            sock.close()
        if self._signer_client is not None:
            await self._signer_client.close()
        if self._engine is not None:
            self._engine.dispose()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                self.settings.run_file.unlink()
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None


async def run_security_server(
    state_dir: str | os.PathLike[str],
    *,
    workers: int | None = None,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[Ready], None] | None = None,
) -> int:
    """Run a security server until ``stop`` is set (by default: until SIGTERM or SIGINT; SIGHUP
    updates the global configuration now).  Returns the exit status: 0 after a clean stop."""
    settings = SecurityServerSettings.load(Path(state_dir))
    loop = asyncio.get_running_loop()
    supervisor = Supervisor(settings, workers=workers)
    outer = stop or asyncio.Event()
    installed: list[signal.Signals] = []
    handlers: list[tuple[signal.Signals, Callable[[], None]]] = [
        (signal.SIGHUP, supervisor.update_now)
    ]
    if stop is None:
        handlers += [(signal.SIGTERM, outer.set), (signal.SIGINT, outer.set)]
    for sig, handler in handlers:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
    try:
        starting = asyncio.create_task(supervisor.start())
        stopped = asyncio.create_task(outer.wait())
        await asyncio.wait({starting, stopped}, return_when="FIRST_COMPLETED")
        if not starting.done():  # stopped while starting
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, XRoadError):
                await starting
            return 0
        ready = starting.result()  # raises what made the start fail
        if on_ready is not None:
            on_ready(ready)
        failed = asyncio.create_task(supervisor.stop_event.wait())
        await asyncio.wait({stopped, failed}, return_when="FIRST_COMPLETED")
        failed.cancel()
        stopped.cancel()
        log.info("security server stopping")
        return 1 if supervisor.failed is not None else 0
    finally:
        await supervisor.stop()
        for sig in installed:
            loop.remove_signal_handler(sig)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise XRoadError(Code.IO_ERROR, f"{path}: {exc.strerror or exc}") from None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
