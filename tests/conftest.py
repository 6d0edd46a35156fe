"""Shared fixtures: where the NIIS vectors are, and a small in-memory PKI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# CI runs the property tests with a fixed seed, so a red run is reproducible; locally every run
# explores new examples.  HYPOTHESIS_PROFILE=ci reproduces CI's run.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

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


# --- databases ------------------------------------------------------------------------------

POSTGRES_ADMIN_URL = os.environ.get(
    "CROSSROAD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _postgres_database(name: str) -> str:
    """Create an empty PostgreSQL database for this test session and return its URL."""
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def _drop_postgres_database(name: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    """An empty database, once on SQLite (a file) and once on PostgreSQL (127.0.0.1:5432).

    PostgreSQL must be reachable: CI starts it (.ci/run).  Locally, without it, set
    CROSSROAD_SKIP_POSTGRES=1 to run the SQLite half only.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    if os.environ.get("CROSSROAD_SKIP_POSTGRES") and not os.environ.get("CI"):
        pytest.skip("CROSSROAD_SKIP_POSTGRES is set")
    name = f"crossroad_test_{os.getpid()}_{abs(hash(request.node.nodeid)) % 10**8}"
    url = _postgres_database(name)
    try:
        yield url
    finally:
        _drop_postgres_database(name)
