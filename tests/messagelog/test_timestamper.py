"""Time-stamping against the real trust services' TSA: single and batch shapes whose containers
verify, batches bounded by the records limit, TSAs tried in order, and the failure cycle (TSA
down → records wait → past the failure period ``timestamping_failed`` → TSA back → backlog
stamped in batches → accepting again), with a frozen clock and with the real job loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import pytest

from crossroad.crypto.certs import cert_der
from crossroad.errors import XRoadError
from crossroad.evidence.verifier import verify_container
from crossroad.globalconf.model import ApprovedTSAInfo, CostType
from crossroad.messagelog.manager import MessageLog
from crossroad.messagelog.records import Side
from crossroad.messagelog.settings import LogSettings
from crossroad.messagelog.store import MessageLogStore, TimestampStatus
from crossroad.messagelog.timestamper import (
    interval_seconds,
    next_delay,
    ordered_tsas,
    refuses,
)
from crossroad.testing.clock import FrozenClock
from crossroad.testing.pki import TestPKI

from .conftest import DEAD_TSA, Conf, Signers, globalconf, make_record

pytestmark = pytest.mark.integration


def verify_all(mlog: MessageLog, conf: Conf) -> list[bool]:
    snapshot = conf()
    assert snapshot is not None
    trust = snapshot.trust_policy()
    out = []
    for stored in mlog.store.records(limit=1000):
        report = verify_container(mlog.store.container(stored).render(), trust)
        assert report.valid, (report.code, report.detail)
        out.append(stored.batch_stamped)
    return out


def test_single_shape(mlog: MessageLog, conf: Conf, signers: Signers) -> None:
    rid = mlog.log(make_record(signers))

    async def go() -> None:
        result = await mlog.timestamper.stamp_once()
        await mlog.close()
        assert result.ok
        assert result.stamped == 1
        assert result.tsa == conf.services.tsa_url

    asyncio.run(go())
    stored = mlog.store.get(rid)
    assert stored is not None
    assert stored.stamped
    assert not stored.batch_stamped
    assert b"SignatureTimeStamp" in stored.record.signature
    assert verify_all(mlog, conf) == [False]


def test_batch_shape(mlog: MessageLog, conf: Conf, signers: Signers) -> None:
    body = b'{"items": [1, 2, 3]}' * 100
    mlog.log(make_record(signers, rest=True, attachments=[body]), [[body]])
    mlog.log(make_record(signers, rest=True, response=True, attachments=[body]), [[body]])
    mlog.log(make_record(signers, attachments=[b"att-1", b"att-2"]), [[b"att-1"], [b"att-2"]])
    mlog.log(make_record(signers, side=Side.SERVER))
    mlog.log(make_record(signers, response=True, side=Side.SERVER))

    async def go() -> None:
        result = await mlog.timestamper.stamp_once()
        await mlog.close()
        assert result.ok
        assert (result.stamped, result.batches, result.waiting) == (5, 1, 0)

    asyncio.run(go())
    assert verify_all(mlog, conf) == [True] * 5
    with_body = mlog.store.records(limit=10, newest_first=False)[0]
    container = mlog.store.container(with_body)
    assert container.attachments == (body,)
    assert container.is_batch_timestamp


def test_records_limit_makes_several_batches(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers
) -> None:
    mlog = MessageLog(store, settings.replace(timestamp_records_limit=3), conf)
    for _ in range(7):
        mlog.log(make_record(signers))

    async def go() -> None:
        result = await mlog.timestamper.stamp_once()
        await mlog.close()
        assert (result.stamped, result.batches) == (7, 3)

    asyncio.run(go())
    assert sorted(verify_all(mlog, conf)) == [False] + [True] * 6


def test_tsas_in_order_and_unapproved_token(
    mlog: MessageLog, conf: Conf, signers: Signers, pki: TestPKI
) -> None:
    real = conf.services
    conf.current = globalconf(
        pki, [(DEAD_TSA, cert_der(real.tsa_cert)), (real.tsa_url, cert_der(real.tsa_cert))]
    )
    mlog.log(make_record(signers))

    async def go() -> None:
        result = await mlog.timestamper.stamp_once()
        assert result.ok
        assert result.tsa == real.tsa_url
        # A TSA whose certificate is not the approved one: its tokens are refused.
        conf.current = globalconf(pki, [(real.tsa_url, cert_der(pki.tsa.cert))])
        mlog.log(make_record(signers))
        result = await mlog.timestamper.stamp_once()
        await mlog.close()
        assert not result.ok
        assert result.error is not None
        assert result.error.code == "timestamping_failed"
        assert "mlog.tsp_certificate_not_found" in result.error.detail

    asyncio.run(go())
    assert mlog.store.status().last_tsa == real.tsa_url
    assert mlog.store.status().failed_since is not None


def test_failure_period_with_frozen_clock(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers
) -> None:
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    mlog = MessageLog(
        store,
        settings.replace(acceptable_timestamp_failure_period=10, timestamp_records_limit=2),
        conf,
        clock=clock,
    )
    conf.set(False)
    for _ in range(5):
        mlog.log(make_record(signers))

    async def go() -> None:
        failed = await mlog.timestamper.stamp_once()
        assert not failed.ok
        assert failed.waiting == 5
        mlog.check_accepting()  # within the period: exchanges go on, records wait
        clock.advance(11)
        with pytest.raises(XRoadError) as err:
            mlog.check_accepting()
        assert err.value.code == "timestamping_failed"
        with pytest.raises(XRoadError) as err:
            mlog.log(make_record(signers))
        assert err.value.code == "timestamping_failed"
        # the TSA comes back: one record in retry mode, then the backlog in batches
        conf.set(True)
        result = await mlog.timestamper.stamp_once(retry_mode=True)
        await mlog.close()
        assert result.ok
        assert (result.stamped, result.batches, result.waiting) == (5, 3, 0)
        mlog.check_accepting()

    asyncio.run(go())
    assert len(verify_all(mlog, conf)) == 5


def test_failure_cycle_with_the_job_running(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers
) -> None:
    """The real job loop, real clock, short periods: nothing here is driven by hand except
    the TSA going away and coming back."""
    mlog = MessageLog(
        store,
        settings.replace(
            timestamping_interval=0.1,
            timestamp_retry_delay=0.05,
            acceptable_timestamp_failure_period=0.5,
            timestamp_records_limit=4,
        ),
        conf,
    )

    async def wait_for(predicate: object, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():  # type: ignore[operator]
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.02)

    def accepting() -> bool:
        try:
            mlog.check_accepting()
        except XRoadError:
            return False
        return True

    async def go() -> None:
        stop = asyncio.Event()
        job = asyncio.create_task(mlog.run_jobs(stop, archive=False))
        try:
            mlog.log(make_record(signers))
            await wait_for(lambda: store.count_unstamped() == 0)
            conf.set(False)
            for _ in range(9):
                await asyncio.to_thread(mlog.log, make_record(signers))
            assert store.count_unstamped() == 9
            await wait_for(lambda: not accepting())
            assert store.count_unstamped() == 9  # records wait, none is lost
            conf.set(True)
            await wait_for(accepting)
            await wait_for(lambda: store.count_unstamped() == 0)
        finally:
            stop.set()
            await job
            await mlog.close()

    asyncio.run(go())
    shapes = verify_all(mlog, conf)
    assert len(shapes) == 10
    assert shapes.count(True) >= 4  # the backlog went in batches


def test_timestamp_immediately(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers
) -> None:
    mlog = MessageLog(store, settings.replace(timestamp_immediately=True), conf)

    async def go() -> int:
        rid = await mlog.log_async(make_record(signers))
        conf.set(False)
        with pytest.raises(XRoadError) as err:
            await mlog.log_async(make_record(signers))
        assert err.value.code == "timestamping_failed"
        await mlog.close()
        return rid

    rid = asyncio.run(go())
    stored = store.get(rid)
    assert stored is not None
    assert stored.stamped


def test_force_stamps_given_records(mlog: MessageLog, conf: Conf, signers: Signers) -> None:
    ids = [mlog.log(make_record(signers)) for _ in range(3)]

    async def go() -> int:
        count = await mlog.timestamper.stamp_records(ids[:2])
        await mlog.close()
        return count

    assert asyncio.run(go()) == 2
    assert mlog.store.count_unstamped() == 1


def test_no_tsa_configured(mlog: MessageLog, conf: Conf, pki: TestPKI, signers: Signers) -> None:
    conf.current = globalconf(pki, [])
    with pytest.raises(XRoadError) as err:
        mlog.check_accepting()
    assert err.value.code == "mlog.no_timestamping_provider_found"
    with pytest.raises(XRoadError) as err:
        mlog.log(make_record(signers))
    assert err.value.code == "mlog.no_timestamping_provider_found"


# --------------------------------------------------------------------------- decisions


def test_ordered_tsas() -> None:
    free = ApprovedTSAInfo("free", "http://f", b"", CostType.FREE)
    paid = ApprovedTSAInfo("paid", "http://p", b"", CostType.PAID)
    unknown = ApprovedTSAInfo("unknown", "http://u", b"")
    blank = ApprovedTSAInfo("blank", " ", b"", CostType.FREE)
    tsas = [unknown, paid, blank, free]
    assert ordered_tsas(tsas, "none") == [unknown, paid, free]
    assert ordered_tsas(tsas, "free_first") == [free, paid, unknown]
    assert ordered_tsas(tsas, "paid_first") == [paid, free, unknown]
    assert ordered_tsas(tsas, "only_free") == [free]
    assert ordered_tsas(tsas, "only_paid") == [paid]


def test_intervals_and_refusal(pki: TestPKI) -> None:
    settings = LogSettings()
    assert interval_seconds(settings, None) == 60
    assert interval_seconds(settings, globalconf(pki, [], interval=5)) == 60  # NIIS minimum
    assert interval_seconds(settings, globalconf(pki, [], interval=600)) == 600
    assert interval_seconds(settings.replace(timestamping_interval=0.5), None) == 0.5
    assert next_delay(600, False, 60) == 600
    assert next_delay(600, True, 60) == 60
    assert next_delay(30, True, 60) == 30
    assert not refuses(TimestampStatus(), 10**12, 10)
    assert not refuses(TimestampStatus(failed_since=1000), 11_000, 10)
    assert refuses(TimestampStatus(failed_since=1000), 11_001, 10)
    assert not refuses(TimestampStatus(failed_since=1000), 10**12, 0)  # 0 = check disabled
