"""The message log schema: log records (messages and time-stamps), attachment chunks, the last
archive digest per group, the archiver's intent log and the shared time-stamping status.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_RecordId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Text = sa.String(length=255)


def upgrade() -> None:
    op.create_table(
        "logrecord",
        sa.Column("id", _RecordId, autoincrement=True, nullable=False),
        sa.Column("discriminator", sa.String(length=1), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("archived", sa.Boolean(), nullable=False),
        sa.Column("queryid", _Text, nullable=True),
        sa.Column("xrequestid", _Text, nullable=True),
        sa.Column("response", sa.Boolean(), nullable=True),
        sa.Column("side", sa.String(length=8), nullable=True),
        sa.Column("rest", sa.Boolean(), nullable=True),
        sa.Column("xroadinstance", _Text, nullable=True),
        sa.Column("memberclass", _Text, nullable=True),
        sa.Column("membercode", _Text, nullable=True),
        sa.Column("subsystemcode", _Text, nullable=True),
        sa.Column("service", sa.String(length=1024), nullable=True),
        sa.Column("message", sa.LargeBinary(), nullable=True),
        sa.Column("signature", sa.LargeBinary(), nullable=True),
        sa.Column("hashchainresult", sa.LargeBinary(), nullable=True),
        sa.Column("hashchain", sa.LargeBinary(), nullable=True),
        sa.Column("signaturehash", _Text, nullable=True),
        sa.Column("bodylogged", sa.Boolean(), nullable=True),
        sa.Column("attachments", sa.Integer(), nullable=True),
        sa.Column("timestamprecord", sa.BigInteger(), nullable=True),
        sa.Column("timestamphashchain", sa.LargeBinary(), nullable=True),
        sa.Column("archivefile", _Text, nullable=True),
        sa.Column("timestamp", sa.LargeBinary(), nullable=True),
        sa.Column("tsaurl", sa.String(length=1024), nullable=True),
        sa.ForeignKeyConstraint(
            ["timestamprecord"],
            ["logrecord.id"],
            name=op.f("fk_logrecord_timestamprecord_logrecord"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_logrecord")),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_logrecord_queryid", "logrecord", ["queryid"], unique=False)
    op.create_index("ix_logrecord_timestamprecord", "logrecord", ["timestamprecord"], unique=False)
    op.create_index("ix_logrecord_archivefile", "logrecord", ["archivefile"], unique=False)
    op.create_index(
        "ix_logrecord_not_timestamped",
        "logrecord",
        ["id"],
        unique=False,
        sqlite_where=sa.text("discriminator = 'm' AND timestamprecord IS NULL"),
        postgresql_where=sa.text("discriminator = 'm' AND timestamprecord IS NULL"),
    )
    op.create_index(
        "ix_logrecord_grouping",
        "logrecord",
        ["memberclass", "membercode", "subsystemcode", "id"],
        unique=False,
        sqlite_where=sa.text(
            "discriminator = 'm' AND archived = 0 AND timestamprecord IS NOT NULL"
        ),
        postgresql_where=sa.text(
            "discriminator = 'm' AND archived = false AND timestamprecord IS NOT NULL"
        ),
    )
    op.create_index("ix_logrecord_time", "logrecord", ["archived", "time"], unique=False)
    op.create_table(
        "logrecord_chunk",
        sa.Column("record", sa.BigInteger(), nullable=False),
        sa.Column("attachment", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["record"],
            ["logrecord.id"],
            name=op.f("fk_logrecord_chunk_record_logrecord"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("record", "attachment", "seq", name=op.f("pk_logrecord_chunk")),
    )
    op.create_table(
        "last_archive_digest",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("groupname", _Text, nullable=False),
        sa.Column("digest", sa.Text(), nullable=True),
        sa.Column("filename", _Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_last_archive_digest")),
        sa.UniqueConstraint("groupname", name=op.f("uq_last_archive_digest_groupname")),
    )
    op.create_table(
        "archive_pending",
        sa.Column("filename", _Text, nullable=False),
        sa.Column("groupname", _Text, nullable=False),
        sa.Column("previousdigest", sa.Text(), nullable=False),
        sa.Column("previousfile", _Text, nullable=False),
        sa.Column("lastdigest", sa.Text(), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("filename", name=op.f("pk_archive_pending")),
    )
    op.create_table(
        "messagelog_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("timestampfailed", sa.BigInteger(), nullable=True),
        sa.Column("lastsuccess", sa.BigInteger(), nullable=True),
        sa.Column("lasterror", sa.Text(), nullable=True),
        sa.Column("lasttsa", sa.String(length=1024), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messagelog_state")),
    )


def downgrade() -> None:
    op.drop_table("messagelog_state")
    op.drop_table("archive_pending")
    op.drop_table("last_archive_digest")
    op.drop_table("logrecord_chunk")
    op.drop_index("ix_logrecord_time", table_name="logrecord")
    op.drop_index("ix_logrecord_grouping", table_name="logrecord")
    op.drop_index("ix_logrecord_not_timestamped", table_name="logrecord")
    op.drop_index("ix_logrecord_archivefile", table_name="logrecord")
    op.drop_index("ix_logrecord_timestamprecord", table_name="logrecord")
    op.drop_index("ix_logrecord_queryid", table_name="logrecord")
    op.drop_table("logrecord")
