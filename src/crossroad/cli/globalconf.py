"""``crossroad globalconf ...``: verify a downloaded signed directory, show a configuration
directory (a shell over :mod:`crossroad.globalconf.signed` and :mod:`.snapshot`; protocols.md
§5.1–5.5).

``verify FILE`` checks a signed directory (``internalconf``, ``externalconf``, a proxy's
``conf``) with the verification certificates of a configuration anchor (``--anchor``), of PEM/DER
files (``--cert``) or of a shared-parameters ``source`` list (``--shared-params``; V3+
directories are also signed by the keys listed there).  Exit status: 0 valid, 1 invalid, 2 could
not run.  ``--json`` prints exactly one object: ``valid``, ``code``, ``expires``, ``version``,
``parts``.

``show DIR`` prints the instances, members, subsystems, security servers, approved CAs and TSAs
of an on-disk configuration directory; ``--json`` prints the same as one object.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import typer
from cryptography import x509
from rich.console import Console
from rich.table import Table
from rich.text import Text

from crossroad.clock import SYSTEM
from crossroad.crypto.certs import java_rfc2253, load_certificates
from crossroad.errors import XRoadError
from crossroad.globalconf.model import SharedParameters
from crossroad.globalconf.privateparams import parse_anchor
from crossroad.globalconf.sharedparams import parse_shared_parameters
from crossroad.globalconf.signed import SignedDirectory

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_ERROR = 2

globalconf_app = typer.Typer(
    help="Global configuration: verify signed directories, show configuration directories.",
    no_args_is_help=True,
)


class _CannotRun(Exception):
    """A problem with the invocation or its inputs, not with the directory (exit status 2)."""


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _CannotRun(f"Cannot read {path}: {exc.strerror or exc}") from exc


def _parse_at(value: str | None) -> dt.datetime:
    if value is None:
        return SYSTEM.now()
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise _CannotRun(f"--at: not an ISO-8601 date-time: {value!r}") from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def _emit(payload: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")


# --- verify ------------------------------------------------------------------------------------


def _verification_certs(
    anchors: list[Path], certs: list[Path], shared: list[Path]
) -> list[x509.Certificate | bytes]:
    found: list[x509.Certificate | bytes] = []
    for path in anchors:
        try:
            anchor = parse_anchor(_read(path))
        except XRoadError as exc:
            raise _CannotRun(f"Cannot read the anchor {path}: {exc}") from exc
        found += [c for s in anchor.sources for c in s.verification_certs]
    for path in certs:
        try:
            found += load_certificates(_read(path))
        except XRoadError as exc:
            raise _CannotRun(f"Cannot read the certificate {path}: {exc}") from exc
    for path in shared:
        try:
            params = parse_shared_parameters(_read(path))
        except XRoadError as exc:
            raise _CannotRun(f"Cannot read the shared parameters {path}: {exc}") from exc
        for source in params.sources:
            found += [*source.internal_verification_certs, *source.external_verification_certs]
    if not anchors and not certs and not shared:
        raise _CannotRun("Give --anchor, --cert or --shared-params for the verification certs")
    return found


def _describe(directory: SignedDirectory | None) -> tuple[str | None, int | None, list[Any]]:
    """Expiry, version and parts as far as the directory can tell (nothing if unreadable)."""
    if directory is None:
        return None, None, []
    try:
        expires, version = directory.expires, directory.version
    except XRoadError:
        return None, None, []
    try:
        parts = [
            {
                "content_identifier": p.content_identifier,
                "instance": p.instance,
                "location": p.location,
                "hash": base64.b64encode(p.hash).decode("ascii"),
                "hash_algorithm": p.hash_algorithm.uri,
            }
            for p in directory.parts
        ]
    except XRoadError:
        parts = []
    return _iso(expires), version, parts


def _verify(
    path: Path,
    anchors: list[Path],
    certs: list[Path],
    shared: list[Path],
    at_text: str | None,
    as_json: bool,
) -> int:
    at = _parse_at(at_text)
    data = _read(path)
    candidates = _verification_certs(anchors, certs, shared)
    directory: SignedDirectory | None = None
    signer: x509.Certificate | None = None
    error: XRoadError | None = None
    try:
        directory = SignedDirectory.parse(data)
        signer = directory.verify(candidates, at)
    except XRoadError as exc:
        error = exc
    expires, version, parts = _describe(directory)
    if as_json:
        _emit(
            {
                "valid": error is None,
                "code": error.code if error else None,
                "detail": error.detail if error else None,
                "expires": expires,
                "version": version,
                "verified_at": _iso(at),
                "signer": java_rfc2253(signer.subject) if signer else None,
                "parts": parts,
            }
        )
    else:
        _print_verification(path, error, expires, version, signer, parts, at)
    return EXIT_VALID if error is None else EXIT_INVALID


def _print_verification(
    path: Path,
    error: XRoadError | None,
    expires: str | None,
    version: int | None,
    signer: x509.Certificate | None,
    parts: list[Any],
    at: dt.datetime,
) -> None:
    console = Console(highlight=False, soft_wrap=False)
    console.print(Text(f"Signed configuration directory {path.name}", style="bold"))
    if error is None:
        console.print(Text("Result: ") + Text("VALID", style="bold green"))
    else:
        console.print(Text("Result: ") + Text(f"INVALID ({error.code})", style="bold red"))
        console.print(f"Reason: {error.detail}")
    facts = Table(show_header=False, box=None, pad_edge=False)
    facts.add_row("Verified at", _iso(at) or "")
    facts.add_row("Expires", expires or "unknown")
    facts.add_row("Version", str(version) if version is not None else "2 (no Version header)")
    if signer is not None:
        facts.add_row("Signed by", java_rfc2253(signer.subject))
    console.print(facts)
    if parts:
        table = Table(title="Parts", title_justify="left")
        for column in ("Content identifier", "Instance", "Location", "Hash"):
            table.add_column(column, overflow="fold")
        for p in parts:
            table.add_row(p["content_identifier"], p["instance"] or "", p["location"], p["hash"])
        console.print(table)


# --- show --------------------------------------------------------------------------------------


def _cert_subject(data: bytes) -> str:
    try:
        return java_rfc2253(load_certificates(data)[0].subject)
    except (XRoadError, IndexError):
        return "(unreadable certificate)"


def _instance_json(name: str, params: SharedParameters, directory: Any) -> dict[str, Any]:
    inst = params.instance_identifier
    return {
        "instance": name,
        "instance_identifier": inst,
        "version": directory.shared_version(name),
        "expires": _iso(directory.expires_at(name)),
        "members": [
            {
                "id": str(m.client_id(inst)),
                "member_class": m.member_class.code,
                "member_code": m.member_code,
                "name": m.name,
            }
            for m in params.members
        ],
        "subsystems": [
            {
                "id": str(m.client_id(inst).subsystem(s.subsystem_code)),
                "member_name": m.name,
                "subsystem_code": s.subsystem_code,
                "name": s.subsystem_name,
            }
            for m in params.members
            for s in m.subsystems
        ],
        "security_servers": [
            {
                "id": str(s.id),
                "owner": str(s.owner),
                "server_code": s.server_code,
                "address": s.address,
                "clients": [str(c) for c in s.clients],
                "maintenance": s.maintenance is not None,
            }
            for s in params.security_servers
        ],
        "approved_cas": [
            {
                "name": ca.name,
                "subject": _cert_subject(ca.top_ca.cert),
                "certificate_profile": ca.certificate_profile_info,
                "authentication_only": bool(ca.authentication_only),
                "intermediates": [_cert_subject(i.cert) for i in ca.intermediate_cas],
                "ocsp": [o.url for info in ca.ca_infos() for o in info.ocsp],
            }
            for ca in params.approved_cas
        ],
        "approved_tsas": [
            {
                "name": t.name,
                "url": t.url,
                "subject": _cert_subject(t.cert),
                "cost_type": t.cost_type.value if t.cost_type else None,
            }
            for t in params.approved_tsas
        ],
    }


def _table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def _print_instance(console: Console, info: dict[str, Any]) -> None:
    console.print()
    console.print(
        Text(f"Instance {info['instance']}", style="bold")
        + Text(f"  (version {info['version']}, expires {info['expires'] or 'unknown'})")
    )
    name = info["instance"]
    console.print(
        _table(
            f"{name}: members",
            ("Member", "Name"),
            [(m["id"], m["name"]) for m in info["members"]],
        )
    )
    console.print(
        _table(
            f"{name}: subsystems",
            ("Subsystem", "Name", "Member name"),
            [(s["id"], s["name"] or "", s["member_name"]) for s in info["subsystems"]],
        )
    )
    console.print(
        _table(
            f"{name}: security servers",
            ("Server", "Address", "Clients", "Maintenance"),
            [
                (
                    s["id"],
                    s["address"] or "",
                    str(len(s["clients"])),
                    "yes" if s["maintenance"] else "",
                )
                for s in info["security_servers"]
            ],
        )
    )
    console.print(
        _table(
            f"{name}: approved CAs",
            ("Name", "Subject", "Profile", "OCSP"),
            [
                (c["name"], c["subject"], c["certificate_profile"], ", ".join(c["ocsp"]))
                for c in info["approved_cas"]
            ],
        )
    )
    console.print(
        _table(
            f"{name}: approved TSAs",
            ("Name", "URL", "Subject"),
            [(t["name"], t["url"], t["subject"]) for t in info["approved_tsas"]],
        )
    )


def _show(path: Path, as_json: bool) -> int:
    from crossroad.globalconf.directory import load_directory

    try:
        directory = load_directory(path)
    except XRoadError as exc:
        raise _CannotRun(f"Cannot load {path}: {exc}") from exc
    except OSError as exc:
        raise _CannotRun(f"Cannot load {path}: {exc.strerror or exc}") from exc
    names = sorted(directory.instances(), key=lambda n: (n != directory.instance, n))
    instances = []
    for name in names:
        params = directory.shared(name)
        if params is not None:
            instances.append(_instance_json(name, params, directory))
    private = directory.private()
    payload = {
        "instance": directory.instance,
        "instances": instances,
        "management_service": (
            private.management_service.auth_cert_reg_service_address if private else None
        ),
        "problems": [{"path": str(p.path), "code": p.error.code} for p in directory.problems],
    }
    if as_json:
        _emit(payload)
        return EXIT_VALID
    console = Console(highlight=False, soft_wrap=False)
    console.print(Text(f"Global configuration {path}", style="bold"))
    console.print(f"Own instance: {directory.instance}")
    console.print(f"Instances: {', '.join(i['instance'] for i in instances) or 'none'}")
    for info in instances:
        _print_instance(console, info)
    for problem in directory.problems:
        console.print(Text(f"Skipped {problem.path}: {problem.error}", style="yellow"))
    return EXIT_VALID


def _fail(exc: _CannotRun, as_json: bool) -> typer.Exit:
    if as_json:
        _emit({"valid": False, "code": None, "error": str(exc)})
    else:
        Console(stderr=True).print(Text(f"error: {exc}", style="red"))
    return typer.Exit(EXIT_ERROR)


@globalconf_app.command("verify")
def verify(
    path: Path = typer.Argument(..., help="A downloaded signed directory (internalconf, ...)."),
    anchor: list[Path] = typer.Option([], "--anchor", help="Configuration anchor (XML)."),
    cert: list[Path] = typer.Option([], "--cert", help="Verification certificate (PEM/DER)."),
    shared_params: list[Path] = typer.Option(
        [], "--shared-params", help="shared-params.xml whose <source> certs may verify (V3+)."
    ),
    at: str | None = typer.Option(
        None, "--at", help="Verify at this ISO-8601 time instead of now (UTC if no zone)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Verify a signed configuration directory: signature, signer, expiry, entries."""
    try:
        code = _verify(path, anchor, cert, shared_params, at, as_json)
    except _CannotRun as exc:
        raise _fail(exc, as_json) from exc
    raise typer.Exit(code)


@globalconf_app.command("show")
def show(
    path: Path = typer.Argument(..., help="A global configuration directory on disk."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show the instances, members, subsystems, security servers, CAs and TSAs of a directory."""
    try:
        code = _show(path, as_json)
    except _CannotRun as exc:
        raise _fail(exc, as_json) from exc
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.add_typer(globalconf_app, name="globalconf")
