"""The message log's costs: exchanges with logging on versus off, logging per message,
time-stamping per batch size, archiving.

In ONE run:

* **exchanges, logging on vs off**: two demo instances (``bench/exchange.py``'s machinery), one
  whose security servers log every message (the default) and one started with
  ``CROSSROAD_MESSAGE_LOG=off``, both up at once; each scenario of the exchange benchmark
  (REST 1 KB, SOAP 1 KB, REST 10 MB) is run through the consumer's and provider's servers of
  each, alternating in short rounds so that both see the same machine: exchanges per second,
  p50 latency, and the ratio on ÷ off.  The logging instance's records are counted afterwards
  (four per exchange: request and response on both servers);

then, on SQLite in a temporary directory, with the real trust services' TSA on 127.0.0.1:

* **logging**: ``MessageLog.log_async`` of signed SOAP 1 KB messages, and of REST 1 KB messages
  with a 1 KiB body, at a concurrency of 8 (what a proxy worker does before releasing each
  message): records per second and CPU per record.  An exchange logs four records (request and
  response on both servers); the per-exchange figure is four records' CPU.
* **time-stamping**: N records stamped in batches of B (B = 1, 10, 100, 1000, 10000): records
  per second, including the hash chain, the TSA round trip, the token's verification and the
  database update;
* **archiving**: every stamped record into archive files (containers rendered, linkinginfo,
  fsync, database bookkeeping): records per second.

    .venv/bin/python bench/messagelog.py [--quick] [--postgres URL] [--no-exchange]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crossroad.crypto import keys, xades
from crossroad.crypto.algorithms import SHA512, SHA512_WITH_RSA
from crossroad.crypto.certs import cert_der
from crossroad.crypto.profiles import KNOWN_PROFILES
from crossroad.globalconf.model import (
    ApprovedCAInfo,
    ApprovedTSAInfo,
    CaInfo,
    GlobalSettings,
    ManagementService,
    OcspInfo,
    PrivateParameters,
    SharedParameters,
)
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId
from crossroad.messagelog.integration import SWITCH_ENV
from crossroad.messagelog.manager import MessageLog
from crossroad.messagelog.records import MessageRecord, Side, new_record
from crossroad.messagelog.settings import LogSettings
from crossroad.testing.pki import TestPKI
from crossroad.trust.service import TrustServices, start_trust_services

EJBCA = next(p for p in KNOWN_PROFILES if "Ejbca" in p)
CLIENT = ClientId("EE", "COM", "111", "client")


def soap(query_id: str) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:id="http://x-road.eu/xsd/identifiers" xmlns:xroad="http://x-road.eu/xsd/xroad.xsd">
<SOAP-ENV:Header><xroad:client id:objectType="SUBSYSTEM"><id:xRoadInstance>EE</id:xRoadInstance>
<id:memberClass>COM</id:memberClass><id:memberCode>111</id:memberCode>
<id:subsystemCode>client</id:subsystemCode></xroad:client>
<xroad:service id:objectType="SERVICE"><id:xRoadInstance>EE</id:xRoadInstance>
<id:memberClass>GOV</id:memberClass><id:memberCode>222</id:memberCode>
<id:subsystemCode>svc</id:subsystemCode><id:serviceCode>echo</id:serviceCode></xroad:service>
<xroad:id>{query_id}</xroad:id><xroad:protocolVersion>4.0</xroad:protocolVersion>
</SOAP-ENV:Header><SOAP-ENV:Body><ns:echo xmlns:ns="urn:x">{"x" * 1024}</ns:echo>
</SOAP-ENV:Body></SOAP-ENV:Envelope>""".encode()


def rest(query_id: str) -> bytes:
    return (
        "POST\r\n/r1/EE/GOV/222/svc/echo\r\nContent-Type:application/json\r\n"
        f"x-road-client:EE/COM/111/client\r\nx-road-id:{query_id}\r\nx-road-request-id:1\r\n"
    ).encode()


class Maker:
    """Signed records of one member (signatures made once and reused: signing is not measured)."""

    def __init__(self, pki: TestPKI) -> None:
        self.pki = pki
        self.who = pki.sign_cert("EE", "COM", "111")
        self.ocsp = pki.ocsp_for(self.who.cert, dt.datetime.now(dt.UTC))

    def record(self, kind: str, body: bytes | None = None) -> MessageRecord:
        query_id = str(uuid.uuid4())
        message = soap(query_id) if kind == "soap" else rest(query_id)
        parts = [xades.MessagePart("/message.xml", SHA512, data=message)]
        if body is not None:
            parts.append(xades.MessagePart("/attachment1", SHA512, data=body))
        signed = xades.sign_batch(
            [parts],
            signing_cert=self.who.cert,
            ocsp_responses=[self.ocsp],
            sign=lambda data: keys.sign(self.who.key, SHA512_WITH_RSA, data),  # type: ignore[arg-type]
            signing_time=dt.datetime.now(dt.UTC),
        )[0]
        return new_record(
            Side.CLIENT,
            False,
            message,
            signed.signature_xml,
            rest=kind == "rest",
            at=dt.datetime.now(dt.UTC),
            hash_chain_result=signed.hash_chain_result,
            hash_chain=signed.hash_chain,
        )


def globalconf(pki: TestPKI, services: TrustServices) -> GlobalConfSnapshot:
    ca = ApprovedCAInfo(
        "CA", CaInfo(cert_der(pki.ca.cert), (OcspInfo("http://o", cert_der(pki.ocsp.cert)),)), EJBCA
    )
    tsa = ApprovedTSAInfo("TSA", services.tsa_url, cert_der(services.tsa_cert))
    shared = SharedParameters("EE", GlobalSettings(3600), approved_cas=(ca,), approved_tsas=(tsa,))
    private = PrivateParameters("EE", ManagementService("http://127.0.0.1:1/", CLIENT), 60)
    return GlobalConfSnapshot.build(shared, private)


async def logging(mlog: MessageLog, maker: Maker, kind: str, count: int) -> tuple[float, float]:
    """(records per second, CPU ms per record) for ``count`` records at concurrency 8."""
    body = b'{"x": "' + b"y" * 1010 + b'"}' if kind == "rest" else None
    records = [maker.record(kind, body) for _ in range(min(count, 200))]
    queue = list(range(count))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            record = records[i % len(records)]
            await mlog.log_async(record, [[body]] if body is not None else [])

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(8)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return count / wall, cpu / count * 1000


async def stamping(mlog: MessageLog, batch: int, total: int) -> float:
    """Records per second stamped in batches of ``batch`` (the records are waiting already)."""
    start = time.perf_counter()
    done = 0
    while done < total:
        pending = await asyncio.to_thread(mlog.store.unstamped, batch)
        if not pending:
            break
        count, _ = await mlog.timestamper.stamp(pending)
        done += count
    return done / (time.perf_counter() - start)


# -- exchanges with logging on and off ---------------------------------------------------------


@contextlib.contextmanager
def switched_off() -> Iterator[None]:
    """Processes started inside do not log (the environment is inherited)."""
    old = os.environ.get(SWITCH_ENV)
    os.environ[SWITCH_ENV] = "off"
    try:
        yield
    finally:
        if old is None:
            del os.environ[SWITCH_ENV]
        else:
            os.environ[SWITCH_ENV] = old


def logged_records(info: dict[str, Any]) -> int:
    """Message records in the consumer's and provider's logs of a demo instance."""
    total = 0
    for name in ("consumer", "provider"):
        path = Path(info["servers"][name]["state"]) / "messagelog.db"
        if path.exists():
            with contextlib.closing(sqlite3.connect(path)) as db:
                total += db.execute(
                    "SELECT count(*) FROM logrecord WHERE discriminator = 'm'"
                ).fetchone()[0]
    return total


def exchanges(args: argparse.Namespace) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import exchange as xb  # bench/exchange.py: the demo instance, the scenarios, the load

    seconds = 2.0 if args.quick else args.seconds
    rounds = 2 if args.quick else 4
    with (
        tempfile.TemporaryDirectory(prefix="mlog-bench-on-") as on_dir,
        tempfile.TemporaryDirectory(prefix="mlog-bench-off-") as off_dir,
    ):
        on_proc, on = xb.start_demo(Path(on_dir), args.workers)
        try:
            with switched_off():
                off_proc, off = xb.start_demo(Path(off_dir), args.workers)
            try:
                before = logged_records(on)
                print(
                    f"\nexchanges through two security servers, message log on vs off: "
                    f"concurrency {args.concurrency} (10 MB: 4), {seconds:g} s per side in "
                    f"{rounds} alternating rounds, {args.workers} proxy workers per server\n"
                )
                print("| exchange | log on /s | p50 ms | log off /s | p50 ms | on ÷ off | errors |")
                print("|---|---:|---:|---:|---:|---:|---:|")
                count = 0
                pairs = zip(xb.scenarios(on), xb.scenarios(off), strict=True)
                for (name, via_on, _, cap), (_, via_off, _, _) in pairs:
                    concurrency = min(args.concurrency, 4) if cap > 1 else args.concurrency
                    results = {}
                    for side, call in (("on", via_on), ("off", via_off)):
                        asyncio.run(xb.load(call, 2, 1.0, 20))  # connections, TLS, OCSP caches
                        results[side] = xb.Outcome(0, 0, 0.0, [])
                    for _ in range(rounds):
                        for side, call in (("on", via_on), ("off", via_off)):
                            got = asyncio.run(
                                xb.load(call, concurrency, seconds / rounds, args.count)
                            )
                            had = results[side]
                            results[side] = xb.Outcome(
                                had.count + got.count,
                                had.errors + got.errors,
                                had.seconds + got.seconds,
                                had.latencies + got.latencies,
                            )
                    a, b = results["on"], results["off"]
                    count += a.count
                    ratio = a.rate / b.rate if b.rate else float("nan")
                    print(
                        f"| {name} | {a.rate:,.1f} | {a.percentile(0.5):.1f} | {b.rate:,.1f} | "
                        f"{b.percentile(0.5):.1f} | **{ratio:.2f}** | {a.errors + b.errors} |",
                        flush=True,
                    )
                logged = logged_records(on) - before
                print(
                    f"\nlogged by the 'on' servers: {logged:,} records for {count:,} measured "
                    f"exchanges and the warm-ups; the 'off' servers: {logged_records(off)}"
                )
            finally:
                xb.stop_demo(off_proc)
        finally:
            xb.stop_demo(on_proc)


# -- the message log alone --------------------------------------------------------------------


async def run(args: argparse.Namespace, directory: Path) -> None:
    pki = TestPKI.create()
    maker = Maker(pki)
    async with start_trust_services(directory / "trust") as services:
        conf = globalconf(pki, services)
        url = args.postgres or f"sqlite:///{directory / 'messagelog.db'}"
        settings = LogSettings(database_url=url, archive_dir=directory / "archive")
        mlog = MessageLog.open(settings, lambda: conf)
        n = 500 if args.quick else 3000
        print(f"database: {url.split('@')[-1]}")
        print(
            "\n| logging (concurrency 8) | records/s | CPU ms/record | CPU ms/exch. (4 records) |"
        )
        print("|---|---:|---:|---:|")
        for kind, label in (("soap", "SOAP 1 KB"), ("rest", "REST 1 KB + 1 KiB body")):
            rate, cpu = await logging(mlog, maker, kind, n)
            print(f"| {label} | {rate:,.0f} | {cpu:.2f} | {4 * cpu:.2f} |")
        sizes = (1, 10, 100, 1000) if args.quick else (1, 10, 100, 1000, 10000)
        print("\n| time-stamping batch size | records/s |")
        print("|---:|---:|")
        for batch in sizes:
            total = max(batch, 50) if batch < 100 else batch
            if total > n * 2:
                extra = total - await asyncio.to_thread(mlog.store.count_unstamped)
                for _ in range(max(0, extra)):
                    await asyncio.to_thread(mlog.log, maker.record("soap"))
            rate = await stamping(mlog, batch, total)
            print(f"| {batch:,} | {rate:,.0f} |")
        await mlog.timestamper.stamp_once()
        archived = await asyncio.to_thread(mlog.store.counts)
        start = time.perf_counter()
        result = await asyncio.to_thread(mlog.archiver().archive_once)
        seconds = time.perf_counter() - start
        size = sum(f.path.stat().st_size for f in result.files)
        print(
            f"\narchiving: {result.records:,} records ({archived['messages']:,} logged) into "
            f"{len(result.files)} files of {size / 2**20:.1f} MiB in {seconds:.2f} s: "
            f"**{result.records / seconds:,.0f} records/s**"
        )
        await mlog.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer records, batches to 1000")
    parser.add_argument("--postgres", help="a PostgreSQL URL instead of SQLite")
    parser.add_argument("--no-exchange", action="store_true", help="skip the exchanges")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0, help="per scenario and side")
    parser.add_argument("--count", type=int, default=200_000, help="at most this many calls")
    parser.add_argument("--workers", type=int, default=2, help="proxy workers per server")
    args = parser.parse_args()
    if not args.no_exchange:
        exchanges(args)
    with tempfile.TemporaryDirectory(prefix="mlog-bench-") as tmp:
        asyncio.run(run(args, Path(tmp)))


if __name__ == "__main__":
    main()
