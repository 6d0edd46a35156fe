"""Time-stamping of logged messages (protocols.md §9.2; NIIS ``TaskQueue``, ``Timestamper``).

Every time-stamping interval the waiting records (oldest first, at most
``timestamp_records_limit``) are stamped in one request: one record in the **single** shape
(the token covers its ``SignatureValue`` and is embedded in its signature, whose
``signatureHash`` changes), several in the **batch** shape (one token over a hash chain of
their signature hashes, each record keeping its own chain).
:func:`crossroad.evidence.stamping.stamp_input` computes what to stamp.  The approved TSAs of
the own instance are asked in their (cost-prioritised) order; a token is accepted only once it
verifies against an approved TSA certificate, which is then put into the token (X-Road never
sets ``certReq``).  Records and their time-stamp are stored in one transaction.

**Failures.**  When no TSA answers while records wait, the first failure time is recorded in
the database (shared with the proxy workers).  Once it is older than
``acceptable_timestamp_failure_period`` the message log refuses new messages with
``timestamping_failed`` (:func:`refuses`).  In that state NIIS retries every
``timestamp_retry_delay`` seconds with one record; the first success clears the failure and
the backlog is stamped at once, batch after batch.

The decisions (:func:`ordered_tsas`, :func:`next_delay`, :func:`refuses`) are pure; the
:class:`Timestamper` moves the bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

from crossroad.clock import SYSTEM, Clock
from crossroad.crypto import tsp, xades
from crossroad.errors import Code, XRoadError
from crossroad.evidence.stamping import SignedRecord, stamp_input
from crossroad.globalconf.model import ApprovedTSAInfo, CostType
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.messagelog.records import signature_hash, time_ms
from crossroad.messagelog.settings import LogSettings
from crossroad.messagelog.store import MessageLogStore, Pending, TimestampStatus
from crossroad.trust.client import fetch_timestamp

log = logging.getLogger(__name__)

#: NIIS bounds the configured interval to [1 min, 1 day].
MIN_INTERVAL = 60.0
MAX_INTERVAL = 86_400.0
#: Records per round while stamping has been failing (NIIS ``TIMESTAMP_RECORDS_LIMIT_RETRY_MODE``).
RETRY_MODE_LIMIT = 1

# --------------------------------------------------------------------------- decisions


def ordered_tsas(tsas: Sequence[ApprovedTSAInfo], strategy: str) -> list[ApprovedTSAInfo]:
    """The TSAs to try, in order (NIIS ``CostTypePrioritizer``; ``none`` keeps their order)."""
    usable = [t for t in tsas if t.url.strip()]

    def rank(first: CostType) -> Callable[[ApprovedTSAInfo], int]:
        second = CostType.PAID if first is CostType.FREE else CostType.FREE
        return lambda t: 0 if t.cost_type is first else 1 if t.cost_type is second else 2

    if strategy == "free_first":
        return sorted(usable, key=rank(CostType.FREE))
    if strategy == "paid_first":
        return sorted(usable, key=rank(CostType.PAID))
    if strategy == "only_free":
        return [t for t in usable if t.cost_type is CostType.FREE]
    if strategy == "only_paid":
        return [t for t in usable if t.cost_type is CostType.PAID]
    return usable


def interval_seconds(settings: LogSettings, globalconf: GlobalConfSnapshot | None) -> float:
    """The time-stamping interval: the setting if given, else the global configuration's
    (bounded as NIIS bounds it), else 60 s."""
    if settings.timestamping_interval > 0:
        return settings.timestamping_interval
    try:
        configured = float(globalconf.timestamping_interval) if globalconf is not None else 60.0
    except XRoadError:
        configured = 60.0
    return min(max(configured, MIN_INTERVAL), MAX_INTERVAL)


def next_delay(interval: float, failing: bool, retry_delay: float) -> float:
    """Seconds to the next round: the interval, or the retry delay while failing."""
    if failing and 0 < retry_delay < interval:
        return retry_delay
    return interval


def refuses(status: TimestampStatus, now_ms: int, period: float) -> bool:
    """Whether new messages are refused: stamping has failed for longer than ``period`` s."""
    if period <= 0 or status.failed_since is None:
        return False
    return now_ms - status.failed_since > period * 1000


# --------------------------------------------------------------------------- the shell


@dataclass(frozen=True)
class StampResult:
    """One round: how many records were stamped, by which TSA, or what went wrong."""

    stamped: int = 0
    waiting: int = 0
    tsa: str | None = None
    error: XRoadError | None = None
    batches: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


class Timestamper:
    """Stamps waiting records through the approved TSAs (one per security server process that
    runs the jobs; proxy workers use it for ``timestamp_immediately`` and ``force``)."""

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
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = {}

    async def close(self) -> None:
        if self._session is not None and self._session_loop is asyncio.get_running_loop():
            await self._session.close()
        self._session = None

    def _http(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            # A session belongs to the loop it was made on (the CLI and tests run several).
            self._session = aiohttp.ClientSession()
            self._session_loop = loop
        return self._session

    @property
    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = asyncio.Lock()
            self._locks = {loop: lock}  # only the current loop's is ever used
        return lock

    # -- asking the TSAs ----------------------------------------------------------------

    async def fetch_token(self, data: bytes) -> tuple[bytes, str]:
        """A verified token over ``data`` with the TSA certificate inserted, and its TSA URL."""
        snapshot = self.globalconf()
        if snapshot is None:
            raise XRoadError(Code.NO_TIMESTAMPING_PROVIDER_FOUND, "No global configuration")
        tsas = ordered_tsas(snapshot.approved_tsas(), self.settings.tsa_prioritization)
        if not tsas:
            raise XRoadError(
                Code.NO_TIMESTAMPING_PROVIDER_FOUND,
                "Cannot time-stamp messages: no timestamping services configured",
            )
        certs = snapshot.tsa_certs(snapshot.instance)
        errors: list[str] = []
        for tsa in tsas:
            try:
                token = await fetch_timestamp(
                    self._http(), tsa.url, data, self.settings.hash_algorithm
                )
                info = tsp.verify_token(token, data, certs)
                assert info.tsa_cert is not None
                return tsp.add_certificate(token, info.tsa_cert), tsa.url
            except XRoadError as err:
                log.warning("time-stamping at %s failed: %s", tsa.url, err)
                errors.append(f"{tsa.url}: {err.code}: {err.detail}")
            except Exception as exc:  # a broken TSA answer must not stop the others
                log.warning("time-stamping at %s failed: %r", tsa.url, exc)
                errors.append(f"{tsa.url}: {type(exc).__name__}: {exc}")
        raise XRoadError(
            Code.TIMESTAMPING_FAILED,
            "Failed to get time stamp from any time-stamping providers (" + "; ".join(errors) + ")",
        )

    # -- stamping -------------------------------------------------------------------------

    async def stamp(self, pending: Sequence[Pending]) -> tuple[int, str]:
        """Stamp ``pending`` in the single or batch shape; returns (records stamped, TSA)."""
        digest = self.settings.hash_algorithm
        if len(pending) == 1:
            record = pending[0]
            data = xades.signature_value(record.signature)
            token, url = await self.fetch_token(data)
            signature = xades.add_timestamp(record.signature, token)
            now = time_ms(self.clock.now())
            ok = await asyncio.to_thread(
                self.store.save_single_stamp,
                record.id,
                record.signature_hash,
                signature,
                signature_hash(signature, digest),
                token,
                url,
                now,
            )
            return (1 if ok else 0), url
        shape = stamp_input([SignedRecord(b"", p.signature) for p in pending], digest)
        token, url = await self.fetch_token(shape.data)
        assert shape.ts_hash_chain_result is not None
        now = time_ms(self.clock.now())
        count = await asyncio.to_thread(
            self.store.save_batch_stamp,
            [p.id for p in pending],
            token,
            shape.ts_hash_chain_result,
            list(shape.ts_hash_chains),
            url,
            now,
        )
        return count, url

    async def stamp_once(self, *, retry_mode: bool = False) -> StampResult:
        """One round: stamp what waits, batch after full batch; record success or failure.

        In retry mode only one record is tried; success leaves retry mode and the rest of
        the backlog is stamped right away.
        """
        async with self._lock:
            return await self._round(retry_mode)

    async def _round(self, retry_mode: bool) -> StampResult:
        limit = self.settings.timestamp_records_limit
        stamped, batches, url = 0, 0, None
        first = RETRY_MODE_LIMIT if retry_mode else limit
        size = first
        while True:
            pending = await asyncio.to_thread(self.store.unstamped, size)
            if not pending:
                break
            try:
                count, url = await self.stamp(pending)
            except XRoadError as err:
                return await self._failed(err, stamped, batches)
            except Exception as exc:
                failure = XRoadError(Code.TIMESTAMPING_FAILED, f"{type(exc).__name__}: {exc}")
                return await self._failed(failure, stamped, batches)
            stamped += count
            batches += 1
            if len(pending) < size and size == limit:
                break
            size = limit  # after a retry-mode success, or a full batch: carry on with the rest
        await asyncio.to_thread(self.store.set_succeeded, time_ms(self.clock.now()), url)
        waiting = await asyncio.to_thread(self.store.count_unstamped)
        return StampResult(stamped, waiting, url, None, batches)

    async def _failed(self, err: XRoadError, stamped: int, batches: int) -> StampResult:
        waiting = await asyncio.to_thread(self.store.count_unstamped)
        # Only records left waiting make a failure count (NIIS: an empty queue means some
        # earlier round succeeded, and logging must not block on a stale failure).
        if waiting:
            await asyncio.to_thread(
                self.store.set_failed, time_ms(self.clock.now()), f"{err.code}: {err.detail}"
            )
        return StampResult(stamped, waiting, None, err, batches)

    async def stamp_records(self, ids: Sequence[int]) -> int:
        """Stamp the given records now (``force`` of the signed-document download, and
        ``timestamp_immediately``); ``timestamping_failed`` when no TSA answers."""
        async with self._lock:
            records = await asyncio.to_thread(self._pending_of, list(ids))
            if not records:
                return 0
            count, url = await self.stamp(records)
        await asyncio.to_thread(self.store.set_succeeded, time_ms(self.clock.now()), url)
        return count

    def _pending_of(self, ids: list[int]) -> list[Pending]:
        out = []
        for record_id in ids:
            stored = self.store.get(record_id)
            if stored is not None and not stored.stamped:
                out.append(
                    Pending(stored.id, stored.record.signature_hash, stored.record.signature)
                )
        return out

    # -- the job --------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, first_delay: float = 1.0) -> None:
        """Stamp every interval until ``stop`` is set."""
        delay = first_delay
        failing = False
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
                return
            except TimeoutError:
                pass
            try:
                result = await self.stamp_once(retry_mode=failing)
                failing = not result.ok
                if result.stamped:
                    log.info("time-stamped %d records (%d waiting)", result.stamped, result.waiting)
            except Exception:  # the job must survive a database hiccup
                log.exception("time-stamping round failed")
                failing = True
            interval = interval_seconds(self.settings, self.globalconf())
            delay = next_delay(interval, failing, self.settings.timestamp_retry_delay)
