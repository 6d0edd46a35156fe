"""The central server's state directory and its settings file ``central.toml`` (protocols.md §11.1).

A state directory holds ``central.toml``, the database (``central.db`` unless ``database_url``
points elsewhere), ``keys/`` and ``public/`` (see docs/architecture.md).  :class:`CentralConfig`
is the frozen view of ``central.toml``; :meth:`CentralConfig.save` writes it back (the file is
small and flat, so it is written here rather than with a TOML library).

The registry's own system parameters (instance identifier, central server address, intervals)
live in the database, where the management API changes them; ``central.toml`` holds what a
process needs before it can open the database, plus the values ``central init`` starts from.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossroad.errors import Code, XRoadError
from crossroad.storage.engine import database_url_for

FILE_NAME = "central.toml"
DEFAULT_PASSPHRASE_ENV = "CROSSROAD_CENTRAL_PASSPHRASE"  # noqa: S105 - a variable name

# (section, key in the file, field name); the order is the order written.
_LAYOUT: tuple[tuple[str, str, str], ...] = (
    ("", "instance_identifier", "instance_identifier"),
    ("", "central_server_address", "central_server_address"),
    ("", "database_url", "database_url"),
    ("distribution", "host", "distribution_host"),
    ("distribution", "port", "distribution_port"),
    ("api", "host", "api_host"),
    ("api", "port", "api_port"),
    ("generation", "interval_seconds", "generation_interval_seconds"),
    ("generation", "conf_expire_interval_seconds", "conf_expire_interval_seconds"),
    ("keys", "passphrase_env", "key_passphrase_env"),
)


@dataclass(frozen=True)
class CentralConfig:
    """Settings of one central server.  ``database_url`` defaults to ``STATE/central.db``."""

    state_dir: Path
    instance_identifier: str = ""
    central_server_address: str = ""
    database_url: str = ""
    distribution_host: str = "127.0.0.1"
    distribution_port: int = 8080
    api_host: str = "127.0.0.1"
    api_port: int = 4000
    generation_interval_seconds: int = 60
    conf_expire_interval_seconds: int = 600
    key_passphrase_env: str = DEFAULT_PASSPHRASE_ENV

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(self.state_dir))
        if not self.database_url:
            object.__setattr__(self, "database_url", database_url_for(self.state_dir))
        for name in ("distribution_port", "api_port"):
            _check_int(name, getattr(self, name), 0, 65535)
        _check_int("generation_interval_seconds", self.generation_interval_seconds, 1, 86400)
        _check_int("conf_expire_interval_seconds", self.conf_expire_interval_seconds, 1, 10**7)
        for name in ("distribution_host", "api_host", "key_passphrase_env"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise XRoadError(Code.INVALID_CONFIGURATION, f"{name} must be a non-empty string")

    @property
    def path(self) -> Path:
        return self.state_dir / FILE_NAME

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    @property
    def public_dir(self) -> Path:
        return self.state_dir / "public"

    def key_passphrase(self) -> bytes | None:
        """The signing keys' passphrase from the environment variable ``key_passphrase_env``."""
        value = os.environ.get(self.key_passphrase_env)
        return value.encode("utf-8") if value else None

    def replace(self, **changes: Any) -> CentralConfig:
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(cls, state_dir: str | Path) -> CentralConfig:
        """Read ``STATE/central.toml``; ``io_error`` if absent, ``invalid_configuration`` if bad."""
        state = Path(state_dir)
        path = state / FILE_NAME
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise XRoadError(
                Code.IO_ERROR,
                f"{path} not found: not a central server state directory "
                "(create one with 'crossroad central init')",
            ) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise XRoadError(Code.INVALID_CONFIGURATION, f"{path}: {exc}") from None
        except OSError as exc:
            raise XRoadError(Code.IO_ERROR, f"{path}: {exc.strerror or exc}") from None
        return cls.from_mapping(state, data, where=str(path))

    @classmethod
    def from_mapping(
        cls, state_dir: Path, data: dict[str, Any], where: str = FILE_NAME
    ) -> CentralConfig:
        known = {(section, key) for section, key, _ in _LAYOUT}
        for section, value in data.items():
            if isinstance(value, dict):
                for key in value:
                    if (section, key) not in known:
                        raise _bad(where, f"unknown setting [{section}] {key}")
            elif ("", section) not in known:
                raise _bad(where, f"unknown setting {section}")
        kwargs: dict[str, Any] = {}
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        for section, key, name in _LAYOUT:
            table = data.get(section, {}) if section else data
            if not isinstance(table, dict):
                raise _bad(where, f"[{section}] must be a table")
            if key not in table:
                continue
            value = table[key]
            if type(value) is not type(defaults[name]):
                label = f"[{section}] {key}" if section else key
                expected = type(defaults[name]).__name__
                raise _bad(where, f"{label} must be of type {expected}")
            kwargs[name] = value
        database_url = kwargs.get("database_url", "")
        if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:////"):
            # A relative SQLite path is relative to the state directory, not to the caller.
            relative = database_url.removeprefix("sqlite:///")
            if relative and relative != ":memory:":
                kwargs["database_url"] = f"sqlite:///{(state_dir / relative).resolve()}"
        try:
            return cls(state_dir=state_dir, **kwargs)
        except XRoadError as exc:
            raise _bad(where, exc.detail) from None

    def to_toml(self) -> str:
        values = dataclasses.asdict(self)
        if self.database_url == database_url_for(self.state_dir):
            values["database_url"] = None  # the default: keep the directory relocatable
        lines = ["# crossroad central server settings", ""]
        current = ""
        for section, key, name in _LAYOUT:
            value = values[name]
            if value is None or value == "":
                continue
            if section != current:
                lines += ["", f"[{section}]"]
                current = section
            lines.append(f"{key} = {_toml_value(value)}")
        return "\n".join(lines) + "\n"

    def save(self) -> Path:
        """Write ``central.toml`` atomically (a temporary file renamed over the old one)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".toml.tmp")
        tmp.write_text(self.to_toml(), encoding="utf-8")
        os.replace(tmp, self.path)
        return self.path


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise XRoadError(Code.INVALID_CONFIGURATION, f"{name} must be an integer {low}..{high}")


def _bad(where: str, detail: str) -> XRoadError:
    return XRoadError(Code.INVALID_CONFIGURATION, f"{where}: {detail}")


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return _toml_string(str(value))


def _toml_string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
