"""A process that does what a security server's message log does, under load, until it is
killed: logs records at concurrency 4 (printing ``ok <id>`` once each commit returned, which is
when a proxy would release the message), time-stamps and archives all the while.

    python crash_worker.py WORKDIR

``WORKDIR/input.pickle`` holds the settings, the global configuration and the records to log
(made by the test, which owns the PKI).  Run by ``test_crash.py``; not a test itself.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.messagelog.manager import MessageLog


async def main(workdir: Path) -> None:
    data: dict[str, Any] = pickle.loads((workdir / "input.pickle").read_bytes())
    shared, private = data["globalconf"]
    globalconf = GlobalConfSnapshot.build(shared, private)
    mlog = MessageLog.open(data["settings"], lambda: globalconf)
    records = data["records"]
    archiver = mlog.archiver()
    stop = asyncio.Event()
    counter = iter(range(10**9))

    async def logger() -> None:
        while not stop.is_set():
            n = next(counter)
            record, body = records[n % len(records)]
            record = replace(record, query_id=f"crash-{n}")
            rid = await mlog.log_async(record, [[body[:7], body[7:]]])
            print(f"ok {rid}", flush=True)
            await asyncio.sleep(0.01)  # a few hundred records a second: the test stays short

    async def stamper() -> None:
        while not stop.is_set():
            await mlog.timestamper.stamp_once()
            await asyncio.sleep(0.05)

    async def archive() -> None:
        while not stop.is_set():
            await asyncio.to_thread(archiver.archive_once)
            await asyncio.sleep(0.05)

    print("ready", flush=True)
    await asyncio.gather(*(logger() for _ in range(4)), stamper(), archive())


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
