"""Shared fixtures: where the NIIS vectors are, and a small in-memory PKI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def vectors_dir() -> Path | None:
    env = os.environ.get("CROSSROAD_VECTORS")
    path = Path(env) if env else ROOT.parent / "shared" / "vectors"
    return path if (path / "MANIFEST.md").is_file() else None


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The NIIS vectors: absent only on a fresh clone without ../shared, never in CI."""
    path = vectors_dir()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("NIIS vectors not found (set CROSSROAD_VECTORS); CI must not skip them")
        pytest.skip("NIIS vectors not found: set CROSSROAD_VECTORS or check out ../shared")
    return path


@pytest.fixture(scope="session")
def pki():  # type: ignore[no-untyped-def]
    from crossroad.testing.pki import TestPKI

    return TestPKI.create()
