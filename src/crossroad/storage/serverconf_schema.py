"""The security server's configuration tables (SQLAlchemy Core), protocols.md §10.5.

Tables carry the ``ss_`` prefix so that a security server and a central server can share one
PostgreSQL database.  Identifiers are stored by their components; a member's
``subsystem_code`` is the empty string (never a valid code), so unique constraints work the same
on SQLite and PostgreSQL.  Access-right subjects and local-group members are stored in their
``TYPE:...`` string form (components cannot contain ``/`` or ``:``, so it is unambiguous).

``ss_server.generation`` counts changes: every write increments it in the same transaction, and
readers rebuild their snapshot when it moved.  The versioned migrations in
``migrations/serverconf`` create exactly these tables (a test compares them).
"""

from __future__ import annotations

import sqlalchemy as sa

from crossroad.storage.central_schema import NAMING

COMPONENT = "serverconf"

metadata = sa.MetaData(naming_convention=NAMING)

_Text = sa.String(255)
_Url = sa.String(2048)
_Time = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.Integer, primary_key=True, autoincrement=True)


def _fk(name: str, target: str) -> sa.Column[int]:
    return sa.Column(name, sa.Integer, sa.ForeignKey(target), nullable=False, index=True)


server = sa.Table(
    "ss_server",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1
    sa.Column("instance", _Text, nullable=True),
    sa.Column("member_class", _Text, nullable=True),
    sa.Column("member_code", _Text, nullable=True),
    sa.Column("server_code", _Text, nullable=True),
    sa.Column("generation", sa.BigInteger, nullable=False),
    sa.Column("updated_at", _Time, nullable=False),
)

clients = sa.Table(
    "ss_clients",
    metadata,
    _id(),
    sa.Column("instance", _Text, nullable=False),
    sa.Column("member_class", _Text, nullable=False),
    sa.Column("member_code", _Text, nullable=False),
    sa.Column("subsystem_code", _Text, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("connection_type", sa.String(16), nullable=False),
    sa.Column("created_at", _Time, nullable=False),
    sa.Column("updated_at", _Time, nullable=False),
    sa.UniqueConstraint("instance", "member_class", "member_code", "subsystem_code"),
)

is_certs = sa.Table(
    "ss_is_certs",
    metadata,
    _id(),
    _fk("client_id", "ss_clients.id"),
    sa.Column("cert_hash", sa.String(64), nullable=False),  # SHA-256 hex of the DER
    sa.Column("cert", sa.LargeBinary, nullable=False),
    sa.Column("created_at", _Time, nullable=False),
    sa.UniqueConstraint("client_id", "cert_hash"),
)

service_descriptions = sa.Table(
    "ss_service_descriptions",
    metadata,
    _id(),
    _fk("client_id", "ss_clients.id"),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("url", _Url, nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False),
    sa.Column("disabled_notice", _Text, nullable=True),
    sa.Column("refreshed_at", _Time, nullable=True),
    sa.Column("content", sa.LargeBinary, nullable=True),
    sa.Column("created_at", _Time, nullable=False),
)

services = sa.Table(
    "ss_services",
    metadata,
    _id(),
    _fk("description_id", "ss_service_descriptions.id"),
    sa.Column("service_code", _Text, nullable=False),
    sa.Column("service_version", _Text, nullable=True),
    sa.Column("title", sa.Text, nullable=True),
    sa.Column("url", _Url, nullable=True),
    sa.Column("timeout", sa.Integer, nullable=False),
    sa.Column("ssl_authentication", sa.Boolean, nullable=False),
)

endpoints = sa.Table(
    "ss_endpoints",
    metadata,
    _id(),
    _fk("client_id", "ss_clients.id"),
    sa.Column("service_code", _Text, nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", _Url, nullable=False),
    sa.Column("generated", sa.Boolean, nullable=False),
    sa.UniqueConstraint("client_id", "service_code", "method", "path"),
)

access_rights = sa.Table(
    "ss_access_rights",
    metadata,
    _id(),
    _fk("client_id", "ss_clients.id"),
    _fk("endpoint_id", "ss_endpoints.id"),
    sa.Column("subject", sa.String(1100), nullable=False),
    sa.Column("rights_given_at", _Time, nullable=False),
    sa.UniqueConstraint("endpoint_id", "subject"),
)

local_groups = sa.Table(
    "ss_local_groups",
    metadata,
    _id(),
    _fk("client_id", "ss_clients.id"),
    sa.Column("group_code", _Text, nullable=False),
    sa.Column("description", _Text, nullable=False),
    sa.Column("updated_at", _Time, nullable=False),
    sa.UniqueConstraint("client_id", "group_code"),
)

local_group_members = sa.Table(
    "ss_local_group_members",
    metadata,
    _id(),
    _fk("group_id", "ss_local_groups.id"),
    sa.Column("member", sa.String(1100), nullable=False),
    sa.Column("added_at", _Time, nullable=False),
    sa.UniqueConstraint("group_id", "member"),
)

api_keys = sa.Table(
    "ss_api_keys",
    metadata,
    _id(),
    sa.Column("name", _Text, nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("roles", _Text, nullable=False),
    sa.Column("created_at", _Time, nullable=False),
)


def migrate(engine: sa.Engine) -> None:
    """Bring the serverconf schema to its newest revision (shared ``env.py``, own scripts)."""
    from crossroad.storage import engine as storage

    storage.migrate(engine, COMPONENT)
