"""The one place that reads the wall clock.

The core never reads the time: shells pass ``clock.now()`` into it.  Tests substitute
:class:`crossroad.testing.clock.FrozenClock`.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    """UTC wall-clock time, timezone-aware."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


SYSTEM = SystemClock()
