"""Exchanges through two security servers, against the same calls made directly to the provider.

Starts the demo instance (``crossroad demo``: trust services, central server, three security
servers, the sample providers) on loopback addresses of this machine, then, at a fixed
concurrency, for a bounded time and count, in ONE run:

* REST 1 KB: ``POST …/petstore/echo`` with a 1 KiB JSON body (echoed back);
* SOAP 1 KB: ``echo`` with a 1 KiB payload (echoed back);
* REST 10 MB: ``GET …/petstore/blob/10485760`` (a 10 MiB response, read and dropped);

each through the consumer's and the provider's security servers (signed, verified, TLS between
them) and directly to the provider: exchanges per second, p50 and p99 latency, and the ratio of
the two rates.  Then a 1 GiB REST body is streamed through both servers (``POST …/upload``;
the provider answers its length and SHA-256, which are checked) while the peak resident memory
of every process of both servers is watched: the kernel's peak (``VmHWM``) is reset first
(``/proc/PID/clear_refs``), so peak minus the resident size before is the growth.

    .venv/bin/python bench/exchange.py [--concurrency 8] [--seconds 8] [--workers 2] [--quick]

Loopback only; the load generator shares the 2 cores with everything it measures, so the
ratios, measured within one run, travel better than the absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from crossroad.demo.exchanges import soap_request
from crossroad.demo.instance import CLIENT, PROVIDER, REST_CODE

KIB, MIB, GIB = 1024, 1024**2, 1024**3
REST_PREFIX = f"/r1/{PROVIDER.to_header()}/{REST_CODE}"


@dataclass(frozen=True)
class Call:
    method: str
    url: str
    body: bytes | None
    headers: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    count: int
    errors: int
    seconds: float
    latencies: list[float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def load(call: Call, concurrency: int, seconds: float, limit: int) -> Outcome:
    """``call`` from ``concurrency`` tasks until ``seconds`` passed or ``limit`` calls."""
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    latencies: list[float] = []
    errors = 0
    started = time.monotonic()
    deadline = started + seconds
    issued = 0
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=120)
    ) as session:

        async def one() -> None:
            nonlocal errors, issued
            while time.monotonic() < deadline and issued < limit:
                issued += 1
                t0 = time.perf_counter()
                try:
                    async with session.request(
                        call.method, call.url, data=call.body, headers=call.headers
                    ) as resp:
                        async for _ in resp.content.iter_chunked(256 * KIB):
                            pass
                        ok = resp.status == 200 and "X-Road-Error" not in resp.headers
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        await asyncio.gather(*(one() for _ in range(concurrency)))
    return Outcome(len(latencies), errors, time.monotonic() - started, latencies)


# -- the instance ----------------------------------------------------------------------------


def start_demo(directory: Path, workers: int) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    base = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.2"
    command = [sys.executable, "-m", "crossroad.cli.main", "demo", "--dir", str(directory)]
    command += ["--address-base", base, "--workers", str(workers), "--no-evidence"]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    output = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        output.append(line)
        if line.startswith("up in"):
            print(f"demo instance {line.strip()}", flush=True)
        if line.startswith("Running;"):
            break
        if time.monotonic() > deadline:
            break
    info_file = directory / "instance" / "instance.json"
    if not info_file.exists() or proc.poll() is not None:
        proc.kill()
        sys.exit("the demo instance did not come up:\n" + "".join(output[-40:]))
    return proc, json.loads(info_file.read_text())


def stop_demo(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def server_pids(server: dict[str, Any]) -> list[int]:
    run = json.loads((Path(server["state"]) / "run.json").read_text())
    return [run["pid"], run["signer_pid"], *run["worker_pids"]]


def memory(pid: int, field: str) -> int:
    """``VmRSS`` / ``VmHWM`` of ``pid`` in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # 5: reset the peak RSS (VmHWM)


# -- scenarios -------------------------------------------------------------------------------


def scenarios(info: dict[str, Any]) -> list[tuple[str, Call, Call, int]]:
    client = info["servers"]["consumer"]["client_url"]
    xroad = {"X-Road-Client": CLIENT.to_header()}
    json_body = json.dumps({"data": "x" * (KIB - 12)}).encode()
    soap_body = soap_request("echo", f"<ns1:text>{'y' * (KIB - 300)}</ns1:text>")
    soap_headers = {"Content-Type": "text/xml; charset=UTF-8"}
    rest_headers = {"Content-Type": "application/json"}
    blob = f"/blob/{10 * MIB}"
    return [
        (
            "REST 1 KB",
            Call("POST", client + REST_PREFIX + "/echo", json_body, {**xroad, **rest_headers}),
            Call("POST", info["rest_base"] + "/echo", json_body, rest_headers),
            1,
        ),
        (
            "SOAP 1 KB",
            Call("POST", client + "/", soap_body, soap_headers),
            Call("POST", info["soap_url"], soap_body, soap_headers),
            1,
        ),
        (
            "REST 10 MB",
            Call("GET", client + REST_PREFIX + blob, None, xroad),
            Call("GET", info["rest_base"] + blob, None, {}),
            4,
        ),
    ]


async def stream_gib(info: dict[str, Any], size: int) -> tuple[float, dict[str, tuple[int, int]]]:
    """Stream ``size`` bytes through both servers; (seconds, server → (max, sum) growth)."""
    servers = {name: server_pids(info["servers"][name]) for name in ("consumer", "provider")}
    before = {}
    for pids in servers.values():
        for pid in pids:
            reset_peak(pid)
            before[pid] = memory(pid, "VmRSS")
    chunk = bytes(range(256)) * (4 * KIB)  # 1 MiB
    expected = hashlib.sha256()
    for _ in range(size // len(chunk)):
        expected.update(chunk)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(size // len(chunk)):
            yield chunk

    url = info["servers"]["consumer"]["client_url"] + REST_PREFIX + "/upload"
    headers = {"X-Road-Client": CLIENT.to_header(), "Content-Type": "application/octet-stream"}
    t0 = time.monotonic()
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=900)) as session,
        session.post(url, data=body(), headers=headers) as resp,
    ):
        answer = await resp.read()
    seconds = time.monotonic() - t0
    if resp.status != 200:
        sys.exit(
            f"streamed upload failed: {resp.status} {resp.headers.get('X-Road-Error')} "
            f"{answer[:300]!r}"
        )
    got = json.loads(answer)
    if got != {"bytes": size, "sha256": expected.hexdigest()}:
        sys.exit(f"1 GiB upload arrived damaged: {got}")
    growth = {}
    for name, pids in servers.items():
        each = [memory(pid, "VmHWM") - before[pid] for pid in pids]
        growth[name] = (max(each), sum(each))
    return seconds, growth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0, help="per scenario and side")
    parser.add_argument("--count", type=int, default=200_000, help="at most this many calls")
    parser.add_argument("--workers", type=int, default=2, help="proxy workers per server")
    parser.add_argument("--gib", type=float, default=1.0, help="size of the streamed body")
    parser.add_argument("--quick", action="store_true", help="2 s per side, 64 MiB stream")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.gib = 2.0, 1 / 16
    with tempfile.TemporaryDirectory(prefix="crossroad-bench-") as tmp:
        proc, info = start_demo(Path(tmp), args.workers)
        try:
            run(info, args)
        finally:
            stop_demo(proc)


def run(info: dict[str, Any], args: argparse.Namespace) -> None:
    print(
        f"concurrency {args.concurrency} (10 MB: 4), {args.seconds:g} s per side, "
        f"{args.workers} proxy workers per server, {os.cpu_count()} CPUs\n"
    )
    print(
        "| exchange | via 2 SS /s | p50 ms | p99 ms | direct /s | p50 ms | p99 ms | ratio "
        "| errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, via, direct, cap in scenarios(info):
        concurrency = min(args.concurrency, 4) if cap > 1 else args.concurrency
        asyncio.run(load(via, 2, 1.0, 20))  # warm up: connections, TLS sessions, OCSP caches
        through = asyncio.run(load(via, concurrency, args.seconds, args.count))
        straight = asyncio.run(load(direct, concurrency, args.seconds, args.count))
        ratio = through.rate / straight.rate if straight.rate else float("nan")
        print(
            f"| {name} | {through.rate:,.1f} | {through.percentile(0.5):.1f} | "
            f"{through.percentile(0.99):.1f} | {straight.rate:,.1f} | "
            f"{straight.percentile(0.5):.1f} | {straight.percentile(0.99):.1f} | "
            f"{ratio:.2f} | {through.errors + straight.errors} |",
            flush=True,
        )
    size = int(args.gib * GIB)
    seconds, growth = asyncio.run(stream_gib(info, size))
    print(
        f"\n{size / MIB:,.0f} MiB REST body through both servers: {seconds:.1f} s "
        f"({size / MIB / seconds:,.0f} MiB/s)"
    )
    print("| server | peak RSS growth, largest process | all its processes |")
    print("|---|---:|---:|")
    for name, (largest, total) in growth.items():
        print(f"| {name} | {largest / MIB:.1f} MiB | {total / MIB:.1f} MiB |")


if __name__ == "__main__":
    main()
