"""The security server configuration schema: server, clients, IS certificates, service
descriptions, services, endpoints, access rights, local groups, API keys.

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
        "ss_api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("roles", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ss_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_ss_api_keys_key_hash")),
        sa.UniqueConstraint("name", name=op.f("uq_ss_api_keys_name")),
    )
    op.create_table(
        "ss_clients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=False),
        sa.Column("member_class", sa.String(length=255), nullable=False),
        sa.Column("member_code", sa.String(length=255), nullable=False),
        sa.Column("subsystem_code", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("connection_type", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ss_clients")),
        sa.UniqueConstraint(
            "instance",
            "member_class",
            "member_code",
            "subsystem_code",
            name=op.f("uq_ss_clients_instance_member_class_member_code_subsystem_code"),
        ),
    )
    op.create_table(
        "ss_server",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("instance", sa.String(length=255), nullable=True),
        sa.Column("member_class", sa.String(length=255), nullable=True),
        sa.Column("member_code", sa.String(length=255), nullable=True),
        sa.Column("server_code", sa.String(length=255), nullable=True),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ss_server")),
    )
    op.create_table(
        "ss_endpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("service_code", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=2048), nullable=False),
        sa.Column("generated", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["ss_clients.id"], name=op.f("fk_ss_endpoints_client_id_ss_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ss_endpoints")),
        sa.UniqueConstraint(
            "client_id",
            "service_code",
            "method",
            "path",
            name=op.f("uq_ss_endpoints_client_id_service_code_method_path"),
        ),
    )
    op.create_index(op.f("ix_ss_endpoints_client_id"), "ss_endpoints", ["client_id"], unique=False)
    op.create_table(
        "ss_is_certs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("cert_hash", sa.String(length=64), nullable=False),
        sa.Column("cert", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["ss_clients.id"], name=op.f("fk_ss_is_certs_client_id_ss_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ss_is_certs")),
        sa.UniqueConstraint(
            "client_id", "cert_hash", name=op.f("uq_ss_is_certs_client_id_cert_hash")
        ),
    )
    op.create_index(op.f("ix_ss_is_certs_client_id"), "ss_is_certs", ["client_id"], unique=False)
    op.create_table(
        "ss_local_groups",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("group_code", sa.String(length=255), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["ss_clients.id"], name=op.f("fk_ss_local_groups_client_id_ss_clients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ss_local_groups")),
        sa.UniqueConstraint(
            "client_id", "group_code", name=op.f("uq_ss_local_groups_client_id_group_code")
        ),
    )
    op.create_index(
        op.f("ix_ss_local_groups_client_id"), "ss_local_groups", ["client_id"], unique=False
    )
    op.create_table(
        "ss_service_descriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_notice", sa.String(length=255), nullable=True),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["ss_clients.id"],
            name=op.f("fk_ss_service_descriptions_client_id_ss_clients"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ss_service_descriptions")),
    )
    op.create_index(
        op.f("ix_ss_service_descriptions_client_id"),
        "ss_service_descriptions",
        ["client_id"],
        unique=False,
    )
    op.create_table(
        "ss_access_rights",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("endpoint_id", sa.Integer(), nullable=False),
        sa.Column("subject", sa.String(length=1100), nullable=False),
        sa.Column("rights_given_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["ss_clients.id"], name=op.f("fk_ss_access_rights_client_id_ss_clients")
        ),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["ss_endpoints.id"],
            name=op.f("fk_ss_access_rights_endpoint_id_ss_endpoints"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ss_access_rights")),
        sa.UniqueConstraint(
            "endpoint_id", "subject", name=op.f("uq_ss_access_rights_endpoint_id_subject")
        ),
    )
    op.create_index(
        op.f("ix_ss_access_rights_client_id"), "ss_access_rights", ["client_id"], unique=False
    )
    op.create_index(
        op.f("ix_ss_access_rights_endpoint_id"), "ss_access_rights", ["endpoint_id"], unique=False
    )
    op.create_table(
        "ss_local_group_members",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("member", sa.String(length=1100), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["ss_local_groups.id"],
            name=op.f("fk_ss_local_group_members_group_id_ss_local_groups"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ss_local_group_members")),
        sa.UniqueConstraint(
            "group_id", "member", name=op.f("uq_ss_local_group_members_group_id_member")
        ),
    )
    op.create_index(
        op.f("ix_ss_local_group_members_group_id"),
        "ss_local_group_members",
        ["group_id"],
        unique=False,
    )
    op.create_table(
        "ss_services",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("description_id", sa.Integer(), nullable=False),
        sa.Column("service_code", sa.String(length=255), nullable=False),
        sa.Column("service_version", sa.String(length=255), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("url", sa.String(length=2048), nullable=True),
        sa.Column("timeout", sa.Integer(), nullable=False),
        sa.Column("ssl_authentication", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["description_id"],
            ["ss_service_descriptions.id"],
            name=op.f("fk_ss_services_description_id_ss_service_descriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ss_services")),
    )
    op.create_index(
        op.f("ix_ss_services_description_id"), "ss_services", ["description_id"], unique=False
    )


def downgrade() -> None:
    op.drop_table("ss_services")
    op.drop_table("ss_local_group_members")
    op.drop_table("ss_access_rights")
    op.drop_table("ss_service_descriptions")
    op.drop_table("ss_local_groups")
    op.drop_table("ss_is_certs")
    op.drop_table("ss_endpoints")
    op.drop_table("ss_server")
    op.drop_table("ss_clients")
    op.drop_table("ss_api_keys")
