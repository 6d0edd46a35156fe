"""A child process's output, read by a thread so that waiting for a line never blocks on a pipe."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from typing import IO


class ProcessOutput:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen = ""
        self.thread = threading.Thread(target=self._pump, args=(proc.stdout,), daemon=True)
        self.thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in iter(stream.readline, ""):
            self.lines.put(line)

    def until(self, marker: str, timeout: float = 60) -> str:
        """Everything so far, once ``marker`` has appeared; AssertionError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while marker not in self.seen:
            try:
                self.seen += self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(
                    f"no {marker!r} in the output of {self.proc.args!r}: {self.seen}"
                ) from None
        return self.seen

    def rest(self) -> str:
        """Everything, once the process has ended."""
        self.thread.join(10)
        while not self.lines.empty():
            self.seen += self.lines.get()
        return self.seen
