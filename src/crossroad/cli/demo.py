"""``crossroad demo``: run the demo and tell the user what to try next."""

from __future__ import annotations

import asyncio
import json
import shlex
import sys
from pathlib import Path

import typer
from rich.console import Console

from crossroad.errors import XRoadError


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)


def demo(
    directory: Path = typer.Option(
        Path(".crossroad/demo"), "--dir", help="Where the demo keeps its state and output."
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Run unattended; print one JSON line last; exit 0 only if all passed.",
    ),
) -> None:
    """Run the evidence demo: trust services, signed and time-stamped messages, verification."""
    from crossroad.demo import evidence

    console = Console(stderr=check, highlight=False, soft_wrap=True)
    console.print(
        "[bold]crossroad demo[/bold]: trust services, signatures, time-stamps, evidence\n"
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
