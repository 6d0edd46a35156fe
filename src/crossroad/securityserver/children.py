"""The child processes of a security server: start, readiness, restart budget, ordered stop.

A :class:`Child` is one process started through :mod:`crossroad.securityserver.launch` (the
signer, or one proxy worker) in a session of its own.  It is ready when it prints a line that
starts with ``ready``; everything it prints is logged.  Stopping sends SIGTERM, waits, and
only then kills.  :class:`RestartBudget` decides whether a child that died on its own may be
started again (a crash loop must end the server, not spin).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

from crossroad.errors import Code, XRoadError
from crossroad.securityserver.launch import PARENT_ENV

log = logging.getLogger(__name__)

READY_PREFIX = "ready"


class Child:
    """One child process: ``argv`` after ``python -m crossroad.securityserver.launch``."""

    def __init__(self, name: str, argv: Sequence[str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.proc: asyncio.subprocess.Process | None = None
        self.ready_line: str | None = None
        self._ready = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        self._ready = asyncio.Event()
        self.ready_line = None
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "crossroad.securityserver.launch",
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=None,  # the child's log goes where ours goes
            env=env,
            start_new_session=True,
        )
        self._reader = asyncio.create_task(self._read(self.proc))

    async def _read(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while line := await proc.stdout.readline():
            text = line.decode("utf-8", "replace").rstrip()
            if not self._ready.is_set() and text.startswith(READY_PREFIX):
                self.ready_line = text
                self._ready.set()
            log.debug("%s: %s", self.name, text)

    async def wait_ready(self, timeout: float) -> str:
        """The child's ``ready`` line; ``internal_error`` if it exits or takes too long."""
        proc = self.proc
        if proc is None:
            raise XRoadError(Code.INTERNAL_ERROR, f"{self.name} was not started")
        ready = asyncio.create_task(self._ready.wait())
        exited = asyncio.create_task(proc.wait())
        try:
            await asyncio.wait({ready, exited}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            for task in (ready, exited):
                task.cancel()
        if self._ready.is_set() and self.ready_line is not None:
            return self.ready_line
        if proc.returncode is not None:
            raise XRoadError(
                Code.INTERNAL_ERROR,
                f"{self.name} exited with status {proc.returncode} before it was ready "
                "(its messages are above)",
            )
        raise XRoadError(Code.INTERNAL_ERROR, f"{self.name} was not ready within {timeout:g} s")

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit status."""
        proc = self.proc
        if proc is None:
            return None
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except TimeoutError:
                log.warning("%s did not stop within %g s: killing it", self.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 2.0)
        return proc.returncode


class RestartBudget:
    """At most ``limit`` restarts of one child within ``window`` seconds."""

    def __init__(self, limit: int = 5, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._times: collections.deque[float] = collections.deque()

    def allow(self, now: float | None = None) -> bool:
        moment = time.monotonic() if now is None else now
        while self._times and moment - self._times[0] > self.window:
            self._times.popleft()
        if len(self._times) >= self.limit:
            return False
        self._times.append(moment)
        return True
