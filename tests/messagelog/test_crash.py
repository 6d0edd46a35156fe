"""Crash safety with real SIGKILLs: a process logging under load (and time-stamping and
archiving at the same time) is killed again and again at random moments.  Afterwards every
record whose commit had returned (what a proxy waits for before releasing a message) is in the
log, everything gets stamped and archived exactly once, and the archive files form one
unbroken, unforked chain whose containers all verify."""

from __future__ import annotations

import asyncio
import os
import pickle
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from crossroad.crypto.archive import LinkingInfo, verify_archive_chain
from crossroad.crypto.asic import read_zip
from crossroad.evidence.verifier import verify_archive_files
from crossroad.messagelog.manager import MessageLog
from crossroad.messagelog.records import record_id_from_name
from crossroad.messagelog.settings import LogSettings

from .conftest import Conf, Signers, make_record

pytestmark = pytest.mark.integration
WORKER = Path(__file__).with_name("crash_worker.py")


def run_until_killed(workdir: Path, seconds: float) -> set[int]:
    """Start the worker, SIGKILL it after ``seconds`` of load; the ids it acknowledged."""
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    acked: set[int] = set()
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ready"):
                ready.set()
            elif line.startswith("ok "):
                acked.add(int(line.split()[1]))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert ready.wait(60), "the worker did not start"
    time.sleep(seconds)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    reader.join(10)
    return acked


def chain_order(directory: Path) -> list[tuple[str, bytes]]:
    """The archive files in chain order, following each file's link to its predecessor."""
    files = {p.name: p.read_bytes() for p in directory.glob("mlog-*.zip")}
    previous = {}
    for name, data in files.items():
        info = LinkingInfo.parse(dict(read_zip(data, 2**30, 10**6, "x"))["linkinginfo"])
        previous[name] = info.previous_name
    successor = {prev: name for name, prev in previous.items()}
    assert len(successor) == len(previous), "two files link to the same predecessor: a fork"
    order, current = [], ""
    while current in successor:
        current = successor[current]
        order.append((current, files[current]))
    assert len(order) == len(files), "an archive file is not on the chain"
    return order


def test_sigkill_under_load(
    tmp_path: Path, settings: LogSettings, conf: Conf, signers: Signers
) -> None:
    settings = settings.replace(archive_max_filesize=20_000, timestamp_records_limit=50)
    bodies = [b"request body %d " % i * 30 for i in range(8)]
    records = [(make_record(signers, attachments=[b]), b) for b in bodies]
    snapshot = conf()
    assert snapshot is not None
    data = {
        "settings": settings,
        "records": records,
        "globalconf": (snapshot.own_shared, snapshot.private),
    }
    (tmp_path / "input.pickle").write_bytes(pickle.dumps(data))
    rng = random.Random(5)
    acked: set[int] = set()
    for _ in range(4):
        acked |= run_until_killed(tmp_path, rng.uniform(0.3, 0.9))
    assert len(acked) > 50

    # restart once more and let it finish the work: stamp and archive everything
    mlog = MessageLog.open(settings, conf)

    async def finish() -> None:
        while mlog.store.count_unstamped():
            assert (await mlog.timestamper.stamp_once()).ok
        await mlog.close()

    asyncio.run(finish())
    run = mlog.archiver().archive_once()
    assert not mlog.archiver().reconcile().recovered
    logged = {r.id for r in mlog.store.records(limit=100_000)}
    assert acked <= logged, f"acknowledged but lost: {sorted(acked - logged)[:10]}"
    counts = mlog.store.counts()
    assert counts["unstamped"] == 0
    assert counts["archived"] == counts["messages"] == len(logged)
    assert settings.archive_dir is not None
    assert not list(settings.archive_dir.glob("tmp-mlog-*"))
    ordered = chain_order(settings.archive_dir)
    chain = verify_archive_chain(ordered, previous_digest="")
    assert chain.valid, chain.detail
    names = [n for report in chain.reports for n, _ in report.containers]
    assert len(names) == len(set(names)), "a record was archived twice"
    assert {record_id_from_name(n) for n in names} == logged
    full = verify_archive_files(ordered[-3:], conf().trust_policy())  # type: ignore[union-attr]
    assert all(r.valid for r in full.containers), [r.detail for r in full.containers if not r.valid]
    assert run.records >= 0
    mlog.shutdown()
