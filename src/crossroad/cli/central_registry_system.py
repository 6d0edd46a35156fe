"""``crossroad central ...`` registry commands, second part: approved CAs and TSAs, the
management service, system parameters, optional parts, trusted anchors, API keys and the change
history (protocols.md §5.4–5.7, §11.1).  Conventions as in :mod:`.central_registry`, which adds
these commands to ``crossroad central``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from crossroad.central.registry import Role
from crossroad.cli.central_registry import (
    _DIR,
    _JSON,
    _print_json,
    _read,
    _registry,
    parse_client,
)
from crossroad.cli.failure import fail as _fail
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import AcmeServer

ca_app = typer.Typer(help="Approved certification services (CAs).", no_args_is_help=True)
tsa_app = typer.Typer(help="Approved time-stamping services (TSAs).", no_args_is_help=True)
management_app = typer.Typer(help="The management service provider.", no_args_is_help=True)
parameter_app = typer.Typer(help="System parameters.", no_args_is_help=True)
part_app = typer.Typer(help="Optional configuration parts.", no_args_is_help=True)
anchor_app = typer.Typer(help="Trusted anchors of federation partners.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys of the management API.", no_args_is_help=True)


# --- approved CAs and TSAs -----------------------------------------------------------------------


@ca_app.command("add")
def ca_add(
    cert_file: Path,
    profile: str = typer.Option(..., "--profile", help="Certificate profile info (Java class)."),
    name: str | None = typer.Option(None, "--name", help="Default: the certificate's CN."),
    intermediate: list[Path] = typer.Option([], "--intermediate", help="Intermediate CA cert."),
    ocsp_url: str | None = typer.Option(None, "--ocsp-url", help="OCSP responder of the CA."),
    ocsp_cert: Path | None = typer.Option(None, "--ocsp-cert", help="OCSP responder certificate."),
    ocsp_cost_type: str = typer.Option(
        "UNDEFINED", "--ocsp-cost-type", help="FREE, PAID, UNDEFINED."
    ),
    authentication_only: bool = typer.Option(False, "--authentication-only"),
    csr_format: str | None = typer.Option(None, "--csr-format", help="PEM or DER."),
    acme_url: str | None = typer.Option(None, "--acme-url", help="ACME directory URL."),
    acme_ip: str | None = typer.Option(None, "--acme-ip"),
    acme_auth_profile: str | None = typer.Option(None, "--acme-auth-profile"),
    acme_sign_profile: str | None = typer.Option(None, "--acme-sign-profile"),
    state_dir: Path = _DIR,
) -> None:
    """Approve a CA from its certificate file; prints its id."""
    with _registry(state_dir) as reg:
        ocsp = []
        if ocsp_url:
            ocsp.append((ocsp_url, _read(ocsp_cert) if ocsp_cert else None, ocsp_cost_type))
        elif ocsp_cert:
            raise XRoadError(Code.INVALID_REQUEST, "--ocsp-cert needs --ocsp-url")
        acme = None
        if acme_url:
            acme = AcmeServer(acme_url, acme_ip, acme_auth_profile, acme_sign_profile)
        record = reg.add_approved_ca(
            _read(cert_file),
            profile,
            name=name,
            authentication_only=authentication_only,
            default_csr_format=csr_format,
            acme_server=acme,
            intermediates=[_read(p) for p in intermediate],
            ocsp=ocsp,
        )
    typer.echo(f"{record.id}\t{record.name}")


@ca_app.command("ocsp-add")
def ca_ocsp_add(
    ca_id: int,
    url: str,
    cert: Path | None = typer.Option(None, "--cert", help="OCSP responder certificate."),
    cost_type: str = typer.Option("UNDEFINED", "--cost-type", help="FREE, PAID, UNDEFINED."),
    intermediate_id: int | None = typer.Option(None, "--intermediate", help="Intermediate CA id."),
    state_dir: Path = _DIR,
) -> None:
    """Add an OCSP responder to an approved CA (or one of its intermediates)."""
    with _registry(state_dir) as reg:
        record = reg.add_ocsp_responder(
            ca_id, url, _read(cert) if cert else None, cost_type, intermediate_id=intermediate_id
        )
    typer.echo(str(record.id))


@ca_app.command("delete")
def ca_delete(ca_id: int, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        reg.delete_approved_ca(ca_id)


@ca_app.command("list")
def ca_list(state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    with _registry(state_dir) as reg:
        cas = reg.approved_cas()
    if as_json:
        _print_json(
            [
                {
                    "id": ca.id,
                    "name": ca.name,
                    "certificate_profile_info": ca.certificate_profile_info,
                    "authentication_only": ca.authentication_only,
                    "default_csr_format": ca.default_csr_format,
                    "intermediates": [i.id for i in ca.intermediates],
                    "ocsp": [
                        {"id": o.id, "url": o.url, "cost_type": o.cost_type}
                        for info in (ca.top, *ca.intermediates)
                        for o in info.ocsp
                    ],
                }
                for ca in cas
            ]
        )
        return
    for ca in cas:
        typer.echo(f"{ca.id}\t{ca.name}\t{ca.certificate_profile_info}")
        for info in (ca.top, *ca.intermediates):
            for o in info.ocsp:
                typer.echo(f"  ocsp {o.id}\t{o.url}\t{o.cost_type or ''}")


@tsa_app.command("add")
def tsa_add(
    url: str,
    cert_file: Path,
    name: str | None = typer.Option(None, "--name", help="Default: the certificate's CN."),
    cost_type: str = typer.Option("UNDEFINED", "--cost-type", help="FREE, PAID, UNDEFINED."),
    state_dir: Path = _DIR,
) -> None:
    """Approve a time-stamping service; prints its id."""
    with _registry(state_dir) as reg:
        record = reg.add_approved_tsa(url, _read(cert_file), name=name, cost_type=cost_type)
    typer.echo(f"{record.id}\t{record.name}")


@tsa_app.command("delete")
def tsa_delete(tsa_id: int, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        reg.delete_approved_tsa(tsa_id)


@tsa_app.command("list")
def tsa_list(state_dir: Path = _DIR, as_json: bool = _JSON) -> None:
    with _registry(state_dir) as reg:
        tsas = reg.approved_tsas()
    if as_json:
        _print_json(
            [{"id": t.id, "name": t.name, "url": t.url, "cost_type": t.cost_type} for t in tsas]
        )
        return
    for t in tsas:
        typer.echo(f"{t.id}\t{t.name}\t{t.url}\t{t.cost_type or ''}")


# --- management service, parameters, parts, anchors ---------------------------------------------


@management_app.command("set")
def management_set(
    provider: str | None = typer.Option(None, "--provider", help="CLASS/CODE[/SUBSYSTEM]."),
    address: str | None = typer.Option(None, "--address", help="authCertReg service URL."),
    cert: Path | None = typer.Option(None, "--cert", help="authCertReg TLS certificate."),
    state_dir: Path = _DIR,
) -> None:
    """Set the management service provider, the authCertReg address or its certificate."""
    with _registry(state_dir) as reg:
        client = parse_client(provider, reg.instance_identifier()) if provider else None
        reg.set_management_service(
            client, auth_cert_reg_url=address, auth_cert_reg_cert=_read(cert) if cert else None
        )


@management_app.command("show")
def management_show(state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        service = reg.management_service()
    typer.echo(f"provider\t{service.management_request_service_provider_id}")
    typer.echo(f"address\t{service.auth_cert_reg_service_address}")
    typer.echo(f"certificate\t{'yes' if service.auth_cert_reg_service_cert else 'no'}")


@parameter_app.command("set")
def parameter_set(key: str, value: str, state_dir: Path = _DIR) -> None:
    """Set a system parameter (e.g. ocspFreshnessSeconds 3600)."""
    with _registry(state_dir) as reg:
        reg.set_parameter(key, value)


@parameter_app.command("reset")
def parameter_reset(key: str, state_dir: Path = _DIR) -> None:
    """Restore a system parameter's default."""
    with _registry(state_dir) as reg:
        reg.set_parameter(key, None)


@parameter_app.command("show")
def parameter_show(
    key: str | None = typer.Argument(None), state_dir: Path = _DIR, as_json: bool = _JSON
) -> None:
    """Show every system parameter, or one."""
    with _registry(state_dir) as reg:
        params = reg.parameters()
    if key is not None:
        if key not in params:
            raise _fail(f"{Code.INVALID_SYSTEM_PARAMETER}: no system parameter {key!r}")
        typer.echo(params[key])
    elif as_json:
        _print_json(params)
    else:
        for k, v in params.items():
            typer.echo(f"{k}\t{v}")


@part_app.command("set")
def part_set(
    content_identifier: str,
    file: Path,
    file_name: str | None = typer.Option(None, "--file-name"),
    state_dir: Path = _DIR,
) -> None:
    """Upload an optional part (MONITORING, FETCHINTERVAL, NEXTUPDATE, or your own)."""
    with _registry(state_dir) as reg:
        reg.set_configuration_part(content_identifier, _read(file), file_name)


@part_app.command("list")
def part_list(state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        for part in reg.configuration_parts():
            typer.echo(f"{part.content_identifier}\t{part.file_name}\t{len(part.data)} bytes")


@part_app.command("delete")
def part_delete(content_identifier: str, state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        reg.delete_configuration_part(content_identifier)


@anchor_app.command("add")
def trusted_anchor_add(file: Path, state_dir: Path = _DIR) -> None:
    """Upload a federation partner's configuration anchor; prints its hash."""
    with _registry(state_dir) as reg:
        record = reg.add_trusted_anchor(_read(file))
    typer.echo(f"{record.instance_identifier}\t{record.hash}")


@anchor_app.command("list")
def trusted_anchor_list(state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        for a in reg.trusted_anchors():
            typer.echo(f"{a.instance_identifier}\t{a.hash}\t{a.generated_at or ''}")


@anchor_app.command("delete")
def trusted_anchor_delete(ref: str, state_dir: Path = _DIR) -> None:
    """Delete a trusted anchor by instance identifier or hash."""
    with _registry(state_dir) as reg:
        reg.delete_trusted_anchor(ref)


# --- API keys and history ------------------------------------------------------------------------


@apikey_app.command("create")
def apikey_create(
    name: str,
    role: list[str] = typer.Option(..., "--role", help=", ".join(r.value for r in Role)),
    state_dir: Path = _DIR,
) -> None:
    """Create an API key; the key is printed once (keep it, only its hash is stored)."""
    with _registry(state_dir) as reg:
        record, secret = reg.create_api_key(name, role)
    typer.echo(secret)
    typer.echo(f"API key {record.id} ({', '.join(sorted(record.roles))}) created", err=True)


@apikey_app.command("list")
def apikey_list(state_dir: Path = _DIR) -> None:
    with _registry(state_dir) as reg:
        for key in reg.api_keys():
            typer.echo(f"{key.id}\t{key.name}\t{','.join(sorted(key.roles))}\t{key.created_at}")


@apikey_app.command("revoke")
def apikey_revoke(key: str, state_dir: Path = _DIR) -> None:
    """Revoke an API key by id or name."""
    with _registry(state_dir) as reg:
        reg.revoke_api_key(int(key) if key.isdigit() else key)


def history(
    limit: int = typer.Option(50, "--limit", min=1),
    table: str | None = typer.Option(None, "--table", help="Only changes of this table."),
    state_dir: Path = _DIR,
    as_json: bool = _JSON,
) -> None:
    """Show the newest registry changes: who, when, what."""
    with _registry(state_dir) as reg:
        entries = reg.history(limit, table=table)
    if as_json:
        _print_json([e.__dict__ for e in entries])
        return
    for e in entries:
        typer.echo(f"{e.at.isoformat()}\t{e.actor}\t{e.operation}\t{e.table_name}\t{e.record_id}")
    sys.stdout.flush()
