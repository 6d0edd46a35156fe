"""The message log cleaner: archived records leave the database after ``keep_records_for`` days
(protocols.md §9.5; NIIS ``LogCleaner``, default every 12 h, records kept 30 days).

Only archived records go; their attachment chunks go with them, and a time-stamp record goes
once no record refers to it any more.  Records that are not archived stay however old they are.
"""

from __future__ import annotations

import asyncio
import logging

from crossroad.clock import SYSTEM, Clock
from crossroad.messagelog.archive_store import ArchiveStore
from crossroad.messagelog.records import time_ms
from crossroad.messagelog.settings import LogSettings
from crossroad.messagelog.store import MessageLogStore

log = logging.getLogger(__name__)


def clean_once(store: MessageLogStore, settings: LogSettings, clock: Clock = SYSTEM) -> int:
    """Delete archived records older than ``keep_records_for`` days (the cleaner)."""
    cutoff = time_ms(clock.now()) - int(settings.keep_records_for * 86_400_000)
    return ArchiveStore(store).clean(cutoff)


async def run_cleaner(
    store: MessageLogStore, settings: LogSettings, stop: asyncio.Event, clock: Clock = SYSTEM
) -> None:
    """The cleaner job: every ``clean_interval`` seconds until ``stop`` is set."""
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), timeout=settings.clean_interval)
            return
        except TimeoutError:
            pass
        try:
            removed = await asyncio.to_thread(clean_once, store, settings, clock)
            if removed:
                log.info("removed %d archived records", removed)
        except Exception:
            log.exception("cleaning the message log failed")
