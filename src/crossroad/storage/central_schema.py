"""The central server's tables (SQLAlchemy Core): the DM-CS essentials of protocols.md §11.1.

The registry (:mod:`crossroad.central.registry`) is the only writer; every change it makes is
mirrored into :data:`history` in the same transaction.  Certificates are stored as DER bytes,
identifiers by their components (the instance identifier is a system parameter, so rows carry
only class/code/subsystem/server codes).  A client (member or subsystem) is referenced as
``member_id`` plus an optional ``subsystem_id``.

Foreign keys do not cascade: the registry deletes dependent rows itself, so that each deletion
reaches the history table.  The versioned migrations in ``migrations/central`` create exactly
these tables (a test compares them).
"""

from __future__ import annotations

import sqlalchemy as sa

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

# Short names for the column types used everywhere.
_Id = sa.Integer
_Text = sa.String(255)
_Url = sa.String(1024)
_Time = sa.DateTime(timezone=True)


def _id() -> sa.Column[int]:
    return sa.Column("id", _Id, primary_key=True, autoincrement=True)


def _created() -> sa.Column[object]:
    return sa.Column("created_at", _Time, nullable=False)


def _updated() -> sa.Column[object]:
    return sa.Column("updated_at", _Time, nullable=False)


def _fk(name: str, target: str, *, nullable: bool = False) -> sa.Column[int]:
    return sa.Column(name, _Id, sa.ForeignKey(target), nullable=nullable, index=True)


system_parameters = sa.Table(
    "system_parameters",
    metadata,
    sa.Column("key", _Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    _updated(),
)

member_classes = sa.Table(
    "member_classes",
    metadata,
    _id(),
    sa.Column("code", _Text, nullable=False, unique=True),
    sa.Column("description", _Text, nullable=False),
    _created(),
    _updated(),
)

members = sa.Table(
    "members",
    metadata,
    _id(),
    _fk("member_class_id", "member_classes.id"),
    sa.Column("member_code", _Text, nullable=False),
    sa.Column("name", _Text, nullable=False),
    _created(),
    _updated(),
    sa.UniqueConstraint("member_class_id", "member_code"),
)

subsystems = sa.Table(
    "subsystems",
    metadata,
    _id(),
    _fk("member_id", "members.id"),
    sa.Column("subsystem_code", _Text, nullable=False),
    sa.Column("name", _Text, nullable=True),
    _created(),
    _updated(),
    sa.UniqueConstraint("member_id", "subsystem_code"),
)

security_servers = sa.Table(
    "security_servers",
    metadata,
    _id(),
    _fk("owner_id", "members.id"),
    sa.Column("server_code", _Text, nullable=False),
    sa.Column("address", _Text, nullable=True),
    sa.Column("in_maintenance", sa.Boolean, nullable=False, default=False),
    sa.Column("maintenance_message", sa.Text, nullable=True),
    _created(),
    _updated(),
    sa.UniqueConstraint("owner_id", "server_code"),
)

auth_certs = sa.Table(
    "auth_certs",
    metadata,
    _id(),
    _fk("server_id", "security_servers.id"),
    sa.Column("cert", sa.LargeBinary, nullable=False),
    # SHA-256 of the DER, lower-case hex: unique across the instance, as NIIS requires.
    sa.Column("cert_hash", sa.String(64), nullable=False, unique=True),
    _created(),
)

server_clients = sa.Table(
    "server_clients",
    metadata,
    _id(),
    _fk("server_id", "security_servers.id"),
    _fk("member_id", "members.id"),
    _fk("subsystem_id", "subsystems.id", nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False, default=True),
    _created(),
    _updated(),
)

global_groups = sa.Table(
    "global_groups",
    metadata,
    _id(),
    sa.Column("group_code", _Text, nullable=False, unique=True),
    sa.Column("description", _Text, nullable=False),
    _created(),
    _updated(),
)

global_group_members = sa.Table(
    "global_group_members",
    metadata,
    _id(),
    _fk("group_id", "global_groups.id"),
    _fk("member_id", "members.id"),
    _fk("subsystem_id", "subsystems.id", nullable=True),
    _created(),
)

approved_cas = sa.Table(
    "approved_cas",
    metadata,
    _id(),
    sa.Column("name", _Text, nullable=False, unique=True),
    sa.Column("certificate_profile_info", _Text, nullable=False),
    sa.Column("authentication_only", sa.Boolean, nullable=False, default=False),
    sa.Column("default_csr_format", sa.String(8), nullable=True),
    sa.Column("acme_directory_url", _Url, nullable=True),
    sa.Column("acme_ip_address", _Text, nullable=True),
    sa.Column("acme_auth_profile_id", _Text, nullable=True),
    sa.Column("acme_sign_profile_id", _Text, nullable=True),
    _created(),
    _updated(),
)

# The top CA certificate (is_top) and the intermediate CA certificates of an approved CA.
ca_infos = sa.Table(
    "ca_infos",
    metadata,
    _id(),
    _fk("ca_id", "approved_cas.id"),
    sa.Column("is_top", sa.Boolean, nullable=False),
    sa.Column("cert", sa.LargeBinary, nullable=False),
    _created(),
    _updated(),
)

ocsp_infos = sa.Table(
    "ocsp_infos",
    metadata,
    _id(),
    _fk("ca_info_id", "ca_infos.id"),
    sa.Column("url", _Url, nullable=False),
    sa.Column("cert", sa.LargeBinary, nullable=True),
    sa.Column("cost_type", sa.String(16), nullable=True),
    _created(),
    _updated(),
)

approved_tsas = sa.Table(
    "approved_tsas",
    metadata,
    _id(),
    sa.Column("name", _Text, nullable=False),
    sa.Column("url", _Url, nullable=False),
    sa.Column("cert", sa.LargeBinary, nullable=False),
    sa.Column("cost_type", sa.String(16), nullable=True),
    _created(),
    _updated(),
)

configuration_sources = sa.Table(
    "configuration_sources",
    metadata,
    _id(),
    sa.Column("source_type", sa.String(16), nullable=False),  # internal | external
    sa.Column("ha_node_name", _Text, nullable=False),
    # The anchor last generated for this source (written by the distribution side).
    sa.Column("anchor_file", sa.LargeBinary, nullable=True),
    sa.Column("anchor_file_hash", _Text, nullable=True),
    sa.Column("anchor_generated_at", _Time, nullable=True),
    _created(),
    _updated(),
    sa.UniqueConstraint("source_type", "ha_node_name"),
)

configuration_signing_keys = sa.Table(
    "configuration_signing_keys",
    metadata,
    _id(),
    _fk("source_id", "configuration_sources.id"),
    sa.Column("key_identifier", _Text, nullable=False, unique=True),
    sa.Column("cert", sa.LargeBinary, nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, default=False),
    # Where the private key lives (a file name under keys/, or a token reference).
    sa.Column("key_reference", sa.String(1024), nullable=False),
    _created(),
)

configuration_parts = sa.Table(
    "configuration_parts",
    metadata,
    _id(),
    sa.Column("content_identifier", _Text, nullable=False, unique=True),
    sa.Column("file_name", _Text, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    _created(),
    _updated(),
)

trusted_anchors = sa.Table(
    "trusted_anchors",
    metadata,
    _id(),
    sa.Column("instance_identifier", _Text, nullable=False, unique=True),
    sa.Column("anchor_file", sa.LargeBinary, nullable=False),
    sa.Column("anchor_hash", _Text, nullable=False),
    sa.Column("generated_at", _Time, nullable=True),
    _created(),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    _id(),
    sa.Column("name", _Text, nullable=False, unique=True),
    # SHA-256 of the secret, hex: the secret itself is shown once and never stored.
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("roles", _Text, nullable=False),  # comma-separated role names
    _created(),
)

history = sa.Table(
    "history",
    metadata,
    _id(),
    sa.Column("actor", _Text, nullable=False),
    sa.Column("at", _Time, nullable=False, index=True),
    sa.Column("table_name", sa.String(64), nullable=False),
    sa.Column("operation", sa.String(8), nullable=False),  # INSERT | UPDATE | DELETE
    sa.Column("record_id", _Text, nullable=True),
    sa.Column("old_data", sa.Text, nullable=True),  # JSON
    sa.Column("new_data", sa.Text, nullable=True),  # JSON
)
