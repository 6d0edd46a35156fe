"""The message log: every signed message kept as evidence, time-stamped and archived (§9).

* :mod:`.records` — the record values, body logging, containers and their names (core);
* :mod:`.store`, :mod:`.archive_store` — the database (SQLite or PostgreSQL);
* :mod:`.manager` — :class:`MessageLog`, what the proxies call before releasing a message;
* :mod:`.timestamper` — single and batch time-stamps through the approved TSAs;
* :mod:`.archiver`, :mod:`.cleaner` — archive files with ``linkinginfo``; retention;
* :mod:`.asic_service` — ``GET /asic`` and ``GET /verificationconf`` on the client proxy;
* :mod:`.settings` — ``message-log.toml``.
"""

from crossroad.messagelog.manager import MessageLog
from crossroad.messagelog.records import BodyLogging, Grouping, MessageRecord, Side, StoredRecord
from crossroad.messagelog.settings import LogSettings

__all__ = [
    "BodyLogging",
    "Grouping",
    "LogSettings",
    "MessageLog",
    "MessageRecord",
    "Side",
    "StoredRecord",
]
