"""Archiving time-stamped records into log archive files (protocols.md §9.5; NIIS ``LogArchiver``,
``LogArchiveWriter``).

Records that are time-stamped and not yet archived are taken in group order (grouping none,
member or subsystem), turned into ASiC-E containers (:func:`crossroad.messagelog.records.
container_for`) and packed into ZIP files that end with the ``linkinginfo`` entry
(:func:`crossroad.crypto.archive.build_archive`), the chain continuing from the group's last
archive.  A file is closed once its containers exceed ``archive_max_filesize`` (as NIIS: the
limit is checked after adding).  File names follow NIIS:
``mlog-[group-]{start}-{end}-{first 16 hex of the last digest}.zip`` (``.zip.gpg`` encrypted).

**Crash safety** (see :mod:`crossroad.messagelog.archive_store` for the three steps): a file is
claimed in the database, written to ``tmp-mlog-*.tmp``, fsynced and renamed into place, and only
then committed.  :meth:`Archiver.reconcile` (run before every archiving round) commits a claimed
file that is in place and intact, and releases one that is not; temporary files are removed.
So a crash at any point neither duplicates a record nor breaks or forks the chain.

**Encryption** (optional): with ``archive_encryption`` the archive is encrypted and signed with
OpenPGP by the ``gpg`` binary, as NIIS does (``--encrypt --sign`` with the key ring in
``archive_gpg_home``; recipients ``archive_encryption_keys``, else the ring's own key).
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from crossroad.clock import SYSTEM, Clock
from crossroad.crypto.archive import build_archive, verify_archive
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId
from crossroad.messagelog.archive_store import Archivable, ArchiveStore, PendingArchive
from crossroad.messagelog.records import container_name, from_ms, group_name, time_ms
from crossroad.messagelog.settings import LogSettings
from crossroad.messagelog.store import MessageLogStore

log = logging.getLogger(__name__)

TMP_PREFIX = "tmp-mlog-"
TMP_SUFFIX = ".tmp"
GPG = "/usr/bin/gpg"
#: Records loaded from the database at a time while filling an archive.
LOAD_BATCH = 50

# The options NIIS passes to gpg: local key ring only, keys always trusted, no compression.
_GPG_ARGS = (
    "--batch",
    "--no-tty",
    "--yes",
    "--encrypt",
    "--sign",
    "--no-auto-key-locate",
    "--trust-model",
    "always",
    "--compress-algo",
    "none",
    "--cipher-algo",
    "AES-256",
    "--digest-algo",
    "SHA256",
)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ArchiveFile:
    """One archive file written: where, which group, how many records, its last digest."""

    path: Path
    group: str
    records: int
    last_digest: str


@dataclass
class ArchiveRun:
    """What one archiving round did."""

    files: list[ArchiveFile] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(f.records for f in self.files)


def encrypt(data: bytes, gpg_home: Path, recipients: Sequence[str]) -> bytes:
    """OpenPGP-encrypt and sign ``data`` with the ``gpg`` binary (``io_error`` on failure)."""
    command = [GPG, "--homedir", str(gpg_home), *_GPG_ARGS, "--output", "-"]
    if recipients:
        for key in recipients:
            command += ["--recipient", key]
    else:
        command.append("--default-recipient-self")
    try:
        done = subprocess.run(command, input=data, capture_output=True, check=False, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise XRoadError(Code.IO_ERROR, f"gpg failed: {exc}") from exc
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip()[-500:]
        raise XRoadError(Code.IO_ERROR, f"gpg exited with {done.returncode}: {detail}")
    return done.stdout


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _group_of(item: Archivable, settings: LogSettings) -> str:
    client = ClientId(
        item.instance, item.member_class, item.member_code, item.subsystem_code or None
    )
    return group_name(client, settings.archive_grouping)


class Archiver:
    """Writes archive files for one message log (one archiver per database at a time)."""

    def __init__(
        self,
        store: MessageLogStore,
        settings: LogSettings,
        *,
        clock: Clock = SYSTEM,
        after_write: Callable[[Path], None] | None = None,
    ) -> None:
        if settings.archive_dir is None:
            raise XRoadError(Code.INVALID_CONFIGURATION, "No archive directory configured")
        self.store = store
        self.archives = ArchiveStore(store)
        self.settings = settings
        self.directory = settings.archive_dir
        self.clock = clock
        #: Called once a file is in place, before the database records it (a transfer hook;
        #: tests raise here to crash at the worst moment).
        self.after_write = after_write

    @property
    def _suffix(self) -> str:
        return ".gpg" if self.settings.archive_encryption else ""

    # -- recovery -------------------------------------------------------------------------

    def reconcile(self) -> ArchiveRun:
        """Finish or undo archive files begun before a crash; remove temporary files."""
        run = ArchiveRun()
        self.directory.mkdir(parents=True, exist_ok=True)
        for tmp in self.directory.glob(f"{TMP_PREFIX}*{TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
        for pending in self.archives.pending():
            path = self.directory / pending.filename
            if path.is_file() and self._intact(path, pending):
                self.archives.commit(pending.filename)
                run.recovered.append(pending.filename)
                log.warning("archive %s was written before a crash: committed", pending.filename)
            else:
                path.unlink(missing_ok=True)
                self.archives.abort(pending.filename)
                run.released.append(pending.filename)
                log.warning("archive %s was not completed before a crash: released", path.name)
        return run

    def _intact(self, path: Path, pending: PendingArchive) -> bool:
        if pending.filename.endswith(".gpg"):
            return path.stat().st_size > 0  # renamed only after a complete, fsynced write
        report = verify_archive(
            path.read_bytes(),
            pending.previous_digest,
            pending.previous_file or None,
            name=pending.filename,
        )
        return report.valid and report.last_digest == pending.last_digest

    # -- archiving ------------------------------------------------------------------------

    def archive_once(self, progress: Progress | None = None) -> ArchiveRun:
        """Archive everything archivable now (in rounds of ``archive_transaction_limit``)."""
        run = self.reconcile()
        total = self.archives.count_archivable()
        done = 0
        if progress is not None:
            progress(0, total)
        while True:
            items = self.archives.archivable(self.settings.archive_transaction_limit)
            if not items:
                break
            for group, members in _by_group(items, self.settings):
                for archive_file in self._archive_group(group, members):
                    run.files.append(archive_file)
                    done += archive_file.records
                    if progress is not None:
                        progress(done, max(total, done))
            if len(items) < self.settings.archive_transaction_limit:
                break
        return run

    def _archive_group(self, group: str, items: Sequence[Archivable]) -> Iterator[ArchiveFile]:
        containers: list[tuple[str, bytes]] = []
        ids: list[int] = []
        times: list[int] = []
        size = 0
        for start in range(0, len(items), LOAD_BATCH):
            batch = [i.id for i in items[start : start + LOAD_BATCH]]
            for stored in self.archives.records(batch):
                data = self.store.container(stored).render()
                name = container_name(stored.record.query_id, stored.record.response, stored.id)
                containers.append((name, data))
                ids.append(stored.id)
                times.append(stored.record.time_ms)
                size += len(data)
                if size > self.settings.archive_max_filesize:
                    yield self._write(group, containers, ids, times)
                    containers, ids, times, size = [], [], [], 0
        if containers:
            yield self._write(group, containers, ids, times)

    def _write(
        self,
        group: str,
        containers: list[tuple[str, bytes]],
        ids: list[int],
        times: list[int],
    ) -> ArchiveFile:
        previous = self.archives.last_archive(group)
        data, last, name = build_archive(
            containers,
            previous if previous[0] else None,
            self.settings.hash_algorithm,
            start=from_ms(min(times)),
            end=from_ms(max(times)),
            group=group,
        )
        if self.settings.archive_encryption:
            assert self.settings.archive_gpg_home is not None
            data = encrypt(
                data, self.settings.archive_gpg_home, self.settings.archive_encryption_keys
            )
            name += self._suffix
        pending = PendingArchive(
            filename=name,
            group=group,
            previous_digest=previous[0],
            previous_file=previous[1],
            last_digest=last,
            records=len(ids),
            created=time_ms(self.clock.now()),
        )
        self.archives.begin(pending, ids)  # step 1
        path = self.directory / name
        try:
            self._place(path, data)  # step 2
        except BaseException:
            self.archives.abort(name)
            raise
        if self.after_write is not None:
            self.after_write(path)
        self.archives.commit(name)  # step 3
        log.info("created archive file %s (%d records)", path, len(ids))
        return ArchiveFile(path, group, len(ids), last)

    def _place(self, path: Path, data: bytes) -> None:
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=TMP_SUFFIX, dir=self.directory)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o640)
            os.replace(tmp, path)
            _fsync_dir(self.directory)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    # -- the job --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, first_delay: float | None = None) -> None:
        """Archive every ``archive_interval`` seconds until ``stop`` is set."""
        delay = self.settings.archive_interval if first_delay is None else first_delay
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                return
            except TimeoutError:
                pass
            try:
                result = await asyncio.to_thread(self.archive_once)
                if result.files:
                    log.info("archived %d records in %d files", result.records, len(result.files))
            except Exception:
                log.exception("archiving failed")
            delay = self.settings.archive_interval


def _by_group(
    items: Sequence[Archivable], settings: LogSettings
) -> Iterator[tuple[str, list[Archivable]]]:
    current: str | None = None
    members: list[Archivable] = []
    for item in items:
        group = _group_of(item, settings)
        if group != current and members:
            assert current is not None
            yield current, members
            members = []
        current = group
        members.append(item)
    if members:
        assert current is not None
        yield current, members
