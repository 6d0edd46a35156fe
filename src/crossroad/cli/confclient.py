"""``crossroad configuration-client run DIR --anchor FILE``: keep a global configuration
directory current (protocols.md §5.1–5.2, §5.7).

Downloads the configuration of the anchor's source into ``DIR`` (the NIIS layout, swapped
atomically), every ``--interval`` seconds until SIGTERM/SIGINT, retrying with back-off after a
failure.  ``--once`` updates once and exits 0 (updated), 1 (failed; the previous configuration is
kept) — with ``--json`` it prints the result.  Federation partners are fetched only when named in
``--allowed-federations`` (``none`` by default, or ``all``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from crossroad.errors import Code, XRoadError

if TYPE_CHECKING:
    from crossroad.globalconf.client import UpdateResult

confclient_app = typer.Typer(
    help="Configuration client: download and keep a global configuration current.",
    no_args_is_help=True,
)


def _print_result(result: UpdateResult, as_json: bool) -> None:
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "code": result.code,
                    "error": result.error.detail if result.error else None,
                    "location": result.location,
                    "version": result.version,
                    "expires": result.expires.isoformat() if result.expires else None,
                    "downloaded": list(result.downloaded),
                    "kept": list(result.kept),
                    "federation": {k: v.code if v else None for k, v in result.federation.items()},
                },
                indent=2,
            )
        )
    elif result.ok:
        typer.echo(
            f"updated from {result.location} (version {result.version}, expires "
            f"{result.expires.isoformat() if result.expires else '?'}); downloaded "
            f"{', '.join(result.downloaded) or 'nothing new'}"
        )
    elif result.error is not None:
        typer.echo(f"error: {result.error.code}: {result.error.detail}", err=True)


@confclient_app.command("run")
def run(
    directory: Path = typer.Argument(..., help="Global configuration directory to keep."),
    anchor: Path = typer.Option(..., "--anchor", help="Configuration anchor of the source."),
    once: bool = typer.Option(False, "--once", help="Update once and exit."),
    interval: float = typer.Option(60.0, "--interval", help="Seconds between updates."),
    allowed_federations: str = typer.Option(
        "none", "--allowed-federations", help="Partner instances: none, all, or a list."
    ),
    as_json: bool = typer.Option(False, "--json", help="With --once: print the result as JSON."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every update."),
) -> None:
    """Download the global configuration (once, or every interval until stopped)."""
    from crossroad.globalconf.client import ConfigurationClient
    from crossroad.globalconf.privateparams import parse_anchor

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        parsed = parse_anchor(anchor.read_bytes())
    except XRoadError as err:
        typer.echo(f"error: {err.code}: {err.detail}", err=True)
        raise typer.Exit(1) from None
    except OSError as err:
        typer.echo(f"error: {Code.IO_ERROR}: {err.strerror or err}: {anchor}", err=True)
        raise typer.Exit(1) from None
    client = ConfigurationClient(
        parsed,
        directory,
        interval=interval,
        allowed_federations=[a for a in allowed_federations.split(",") if a.strip()],
    )
    if once:
        result = asyncio.run(client.update_once())
        _print_result(result, as_json)
        raise typer.Exit(0 if result.ok else 1)

    async def forever() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        typer.echo(f"configuration client for {parsed.instance_identifier} writing {directory}")
        await client.run(stop)

    asyncio.run(forever())


def register(app: typer.Typer) -> None:
    app.add_typer(confclient_app, name="configuration-client")
