"""The message log as the proxies use it: many concurrent ``log_async`` calls with streamed
(async) bodies on one SQLite file, failures reported as ``logging_failed`` with nothing kept,
and the adapter for the proxy's ``LoggedMessage`` hook."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from crossroad.errors import XRoadError
from crossroad.messagelog.manager import SMALL_BODIES, MessageLog
from crossroad.messagelog.settings import LogSettings
from crossroad.messagelog.store import MessageLogStore
from crossroad.proxy.context import LoggedMessage

from .conftest import CLIENT, PROVIDER, Conf, Signers, make_record, rest_request, soap


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        await asyncio.sleep(0)
        yield data[i : i + size]


def test_concurrent_async_bodies(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers
) -> None:
    mlog = MessageLog(store, settings, conf)
    body = bytes(range(256)) * 50
    records = [make_record(signers, rest=True, attachments=[body]) for _ in range(4)]

    async def go() -> list[int]:
        jobs = [
            mlog.log_async(records[i % 4], [chunks(body), [b"second ", b"part"]]) for i in range(40)
        ]
        return list(await asyncio.gather(*jobs))

    ids = asyncio.run(go())
    assert len(set(ids)) == 40
    for rid in ids[:5]:
        stored = store.get(rid)
        assert stored is not None
        assert store.attachments(stored) == [body, b"second part"]
    mlog.shutdown()


def test_failures_are_logging_failed_and_leave_nothing(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers
) -> None:
    mlog = MessageLog(store, settings.replace(max_loggable_body_size=3000), conf)

    async def broken() -> AsyncIterator[bytes]:
        yield b"x" * 100
        raise OSError("the spool went away")

    async def go() -> None:
        with pytest.raises(XRoadError) as err:
            await mlog.log_async(make_record(signers), [broken()])
        assert err.value.code == "logging_failed"
        assert "the spool went away" in err.value.detail
        with pytest.raises(XRoadError) as err:
            await mlog.log_async(make_record(signers), [chunks(b"y" * 5000)])
        assert err.value.code == "logging_failed"
        assert "maximum loggable size" in err.value.detail

    asyncio.run(go())
    assert store.counts()["messages"] == 0
    with pytest.raises(XRoadError) as err:
        mlog.log(make_record(signers), [iter([b"z" * 4000])])
    assert err.value.code == "logging_failed"
    mlog.shutdown()


def test_proxy_hook(mlog: MessageLog, signers: Signers) -> None:
    hook = mlog.logger()
    message = soap("hooked")
    signed = signers.signed(message)
    hook(LoggedMessage("client", "request", "rid-9", False, message, signed.signature_xml))
    head = rest_request("hooked-rest")
    body = b'{"a": 1}'
    signed = signers.signed(head, [body])
    logged = LoggedMessage(
        "server",
        "request",
        "rid-10",
        True,
        head,
        signed.signature_xml,
        signed.hash_chain_result,
        signed.hash_chain,
    )
    object.__setattr__(logged, "attachments", ([body],))  # a hook that carries the body
    hook(logged)
    (soap_record,) = mlog.store.find("hooked", CLIENT)
    assert (soap_record.record.x_request_id, soap_record.record.response) == ("rid-9", False)
    (rest_record,) = mlog.store.find("hooked-rest", PROVIDER)
    assert rest_record.record.rest
    assert mlog.store.attachments(rest_record) == [body]
    with pytest.raises(XRoadError) as err:
        hook(LoggedMessage("client", "request", "x", False, b"<not-soap/>", b"<sig/>"))
    assert err.value.code == "logging_failed"


def test_async_proxy_hook_streams_bodies(mlog: MessageLog, signers: Signers) -> None:
    hook = mlog.async_logger()
    head = rest_request("async-hooked")
    body = b"x" * 5000
    signed = signers.signed(head, [body])
    logged = LoggedMessage(
        "client", "request", "r", True, head, signed.signature_xml,
        signed.hash_chain_result, signed.hash_chain,
    )  # fmt: skip
    object.__setattr__(logged, "attachments", (chunks(body),))
    rid = asyncio.run(hook(logged))
    stored = mlog.store.get(rid)
    assert stored is not None
    assert mlog.store.attachments(stored) == [body]
    mlog.shutdown()


def test_small_records_are_logged_inline_or_by_group_commit(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers, tmp_path: Path
) -> None:
    """With the write lock free, a record is logged at once; while another process holds it,
    the records queue and are logged together once it is free, none released before."""
    mlog = MessageLog(store, settings.replace(status_refresh=3600), conf)
    body = bytes(range(256)) * 12
    records = [make_record(signers, rest=True, attachments=[body]) for _ in range(4)]
    checkouts: list[object] = []

    def count(*_: object) -> None:
        checkouts.append(1)

    async def go() -> list[int]:
        mlog.status(fresh=True)
        first = await mlog.log_async(records[0], [chunks(body), [b"x"]])  # inline
        other = sqlite3.connect(tmp_path / "messagelog.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another worker's transaction
        sa.event.listen(store.engine, "checkout", count)
        try:
            jobs = [
                asyncio.ensure_future(mlog.log_async(records[i % 4], [chunks(body), [b"x"]]))
                for i in range(100)
            ]
            await asyncio.sleep(0.3)
            assert not any(job.done() for job in jobs)  # nothing released unlogged
            other.rollback()
            return [first, *await asyncio.gather(*jobs)]
        finally:
            sa.event.remove(store.engine, "checkout", count)
            other.close()

    ids = asyncio.run(go())
    assert len(set(ids)) == 101
    assert len(checkouts) <= 5, "each record had a transaction of its own"
    for rid in ids:
        stored = store.get(rid)
        assert stored is not None
        assert store.attachments(stored) == [body, b"x"]
    mlog.shutdown()


def test_big_bodies_are_streamed_beside_small_ones(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers
) -> None:
    mlog = MessageLog(store, settings, conf)
    big = bytes(range(256)) * (SMALL_BODIES // 256 + 100)
    record = make_record(signers, rest=True, attachments=[b"small", big, b"after"])

    async def go() -> list[int]:
        return list(
            await asyncio.gather(
                mlog.log_async(record, [[b"sm", b"all"], chunks(big, 64 * 1024), chunks(b"after")]),
                mlog.log_async(record, [chunks(b"small", 2), [big], [b"after"]]),
                mlog.log_async(record, [[b"small"], iter([big]), [b"after"]]),
            )
        )

    for rid in asyncio.run(go()):
        stored = store.get(rid)
        assert stored is not None
        assert store.attachments(stored) == [b"small", big, b"after"]
    mlog.shutdown()


def test_a_failing_group_fails_every_record_in_it(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers, tmp_path: Path
) -> None:
    mlog = MessageLog(store, settings, conf)
    record = make_record(signers)
    with store.write() as conn:
        conn.exec_driver_sql("ALTER TABLE logrecord_chunk RENAME TO chunk_gone")

    async def go() -> list[object]:
        other = sqlite3.connect(tmp_path / "messagelog.db", isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # so that the records go to the group writer
        jobs = [
            asyncio.ensure_future(mlog.log_async(record, [[b"body %d" % i]])) for i in range(20)
        ]
        await asyncio.sleep(0.2)
        other.rollback()
        other.close()
        return list(await asyncio.gather(*jobs, return_exceptions=True))

    try:
        outcomes = asyncio.run(go())
    finally:
        with store.write() as conn:
            conn.exec_driver_sql("ALTER TABLE chunk_gone RENAME TO logrecord_chunk")
    assert all(isinstance(o, XRoadError) and o.code == "logging_failed" for o in outcomes)
    assert store.counts()["messages"] == 0
    assert asyncio.run(mlog.log_async(record, [[b"again"]])) > 0
    mlog.shutdown()
