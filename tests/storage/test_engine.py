"""Engines and migrations on SQLite and PostgreSQL: upgrade from empty, idempotence, the
migrated schema equals the declared one, SQLite settings, URL handling."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crossroad.errors import Code, XRoadError
from crossroad.storage import central_schema
from crossroad.storage.engine import (
    create_engine,
    current_revision,
    database_url_for,
    migrate,
)


def test_migrate_from_empty_and_again(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        assert current_revision(engine) is None
        migrate(engine)
        head = current_revision(engine)
        assert head is not None
        tables = set(sa.inspect(engine).get_table_names())
        assert {t.name for t in central_schema.metadata.sorted_tables} <= tables
        assert "alembic_version_central" in tables
        migrate(engine)  # idempotent
        assert current_revision(engine) == head
        with engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}),
                central_schema.metadata,
            )
        diff = [
            d for d in diff if not (d[0] == "remove_table" and d[1].name.startswith("alembic_"))
        ]
        assert diff == []
    finally:
        engine.dispose()


def test_foreign_keys_are_enforced(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        migrate(engine)
        with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
            conn.execute(
                central_schema.subsystems.insert().values(
                    member_id=12345,
                    subsystem_code="x",
                    created_at=sa.func.now(),
                    updated_at=sa.func.now(),
                )
            )
    finally:
        engine.dispose()


def test_sqlite_settings(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")  # makes the folder
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
    finally:
        engine.dispose()


def test_two_sqlite_writers_wait_for_each_other(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    first, second = create_engine(url), create_engine(url)
    try:
        migrate(first)
        migrate(second)
        from crossroad.central.registry import Registry

        Registry(first).initialize("EE")
        Registry(second).add_member_class("GOV", "Government")
        assert [c.code for c in Registry(first).member_classes()] == ["GOV"]
    finally:
        first.dispose()
        second.dispose()


def test_urls(tmp_path: Path) -> None:
    assert database_url_for(tmp_path) == f"sqlite:///{tmp_path.resolve() / 'central.db'}"
    engine = create_engine("postgresql://user@127.0.0.1:1/db")
    assert engine.dialect.driver == "psycopg"
    engine.dispose()
    for bad in ("nonsense", "mysql://u@h/db"):
        with pytest.raises(XRoadError) as info:
            create_engine(bad)
        assert info.value.code == Code.INVALID_CONFIGURATION
    with pytest.raises(XRoadError):
        migrate(create_engine("sqlite://"), component="nonexistent")
