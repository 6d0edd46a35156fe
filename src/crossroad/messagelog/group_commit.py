"""Group commit: the records of concurrent exchanges logged in shared transactions
(protocols.md §9.1; the proxies' side of :class:`crossroad.messagelog.manager.MessageLog`).

Each logged message used to be one transaction on one of the log's threads: a thread hand-off,
a connection checkout and a commit per record, which cost more than the rows themselves.  Here
one writer thread per process takes every record that is waiting (its bodies already in memory,
see :meth:`MessageLog.log_async`), writes them all in ONE transaction and commits once; each
caller's future is settled only after that commit, so a message is still released only once
it is durably logged.  While a transaction commits, the next records queue up: the busier the
server, the larger the groups.  A failing transaction fails every record in it with
``logging_failed`` (the database is at fault, not one record: the sizes were checked before).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from typing import Any

from crossroad.messagelog.records import MessageRecord
from crossroad.messagelog.store import MessageLogStore, RecordWriter

log = logging.getLogger(__name__)

#: At most this many records, or about this many body bytes, per transaction.
MAX_RECORDS = 256
MAX_BYTES = 8 * 1024 * 1024
#: Inline commits between two checkpoints (about 4 MB of write-ahead log for 1 KB exchanges).
CHECKPOINT_EVERY = 500

Item = tuple[MessageRecord, list[list[bytes]], asyncio.AbstractEventLoop, "asyncio.Future[int]"]


def insert_batch(
    store: MessageLogStore,
    items: Sequence[tuple[MessageRecord, Sequence[Sequence[bytes]]]],
    *,
    max_body: int | None = None,
    truncate: bool = False,
    connection: Any = None,
) -> list[int]:
    """Log several records with their attachments in one transaction: all of them or none
    (on ``connection``, a DB-API connection of ``store``'s engine, else on one checked out)."""
    raw = connection if connection is not None else store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            if store.engine.dialect.name == "sqlite":
                cursor.execute("BEGIN IMMEDIATE")  # the write lock up front, as everywhere
            ids = []
            for record, attachments in items:
                writer = RecordWriter(
                    store.engine,
                    record,
                    chunk_size=store.chunk_size,
                    max_body=max_body,
                    truncate=truncate,
                    attachments=len(attachments),
                    shared=(raw, cursor),
                )
                for attachment in attachments:
                    writer.begin_attachment()
                    for chunk in attachment:
                        writer.write(chunk)
                ids.append(writer.commit())
            raw.commit()
            return ids
        except BaseException:
            with contextlib.suppress(Exception):
                raw.rollback()
            raise
        finally:
            with contextlib.suppress(Exception):
                cursor.close()
    finally:
        if connection is None:
            with contextlib.suppress(Exception):
                raw.close()


def checkpoint(store: MessageLogStore) -> None:
    """Move the write-ahead log into the database file as far as readers allow (SQLite)."""
    raw = store.engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        cursor.close()
    finally:
        raw.close()


class InlineWriter:
    """SQLite: a small record logged at once on the event loop's thread when the write lock is
    free, without waiting for it (a thread hand-off costs more than the insert); ``None`` when
    another writer holds the lock, and the caller queues the record for group commit instead.
    Its connection never checkpoints on the event loop (a checkpoint syncs the database file):
    every :data:`CHECKPOINT_EVERY` commits :meth:`checkpoint_due` says so, and the caller has
    :func:`checkpoint` run on a thread."""

    def __init__(self, store: MessageLogStore) -> None:
        self.store = store
        self.commits = 0
        self._raw: Any = None
        self._lock = threading.Lock()

    def checkpoint_due(self) -> bool:
        return self.commits % CHECKPOINT_EVERY == 0

    def try_insert(
        self, record: MessageRecord, bodies: list[list[bytes]], max_body: int, truncate: bool
    ) -> int | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if self._raw is None:
                raw = self.store.engine.raw_connection()
                cursor = raw.cursor()
                cursor.execute("PRAGMA busy_timeout = 0")
                cursor.execute("PRAGMA wal_autocheckpoint = 0")
                cursor.close()
                self._raw = raw
            try:
                (record_id,) = insert_batch(
                    self.store,
                    [(record, bodies)],
                    max_body=max_body,
                    truncate=truncate,
                    connection=self._raw,
                )
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    return None  # rolled back; another writer has the lock
                raise
            self.commits += 1
            return record_id
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                with contextlib.suppress(Exception):
                    self._raw.close()
                self._raw = None


class GroupCommit:
    """The writer thread of one process (started on first use, stopped by :meth:`stop`)."""

    def __init__(
        self,
        store: MessageLogStore,
        limits: Callable[[], tuple[int | None, bool]],
        failed: Callable[[BaseException], BaseException],
    ) -> None:
        self.store = store
        self._limits = limits  # (max_body, truncate) as the settings say now
        self._failed = failed  # the exception a caller gets when the transaction fails
        self._queue: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, record: MessageRecord, bodies: list[list[bytes]]) -> asyncio.Future[int]:
        """Queue ``record``; the future is settled once its transaction committed (or failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="messagelog-writer", daemon=True
                    )
                    self._thread.start()
        self._queue.put((record, bodies, loop, future))
        return future

    def stop(self, timeout: float = 30.0) -> None:
        """Log what is queued, then end the thread."""
        thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, size, end = [first], _size(first), False
            while len(batch) < MAX_RECORDS and size < MAX_BYTES:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    end = True
                    break
                batch.append(item)
                size += _size(item)
            self._write(batch)
            if end:
                return

    def _write(self, batch: list[Item]) -> None:
        max_body, truncate = self._limits()
        results: list[Any]
        try:
            results = insert_batch(
                self.store,
                [(record, bodies) for record, bodies, _, _ in batch],
                max_body=max_body,
                truncate=truncate,
            )
        except Exception as exc:
            log.warning("logging %d records failed: %s", len(batch), exc)
            results = [self._failed(exc) for _ in batch]
        for (_, _, loop, future), result in zip(batch, results, strict=True):
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, result)


def _size(item: Item) -> int:
    return sum(len(chunk) for body in item[1] for chunk in body)


def _settle(future: asyncio.Future[int], result: int | BaseException) -> None:
    if future.done():  # the exchange went away meanwhile (the record is logged all the same)
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)
