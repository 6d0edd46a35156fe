"""The two-server world of the exchange tests, shared by the whole session (see world.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .world import World, running_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("world")
    vectors = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
    getstate = vectors / "messages" / "soap" / "getstate.query"
    with running_world(root, getstate.read_bytes() if getstate.is_file() else None) as built:
        yield built
