"""Database engines for SQLite and PostgreSQL, and schema migrations (Alembic, configured in code).

One schema per component (``central`` now; the security server later) lives in
:mod:`crossroad.storage.migrations`: a shared ``env.py`` and one folder of versioned scripts per
component, each with its own version table (``alembic_version_<component>``), so several
components can share one PostgreSQL database.  There is no ``alembic.ini``: :func:`migrate`
builds the Alembic configuration here.

SQLite (the default, a file in the component's state directory) runs in WAL mode with foreign
keys enforced and a busy timeout, so the management API, the CLI and the generator can use one
file at the same time.  PostgreSQL URLs are driven by psycopg 3.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from crossroad.errors import Code, XRoadError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
COMPONENTS = ("central", "serverconf", "messagelog")
#: How long a SQLite writer waits for another writer before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Distinct arbitrary numbers for pg_advisory_xact_lock, one per component.
_ADVISORY_LOCK = {"central": 0x58524F41, "serverconf": 0x58525353, "messagelog": 0x58524D4C}
_migrate_lock = threading.Lock()


def database_url_for(state_dir: str | Path, name: str = "central") -> str:
    """The default database of a state directory: ``sqlite:///STATE/<name>.db``."""
    return f"sqlite:///{Path(state_dir).resolve() / f'{name}.db'}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own transaction handling is switched off (isolation_level=None) so that
    # SQLAlchemy's "begin" event below decides how a transaction starts.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


#: Execution option for a transaction that will write: on SQLite it starts with BEGIN IMMEDIATE.
WRITE = {"crossroad_write": True}


def _sqlite_begin(conn: sa.Connection) -> None:
    # A writing transaction takes the write lock up front (BEGIN IMMEDIATE): a read-then-write
    # transaction then waits (busy timeout) instead of failing with "database is locked" when
    # it upgrades its lock.  Readers keep a deferred BEGIN and never block anyone (WAL).
    immediate = conn.get_execution_options().get("crossroad_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def create_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql://...``), ready for our schema."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise XRoadError(Code.INVALID_CONFIGURATION, f"Invalid database URL {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args = dict(kwargs.pop("connect_args", {}))
        connect_args.setdefault("check_same_thread", False)
        engine = sa.create_engine(parsed, connect_args=connect_args, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    if backend == "postgresql":
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(parsed, **kwargs)
    raise XRoadError(
        Code.INVALID_CONFIGURATION, f"Unsupported database {backend!r}: use sqlite or postgresql"
    )


def _alembic_config(connection: sa.Connection, component: str) -> Any:
    from alembic.config import Config

    config = Config(attributes={"connection": connection, "component": component})
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_locations", str(MIGRATIONS / component))
    config.set_main_option("path_separator", "os")
    return config


def migrate(engine: sa.Engine, component: str = "central") -> None:
    """Bring the schema of ``component`` to the newest revision (a no-op when it is there)."""
    from alembic import command

    if component not in COMPONENTS:
        raise XRoadError(Code.INVALID_CONFIGURATION, f"No schema for component {component!r}")
    with _migrate_lock, engine.connect() as conn, conn.execution_options(**WRITE).begin():
        if conn.dialect.name == "postgresql":
            # Two processes starting at once must not both create the tables.
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_ADVISORY_LOCK[component])))
        command.upgrade(_alembic_config(conn, component), "head")


def current_revision(engine: sa.Engine, component: str = "central") -> str | None:
    """The schema revision ``component`` is at (``None`` for an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"version_table": f"alembic_version_{component}"}
        )
        return context.get_current_revision()
