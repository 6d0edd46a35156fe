"""Crash safety of real security servers: the demo instance's consumer and provider servers
(``security-server run``: supervisor, signer, proxy workers) are killed with SIGKILL again and
again while an information system exchanges through them, and started again.  Every exchange
the information system saw succeed is in both servers' message logs (request and response);
in the end every record is time-stamped and archived exactly once, and each server's archive
files form one unbroken chain whose containers verify."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import time
from pathlib import Path

import aiohttp
import pytest

from crossroad.crypto.archive import verify_archive_chain
from crossroad.demo.exchanges import rest_path, soap_request
from crossroad.demo.instance import CLIENT, PROVIDER, Instance, start_instance
from crossroad.demo.servers import Node, run_server
from crossroad.evidence.verifier import verify_archive_files
from crossroad.globalconf.store import ConfigurationStore, load_snapshot
from crossroad.identifiers import ClientId
from crossroad.messagelog.records import record_id_from_name
from crossroad.messagelog.store import MessageLogStore
from crossroad.storage.engine import create_engine

from .test_crash import chain_order

pytestmark = pytest.mark.integration

#: Stamp and archive every second (small archive files: a chain of several), so that the
#: kills also hit time-stamping and archiving.
MESSAGE_LOG = """\
timestamping_interval = 1
timestamp_retry_delay = 1
archive_interval = 1
archive_max_filesize = 100000
"""
CONCURRENCY = 6
#: Successful exchanges to see after each (re)start before the next kill.
PER_ROUND = 40

Seen = list[tuple[str, str]]  # (kind, query id) of every exchange the client saw succeed


async def load(inst: Instance, stop: asyncio.Event, seen: Seen) -> None:
    """REST ``GET /pets/1`` and SOAP ``getRandom`` through the consumer's server until
    ``stop``; records each success."""
    consumer = inst.nodes["consumer"].client_url
    headers = {"X-Road-Client": CLIENT.to_header()}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        async with session.get(inst.providers.rest_base + "/pets/1") as resp:
            direct = await resp.read()

        async def one(n: int) -> None:
            while not stop.is_set():
                n += CONCURRENCY
                try:
                    if n % 2:
                        url = consumer + rest_path("/pets/1")
                        async with session.get(url, headers=headers) as resp:
                            body = await resp.read()
                            if resp.status == 200 and body == direct:
                                seen.append(("rest", resp.headers["x-road-id"]))
                                continue
                    else:
                        query_id = f"crash-{n}"
                        async with session.post(
                            consumer,
                            data=soap_request("getRandom", query_id=query_id),
                            headers={"Content-Type": "text/xml; charset=UTF-8"},
                        ) as resp:
                            text = await resp.read()
                            if resp.status == 200 and b"getRandomResponse" in text:
                                assert b"faultcode" not in text
                                seen.append(("soap", query_id))
                                continue
                except (aiohttp.ClientError, TimeoutError):
                    pass
                await asyncio.sleep(0.05)  # refused while a server is down: do not spin

        await asyncio.gather(*(one(i) for i in range(CONCURRENCY)))


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return "\nState:\tZ" not in fh.read()
    except FileNotFoundError:
        return False


async def kill(node: Node) -> None:
    """SIGKILL the supervisor, its signer and its workers at once."""
    info = json.loads((node.state / "run.json").read_text())
    pids = [info["pid"], info["signer_pid"], *info["worker_pids"]]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert node.proc is not None
    await node.proc.wait()
    deadline = time.monotonic() + 15
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not [p for p in pids if alive(p)]
    if node.drain is not None:
        node.drain.cancel()
    node.ready_lines.clear()


async def grows(seen: Seen, by: int, timeout: float = 40) -> None:
    target = len(seen) + by
    deadline = time.monotonic() + timeout
    while len(seen) < target:
        assert time.monotonic() < deadline, f"only {len(seen)} exchanges, waited for {target}"
        await asyncio.sleep(0.05)


def store_of(node: Node) -> MessageLogStore:
    return MessageLogStore(create_engine(f"sqlite:///{node.state / 'messagelog.db'}"))


def settled(store: MessageLogStore) -> bool:
    counts = store.counts()
    return counts["unstamped"] == 0 and counts["archived"] == counts["messages"]


def check_archives(node: Node, store: MessageLogStore) -> None:
    ordered = chain_order(node.state / "archive")
    assert len(ordered) >= 2
    assert not list((node.state / "archive").glob("tmp-*"))
    chain = verify_archive_chain(ordered, previous_digest="")
    assert chain.valid, chain.detail
    names = [n for report in chain.reports for n, _ in report.containers]
    assert len(names) == len(set(names)), "a record was archived twice"
    logged = {r.id for r in store.records(limit=1_000_000)}
    assert {record_id_from_name(n) for n in names} == logged
    generation = ConfigurationStore(node.state / "globalconf").current()
    assert generation is not None
    trust = load_snapshot(generation).trust_policy()
    full = verify_archive_files(ordered[-2:], trust)
    bad = [r.detail for r in full.containers if not r.valid]
    assert not bad, bad


def test_sigkill_security_servers_under_load(tmp_path: Path) -> None:
    rng = random.Random(7)
    seen: Seen = []

    async def main() -> tuple[Node, Node]:
        async with start_instance(
            tmp_path, say=lambda _: None, address_base=None, message_log=MESSAGE_LOG
        ) as inst:
            consumer, provider = inst.nodes["consumer"], inst.nodes["provider"]
            stop = asyncio.Event()
            loading = asyncio.create_task(load(inst, stop, seen))
            try:
                await grows(seen, PER_ROUND)
                for round_, victims in enumerate(([consumer], [provider], [consumer, provider])):
                    await asyncio.sleep(rng.uniform(0.2, 1.0))
                    await asyncio.gather(*(kill(n) for n in victims))
                    before = list(seen)  # what succeeded before the kill
                    logs = inst.directory / "logs"
                    await asyncio.gather(
                        *(run_server(n, logs / f"{n.spec.name}-{round_}.log") for n in victims)
                    )
                    for node in victims:  # after the restart, all of it is in the log
                        await asyncio.to_thread(check_logged, node, before)
                    await grows(seen, PER_ROUND)
            finally:
                stop.set()
                await loading
            # every record of the running servers is stamped and archived (1 s jobs)
            stores = [store_of(consumer), store_of(provider)]
            deadline = time.monotonic() + 30
            while not all(settled(s) for s in stores):
                assert time.monotonic() < deadline, [s.counts() for s in stores]
                await asyncio.sleep(0.2)
            for store in stores:
                store.engine.dispose()
        return consumer, provider

    consumer, provider = asyncio.run(main())
    assert len(seen) >= 4 * PER_ROUND
    for node in (consumer, provider):
        check_logged(node, seen)
        store = store_of(node)
        try:
            check_archives(node, store)
        finally:
            store.engine.dispose()


def check_logged(node: Node, seen: Seen) -> None:
    """Each exchange of ``seen`` has its request and its response in ``node``'s log."""
    client = CLIENT if node.spec.name == "consumer" else PROVIDER
    store = store_of(node)
    try:
        lost = [(kind, q) for kind, q in seen if not _both(store, q, client)]
    finally:
        store.engine.dispose()
    assert not lost, f"{node.spec.name}: succeeded but not logged: {lost[:5]}"


def _both(store: MessageLogStore, query_id: str, client: ClientId) -> bool:
    return [r.record.response for r in store.find(query_id, client)] == [False, True]
