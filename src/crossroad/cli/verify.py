"""`crossroad verify`: offline verification of ASiC-E containers and log archives (a shell).

Reads the files and the on-disk global configuration, hands bytes to
:mod:`crossroad.evidence.verifier` (the sans-I/O core) and prints its report — as rich text, or
as exactly one JSON object with ``--json``.  Exit status: 0 valid, 1 invalid, 2 could not run
(missing file, unreadable global configuration, bad ``--at``).

A path whose ZIP holds a ``linkinginfo`` entry or ``.asice`` files is a log archive
(protocols.md §9.5); anything else is treated as an ASiC-E container (§9.3).  Several archive
paths are verified as a chain, in the order given.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from crossroad.crypto.archive import CONTAINER_SUFFIX, LINKING_INFO, ChainReport
from crossroad.crypto.asic import AsicContainer, signer_of
from crossroad.crypto.trust import TrustPolicy
from crossroad.errors import XRoadError
from crossroad.evidence.report import ArchiveVerification, Report
from crossroad.evidence.verifier import verify_archive_files, verify_container

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_ERROR = 2


class _CannotRun(Exception):
    """A problem with the invocation, not with the evidence (exit status 2)."""


def _parse_at(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise _CannotRun(f"--at: not an ISO-8601 date-time: {value!r}") from exc
    # A time without a zone is read as UTC: evidence times are UTC throughout X-Road.
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _CannotRun(f"Cannot read {path}: {exc.strerror or exc}") from exc


def _is_archive(data: bytes) -> bool:
    """A ZIP with a ``linkinginfo`` entry, or holding ``.asice`` files, is a log archive."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
    except Exception:  # not a ZIP at all: let the container verifier say so
        return False
    return LINKING_INFO in names or any(n.endswith(CONTAINER_SUFFIX) for n in names)


class _Trust:
    """The global configuration, loaded lazily; the trust policy follows the signer's instance."""

    def __init__(self, directory: Path | None) -> None:
        self.path = directory
        self._directory: Any = None

    def _load(self) -> Any:
        if self._directory is None:
            if self.path is None:
                raise _CannotRun("--globalconf DIR is required to verify an ASiC container")
            from crossroad.globalconf.directory import load_directory

            try:
                self._directory = load_directory(self.path)
            except XRoadError as exc:
                raise _CannotRun(f"Cannot load global configuration: {exc}") from exc
            except OSError as exc:
                raise _CannotRun(f"Cannot load global configuration: {exc}") from exc
        return self._directory

    def policy(self, instance: str | None = None) -> TrustPolicy:
        directory = self._load()
        if instance is not None and instance in directory.instances():
            try:
                return directory.trust_policy(instance)  # type: ignore[no-any-return]
            except XRoadError:
                pass
        try:
            return directory.trust_policy()  # type: ignore[no-any-return]
        except XRoadError as exc:
            raise _CannotRun(f"Cannot build the trust policy: {exc}") from exc


def _signer_instance(data: bytes) -> str | None:
    try:
        return signer_of(AsicContainer.parse(data).message).instance
    except XRoadError:
        return None


def _day(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _status_text(valid: bool, code: str | None) -> Text:
    if valid:
        return Text("VALID", style="bold green")
    return Text(f"INVALID ({code})", style="bold red")


def _print_container(console: Console, report: Report, title: str) -> None:
    console.print(Text(title, style="bold"))
    console.print(Text("Result: ") + _status_text(report.valid, report.code))
    if not report.valid and report.detail:
        console.print(Text(f"Reason: {report.detail}"))
    facts = Table(show_header=False, box=None, pad_edge=False)
    facts.add_row("Signer", report.signer or "unknown")
    if report.signing_cert:
        c = report.signing_cert
        facts.add_row("Signing certificate", f"{c.subject} (serial {c.serial})")
    stamp = report.timestamp_time.isoformat() if report.timestamp_time else "none"
    facts.add_row("Time-stamp", stamp + (f" by {report.tsa.subject}" if report.tsa else ""))
    if report.verified_at:
        facts.add_row("Verified at", report.verified_at.isoformat())
    if report.ocsp_time:
        facts.add_row("OCSP produced at", report.ocsp_time.isoformat())
    console.print(facts)
    if report.certificates:
        console.print(Text("Certificates", style="bold"))
        for cert in report.certificates:
            console.print(Text(f"  [{cert.role}] ", style="cyan") + Text(cert.subject))
            console.print(
                f"      serial {cert.serial}; issuer {cert.issuer};"
                f" valid {_day(cert.not_before)} .. {_day(cert.not_after)}"
            )
    checks = Table(title="Checks", title_justify="left")
    checks.add_column("Check")
    checks.add_column("Result")
    checks.add_column("Detail", overflow="fold")
    for check in report.checks:
        mark = Text("ok", style="green") if check.ok else Text("FAILED", style="red")
        checks.add_row(check.name, mark, check.detail)
    console.print(checks)
    for note in report.notes:
        console.print(Text(f"Note: {note}", style="dim"))


def _print_archive(console: Console, result: ArchiveVerification) -> None:
    console.print(Text("Log archive", style="bold"))
    console.print(Text("Result: ") + _status_text(result.valid, result.code))
    if not result.valid and result.detail:
        console.print(Text(f"Reason: {result.detail}"))
    reports = (
        result.archive.reports if isinstance(result.archive, ChainReport) else (result.archive,)
    )
    for report in reports:
        table = Table(title=f"Archive {report.name}", title_justify="left")
        table.add_column("Check")
        table.add_column("Result")
        table.add_column("Detail", overflow="fold")
        for check in report.checks:
            mark = Text("ok", style="green") if check.ok else Text("FAILED", style="red")
            table.add_row(check.name, mark, check.detail)
        console.print(table)
        if report.last_digest:
            console.print(f"Last digest: {report.last_digest}")
    if not result.containers:
        console.print(Text("Containers not verified (no --globalconf given)", style="yellow"))
    for container in result.containers:
        console.print()
        _print_container(console, container, f"Container {container.name}")


def _run(
    paths: list[Path],
    globalconf: Path | None,
    at_text: str | None,
    as_json: bool,
    previous: Path | None,
    first: bool,
) -> int:
    if first and previous is not None:
        raise _CannotRun("--first and --previous exclude each other")
    at = _parse_at(at_text)
    trust = _Trust(globalconf)
    blobs = [(p, _read(p)) for p in paths]
    archives = [_is_archive(data) for _, data in blobs]
    console = Console(highlight=False, soft_wrap=False)
    if any(archives):
        if not all(archives):
            raise _CannotRun("Give either one ASiC container or log archives, not both")
        prev_digest: str | None = "" if first else None
        prev_name: str | None = None
        if previous is not None:
            link = verify_archive_files([(previous.name, _read(previous))])
            if link.last_digest is None:
                raise _CannotRun(f"Cannot read the previous archive {previous}: {link.detail}")
            prev_digest, prev_name = link.last_digest, previous.name
        policy = trust.policy() if globalconf is not None else None
        result = verify_archive_files(
            [(p.name, data) for p, data in blobs],
            policy,
            at=at,
            previous_digest=prev_digest,
            previous_name=prev_name,
        )
        if as_json:
            _emit_json(result.to_json())
        else:
            _print_archive(console, result)
        return EXIT_VALID if result.valid else EXIT_INVALID
    if len(blobs) != 1:
        raise _CannotRun("Verify one ASiC container at a time")
    path, data = blobs[0]
    report = verify_container(data, trust.policy(_signer_instance(data)), at, name=path.name)
    if as_json:
        _emit_json(report.to_json())
    else:
        _print_container(console, report, f"ASiC container {path.name}")
    return EXIT_VALID if report.valid else EXIT_INVALID


def _emit_json(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload, sort_keys=False) + "\n")


def register(app: typer.Typer) -> None:
    @app.command("verify")
    def verify(
        paths: list[Path] = typer.Argument(
            ..., help="An ASiC-E container (.asice) or one or more consecutive log archives."
        ),
        globalconf: Path | None = typer.Option(
            None,
            "--globalconf",
            help="Global configuration directory (required for containers).",
        ),
        at: str | None = typer.Option(
            None,
            "--at",
            help="Verify at this ISO-8601 time instead of the time-stamp's (UTC if no zone).",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
        previous: Path | None = typer.Option(
            None, "--previous", help="The archive before the first one given (checks the link)."
        ),
        first: bool = typer.Option(
            False, "--first", "-f", help="The (first) archive given must start a chain."
        ),
    ) -> None:
        """Verify message-log evidence offline: the signer, time-stamp, certificates, chain."""
        try:
            code = _run(paths, globalconf, at, as_json, previous, first)
        except _CannotRun as exc:
            if as_json:
                _emit_json({"valid": False, "code": None, "error": str(exc)})
            else:
                Console(stderr=True).print(Text(f"error: {exc}", style="red"))
            raise typer.Exit(EXIT_ERROR) from exc
        raise typer.Exit(code)
