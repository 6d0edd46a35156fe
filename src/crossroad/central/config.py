"""The central server's state directory and its settings file ``central.toml`` (protocols.md §11.1).

A state directory holds ``central.toml``, the database (``central.db`` unless ``database_url``
points elsewhere), ``keys/`` and ``public/`` (see docs/architecture.md).  :class:`CentralConfig`
is the frozen view of ``central.toml``; :meth:`CentralConfig.save` writes it back (reading and
writing the file is :mod:`crossroad.settingsfile`'s).

The registry's own system parameters (instance identifier, central server address, intervals)
live in the database, where the management API changes them; ``central.toml`` holds what a
process needs before it can open the database, plus the values ``central init`` starts from.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossroad import settingsfile
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
            settingsfile.check_text(name, getattr(self, name))

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
        data = settingsfile.read(
            path,
            hint="not a central server state directory (create one with 'crossroad central init')",
        )
        return cls.from_mapping(state, data, where=str(path))

    @classmethod
    def from_mapping(
        cls, state_dir: Path, data: dict[str, Any], where: str = FILE_NAME
    ) -> CentralConfig:
        kwargs = settingsfile.fields_from(data, _LAYOUT, cls, where)
        database_url = kwargs.get("database_url", "")
        if database_url.startswith("sqlite:///") and not database_url.startswith("sqlite:////"):
            # A relative SQLite path is relative to the state directory, not to the caller.
            relative = database_url.removeprefix("sqlite:///")
            if relative and relative != ":memory:":
                kwargs["database_url"] = f"sqlite:///{(state_dir / relative).resolve()}"
        with settingsfile.located(where):
            return cls(state_dir=state_dir, **kwargs)

    def to_toml(self) -> str:
        values = dataclasses.asdict(self)
        if self.database_url == database_url_for(self.state_dir):
            values["database_url"] = None  # the default: keep the directory relocatable
        return settingsfile.render_layout(_LAYOUT, values, "crossroad central server settings")

    def save(self) -> Path:
        """Write ``central.toml`` atomically, mode 0600 (``database_url`` may hold a password)."""
        return settingsfile.write(self.path, self.to_toml(), private=True)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    settingsfile.check_int(name, value, low, high, noun="an integer")
