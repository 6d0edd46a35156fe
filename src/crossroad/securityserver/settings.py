"""A security server's state directory and its settings file ``security-server.toml``.

One directory holds everything a security server keeps on disk (protocols.md §10.5: keys and
certificates live in the signer, the server configuration in its database, the global
configuration in the directory the configuration client keeps)::

    security-server.toml   these settings (listen addresses and ports, intervals, workers)
    server.toml            database_url, read by ``crossroad server --dir STATE`` as well
    server.db              the server configuration (SQLite, unless database_url says otherwise)
    anchor.xml             the configuration anchor of the own instance
    globalconf/            the global configuration (swapped atomically by the client)
    signer/                the signer's state: key configuration, software token, OCSP cache
    signer.sock            the signer's unix socket (mode 0600)
    tls/internal.key,.crt  the internal TLS key and certificate (IS-facing HTTPS, 8443)
    signer-pin             optional: PINs to log in with at start (TOKEN=PIN lines, 0600)
    run.json               written by ``run`` once ready: addresses and process ids

Ports default to the X-Road ones (protocols.md §0.3): client proxy 8080/8443, server proxy
5500, OCSP download service 5577, management API 4000.  Each listener has its own host so that
several servers can share one machine (the demo binds each to its own loopback address).
Reading and writing the file is :mod:`crossroad.settingsfile`'s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from crossroad import settingsfile
from crossroad.errors import Code, XRoadError

FILE_NAME = "security-server.toml"
SERVERCONF_FILE = "server.toml"  # the serverconf CLI's settings (database_url only)

# (section, key in the file, field name); the order is the order written.
_LAYOUT: tuple[tuple[str, str, str], ...] = (
    ("", "database_url", "database_url"),
    ("client_proxy", "host", "client_host"),
    ("client_proxy", "http_port", "client_http_port"),
    ("client_proxy", "https_port", "client_https_port"),
    ("server_proxy", "host", "server_host"),
    ("server_proxy", "port", "server_port"),
    ("ocsp_service", "host", "ocsp_host"),
    ("ocsp_service", "port", "ocsp_port"),
    ("admin_api", "host", "admin_host"),
    ("admin_api", "port", "admin_port"),
    ("admin_api", "enabled", "admin_enabled"),
    ("proxy", "workers", "workers"),
    ("configuration_client", "interval_seconds", "conf_interval_seconds"),
    ("configuration_client", "first_download_timeout", "conf_first_timeout"),
    ("signer", "socket", "signer_socket"),
    ("signer", "pin_file", "signer_pin_file"),
    ("signer", "ocsp_retry_seconds", "signer_ocsp_retry"),
)

# Unix socket paths are limited to 108 bytes (sun_path); leave room for the terminating NUL.
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class SecurityServerSettings:
    """The settings of one security server (see the module docstring for the layout)."""

    state_dir: Path
    database_url: str = ""
    client_host: str = "0.0.0.0"  # noqa: S104 - information systems reach it from other hosts
    client_http_port: int = 8080
    client_https_port: int = 8443
    server_host: str = "0.0.0.0"  # noqa: S104 - other security servers reach it
    server_port: int = 5500
    ocsp_host: str = "0.0.0.0"  # noqa: S104
    ocsp_port: int = 5577
    admin_host: str = "127.0.0.1"
    admin_port: int = 4000
    admin_enabled: bool = True
    workers: int = 2
    conf_interval_seconds: float = 60.0
    conf_first_timeout: float = 10.0
    signer_socket: str = ""
    signer_pin_file: str = ""
    signer_ocsp_retry: float = 60.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "state_dir", Path(self.state_dir))
        for name in (
            "client_http_port",
            "client_https_port",
            "server_port",
            "ocsp_port",
            "admin_port",
        ):
            settingsfile.check_int(name, getattr(self, name), 0, 65535)
        settingsfile.check_int("workers", self.workers, 1, 64)
        for name in ("conf_interval_seconds", "conf_first_timeout", "signer_ocsp_retry"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise XRoadError(Code.INVALID_CONFIGURATION, f"{name} must be a number >= 0")
            object.__setattr__(self, name, float(value))
        for name in ("client_host", "server_host", "ocsp_host", "admin_host"):
            settingsfile.check_text(name, getattr(self, name))
        if self.conf_interval_seconds < 1:
            raise XRoadError(Code.INVALID_CONFIGURATION, "conf_interval_seconds must be >= 1")

    # -- paths --------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self.state_dir / FILE_NAME

    @property
    def anchor_path(self) -> Path:
        return self.state_dir / "anchor.xml"

    @property
    def globalconf_dir(self) -> Path:
        return self.state_dir / "globalconf"

    @property
    def signer_dir(self) -> Path:
        return self.state_dir / "signer"

    @property
    def tls_dir(self) -> Path:
        return self.state_dir / "tls"

    @property
    def run_file(self) -> Path:
        return self.state_dir / "run.json"

    @property
    def pin_path(self) -> Path | None:
        if not self.signer_pin_file:
            return None
        return _relative(self.state_dir, self.signer_pin_file)

    @property
    def socket_path(self) -> Path:
        """The signer's socket: ``signer.sock`` in the state directory, or under the temporary
        directory when that path would be too long for a unix socket."""
        if self.signer_socket:
            return _relative(self.state_dir, self.signer_socket)
        path = self.state_dir.resolve() / "signer.sock"
        if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
            return path
        tag = hashlib.sha256(os.fsencode(path)).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"crossroad-signer-{tag}.sock"

    def resolved_database_url(self) -> str:
        return self.database_url or default_database_url(self.state_dir)

    # -- reading and writing ------------------------------------------------------------

    def replace(self, **changes: Any) -> SecurityServerSettings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(cls, state_dir: str | Path) -> SecurityServerSettings:
        """Read ``STATE/security-server.toml``: ``io_error`` if absent, ``invalid_configuration``
        if it is not valid."""
        state = Path(state_dir)
        path = state / FILE_NAME
        data = settingsfile.read(
            path,
            hint="not a security server state directory "
            "(create one with 'crossroad security-server init')",
        )
        return cls.from_mapping(state, data, where=str(path))

    @classmethod
    def from_mapping(
        cls, state_dir: Path, data: dict[str, Any], where: str = FILE_NAME
    ) -> SecurityServerSettings:
        kwargs = settingsfile.fields_from(data, _LAYOUT, cls, where)
        with settingsfile.located(where):
            return cls(state_dir=state_dir, **kwargs)

    def to_toml(self) -> str:
        return settingsfile.render_layout(
            _LAYOUT,
            dataclasses.asdict(self),
            "crossroad security server settings (crossroad security-server run)",
        )

    def save(self) -> Path:
        """Write ``security-server.toml`` atomically, and ``server.toml`` (the database URL the
        ``crossroad server`` commands read) beside it; both 0600, as a database URL may hold a
        password."""
        serverconf = settingsfile.render([("", "database_url", self.resolved_database_url())])
        settingsfile.write(self.path, self.to_toml(), private=True)
        settingsfile.write(self.state_dir / SERVERCONF_FILE, serverconf, private=True)
        return self.path


def default_database_url(state_dir: Path) -> str:
    return f"sqlite:///{(Path(state_dir) / 'server.db').resolve()}"


def _relative(state_dir: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else state_dir / path
