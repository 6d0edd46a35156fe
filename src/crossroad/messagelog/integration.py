"""The message log inside a security server: what the proxy workers and the supervisor call
(protocols.md §9; the proxy's side is :mod:`crossroad.proxy.context` and
:mod:`crossroad.proxy.client`).

* a proxy worker opens the log with :func:`open_for_server` and :func:`attach`\\ es it to its
  :class:`~crossroad.proxy.context.ProxyContext`: every signed message the proxies report to
  ``ProxyContext.on_logged`` is logged, bodies and attachments streamed from the proxy's
  spool, before it is released (a failure aborts the exchange with ``logging_failed``); a
  time-stamping failure past the acceptable period refuses new exchanges with
  ``timestamping_failed`` (``ProxyContext.check_logging``, asked before each exchange);
* the client proxy answers ``GET /asic`` and ``GET /verificationconf`` with
  :func:`signed_documents`, which checks the caller with the client proxy's own
  :func:`~crossroad.proxy.client.check_client` (IS connection type, registered IS certificates);
* the supervisor, and only it, runs :func:`run_jobs`: time-stamping, archiving, cleaning;
* :func:`check_evidence` downloads a query's containers and the verification configuration
  from a client proxy and verifies them offline (what an auditor does; the demo's check).

``message-log.toml`` in the state directory configures it (:mod:`.settings`); setting
``CROSSROAD_MESSAGE_LOG=off`` in the environment switches the message log off (benchmarks).
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from crossroad.errors import Code, XRoadError
from crossroad.evidence.report import Report
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId
from crossroad.messagelog.asic_service import SignedDocuments
from crossroad.messagelog.manager import MessageLog
from crossroad.messagelog.settings import LogSettings

log = logging.getLogger(__name__)

SWITCH_ENV = "CROSSROAD_MESSAGE_LOG"


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "on").strip().lower() not in ("off", "0", "false", "no")


class DirectoryGlobalConf:
    """The global configuration a directory holds now (re-read when its generation moves)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._generation: Path | None = None
        self._snapshot: GlobalConfSnapshot | None = None

    def __call__(self) -> GlobalConfSnapshot | None:
        from crossroad.globalconf.store import ConfigurationStore, load_snapshot

        try:
            generation = ConfigurationStore(self.directory).current()
            if generation is not None and generation != self._generation:
                self._snapshot = load_snapshot(generation)
                self._generation = generation
        except (XRoadError, OSError) as err:
            log.warning("global configuration in %s not readable: %s", self.directory, err)
        return self._snapshot


def open_for_server(
    state_dir: Path, globalconf: Callable[[], GlobalConfSnapshot | None]
) -> MessageLog | None:
    """The message log of a security server state directory (None when switched off)."""
    if not enabled():
        return None
    return MessageLog.open(LogSettings.load(state_dir), globalconf)


def attach(ctx: Any, mlog: MessageLog) -> Callable[[Any], Any]:
    """Log every message ``ctx`` reports (awaited before the message is released) and refuse
    new exchanges when time-stamping has failed too long; returns the hook (see :func:`detach`)."""
    hook = mlog.async_logger()
    ctx.loggers.append(hook)
    ctx.log_checks.append(mlog.check_accepting)
    return hook


def detach(ctx: Any, mlog: MessageLog, hook: Callable[[Any], Any]) -> None:
    """Undo :func:`attach`."""
    ctx.loggers.remove(hook)
    ctx.log_checks.remove(mlog.check_accepting)


def signed_documents(
    ctx: Any, mlog: MessageLog, conf_dir: Path | Callable[[], Path | None] | None
) -> SignedDocuments:
    """``/asic`` and ``/verificationconf`` for ``ctx``'s client proxy: only a caller that the
    client proxy would accept as the named client's information system gets documents."""
    from crossroad.proxy.client import check_client

    def authenticate(request: web.Request, client: ClientId) -> None:
        check_client(ctx, ctx.snapshot(), client, request)

    return SignedDocuments(mlog, conf_dir=conf_dir, authenticate=authenticate)


def open_for_jobs(state_dir: Path) -> MessageLog | None:
    """The supervisor's message log (None when switched off): opening it migrates the
    database, which the supervisor does once, before any worker opens it."""
    return open_for_server(state_dir, DirectoryGlobalConf(state_dir / "globalconf"))


async def run_jobs(state_dir: Path, stop: asyncio.Event, mlog: MessageLog | None = None) -> None:
    """The supervisor's message-log jobs until ``stop``: time-stamper, archiver, cleaner
    (on ``mlog`` from :func:`open_for_jobs`, else opened here); the log is closed after."""
    if mlog is None:
        if not enabled():
            await stop.wait()
            return
        mlog = await asyncio.to_thread(open_for_jobs, state_dir)
        assert mlog is not None
    try:
        await mlog.run_jobs(stop)
    finally:
        await mlog.close()
        await asyncio.to_thread(mlog.shutdown)


# --------------------------------------------------------------------------- evidence check


@dataclass(frozen=True)
class EvidenceCheck:
    """What :func:`check_evidence` found on one security server."""

    valid: bool
    detail: str
    containers: tuple[tuple[str, Report], ...] = ()


async def check_evidence(
    session: aiohttp.ClientSession,
    client_proxy_url: str,
    query_id: str,
    client: ClientId,
    *,
    force: bool = True,
    ssl: Any = None,
) -> EvidenceCheck:
    """Download the containers of ``query_id`` from a client proxy (``/asic``, stamping what
    waits with ``force``) and its verification configuration (``/verificationconf``), and
    verify every container offline, as an auditor would (the demo's ``"evidence"`` check)."""
    base = client_proxy_url.rstrip("/")
    params = {
        "queryId": query_id,
        "xRoadInstance": client.instance,
        "memberClass": client.member_class,
        "memberCode": client.member_code,
    }
    if client.subsystem_code is not None:
        params["subsystemCode"] = client.subsystem_code
    if force:
        params["force"] = ""
    async with session.get(f"{base}/verificationconf", ssl=ssl) as resp:
        conf = await resp.read()
        if resp.status != 200:
            return EvidenceCheck(False, f"/verificationconf: {resp.status} {conf[:200]!r}")
    async with session.get(f"{base}/asic", params=params, ssl=ssl) as resp:
        body = await resp.read()
        if resp.status != 200:
            return EvidenceCheck(False, f"/asic: {resp.status} {body[:200]!r}")
    return await asyncio.to_thread(_verify_download, conf, body, client.instance)


def _verify_download(conf: bytes, body: bytes, instance: str) -> EvidenceCheck:
    from crossroad.crypto.asic import read_zip
    from crossroad.evidence.verifier import verify_container
    from crossroad.globalconf.directory import load_directory

    try:
        with tempfile.TemporaryDirectory(prefix="verificationconf-") as tmp:
            for name, data in read_zip(conf, 64 * 2**20, 10_000, Code.INVALID_MESSAGE):
                if name.endswith("/"):
                    continue
                target = Path(tmp) / name  # read_zip refused absolute and ".." names
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            trust = load_directory(Path(tmp) / "verificationconf").trust_policy(instance)
        containers = read_zip(body, 1024 * 2**20, 10_000, Code.INVALID_MESSAGE)
    except XRoadError as err:
        return EvidenceCheck(False, f"{err.code}: {err.detail}")
    if not containers:
        return EvidenceCheck(False, "no containers")
    reports = tuple((n, verify_container(data, trust, name=n)) for n, data in containers)
    bad = [f"{n}: {r.code}: {r.detail}" for n, r in reports if not r.valid]
    return EvidenceCheck(not bad, "; ".join(bad) or f"{len(reports)} containers valid", reports)
