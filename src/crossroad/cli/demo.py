"""``crossroad demo``: a complete instance on this machine, with exchanges to try
(:mod:`crossroad.demo.instance`); ``crossroad demo evidence``: the evidence demo (signatures,
time-stamps and their offline verification, :mod:`crossroad.demo.evidence`).

``--check`` runs either unattended, prints ONE JSON line last on stdout (everything else goes to
stderr) and exits 0 only if every check passed.  For the instance, ``"evidence": "ok"`` means
that the REST exchange's signed containers, downloaded from both security servers' message logs
(``GET /asic``), verified offline with their ``GET /verificationconf``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from crossroad.errors import XRoadError

demo_app = typer.Typer(
    help="Demos: a complete instance (default), or the evidence demo.",
    invoke_without_command=True,
    no_args_is_help=False,
)
_DIR = typer.Option(
    Path(".crossroad/demo"), "--dir", help="Where the demo keeps its state and output."
)
_CHECK = typer.Option(
    False, "--check", help="Run unattended; print one JSON line last; exit 0 only if all passed."
)


def register(app: typer.Typer) -> None:
    app.add_typer(demo_app, name="demo")


@demo_app.callback()
def demo(
    ctx: typer.Context,
    directory: Path = _DIR,
    check: bool = _CHECK,
    address_base: str | None = typer.Option(
        None,
        "--address-base",
        help="First of three loopback addresses for the security servers "
        "(default 127.0.0.2; with --check a random 127.x.y.2).",
    ),
    workers: int = typer.Option(2, "--workers", help="Proxy workers per member server."),
    evidence: bool = typer.Option(
        True,
        "--evidence/--no-evidence",
        help="Download the REST exchange's signed containers from both security servers "
        "(GET /asic) and verify them.",
    ),
) -> None:
    """Bring up a complete instance on 127.0.0.x: trust services, a central server with its
    management security server, two member security servers, a REST and a SOAP provider; run
    a REST and a SOAP exchange; stop everything on Ctrl-C."""
    if ctx.invoked_subcommand is not None:
        return
    from crossroad.demo import exchanges, instance

    console = Console(stderr=check, highlight=False, soft_wrap=True)

    def say(text: str) -> None:
        console.print(text, markup=False)

    base = address_base or (None if check else "127.0.0.2")
    started = time.monotonic()
    results: dict[str, Any] = {}

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        console.print("[bold]crossroad demo[/bold]: a complete instance on this machine\n")
        async with instance.start_instance(
            directory, say=say, address_base=base, workers=workers
        ) as inst:
            up = time.monotonic() - started
            say(f"\nup in {up:.1f} s; exchanges through the consumer's and provider's servers:")
            results.update(await exchanges.exchanges(inst, say))
            if evidence:
                results["evidence"] = await exchanges.evidence(inst, say)
            results["up_seconds"] = round(up, 1)
            say("")
            exchanges.write_samples(inst)
            for line in exchanges.describe(inst):
                say(line)
            if not check:
                say("\nRunning; Ctrl-C stops everything.")
                await stop.wait()
                say("stopping…")

    try:
        asyncio.run(main())
    except XRoadError as err:
        console.print(f"[red]demo failed[/red]: {err.code}: {err.detail}", markup=True)
        results.setdefault("error", f"{err.code}: {err.detail}")
    except KeyboardInterrupt:
        pass
    keys = ("rest", "soap", "denied")
    passed = all(results.get(k) == "ok" for k in keys) and results.get("evidence", "ok") == "ok"
    if check:
        for k in keys:
            results.setdefault(k, "not run")
        print(json.dumps(results), flush=True)
        raise typer.Exit(0 if passed else 1)
    if not passed:
        raise typer.Exit(1)


@demo_app.command("evidence")
def evidence_demo(directory: Path = _DIR, check: bool = _CHECK) -> None:
    """The evidence demo: trust services, signed and time-stamped messages, verification."""
    from crossroad.demo import evidence

    console = Console(stderr=check, highlight=False, soft_wrap=True)
    console.print(
        "[bold]crossroad demo evidence[/bold]: trust services, signatures, time-stamps, evidence\n"
    )
    try:
        with console.status("starting the trust services and signing…"):
            result = asyncio.run(evidence.run(directory))
    except XRoadError as err:
        console.print(f"[red]demo failed[/red]: {err.code}: {err.detail}")
        if check:
            print(json.dumps({"evidence": "failed", "code": err.code}))
        raise typer.Exit(1) from err

    t = result.trust
    console.print(f"Trust services ran on 127.0.0.1 (stopped now; state in {t.state_dir}):")
    console.print(f"  test CA   {t.ca_url}   OCSP responder {t.ocsp_url}   TSA {t.tsa_url}")
    console.print(f"  members   {evidence.CLIENT} (client), {evidence.PROVIDER} (provider)\n")
    for path, report in result.containers:
        console.print(f"[bold]{path.name}[/bold]")
        console.print(report.render_text(), markup=False)
        console.print()
    archive_path, archive_report = result.archive
    console.print(f"[bold]{archive_path.name}[/bold]")
    console.print(archive_report.render_text(), markup=False)
    console.print()
    exe = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "crossroad"
    gc = shlex.quote(str(result.globalconf))
    console.print("[bold]Try next[/bold]")
    first = shlex.quote(str(result.containers[0][0]))
    console.print(f"  {exe} verify {first} --globalconf {gc}")
    console.print(
        f"  {exe} verify {shlex.quote(str(archive_path))} --globalconf {gc} --first --json"
    )
    console.print(
        f"  {exe} trust run {shlex.quote(str(t.state_dir))}   # CA 8887, OCSP 8888, TSA 8899"
    )
    console.print("  flip a byte of a container and verify it again: it fails with a fault code")
    status = "ok" if result.ok else "failed"
    if check:
        print(
            json.dumps(
                {
                    "evidence": status,
                    "containers": len(result.containers),
                    "archive": "ok" if result.archive[1].valid else "failed",
                }
            )
        )
    if not result.ok:
        raise typer.Exit(1)
