"""Fixtures for the configuration proxy tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Iterator

import pytest
from upstream import Upstream


@pytest.fixture
def upstream_thread() -> Iterator[Upstream]:
    """An upstream served from a background thread (for code that runs its own event loop)."""
    upstream = Upstream()
    upstream.publish(dt.datetime.now(dt.UTC))
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(upstream.start())
        started.set()
        loop.run_forever()
        loop.run_until_complete(upstream.stop())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield upstream
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
