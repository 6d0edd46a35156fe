"""The message log's tables (SQLAlchemy Core), protocols.md §9.1 and NIIS DM-ML.

``logrecord`` holds both kinds of log record, told apart by ``discriminator``: ``m`` for a
logged message and ``t`` for a time-stamp.  A message record points at the time-stamp record
that stamped it (``timestamprecord``) and keeps its own ``timestamphashchain`` when it was
stamped in a batch.  Identifiers are stored by their components; ``subsystemcode`` is the empty
string for a member, so the queries and indexes work the same on SQLite and PostgreSQL.

Bytes that are signed (the message) or stamped (the token) are stored as bytes, never re-encoded.
Attachments (SOAP attachments, the REST body) are stored in ``logrecord_chunk`` as rows of at
most a few hundred KiB, written while the body streams in and read back the same way.

``last_archive_digest`` continues the ``linkinginfo`` chain per archive group (``''`` when not
grouping); ``archive_pending`` is the archiver's intent log: a row exists exactly while an
archive file may be on disk without the database knowing it (see
:mod:`crossroad.messagelog.archiver`).  ``messagelog_state`` shares the time-stamping status
between the process that stamps and the proxy workers that must refuse exchanges.
"""

from __future__ import annotations

import sqlalchemy as sa

from crossroad.storage.central_schema import NAMING

COMPONENT = "messagelog"

metadata = sa.MetaData(naming_convention=NAMING)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGSERIAL.
_RecordId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_Text = sa.String(255)

logrecord = sa.Table(
    "logrecord",
    metadata,
    sa.Column("id", _RecordId, primary_key=True, autoincrement=True),
    sa.Column("discriminator", sa.String(1), nullable=False),
    sa.Column("time", sa.BigInteger, nullable=False),  # milliseconds since the epoch (UTC)
    sa.Column("archived", sa.Boolean, nullable=False),
    # -- message records ----------------------------------------------------------------
    sa.Column("queryid", _Text, nullable=True),
    sa.Column("xrequestid", _Text, nullable=True),
    sa.Column("response", sa.Boolean, nullable=True),
    sa.Column("side", sa.String(8), nullable=True),  # client | server
    sa.Column("rest", sa.Boolean, nullable=True),
    sa.Column("xroadinstance", _Text, nullable=True),
    sa.Column("memberclass", _Text, nullable=True),
    sa.Column("membercode", _Text, nullable=True),
    sa.Column("subsystemcode", _Text, nullable=True),
    sa.Column("service", sa.String(1024), nullable=True),
    sa.Column("message", sa.LargeBinary, nullable=True),
    sa.Column("signature", sa.LargeBinary, nullable=True),
    sa.Column("hashchainresult", sa.LargeBinary, nullable=True),
    sa.Column("hashchain", sa.LargeBinary, nullable=True),
    sa.Column("signaturehash", _Text, nullable=True),
    sa.Column("bodylogged", sa.Boolean, nullable=True),
    sa.Column("attachments", sa.Integer, nullable=True),
    sa.Column("timestamprecord", sa.BigInteger, sa.ForeignKey("logrecord.id"), nullable=True),
    sa.Column("timestamphashchain", sa.LargeBinary, nullable=True),
    sa.Column("archivefile", _Text, nullable=True),
    # -- time-stamp records -------------------------------------------------------------
    sa.Column("timestamp", sa.LargeBinary, nullable=True),  # DER TimeStampToken
    sa.Column("tsaurl", sa.String(1024), nullable=True),
    sqlite_autoincrement=True,  # never reuse an id: container names carry it
)

sa.Index("ix_logrecord_queryid", logrecord.c.queryid)
sa.Index("ix_logrecord_timestamprecord", logrecord.c.timestamprecord)
sa.Index("ix_logrecord_archivefile", logrecord.c.archivefile)
# The time-stamper's queue and the archiver's work list (NIIS keeps the same partial indexes).
sa.Index(
    "ix_logrecord_not_timestamped",
    logrecord.c.id,
    sqlite_where=sa.text("discriminator = 'm' AND timestamprecord IS NULL"),
    postgresql_where=sa.text("discriminator = 'm' AND timestamprecord IS NULL"),
)
sa.Index(
    "ix_logrecord_grouping",
    logrecord.c.memberclass,
    logrecord.c.membercode,
    logrecord.c.subsystemcode,
    logrecord.c.id,
    sqlite_where=sa.text("discriminator = 'm' AND archived = 0 AND timestamprecord IS NOT NULL"),
    postgresql_where=sa.text(
        "discriminator = 'm' AND archived = false AND timestamprecord IS NOT NULL"
    ),
)
sa.Index("ix_logrecord_time", logrecord.c.archived, logrecord.c.time)

logrecord_chunk = sa.Table(
    "logrecord_chunk",
    metadata,
    sa.Column(
        "record",
        sa.BigInteger,
        sa.ForeignKey("logrecord.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("attachment", sa.Integer, primary_key=True, autoincrement=False),  # 1..N
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)

last_archive_digest = sa.Table(
    "last_archive_digest",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("groupname", _Text, nullable=False, unique=True),
    sa.Column("digest", sa.Text, nullable=True),
    sa.Column("filename", _Text, nullable=True),
)

archive_pending = sa.Table(
    "archive_pending",
    metadata,
    sa.Column("filename", _Text, primary_key=True),
    sa.Column("groupname", _Text, nullable=False),
    sa.Column("previousdigest", sa.Text, nullable=False),
    sa.Column("previousfile", _Text, nullable=False),
    sa.Column("lastdigest", sa.Text, nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("created", sa.BigInteger, nullable=False),
)

messagelog_state = sa.Table(
    "messagelog_state",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),  # always 1
    sa.Column("timestampfailed", sa.BigInteger, nullable=True),  # ms of the first failure
    sa.Column("lastsuccess", sa.BigInteger, nullable=True),
    sa.Column("lasterror", sa.Text, nullable=True),
    sa.Column("lasttsa", sa.String(1024), nullable=True),
)
