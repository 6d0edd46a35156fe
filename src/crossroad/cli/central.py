"""``crossroad central ...``: the central server's command line.

Registry commands (members, servers, CAs, TSAs, groups) live in :mod:`.central_registry`;
configuration commands (init, run, signing keys, anchors) in :mod:`.central_conf`.  Both add
their commands to :data:`central_app`.
"""

from __future__ import annotations

import importlib

import typer

central_app = typer.Typer(
    help="Central server: registry, global configuration generation and distribution.",
    no_args_is_help=True,
)

_PARTS = ("crossroad.cli.central_registry", "crossroad.cli.central_conf")


def register(app: typer.Typer) -> None:
    for name in _PARTS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(central_app)
    app.add_typer(central_app, name="central")
