"""How every ``crossroad`` command fails: one line ``error: CODE: detail`` on stderr, exit 1.

Expected failures (an :class:`~crossroad.errors.XRoadError`, an OS error) never show a
traceback; anything else is a bug and does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

from crossroad.errors import Code, XRoadError


def fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@contextmanager
def errors() -> Iterator[None]:
    """Turn expected failures into one line on stderr and exit status 1."""
    try:
        yield
    except XRoadError as err:
        raise fail(f"{err.code}: {err.detail}") from None
    except OSError as err:
        raise fail(f"{Code.IO_ERROR}: {err.strerror or err}: {err.filename or ''}") from None
