"""The archiver's and the cleaner's side of the message log database (protocols.md §9.5).

Archiving a file is three steps, and the database always knows which of them may be unfinished:

1. :meth:`ArchiveStore.begin` — one transaction: an ``archive_pending`` row names the file about
   to be written (its group, the link it continues, its last digest), and the records going into
   it get ``archivefile`` set.  It checks that the group's last digest is still the one the file
   links to and that no record is already claimed, so two archivers can never fork a chain.
2. the file is written to a temporary name and renamed into place (the archiver's business);
3. :meth:`ArchiveStore.commit` — one transaction: the records are marked archived, the group's
   ``last_archive_digest`` becomes the file's, the pending row goes.

After a crash, :meth:`pending` lists what was begun: if the file is in place the archiver
commits it (roll forward), otherwise it :meth:`abort`\\ s (the records are free again).  Either
way no record is archived twice and the chain never forks or breaks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from crossroad.errors import Code, XRoadError
from crossroad.messagelog.records import StoredRecord
from crossroad.messagelog.store import MessageLogStore, chunked, stored_from_row
from crossroad.storage import messagelog_schema as t

_lr = t.logrecord


@dataclass(frozen=True)
class Archivable:
    """A record ready for archiving, with what decides its group."""

    id: int
    instance: str
    member_class: str
    member_code: str
    subsystem_code: str
    time_ms: int


@dataclass(frozen=True)
class PendingArchive:
    """An archive file that was begun: the intent row of step 1."""

    filename: str
    group: str
    previous_digest: str
    previous_file: str
    last_digest: str
    records: int
    created: int


class ArchiveStore:
    """Archive bookkeeping and cleaning over a :class:`MessageLogStore`'s database."""

    def __init__(self, store: MessageLogStore) -> None:
        self.store = store

    # -- what to archive ------------------------------------------------------------------

    def archivable(self, limit: int) -> list[Archivable]:
        """Stamped, unarchived, unclaimed records in group order (NIIS orders the same way)."""
        m = _lr.c
        query = (
            sa.select(m.id, m.xroadinstance, m.memberclass, m.membercode, m.subsystemcode, m.time)
            .where(
                m.discriminator == "m",
                m.archived.is_(False),
                m.timestamprecord.is_not(None),
                m.archivefile.is_(None),
            )
            .order_by(m.memberclass, m.membercode, m.subsystemcode, m.xroadinstance, m.id)
            .limit(limit)
        )
        with self.store.read() as conn:
            return [
                Archivable(int(r[0]), r[1], r[2], r[3], r[4] or "", int(r[5]))
                for r in conn.execute(query)
            ]

    def count_archivable(self) -> int:
        m = _lr.c
        with self.store.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        m.discriminator == "m",
                        m.archived.is_(False),
                        m.timestamprecord.is_not(None),
                        m.archivefile.is_(None),
                    )
                ).scalar_one()
            )

    def records(self, ids: Sequence[int]) -> list[StoredRecord]:
        """The records with ``ids``, in that order."""
        found: dict[int, StoredRecord] = {}
        with self.store.read() as conn:
            for part in chunked(list(ids)):
                for row in conn.execute(self.store.select_records().where(_lr.c.id.in_(part))):
                    record = stored_from_row(row)
                    found[record.id] = record
        return [found[i] for i in ids if i in found]

    def last_archive(self, group: str) -> tuple[str, str]:
        """``(last digest, file name)`` of the group's last archive; ``("", "")`` for none."""
        d = t.last_archive_digest
        with self.store.read() as conn:
            row = conn.execute(
                sa.select(d.c.digest, d.c.filename).where(d.c.groupname == group)
            ).first()
        if row is None:
            return "", ""
        return row.digest or "", row.filename or ""

    def archive_groups(self) -> dict[str, tuple[str, str]]:
        d = t.last_archive_digest
        with self.store.read() as conn:
            rows = conn.execute(sa.select(d.c.groupname, d.c.digest, d.c.filename)).all()
        return {r.groupname: (r.digest or "", r.filename or "") for r in rows}

    # -- the three steps ------------------------------------------------------------------

    def begin(self, pending: PendingArchive, ids: Sequence[int]) -> None:
        """Step 1: claim ``ids`` for ``pending.filename`` (``internal_error`` if the chain
        moved on or a record is taken)."""
        with self.store.write() as conn:
            current = self._last(conn, pending.group)
            if current != (pending.previous_digest, pending.previous_file):
                raise XRoadError(
                    Code.INTERNAL_ERROR,
                    f"Archive group {pending.group or '(none)'} moved on while archiving",
                )
            p = t.archive_pending
            other = conn.execute(
                sa.select(p.c.filename).where(p.c.groupname == pending.group)
            ).first()
            if other is not None:
                raise XRoadError(Code.INTERNAL_ERROR, f"Archive {other.filename} is still pending")
            conn.execute(p.insert().values(**_pending_row(pending)))
            claimed = 0
            for part in chunked(list(ids)):
                claimed += conn.execute(
                    _lr.update()
                    .where(
                        _lr.c.id.in_(part),
                        _lr.c.archived.is_(False),
                        _lr.c.archivefile.is_(None),
                        _lr.c.timestamprecord.is_not(None),
                    )
                    .values(archivefile=pending.filename)
                ).rowcount
            if claimed != len(ids):
                raise XRoadError(
                    Code.INTERNAL_ERROR,
                    f"Only {claimed} of {len(ids)} records could be claimed for archiving",
                )

    def commit(self, filename: str) -> int:
        """Step 3: the file is in place; mark its records archived and continue the chain."""
        p = t.archive_pending
        with self.store.write() as conn:
            row = conn.execute(sa.select(p).where(p.c.filename == filename)).first()
            if row is None:
                raise XRoadError(Code.INTERNAL_ERROR, f"Archive {filename} is not pending")
            done = conn.execute(
                _lr.update()
                .where(_lr.c.archivefile == filename, _lr.c.archived.is_(False))
                .values(archived=True)
            ).rowcount
            d = t.last_archive_digest
            values = {"digest": row.lastdigest, "filename": filename}
            updated = conn.execute(
                d.update().where(d.c.groupname == row.groupname).values(**values)
            ).rowcount
            if not updated:
                conn.execute(d.insert().values(groupname=row.groupname, **values))
            conn.execute(p.delete().where(p.c.filename == filename))
            self._archive_timestamps(conn)
        return int(done)

    def abort(self, filename: str) -> None:
        """Undo step 1: the file never got into place."""
        p = t.archive_pending
        with self.store.write() as conn:
            conn.execute(
                _lr.update()
                .where(_lr.c.archivefile == filename, _lr.c.archived.is_(False))
                .values(archivefile=None)
            )
            conn.execute(p.delete().where(p.c.filename == filename))

    def pending(self) -> list[PendingArchive]:
        p = t.archive_pending
        with self.store.read() as conn:
            rows = conn.execute(sa.select(p).order_by(p.c.created)).all()
        return [
            PendingArchive(
                r.filename,
                r.groupname,
                r.previousdigest,
                r.previousfile,
                r.lastdigest,
                int(r.records),
                int(r.created),
            )
            for r in rows
        ]

    def claimed_ids(self, filename: str) -> list[int]:
        with self.store.read() as conn:
            return [
                int(i)
                for i in conn.execute(
                    sa.select(_lr.c.id).where(_lr.c.archivefile == filename).order_by(_lr.c.id)
                ).scalars()
            ]

    def _last(self, conn: sa.Connection, group: str) -> tuple[str, str]:
        d = t.last_archive_digest
        row = conn.execute(
            sa.select(d.c.digest, d.c.filename).where(d.c.groupname == group)
        ).first()
        return ("", "") if row is None else (row.digest or "", row.filename or "")

    def _archive_timestamps(self, conn: sa.Connection) -> None:
        # A time-stamp record is archived once every record it stamped is (NIIS does the same).
        m = _lr.alias("m")
        conn.execute(
            _lr.update()
            .where(
                _lr.c.discriminator == "t",
                _lr.c.archived.is_(False),
                ~sa.exists().where(m.c.timestamprecord == _lr.c.id, m.c.archived.is_(False)),
            )
            .values(archived=True)
        )

    # -- cleaning -------------------------------------------------------------------------

    def clean(self, before_ms: int, batch: int = 1000) -> int:
        """Delete archived records older than ``before_ms`` (and their attachments, and the
        time-stamp records nothing refers to any more); returns how many messages went."""
        removed = 0
        while True:
            with self.store.write() as conn:
                ids = [
                    int(i)
                    for i in conn.execute(
                        sa.select(_lr.c.id)
                        .where(
                            _lr.c.discriminator == "m",
                            _lr.c.archived.is_(True),
                            _lr.c.time < before_ms,
                        )
                        .limit(batch)
                    ).scalars()
                ]
                if ids:
                    conn.execute(
                        t.logrecord_chunk.delete().where(t.logrecord_chunk.c.record.in_(ids))
                    )
                    conn.execute(_lr.delete().where(_lr.c.id.in_(ids)))
                    removed += len(ids)
            if len(ids) < batch:
                break
        m = _lr.alias("m")
        with self.store.write() as conn:
            conn.execute(
                _lr.delete().where(
                    _lr.c.discriminator == "t",
                    _lr.c.archived.is_(True),
                    _lr.c.time < before_ms,
                    ~sa.exists().where(m.c.timestamprecord == _lr.c.id),
                )
            )
        return removed


def _pending_row(p: PendingArchive) -> dict[str, Any]:
    return {
        "filename": p.filename,
        "groupname": p.group,
        "previousdigest": p.previous_digest,
        "previousfile": p.previous_file,
        "lastdigest": p.last_digest,
        "records": p.records,
        "created": p.created,
    }
