from __future__ import annotations

import datetime as dt

import pytest

from crossroad.clock import SYSTEM
from crossroad.testing.clock import FrozenClock


def test_system_clock_is_aware_utc() -> None:
    assert SYSTEM.now().tzinfo is dt.UTC


def test_frozen_clock_moves_only_when_told() -> None:
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    clock = FrozenClock(start)
    assert clock.now() == start
    assert clock.advance(90) == start + dt.timedelta(seconds=90)
    with pytest.raises(ValueError, match="aware"):
        FrozenClock(dt.datetime(2025, 1, 1))  # noqa: DTZ001
