"""``crossroad messagelog ...``: look into a security server's message log, stamp and archive now,
export containers, verify archives (a shell over :mod:`crossroad.messagelog`; protocols.md §9).

The state directory (``--dir``, default ``$CROSSROAD_SERVER_DIR``, else the current directory)
holds ``message-log.toml`` (:mod:`crossroad.messagelog.settings`: database, archive directory,
periods) and ``globalconf/`` (the approved TSAs and the trust policy).  Errors print
``error: <code>: <detail>`` and exit with status 1.

* ``list`` / ``show ID`` / ``status`` — the records, one record, the counts and the
  time-stamping status;
* ``stamp`` — one time-stamping round now (what the supervisor's job does every interval);
* ``archive`` — archive everything stamped, with a progress bar; ``clean`` — the retention;
* ``export --query-id Q --client SUBSYSTEM:…`` — the containers of a query, as ``/asic`` gives
  them (``--force`` stamps what is not stamped yet);
* ``verify ARCHIVE...`` — ``crossroad verify`` over archive files (the chain, and with
  ``--globalconf`` every container).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from crossroad.cli.failure import errors as _errors
from crossroad.errors import Code, XRoadError

if TYPE_CHECKING:
    from crossroad.globalconf.snapshot import GlobalConfSnapshot
    from crossroad.messagelog.manager import MessageLog
    from crossroad.messagelog.records import StoredRecord

_ENV = "CROSSROAD_SERVER_DIR"
_DIR = typer.Option(
    Path("."), "--dir", "-d", envvar=_ENV, help=f"State directory of the security server (${_ENV})."
)
_JSON = typer.Option(False, "--json", help="Print JSON.")

messagelog_app = typer.Typer(
    help="The message log: records, time-stamping, archives, signed documents.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(messagelog_app, name="messagelog")


def _globalconf(state_dir: Path) -> GlobalConfSnapshot | None:
    from crossroad.globalconf.store import load_snapshot

    directory = state_dir / "globalconf"
    if not directory.exists():
        return None
    return load_snapshot(directory)


def _open(state_dir: Path, *, need_conf: bool = False) -> MessageLog:
    from crossroad.messagelog.manager import MessageLog
    from crossroad.messagelog.settings import LogSettings

    settings = LogSettings.load(state_dir)
    conf = _globalconf(state_dir) if need_conf else None
    if need_conf and conf is None:
        raise XRoadError(
            Code.GLOBAL_CONF_OUTDATED, f"No global configuration in {state_dir / 'globalconf'}"
        )
    return MessageLog.open(settings, lambda: conf)


def _summary(stored: StoredRecord) -> dict[str, Any]:
    from crossroad.messagelog.records import from_ms

    r = stored.record
    return {
        "id": stored.id,
        "time": from_ms(r.time_ms).isoformat(),
        "side": r.side.value,
        "kind": "response" if r.response else "request",
        "rest": r.rest,
        "query_id": r.query_id,
        "client": str(r.client),
        "service": str(r.service) if r.service else None,
        "x_request_id": r.x_request_id,
        "body_logged": r.body_logged,
        "attachments": stored.attachments,
        "stamped": stored.stamped,
        "timestamp": "batch" if stored.batch_stamped else "single" if stored.stamped else None,
        "archived": stored.archived,
        "archive_file": stored.archive_file,
    }


@messagelog_app.command("list")
def list_records(
    state_dir: Path = _DIR,
    limit: int = typer.Option(20, "--limit", "-n", help="How many (newest first)."),
    query_id: str | None = typer.Option(None, "--query-id", help="Only this query id."),
    unstamped: bool = typer.Option(False, "--unstamped", help="Only records not stamped yet."),
    as_json: bool = _JSON,
) -> None:
    """The newest records."""
    from rich.console import Console
    from rich.table import Table

    with _errors():
        records = _open(state_dir).store.records(
            limit=limit, query_id=query_id, stamped=False if unstamped else None
        )
    rows = [_summary(r) for r in records]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("id", "time", "side", "kind", "query id", "client", "stamp", "archived")
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["time"][:23],
            row["side"],
            ("REST " if row["rest"] else "SOAP ") + row["kind"],
            row["query_id"],
            row["client"],
            row["timestamp"] or "waiting",
            "yes" if row["archived"] else "",
        )
    Console().print(table)


@messagelog_app.command("show")
def show(
    record_id: int = typer.Argument(..., help="Record id."),
    state_dir: Path = _DIR,
    message: bool = typer.Option(False, "--message", help="Print the logged message bytes."),
    as_json: bool = _JSON,
) -> None:
    """One record."""
    with _errors():
        stored = _open(state_dir).store.get(record_id)
        if stored is None:
            raise XRoadError(Code.NOT_FOUND, f"No message record {record_id}")
    if message:
        typer.echo(stored.record.message.decode("utf-8", "replace"))
        return
    summary = _summary(stored)
    summary["signature_hash"] = stored.record.signature_hash
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    for key, value in summary.items():
        typer.echo(f"{key:14} {value}")


@messagelog_app.command("status")
def status(state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    """Counts and the time-stamping status."""
    from crossroad.messagelog.archive_store import ArchiveStore
    from crossroad.messagelog.records import from_ms

    with _errors():
        mlog = _open(state_dir)
        counts = mlog.store.counts()
        state = mlog.store.status()
        groups = ArchiveStore(mlog.store).archive_groups()

    def when(value: int | None) -> str | None:
        return from_ms(value).isoformat() if value is not None else None

    data = {
        **counts,
        "timestamping_failed_since": when(state.failed_since),
        "last_timestamp": when(state.last_success),
        "last_tsa": state.last_tsa,
        "last_error": state.last_error,
        "last_archives": {g or "(none)": f for g, (_, f) in groups.items()},
    }
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        typer.echo(f"{key:26} {value}")


@messagelog_app.command("stamp")
def stamp(state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    """Time-stamp the waiting records now (all of them, batch after batch)."""

    async def run(mlog: MessageLog) -> Any:
        try:
            return await mlog.timestamper.stamp_once()
        finally:
            await mlog.close()

    with _errors():
        result = asyncio.run(run(_open(state_dir, need_conf=True)))
    data = {"stamped": result.stamped, "batches": result.batches, "waiting": result.waiting,
            "tsa": result.tsa, "error": str(result.error) if result.error else None}  # fmt: skip
    typer.echo(json.dumps(data) if as_json else ", ".join(f"{k}: {v}" for k, v in data.items()))
    if result.error is not None:
        raise typer.Exit(1)


@messagelog_app.command("archive")
def archive(state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    """Archive every time-stamped record now (shows progress)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with _errors():
        archiver = _open(state_dir).archiver()
        if as_json:
            run = archiver.archive_once()
        else:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            ) as progress:
                task = progress.add_task("archiving records", total=None)
                run = archiver.archive_once(
                    lambda done, total: progress.update(task, completed=done, total=total)
                )
    files = [str(f.path) for f in run.files]
    data = {
        "records": run.records,
        "files": files,
        "recovered": run.recovered,
        "released": run.released,
    }
    if as_json:
        typer.echo(json.dumps(data))
        return
    typer.echo(f"archived {run.records} records into {len(run.files)} files")
    for path in files:
        typer.echo(f"  {path}")
    for name in run.recovered:
        typer.echo(f"  recovered after a crash: {name}")


@messagelog_app.command("clean")
def clean(state_dir: Path = _DIR) -> None:
    """Remove archived records older than ``keep_records_for`` days."""
    from crossroad.messagelog.cleaner import clean_once

    with _errors():
        mlog = _open(state_dir)
        removed = clean_once(mlog.store, mlog.settings)
    typer.echo(f"removed {removed} archived records")


@messagelog_app.command("export")
def export(
    query_id: str = typer.Option(..., "--query-id", help="The X-Road query id (xroad:id)."),
    client: str = typer.Option(
        ..., "--client", help="The local client: SUBSYSTEM:I/C/M/S or MEMBER:I/C/M."
    ),
    state_dir: Path = _DIR,
    out: Path = typer.Option(Path("."), "--out", "-o", help="Directory to write .asice files."),
    request_only: bool = typer.Option(False, "--request-only"),
    response_only: bool = typer.Option(False, "--response-only"),
    force: bool = typer.Option(False, "--force", help="Time-stamp records not stamped yet."),
) -> None:
    """Write the containers of a query (as ``GET /asic`` gives them)."""
    from crossroad.identifiers import ClientId
    from crossroad.messagelog.records import container_name

    if request_only and response_only:
        typer.echo("error: --request-only and --response-only exclude each other", err=True)
        raise typer.Exit(2)
    response = True if response_only else False if request_only else None

    async def stamp_missing(mlog: MessageLog, ids: list[int]) -> None:
        try:
            await mlog.timestamper.stamp_records(ids)
        finally:
            await mlog.close()

    with _errors():
        who = ClientId.parse(client)
        mlog = _open(state_dir, need_conf=force)
        records = mlog.store.find(query_id, who, response)
        if not records:
            raise XRoadError(Code.NOT_FOUND, "No signed documents found")
        waiting = [r.id for r in records if not r.stamped]
        if waiting and not force:
            raise XRoadError(Code.INTERNAL_ERROR, "Message signature has not been timestamped yet!")
        if waiting:
            asyncio.run(stamp_missing(mlog, waiting))
            records = mlog.store.find(query_id, who, response)
        out.mkdir(parents=True, exist_ok=True)
        for stored in records:
            path = out / container_name(query_id, stored.record.response, stored.id)
            path.write_bytes(mlog.store.container(stored).render())
            typer.echo(str(path))


@messagelog_app.command(
    "verify", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def verify(ctx: typer.Context) -> None:
    """Verify archive files (or containers): ``crossroad verify`` with the same arguments."""
    from crossroad.cli.main import app

    code = app(["verify", *ctx.args], standalone_mode=False)
    raise typer.Exit(code if isinstance(code, int) else 0)
