"""The message log's costs: logging per message, time-stamping per batch size, archiving.

In ONE run, on SQLite in a temporary directory, with the real trust services' TSA on 127.0.0.1:

* **logging**: ``MessageLog.log_async`` of signed SOAP 1 KB messages, and of REST 1 KB messages
  with a 1 KiB body, at a concurrency of 8 (what a proxy worker does before releasing each
  message): records per second and CPU per record.  An exchange logs four records (request and
  response on both servers); the per-exchange figure is four records' CPU.
* **time-stamping**: N records stamped in batches of B (B = 1, 10, 100, 1000, 10000): records
  per second, including the hash chain, the TSA round trip, the token's verification and the
  database update;
* **archiving**: every stamped record into archive files (containers rendered, linkinginfo,
  fsync, database bookkeeping): records per second.

    .venv/bin/python bench/messagelog.py [--quick] [--postgres URL]

With ``--exchange``, the exchange benchmark's REST 1 KB scenario (``bench/exchange.py``) is run
against the demo instance with the message log on and off in the same run, and the ratio is
printed; that needs a demo whose security servers log (``CROSSROAD_MESSAGE_LOG=off`` turns it
off).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import tempfile
import time
import uuid
from pathlib import Path

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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlog-bench-") as tmp:
        asyncio.run(run(args, Path(tmp)))
    if os.environ.get("CROSSROAD_BENCH_EXCHANGE"):
        print("\n(--exchange: see docs/performance.md)")


if __name__ == "__main__":
    main()
