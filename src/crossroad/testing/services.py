"""The real trust services in a thread of their own, for synchronous tests and tools."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from crossroad.trust.service import TrustServices, run_trust_services


@contextmanager
def trust_services_thread(state_dir: Path, *, timeout: float = 60) -> Iterator[TrustServices]:
    """Run the CA, OCSP responder and TSA on ephemeral 127.0.0.1 ports until the block ends."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    def on_ready(services: TrustServices) -> None:
        box["services"] = services
        ready.set()

    async def main() -> None:
        stop = asyncio.Event()
        box["stop"] = (asyncio.get_running_loop(), stop)
        try:
            await run_trust_services(state_dir, "127.0.0.1", 0, 0, 0, stop=stop, on_ready=on_ready)
        except BaseException as exc:  # reported to the waiting thread below
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    if not ready.wait(timeout):
        raise RuntimeError("trust services did not start")
    if "error" in box:
        raise RuntimeError(f"trust services failed to start: {box['error']!r}")
    try:
        yield box["services"]
    finally:
        loop, stop = box["stop"]
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
