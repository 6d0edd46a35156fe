"""The configuration proxy's HTTP side and run loop (a shell; protocols.md §5.1, §11.2).

``GET /<NAME>/conf?version=N`` serves ``public/<NAME>/conf-vN`` (no version → 2; a version not
published, or not a number → 404), ``GET /<NAME>/<GEN>/V<n>/<INSTANCE>/<file>`` the content files.
Every path component is matched against a strict pattern before the file system is touched;
nothing else is served.

:func:`run_proxy` serves and mirrors every ``update_interval_seconds`` until stopped (SIGTERM,
SIGINT or the ``stop`` event); with ``once`` it runs a single mirror cycle without serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from crossroad.clock import SYSTEM, Clock
from crossroad.confproxy.config import ProxyConfig
from crossroad.confproxy.mirror import Mirror, SourceOutcome

log = logging.getLogger(__name__)

_SOURCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_GEN = re.compile(r"\d{23}\Z")
_VERSION_DIR = re.compile(r"V[2-9]\Z")
_INSTANCE = re.compile(r"[A-Za-z0-9*_%+.-]{1,200}\Z")
_FILE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,200}\Z")
_OCTET_STREAM = "application/octet-stream"


def _file(path: Path) -> web.StreamResponse:
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Content-Type": _OCTET_STREAM})


def proxy_app(public_dir: str | os.PathLike[str]) -> web.Application:
    """Serve the published directories and content under ``public_dir`` read-only."""
    root = Path(public_dir)

    async def directory(request: web.Request) -> web.StreamResponse:
        source = request.match_info["source"]
        version = request.query.get("version", "2")
        if not _SOURCE.match(source) or not version.isascii() or not version.isdigit():
            raise web.HTTPNotFound()
        return _file(root / source / f"conf-v{int(version)}")

    async def content(request: web.Request) -> web.StreamResponse:
        info = request.match_info
        checks = (
            (_SOURCE, info["source"]),
            (_GEN, info["gen"]),
            (_VERSION_DIR, info["version"]),
            (_INSTANCE, info["instance"]),
            (_FILE, info["file"]),
        )
        if any(not pattern.match(value) for pattern, value in checks) or info["instance"] in (
            ".",
            "..",
        ):
            raise web.HTTPNotFound()
        return _file(
            root / info["source"] / info["gen"] / info["version"] / info["instance"] / info["file"]
        )

    app = web.Application()
    app.router.add_get("/{source}/conf", directory)
    app.router.add_get("/{source}/{gen}/{version}/{instance}/{file}", content)
    return app


def _summary(outcomes: tuple[SourceOutcome, ...]) -> str:
    parts = []
    for o in outcomes:
        done = ",".join(f"V{v.version}" for v in o.versions if v.ok) or "nothing"
        parts.append(f"{o.source}: {done}")
    return "; ".join(parts) or "no sources"


async def run_proxy(
    directory: str | os.PathLike[str],
    *,
    once: bool = False,
    stop: asyncio.Event | None = None,
    clock: Clock = SYSTEM,
    passphrase: bytes | None = None,
    on_ready: Callable[[str], None] | None = None,
    on_cycle: Callable[[tuple[SourceOutcome, ...]], None] | None = None,
) -> int:
    """Mirror (and serve) until stopped.  Returns 0, or 1 if ``once`` and a source failed."""
    mirror = Mirror(directory, clock=clock, passphrase=passphrase)
    if once:
        outcomes = await mirror.cycle()
        if on_cycle is not None:
            on_cycle(outcomes)
        return 0 if outcomes and all(o.ok for o in outcomes) else 1
    config = ProxyConfig.load(directory)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(proxy_app(config.public_dir()), access_log=None)
    await runner.setup()
    host, port = config.listen
    try:
        await web.TCPSite(runner, host, port).start()
        url = f"http://{config.address}/"
        log.info("Configuration proxy %s serving %s", config.name, url)
        if on_ready is not None:
            on_ready(url)
        while not stop.is_set():
            interval = config.update_interval_seconds
            try:
                outcomes = await mirror.cycle()
                log.info("Configuration proxy cycle: %s", _summary(outcomes))
                if on_cycle is not None:
                    on_cycle(outcomes)
                interval = ProxyConfig.load(directory).update_interval_seconds
            except Exception:  # the proxy keeps serving what it has and tries again
                log.exception("Configuration proxy cycle failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
    finally:
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)
    return 0
