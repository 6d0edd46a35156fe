"""``crossroad confproxy ...``: the configuration proxy (protocols.md §11.2).

``init DIR --name PROXY1 --address HOST:PORT`` creates a proxy directory with one active signing
key; ``add-source DIR --anchor FILE`` mirrors the source of an anchor (served as
``/<NAME>/conf``, NAME defaulting to the anchor's instance); ``keys add|activate|list|delete DIR``
manage signing keys (rotation: add, let clients fetch the new ``source`` once, activate);
``anchor DIR --out FILE`` exports the anchor clients use to download through the proxy;
``run DIR`` serves and mirrors until SIGTERM/SIGINT, ``run DIR --once`` mirrors once.  The keys'
passphrase, if any, comes from ``$CROSSROAD_CONFPROXY_PASSPHRASE``.  Errors print
``error: <code>: <detail>`` and exit with status 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import typer

from crossroad.cli.failure import errors as _errors

confproxy_app = typer.Typer(
    help="Configuration proxy: mirror, re-sign and serve global configuration.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Signing keys of the proxy (rotation: add, activate, delete).")
confproxy_app.add_typer(keys_app, name="keys")

_DIR = typer.Argument(..., help="Configuration proxy directory.")


@confproxy_app.command("init")
def init(
    directory: Path = _DIR,
    name: str = typer.Option(..., "--name", help="Proxy name (e.g. PROXY1)."),
    address: str = typer.Option(..., "--address", help="HOST:PORT to listen on and publish."),
    public_address: str | None = typer.Option(
        None, "--public-address", help="HOST[:PORT] clients use, when not --address."
    ),
    validity: int = typer.Option(600, "--validity", help="Validity of re-signed directories, s."),
    interval: float = typer.Option(60.0, "--interval", help="Seconds between mirror cycles."),
    key_type: str = typer.Option("rsa2048", "--key-type", help="rsa2048|3072|4096, ec-p256|384."),
) -> None:
    """Create a proxy directory with one active signing key."""
    from crossroad.confproxy.config import init_proxy, passphrase_from_env

    with _errors():
        config = init_proxy(
            directory,
            name,
            address,
            public_address=public_address,
            validity_interval_seconds=validity,
            update_interval_seconds=interval,
            key_type=key_type,
            passphrase=passphrase_from_env(),
        )
    typer.echo(f"configuration proxy {config.name} initialised in {directory}")
    typer.echo(f"active signing key: {config.active_key}")


@confproxy_app.command("add-source")
def add_source(
    directory: Path = _DIR,
    anchor: Path = typer.Option(..., "--anchor", help="Anchor of the source to mirror."),
    name: str | None = typer.Option(
        None, "--name", help="Served as /NAME/conf (default: instance)."
    ),
    allowed_federations: str = typer.Option(
        "none", "--allowed-federations", help="Partner instances to mirror: none, all or a list."
    ),
) -> None:
    """Mirror the source named by an anchor."""
    from crossroad.confproxy import config as cp

    with _errors():
        updated = cp.add_source(
            cp.ProxyConfig.load(directory),
            anchor.read_bytes(),
            name,
            tuple(a.strip() for a in allowed_federations.split(",") if a.strip()),
        )
    source = updated.sources[-1]
    typer.echo(
        f"source {source.name} (instance {source.instance}): {updated.download_url(source.name)}"
    )


@keys_app.command("add")
def keys_add(
    directory: Path = _DIR,
    key_type: str = typer.Option("rsa2048", "--key-type", help="rsa2048|3072|4096, ec-p256|384."),
    activate: bool = typer.Option(False, "--activate", help="Sign with it right away."),
) -> None:
    """Add a signing key (inactive unless --activate): clients learn it from the next cycle."""
    from crossroad.confproxy import config as cp

    with _errors():
        updated, record = cp.add_key(
            cp.ProxyConfig.load(directory), key_type, cp.passphrase_from_env(), activate=activate
        )
    state = "active" if updated.active_key == record.key_id else "inactive"
    typer.echo(f"{record.key_id} ({state})")


@keys_app.command("activate")
def keys_activate(
    directory: Path = _DIR, key_id: str = typer.Argument(..., help="Key id.")
) -> None:
    """Sign with another key from the next cycle."""
    from crossroad.confproxy import config as cp

    with _errors():
        updated = cp.activate_key(cp.ProxyConfig.load(directory), key_id)
    typer.echo(f"active signing key: {updated.active_key}")


@keys_app.command("delete")
def keys_delete(directory: Path = _DIR, key_id: str = typer.Argument(..., help="Key id.")) -> None:
    """Delete an inactive key."""
    from crossroad.confproxy import config as cp

    with _errors():
        cp.delete_key(cp.ProxyConfig.load(directory), key_id)
    typer.echo(f"deleted {key_id.upper()}")


@keys_app.command("list")
def keys_list(
    directory: Path = _DIR,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List the signing keys."""
    from crossroad.confproxy.config import ProxyConfig

    with _errors():
        config = ProxyConfig.load(directory)
    rows = [
        {
            "key_id": k.key_id,
            "key_type": k.key_type,
            "created": k.created,
            "active": k.key_id == config.active_key,
        }
        for k in config.keys
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        typer.echo(f"{row['key_id']}  {row['key_type']}  {'active' if row['active'] else ''}")


@confproxy_app.command("anchor")
def anchor(
    directory: Path = _DIR,
    out: Path | None = typer.Option(None, "--out", help="File to write (default: stdout)."),
    source: str | None = typer.Option(None, "--source", help="Source name (if several)."),
) -> None:
    """Export the anchor clients use to download through this proxy."""
    from crossroad.confproxy.config import ProxyConfig, proxy_anchor
    from crossroad.globalconf.privateparams import anchor_hash

    with _errors():
        data = proxy_anchor(ProxyConfig.load(directory), source)
        if out is None:
            typer.echo(data.decode("utf-8"), nl=False)
            return
        out.write_bytes(data)
    typer.echo(f"anchor written to {out}")
    typer.echo(f"hash: {anchor_hash(data)}")


@confproxy_app.command("run")
def run(
    directory: Path = _DIR,
    once: bool = typer.Option(False, "--once", help="Mirror once and exit (no serving)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every cycle."),
) -> None:
    """Serve and mirror every interval until SIGTERM/SIGINT."""
    from crossroad.confproxy.config import ProxyConfig, passphrase_from_env
    from crossroad.confproxy.mirror import SourceOutcome
    from crossroad.confproxy.server import run_proxy

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def ready(url: str) -> None:
        typer.echo(f"configuration proxy serving {url}")

    def cycle(outcomes: tuple[SourceOutcome, ...]) -> None:
        for o in outcomes:
            done = " ".join(f"V{v.version}" for v in o.versions if v.ok) or "nothing"
            failed = [v for v in o.versions if not v.ok]
            detail = f"; failed: {failed[0].error}" if failed and not o.ok else ""
            typer.echo(
                f"{o.source}: published {done}{detail}"
                if not o.error
                else f"{o.source}: error: {o.error}"
            )

    with _errors():
        ProxyConfig.load(directory)
        code = asyncio.run(
            run_proxy(
                directory,
                once=once,
                passphrase=passphrase_from_env(),
                on_ready=ready,
                on_cycle=cycle if once or verbose else None,
            )
        )
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.add_typer(confproxy_app, name="confproxy")
