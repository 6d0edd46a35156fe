"""Our TOML settings files: reading, checking and writing them (protocols.md §10.5, §11.1, §12.1).

Every component keeps its settings in a small, flat TOML file in its state directory
(``central.toml``, ``security-server.toml``, ``server.toml``, ``message-log.toml``).  This
module is the one place that reads such a file (with :mod:`tomllib`, failures coded:
``io_error`` when absent or unreadable, ``invalid_configuration`` when malformed or wrong),
refuses unknown keys, checks value types, and writes a file back atomically.  The
configuration proxy's ``confproxy.json`` is JSON, but it is written with the same :func:`write`.

The writer covers only the subset of TOML these files use: top-level keys and ``[section]``
tables of strings, integers, floats, booleans and lists of those (strings in practice).  It
is a few lines, so no TOML-writing dependency is needed.

A *layout* names where each dataclass field lives: ``(section, key, field)`` triples, section
``""`` for top-level keys; its order is the order written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import secrets
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from crossroad.errors import Code, XRoadError

Layout = tuple[tuple[str, str, str], ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")
_INT64 = (-(2**63), 2**63 - 1)
# The escapes TOML defines for basic strings; other control characters become \\uXXXX.
_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


# --- reading ---------------------------------------------------------------------------------


def read(path: Path, *, hint: str = "", required: bool = True) -> dict[str, Any]:
    """The parsed file.  Absent: ``io_error`` naming ``hint`` (what the directory should be and
    which command creates it), or ``{}`` when not ``required``; not TOML or not UTF-8:
    ``invalid_configuration``; unreadable: ``io_error``."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        if not required:
            return {}
        detail = f"{path} not found: {hint}" if hint else f"{path} not found"
        raise XRoadError(Code.IO_ERROR, detail) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise XRoadError(Code.INVALID_CONFIGURATION, f"{path}: {exc}") from None
    except OSError as exc:
        raise XRoadError(Code.IO_ERROR, f"{path}: {exc.strerror or exc}") from None


@contextlib.contextmanager
def located(where: str) -> Iterator[None]:
    """Prefix a configuration failure raised inside with the file it is about.

    Checks deeper down (dataclass validation, value parsers) speak of the setting only; every
    such failure, and the ``ValueError``/``TypeError`` of a parser, leaves as
    ``invalid_configuration: WHERE: detail``."""
    try:
        yield
    except XRoadError as exc:
        raise XRoadError(Code.INVALID_CONFIGURATION, f"{where}: {exc.detail}") from None
    except (TypeError, ValueError) as exc:
        raise XRoadError(Code.INVALID_CONFIGURATION, f"{where}: {exc}") from None


def label(section: str, key: str) -> str:
    """How a setting is named in messages: ``[section] key``, or ``key`` at the top level."""
    return f"[{section}] {key}" if section else key


def refuse_unknown(data: Mapping[str, Any], known: Iterable[tuple[str, str]], where: str) -> None:
    """``invalid_configuration`` naming the file and the first unknown key (``(section, key)``
    pairs, section ``""`` for top-level keys): a misspelt setting is an error, not a no-op."""
    allowed = set(known)
    for name in sorted(data):
        value = data[name]
        if isinstance(value, dict):
            for key in sorted(value):
                if (name, key) not in allowed:
                    raise _invalid(where, f"unknown setting {label(name, key)}")
        elif ("", name) not in allowed:
            raise _invalid(where, f"unknown setting {name}")


def typed(name: str, value: Any, expected: type) -> Any:
    """``value`` if it is exactly of type ``expected`` (a whole number is also a float);
    ``bool`` is not an ``int`` here.  The failure names the setting only: see :func:`located`."""
    if expected is float and type(value) is int:
        return float(value)
    if type(value) is not expected:
        raise XRoadError(Code.INVALID_CONFIGURATION, f"{name} must be of type {expected.__name__}")
    return value


def as_list(name: str, value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise XRoadError(Code.INVALID_CONFIGURATION, f"{name} must be a list")
    return value


def check_int(name: str, value: object, low: int, high: int, noun: str = "a whole number") -> None:
    """``invalid_configuration`` unless ``value`` is an int (not a bool) in ``low..high``."""
    if type(value) is not int or not low <= value <= high:
        raise XRoadError(Code.INVALID_CONFIGURATION, f"{name} must be {noun} {low}..{high}")


def check_text(name: str, value: object) -> None:
    """``invalid_configuration`` unless ``value`` is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise XRoadError(Code.INVALID_CONFIGURATION, f"{name} must be a non-empty string")


def fields_from(data: Mapping[str, Any], layout: Layout, cls: type, where: str) -> dict[str, Any]:
    """Keyword arguments for the dataclass ``cls`` from a file laid out as ``layout``: unknown
    keys refused, each value checked against the type of its field's default."""
    refuse_unknown(data, ((section, key) for section, key, _ in layout), where)
    types = {f.name: type(f.default) for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    with located(where):
        for section, key, name in layout:
            table = data.get(section, {}) if section else data
            if not isinstance(table, dict):
                raise XRoadError(Code.INVALID_CONFIGURATION, f"[{section}] must be a table")
            if key in table:
                kwargs[name] = typed(label(section, key), table[key], types[name])
    return kwargs


# --- writing ---------------------------------------------------------------------------------


def value_text(value: object) -> str:
    """One value in TOML: a basic string, integer (64-bit), float, boolean or a flat array.
    A value TOML cannot hold is ``invalid_configuration``; a type we never write, TypeError."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise XRoadError(Code.INVALID_CONFIGURATION, f"{value} does not fit a TOML integer")
        return str(value)
    if isinstance(value, float):
        return repr(value)  # also nan, inf, -inf: TOML spells them the same
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list | tuple):
        if any(isinstance(item, list | tuple) for item in value):
            raise TypeError("nested arrays are not written")
        return "[" + ", ".join(value_text(item) for item in value) + "]"
    raise TypeError(f"cannot write a {type(value).__name__} to a settings file")


def _string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch < " " or ch == "\x7f":
            out.append(f"\\u{ord(ch):04X}")
        elif "\ud800" <= ch <= "\udfff":
            # A lone surrogate is not a Unicode scalar value: TOML (and UTF-8) cannot hold it.
            raise XRoadError(Code.INVALID_CONFIGURATION, f"{text!r} holds a lone surrogate")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def render(entries: Iterable[tuple[str, str, object]], header: str = "") -> str:
    """The text of a file holding ``(section, key, value)`` entries (``None`` values left out):
    a ``# header`` comment, the top-level keys, then each section in the order first seen."""
    sections: dict[str, list[str]] = {"": []}
    for section, key, value in entries:
        if value is not None:
            sections.setdefault(section, []).append(f"{_key(key)} = {value_text(value)}")
    blocks = ["\n".join(f"# {line}" for line in header.splitlines())] if header else []
    top = sections.pop("")
    if top:
        blocks.append("\n".join(top))
    blocks += ["\n".join([f"[{_key(name)}]", *lines]) for name, lines in sections.items()]
    return "\n\n".join(blocks) + "\n"


def render_layout(layout: Layout, values: Mapping[str, object], header: str = "") -> str:
    """:func:`render` of a dataclass's ``values`` (``dataclasses.asdict``) laid out as
    ``layout``; empty strings and ``None`` are left out, so their defaults apply on reading."""
    return render(
        (
            (section, key, None if values[name] == "" else values[name])
            for section, key, name in layout
        ),
        header,
    )


def write(path: Path, text: str, *, private: bool = False) -> Path:
    """Write ``text`` to ``path`` atomically: a reader sees the old file or the new one, never
    a part.  ``private`` files (those that may hold a secret, e.g. a database URL with its
    password) are created with mode 0600.  Failures are ``io_error``."""
    path = Path(path)
    # A unique temporary name in the same directory: two writers never share a temporary
    # file, and os.replace stays a rename within one file system.
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    data = text.encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise XRoadError(Code.IO_ERROR, f"{path}: {exc.strerror or exc}") from None
    return path


def _invalid(where: str, detail: str) -> XRoadError:
    return XRoadError(Code.INVALID_CONFIGURATION, f"{where}: {detail}")
