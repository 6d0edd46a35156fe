"""The central server schema: registry, configuration sources and keys, API keys, history.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("roles", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_api_keys_name")),
    )
    op.create_table(
        "approved_cas",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("certificate_profile_info", sa.String(length=255), nullable=False),
        sa.Column("authentication_only", sa.Boolean(), nullable=False),
        sa.Column("default_csr_format", sa.String(length=8), nullable=True),
        sa.Column("acme_directory_url", sa.String(length=1024), nullable=True),
        sa.Column("acme_ip_address", sa.String(length=255), nullable=True),
        sa.Column("acme_auth_profile_id", sa.String(length=255), nullable=True),
        sa.Column("acme_sign_profile_id", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approved_cas")),
        sa.UniqueConstraint("name", name=op.f("uq_approved_cas_name")),
    )
    op.create_table(
        "approved_tsas",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("cert", sa.LargeBinary(), nullable=False),
        sa.Column("cost_type", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approved_tsas")),
    )
    op.create_table(
        "configuration_parts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("content_identifier", sa.String(length=255), nullable=False),
        sa.Column("file_name", sa.String(length=255), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_configuration_parts")),
        sa.UniqueConstraint(
            "content_identifier", name=op.f("uq_configuration_parts_content_identifier")
        ),
    )
    op.create_table(
        "configuration_sources",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source_type", sa.String(length=16), nullable=False),
        sa.Column("ha_node_name", sa.String(length=255), nullable=False),
        sa.Column("anchor_file", sa.LargeBinary(), nullable=True),
        sa.Column("anchor_file_hash", sa.String(length=255), nullable=True),
        sa.Column("anchor_generated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_configuration_sources")),
        sa.UniqueConstraint(
            "source_type",
            "ha_node_name",
            name=op.f("uq_configuration_sources_source_type_ha_node_name"),
        ),
    )
    op.create_table(
        "global_groups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_code", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_global_groups")),
        sa.UniqueConstraint("group_code", name=op.f("uq_global_groups_group_code")),
    )
    op.create_table(
        "history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("actor", sa.String(length=255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("table_name", sa.String(length=64), nullable=False),
        sa.Column("operation", sa.String(length=8), nullable=False),
        sa.Column("record_id", sa.String(length=255), nullable=True),
        sa.Column("old_data", sa.Text(), nullable=True),
        sa.Column("new_data", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history")),
    )
    op.create_index(op.f("ix_history_at"), "history", ["at"], unique=False)
    op.create_table(
        "member_classes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("code", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_member_classes")),
        sa.UniqueConstraint("code", name=op.f("uq_member_classes_code")),
    )
    op.create_table(
        "system_parameters",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_system_parameters")),
    )
    op.create_table(
        "trusted_anchors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance_identifier", sa.String(length=255), nullable=False),
        sa.Column("anchor_file", sa.LargeBinary(), nullable=False),
        sa.Column("anchor_hash", sa.String(length=255), nullable=False),
        sa.Column("generated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trusted_anchors")),
        sa.UniqueConstraint(
            "instance_identifier", name=op.f("uq_trusted_anchors_instance_identifier")
        ),
    )
    op.create_table(
        "ca_infos",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ca_id", sa.Integer(), nullable=False),
        sa.Column("is_top", sa.Boolean(), nullable=False),
        sa.Column("cert", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ca_id"], ["approved_cas.id"], name=op.f("fk_ca_infos_ca_id_approved_cas")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ca_infos")),
    )
    op.create_index(op.f("ix_ca_infos_ca_id"), "ca_infos", ["ca_id"], unique=False)
    op.create_table(
        "configuration_signing_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("key_identifier", sa.String(length=255), nullable=False),
        sa.Column("cert", sa.LargeBinary(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("key_reference", sa.String(length=1024), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["configuration_sources.id"],
            name=op.f("fk_configuration_signing_keys_source_id_configuration_sources"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_configuration_signing_keys")),
        sa.UniqueConstraint(
            "key_identifier", name=op.f("uq_configuration_signing_keys_key_identifier")
        ),
    )
    op.create_index(
        op.f("ix_configuration_signing_keys_source_id"),
        "configuration_signing_keys",
        ["source_id"],
        unique=False,
    )
    op.create_table(
        "members",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("member_class_id", sa.Integer(), nullable=False),
        sa.Column("member_code", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_class_id"],
            ["member_classes.id"],
            name=op.f("fk_members_member_class_id_member_classes"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint(
            "member_class_id", "member_code", name=op.f("uq_members_member_class_id_member_code")
        ),
    )
    op.create_index(
        op.f("ix_members_member_class_id"), "members", ["member_class_id"], unique=False
    )
    op.create_table(
        "ocsp_infos",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ca_info_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("cert", sa.LargeBinary(), nullable=True),
        sa.Column("cost_type", sa.String(length=16), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ca_info_id"], ["ca_infos.id"], name=op.f("fk_ocsp_infos_ca_info_id_ca_infos")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ocsp_infos")),
    )
    op.create_index(op.f("ix_ocsp_infos_ca_info_id"), "ocsp_infos", ["ca_info_id"], unique=False)
    op.create_table(
        "security_servers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("server_code", sa.String(length=255), nullable=False),
        sa.Column("address", sa.String(length=255), nullable=True),
        sa.Column("in_maintenance", sa.Boolean(), nullable=False),
        sa.Column("maintenance_message", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["members.id"], name=op.f("fk_security_servers_owner_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_servers")),
        sa.UniqueConstraint(
            "owner_id", "server_code", name=op.f("uq_security_servers_owner_id_server_code")
        ),
    )
    op.create_index(
        op.f("ix_security_servers_owner_id"), "security_servers", ["owner_id"], unique=False
    )
    op.create_table(
        "subsystems",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("subsystem_code", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_subsystems_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subsystems")),
        sa.UniqueConstraint(
            "member_id", "subsystem_code", name=op.f("uq_subsystems_member_id_subsystem_code")
        ),
    )
    op.create_index(op.f("ix_subsystems_member_id"), "subsystems", ["member_id"], unique=False)
    op.create_table(
        "auth_certs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("cert", sa.LargeBinary(), nullable=False),
        sa.Column("cert_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["security_servers.id"],
            name=op.f("fk_auth_certs_server_id_security_servers"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_certs")),
        sa.UniqueConstraint("cert_hash", name=op.f("uq_auth_certs_cert_hash")),
    )
    op.create_index(op.f("ix_auth_certs_server_id"), "auth_certs", ["server_id"], unique=False)
    op.create_table(
        "global_group_members",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("subsystem_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["global_groups.id"],
            name=op.f("fk_global_group_members_group_id_global_groups"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_global_group_members_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["subsystem_id"],
            ["subsystems.id"],
            name=op.f("fk_global_group_members_subsystem_id_subsystems"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_global_group_members")),
    )
    op.create_index(
        op.f("ix_global_group_members_group_id"), "global_group_members", ["group_id"], unique=False
    )
    op.create_index(
        op.f("ix_global_group_members_member_id"),
        "global_group_members",
        ["member_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_global_group_members_subsystem_id"),
        "global_group_members",
        ["subsystem_id"],
        unique=False,
    )
    op.create_table(
        "server_clients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("subsystem_id", sa.Integer(), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_server_clients_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["security_servers.id"],
            name=op.f("fk_server_clients_server_id_security_servers"),
        ),
        sa.ForeignKeyConstraint(
            ["subsystem_id"],
            ["subsystems.id"],
            name=op.f("fk_server_clients_subsystem_id_subsystems"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_clients")),
    )
    op.create_index(
        op.f("ix_server_clients_member_id"), "server_clients", ["member_id"], unique=False
    )
    op.create_index(
        op.f("ix_server_clients_server_id"), "server_clients", ["server_id"], unique=False
    )
    op.create_index(
        op.f("ix_server_clients_subsystem_id"), "server_clients", ["subsystem_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_server_clients_subsystem_id"), table_name="server_clients")
    op.drop_index(op.f("ix_server_clients_server_id"), table_name="server_clients")
    op.drop_index(op.f("ix_server_clients_member_id"), table_name="server_clients")
    op.drop_table("server_clients")
    op.drop_index(op.f("ix_global_group_members_subsystem_id"), table_name="global_group_members")
    op.drop_index(op.f("ix_global_group_members_member_id"), table_name="global_group_members")
    op.drop_index(op.f("ix_global_group_members_group_id"), table_name="global_group_members")
    op.drop_table("global_group_members")
    op.drop_index(op.f("ix_auth_certs_server_id"), table_name="auth_certs")
    op.drop_table("auth_certs")
    op.drop_index(op.f("ix_subsystems_member_id"), table_name="subsystems")
    op.drop_table("subsystems")
    op.drop_index(op.f("ix_security_servers_owner_id"), table_name="security_servers")
    op.drop_table("security_servers")
    op.drop_index(op.f("ix_ocsp_infos_ca_info_id"), table_name="ocsp_infos")
    op.drop_table("ocsp_infos")
    op.drop_index(op.f("ix_members_member_class_id"), table_name="members")
    op.drop_table("members")
    op.drop_index(
        op.f("ix_configuration_signing_keys_source_id"), table_name="configuration_signing_keys"
    )
    op.drop_table("configuration_signing_keys")
    op.drop_index(op.f("ix_ca_infos_ca_id"), table_name="ca_infos")
    op.drop_table("ca_infos")
    op.drop_table("trusted_anchors")
    op.drop_table("system_parameters")
    op.drop_table("member_classes")
    op.drop_index(op.f("ix_history_at"), table_name="history")
    op.drop_table("history")
    op.drop_table("global_groups")
    op.drop_table("configuration_sources")
    op.drop_table("configuration_parts")
    op.drop_table("approved_tsas")
    op.drop_table("approved_cas")
    op.drop_table("api_keys")
