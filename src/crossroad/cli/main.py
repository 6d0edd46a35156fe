"""The ``crossroad`` command: one entry point, one sub-command module per component."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="crossroad",
    help="X-Road data exchange layer: security server, central server, trust services, evidence.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """X-Road data exchange layer: security server, central server, trust services, evidence."""


# Each module registers its commands on ``app`` (``register(app)``); kept in one list so the
# command tree is visible here.
_COMMAND_MODULES = (
    "crossroad.cli.verify",
    "crossroad.cli.trust",
    "crossroad.cli.demo",
    "crossroad.cli.globalconf",
    "crossroad.cli.central",
    "crossroad.cli.confproxy",
    "crossroad.cli.server",
    "crossroad.cli.signer",
    "crossroad.cli.security_server",
    "crossroad.cli.confclient",
    "crossroad.cli.messagelog",
)

for _name in _COMMAND_MODULES:
    try:
        _module = importlib.import_module(_name)
    except ModuleNotFoundError as _exc:  # a component not built yet
        if _exc.name != _name:
            raise
        continue
    _module.register(app)


@app.command()
def version() -> None:
    """Print the crossroad version and the X-Road version it speaks."""
    from crossroad import XROAD_VERSION, __version__

    typer.echo(f"crossroad {__version__} (X-Road {XROAD_VERSION} protocols)")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
