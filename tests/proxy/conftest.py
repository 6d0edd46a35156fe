"""The two-server world of the exchange tests, shared by the whole session (see world.py), and
what the other worlds need: SoftHSM2 tokens (:func:`softhsm_tokens`) and PostgreSQL
databases (:func:`postgres_databases`)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .world import PIN, World, running_world

SOFTHSM_LIBS = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
)
POSTGRES_ADMIN_URL = os.environ.get(
    "CROSSROAD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("world")
    vectors = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
    getstate = vectors / "messages" / "soap" / "getstate.query"
    with running_world(root, getstate.read_bytes() if getstate.is_file() else None) as built:
        yield built


# --------------------------------------------------------------------------- SoftHSM2


@dataclass(frozen=True)
class SoftHsm:
    """Fresh SoftHSM2 tokens (user PIN :data:`~.world.PIN`) in a directory of their own."""

    conf: Path
    lib: str
    labels: tuple[str, ...]


@contextlib.contextmanager
def softhsm_tokens(base: Path, count: int) -> Iterator[SoftHsm]:
    """``count`` new SoftHSM2 tokens under ``base``, the PKCS#11 library working on them.

    The library is loaded once per process and reads ``SOFTHSM2_CONF`` when it is
    initialized: it is (re)initialized on these tokens here and finalized at the end, so the
    next user (another world, tests/signer's tokens) initializes it on theirs.  Close every
    session on the tokens (stop the signers) before leaving the block."""
    import pkcs11

    lib = next((p for p in SOFTHSM_LIBS if Path(p).is_file()), None)
    if shutil.which("softhsm2-util") is None or lib is None:
        if os.environ.get("CI"):
            pytest.fail("softhsm2 is not installed; CI must install it (apt-get install softhsm2)")
        pytest.skip("softhsm2 is not installed (apt-get install softhsm2)")
    (base / "tokens").mkdir(parents=True)
    conf = base / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {base / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    labels = tuple(f"{base.name}-{i}" for i in range(count))
    pins = ["--pin", PIN, "--so-pin", "5678-so"]
    for label in labels:
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label, *pins],
            check=True,
            capture_output=True,
            env=env,
        )
    previous = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(conf)
    pkcs11.lib(lib).reinitialize()
    try:
        yield SoftHsm(conf, lib, labels)
    finally:
        pkcs11.lib(lib).finalize()
        if previous is None:
            os.environ.pop("SOFTHSM2_CONF", None)
        else:
            os.environ["SOFTHSM2_CONF"] = previous


# --------------------------------------------------------------------------- PostgreSQL


def _admin(sql: str) -> None:
    import sqlalchemy as sa

    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(sql))
    finally:
        admin.dispose()


@contextlib.contextmanager
def postgres_databases() -> Iterator[Callable[[str], str]]:
    """A function giving each name an empty PostgreSQL database (created on first use, all
    dropped at the end).  PostgreSQL must be reachable (CI starts it; locally
    ``CROSSROAD_SKIP_POSTGRES=1`` skips these worlds)."""
    if os.environ.get("CROSSROAD_SKIP_POSTGRES") and not os.environ.get("CI"):
        pytest.skip("CROSSROAD_SKIP_POSTGRES is set")
    prefix = f"crossroad_proxy_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    made: dict[str, str] = {}

    def url(name: str) -> str:
        if name not in made:
            database = f"{prefix}_{name}"
            _admin(f'CREATE DATABASE "{database}"')
            made[name] = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + "/" + database
        return made[name]

    try:
        yield url
    finally:
        for name in made:
            _admin(f'DROP DATABASE IF EXISTS "{prefix}_{name}" WITH (FORCE)')
