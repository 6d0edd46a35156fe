"""The message log as the proxies and the supervisor see it (protocols.md §9.1–9.2).

:class:`MessageLog` is what a proxy holds: :meth:`MessageLog.log` (or :meth:`~MessageLog.
log_async`) keeps one signed message before it is released, committed (alone, or with the
records of concurrent exchanges by group commit, :mod:`.group_commit`), and raises
``logging_failed`` when that fails, so the caller aborts the exchange and nothing leaves
unlogged.  :meth:`MessageLog.check_accepting` refuses new exchanges with ``timestamping_failed``
once time-stamping has failed for longer than ``acceptable_timestamp_failure_period`` (the status
is shared through the database and cached for ``status_refresh`` seconds); ``log`` checks it
too, as NIIS ``LogManager.log`` does.  With ``timestamp_immediately`` the message is stamped
(single shape) before :meth:`log_async` returns, and the acceptance check does not apply.

:meth:`MessageLog.run_jobs` runs the time-stamper, the archiver and the cleaner: in exactly one
process per database (the supervisor), never in every proxy worker.

:meth:`MessageLog.async_logger` (awaited) and :meth:`MessageLog.logger` (blocking) adapt the
proxy's ``LoggedMessage`` hook (:attr:`crossroad.proxy.context.ProxyContext.loggers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from crossroad.clock import SYSTEM, Clock
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.messagelog.archiver import Archiver
from crossroad.messagelog.cleaner import run_cleaner
from crossroad.messagelog.group_commit import GroupCommit, InlineWriter, checkpoint
from crossroad.messagelog.records import MessageRecord, ParsedMessage, Side, new_record, time_ms
from crossroad.messagelog.settings import LogSettings
from crossroad.messagelog.store import MessageLogStore, TimestampStatus
from crossroad.messagelog.timestamper import Timestamper, refuses
from crossroad.storage.engine import create_engine

log = logging.getLogger(__name__)

Body = Iterable[bytes] | AsyncIterable[bytes]
#: A writing thread gives up on an async body that stops delivering (seconds).
_PUMP_TIMEOUT = 60.0
#: Records whose bodies together stay under this size are read into memory and logged by
#: group commit; bigger ones are streamed into a transaction of their own.
SMALL_BODIES = 256 * 1024
_PUMP_POLL = 0.05


def _logging_failed(exc: BaseException) -> XRoadError:
    if isinstance(exc, XRoadError) and exc.matches(Code.LOGGING_FAILED):
        return exc
    detail = exc.detail if isinstance(exc, XRoadError) else f"{type(exc).__name__}: {exc}"
    return XRoadError(Code.LOGGING_FAILED, f"Failed to log message: {detail}")


class MessageLog:
    """One security server's message log (one per process; the database is shared)."""

    def __init__(
        self,
        store: MessageLogStore,
        settings: LogSettings,
        globalconf: Callable[[], GlobalConfSnapshot | None],
        *,
        clock: Clock = SYSTEM,
    ) -> None:
        self.store = store
        self.settings = settings
        self.globalconf = globalconf
        self.clock = clock
        self.timestamper = Timestamper(store, settings, globalconf, clock=clock)
        self._status = TimestampStatus()
        self._status_read = float("-inf")
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="messagelog")
        self._group = GroupCommit(
            store,
            lambda: (self.settings.max_loggable_body_size, self.settings.truncated_body_allowed),
            _logging_failed_anew,
        )
        self._inline = InlineWriter(store) if store.engine.dialect.name == "sqlite" else None

    @classmethod
    def open(
        cls,
        settings: LogSettings,
        globalconf: Callable[[], GlobalConfSnapshot | None],
        *,
        clock: Clock = SYSTEM,
        engine: sa.Engine | None = None,
    ) -> MessageLog:
        """The message log of ``settings.database_url`` (migrated)."""
        engine = engine or create_engine(settings.database_url)
        return cls(MessageLogStore(engine), settings, globalconf, clock=clock)

    async def close(self) -> None:
        await self.timestamper.close()

    def shutdown(self) -> None:
        """Release the log's threads and database connections (the end of a process)."""
        self._group.stop()
        if self._inline is not None:
            self._inline.close()
        self._executor.shutdown(wait=True)
        self.store.engine.dispose()

    # -- accepting ------------------------------------------------------------------------

    def status(self, *, fresh: bool = False) -> TimestampStatus:
        now = time.monotonic()
        if fresh or now - self._status_read >= self.settings.status_refresh:
            try:
                self._status = self.store.status()
            except Exception as exc:
                raise _logging_failed(exc) from exc
            self._status_read = now
        return self._status

    def check_accepting(self) -> None:
        """``timestamping_failed`` once stamping has failed for too long (NIIS
        ``verifyCanLogMessage``); ``mlog.no_timestamping_provider_found`` without any TSA."""
        snapshot = self.globalconf()
        if snapshot is not None:
            try:
                tsas = snapshot.approved_tsas()
            except (XRoadError, KeyError):
                tsas = ()
            if not tsas:
                raise XRoadError(
                    Code.NO_TIMESTAMPING_PROVIDER_FOUND,
                    "Cannot time-stamp messages: no timestamping services configured",
                )
        if self.settings.timestamp_immediately:
            return
        if refuses(
            self.status(),
            time_ms(self.clock.now()),
            self.settings.acceptable_timestamp_failure_period,
        ):
            raise XRoadError(Code.TIMESTAMPING_FAILED, "Cannot time-stamp messages")

    # -- logging --------------------------------------------------------------------------

    def record(
        self,
        side: Side | str,
        response: bool,
        message: bytes,
        signature: bytes,
        *,
        rest: bool,
        x_request_id: str | None = None,
        hash_chain_result: bytes | None = None,
        hash_chain: bytes | None = None,
        parsed: ParsedMessage | None = None,
    ) -> MessageRecord:
        """The record of a signed message, with this log's body logging and digest."""
        return new_record(
            Side(side),
            response,
            message,
            signature,
            rest=rest,
            at=self.clock.now(),
            x_request_id=x_request_id,
            hash_chain_result=hash_chain_result,
            hash_chain=hash_chain,
            body_logging=self.settings.body_logging,
            digest=self.settings.hash_algorithm,
            parsed=parsed,
        )

    def log(self, record: MessageRecord, attachments: Sequence[Iterable[bytes]] = ()) -> int:
        """Keep ``record`` and its attachments (iterables of chunks) in one transaction;
        ``logging_failed`` (or ``timestamping_failed``) when the exchange must stop."""
        self.check_accepting()
        return self.log_stored(record, attachments if record.body_logged else ())

    async def log_async(self, record: MessageRecord, attachments: Sequence[Body] = ()) -> int:
        """:meth:`log` off the event loop; attachments may be async iterables (spooled
        bodies), streamed chunk by chunk into the transaction.  With ``timestamp_immediately``
        the record is stamped before this returns (``timestamping_failed`` if no TSA answers).

        A record whose bodies are small (under :data:`SMALL_BODIES` together) is read into
        memory and logged by group commit (:mod:`.group_commit`): with the records of other
        exchanges, in one transaction of the log's writer thread.  A bigger one runs in a
        transaction of its own, in one call on the log's threads (a transaction never waits for
        a thread while holding SQLite's write lock); its async bodies reach that thread through
        a small bounded queue fed from the event loop.
        """
        self.check_accepting()
        bodies = list(attachments) if record.body_logged else []
        try:
            small, streamed = await _read_small(bodies, SMALL_BODIES)
        except Exception as exc:  # the body could not be read: nothing may be released
            raise _logging_failed(exc) from exc
        if streamed is None:
            self._check_sizes(small)
            record_id = self._log_inline(record, small)
            if record_id is None:
                record_id = await self._group.submit(record, small)
        else:
            record_id = await self._log_streamed(record, streamed)
        if self.settings.timestamp_immediately:
            try:
                await self.timestamper.stamp_records([record_id])
            except XRoadError as err:
                raise XRoadError(Code.TIMESTAMPING_FAILED, err.detail) from err
        return record_id

    def _log_inline(self, record: MessageRecord, bodies: list[list[bytes]]) -> int | None:
        if self._inline is None:
            return None
        s = self.settings
        try:
            record_id = self._inline.try_insert(
                record, bodies, s.max_loggable_body_size, s.truncated_body_allowed
            )
        except Exception as exc:
            raise _logging_failed(exc) from exc
        if record_id is not None and self._inline.checkpoint_due():
            done = asyncio.get_running_loop().run_in_executor(
                self._executor, checkpoint, self.store
            )
            done.add_done_callback(_checkpointed)
        return record_id

    def _check_sizes(self, bodies: list[list[bytes]]) -> None:
        # As RecordWriter would, before the record joins a group (it must not fail the group).
        if self.settings.truncated_body_allowed:
            return
        limit = self.settings.max_loggable_body_size
        if any(sum(len(c) for c in body) > limit for body in bodies):
            raise XRoadError(
                Code.LOGGING_FAILED,
                "Failed to log message: Message attachment size exceeds maximum loggable size",
            )

    async def _log_streamed(self, record: MessageRecord, bodies: Sequence[Body]) -> int:
        pumps = [_Pump() if isinstance(b, AsyncIterable) else None for b in bodies]
        loop = asyncio.get_running_loop()
        sources: list[Iterable[bytes]] = [
            p if p is not None else b  # type: ignore[misc]
            for p, b in zip(pumps, bodies, strict=True)
        ]
        done = loop.run_in_executor(self._executor, self.log_stored, record, sources)
        feeding = None
        if any(pumps):
            feeding = asyncio.ensure_future(_feed(bodies, pumps))
        try:
            record_id = await done
        finally:
            if feeding is not None:
                feeding.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feeding
            # Cancelled (the exchange went away): the writing thread must not sit in its
            # transaction, holding the write lock, until the pump times out.
            for pump in pumps:
                if pump is not None:
                    pump.abort()
        return record_id

    def log_stored(self, record: MessageRecord, attachments: Sequence[Iterable[bytes]]) -> int:
        """One record and its attachments in one transaction (blocking; no acceptance check)."""
        try:
            return self.store.insert(
                record,
                attachments,
                max_body=self.settings.max_loggable_body_size,
                truncate=self.settings.truncated_body_allowed,
            )
        except Exception as exc:
            raise _logging_failed(exc) from exc

    def logger(self) -> Callable[[Any], None]:
        """A hook for ``ProxyContext.loggers``: logs each ``LoggedMessage`` synchronously.

        ``LoggedMessage`` carries the signed bytes; bodies are logged when it also carries
        ``attachments`` (iterables of chunks).  Errors propagate as ``logging_failed``.
        """

        def hook(logged: Any) -> None:
            record = self.record(
                logged.side,
                logged.direction == "response",
                logged.message,
                logged.signature,
                rest=logged.rest,
                x_request_id=logged.request_id,
                hash_chain_result=logged.hash_chain_result,
                hash_chain=logged.hash_chain,
            )
            self.log(record, getattr(logged, "attachments", ()) or ())

        return hook

    def async_logger(self) -> Callable[[Any], Coroutine[Any, Any, int]]:
        """Like :meth:`logger`, for an awaited hook: the transaction runs off the event loop
        and ``attachments`` may be async iterables (spooled bodies, streamed in)."""

        async def hook(logged: Any) -> int:
            record = self.record(
                logged.side,
                logged.direction == "response",
                logged.message,
                logged.signature,
                rest=logged.rest,
                x_request_id=logged.request_id,
                hash_chain_result=logged.hash_chain_result,
                hash_chain=logged.hash_chain,
            )
            return await self.log_async(record, getattr(logged, "attachments", ()) or ())

        return hook

    # -- jobs -----------------------------------------------------------------------------

    def archiver(self, **kwargs: Any) -> Archiver:
        return Archiver(self.store, self.settings, clock=self.clock, **kwargs)

    async def run_jobs(self, stop: asyncio.Event, *, archive: bool = True) -> None:
        """The time-stamper, archiver and cleaner until ``stop`` is set (one process only)."""
        tasks = [asyncio.create_task(self.timestamper.run(stop), name="timestamper")]
        if archive:
            tasks.append(asyncio.create_task(self.archiver().run(stop), name="archiver"))
            tasks.append(
                asyncio.create_task(
                    run_cleaner(self.store, self.settings, stop, self.clock), name="cleaner"
                )
            )
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task


def _checkpointed(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and done.exception() is not None:
        log.warning("message log checkpoint failed: %s", done.exception())


def _logging_failed_anew(exc: BaseException) -> XRoadError:
    """A fresh ``logging_failed`` for each caller of a failed group."""
    err = _logging_failed(exc)
    return XRoadError(err.code, err.detail)


async def _read_small(
    bodies: Sequence[Body], limit: int
) -> tuple[list[list[bytes]], list[Body] | None]:
    """The bodies in memory when they are small together; else (what was read, the bodies to
    stream: those read so far as lists, the one being read continued, the rest as they are)."""
    loaded: list[list[bytes]] = []
    total = 0
    for i, body in enumerate(bodies):
        if isinstance(body, list | tuple) and all(isinstance(c, bytes) for c in body):
            chunks = list(body)
            total += sum(len(c) for c in chunks)
        elif isinstance(body, AsyncIterable):
            chunks = []
            iterator = body.__aiter__()
            async for chunk in iterator:
                chunks.append(chunk)
                total += len(chunk)
                if total > limit:
                    rest: list[Body] = [*loaded, _continued(chunks, iterator), *bodies[i + 1 :]]
                    return [], rest
        else:  # a blocking iterable: read on the log's thread, as it comes
            return [], [*loaded, *bodies[i:]]
        if total > limit:
            return [], [*loaded, chunks, *bodies[i + 1 :]]
        loaded.append(chunks)
    return loaded, None


async def _continued(head: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for chunk in head:
        yield chunk
    async for chunk in rest:
        yield chunk


_END = object()


class _Pump:
    """Chunks of an async body handed to the writing thread (bounded: memory stays small)."""

    def __init__(self, size: int = 16) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(size)
        self.aborted = False

    def abort(self) -> None:
        """Make the reading thread give up (its transaction rolls back)."""
        self.aborted = True

    def __iter__(self) -> Iterator[bytes]:
        waited = 0.0
        while True:
            try:
                item = self.queue.get(timeout=_PUMP_POLL)
            except queue.Empty:
                waited += _PUMP_POLL
                if self.aborted:
                    raise XRoadError(Code.LOGGING_FAILED, "The message went away") from None
                if waited >= _PUMP_TIMEOUT:
                    raise XRoadError(Code.LOGGING_FAILED, "The message body stopped") from None
                continue
            waited = 0.0
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


async def _feed(bodies: Sequence[Body], pumps: Sequence[_Pump | None]) -> None:
    async def put(pump: _Pump, item: Any) -> None:
        while True:
            try:
                pump.queue.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.001)

    for body, pump in zip(bodies, pumps, strict=True):
        if pump is None:
            continue
        try:
            async for chunk in body:  # type: ignore[union-attr]
                await put(pump, chunk)
        except Exception as exc:
            await put(pump, exc)
            return
        await put(pump, _END)


def open_for_state_dir(
    state_dir: str | Path,
    globalconf: Callable[[], GlobalConfSnapshot | None],
    *,
    clock: Clock = SYSTEM,
) -> MessageLog:
    """The message log of a security server state directory (``message-log.toml``)."""
    return MessageLog.open(LogSettings.load(state_dir), globalconf, clock=clock)
