"""Settings of the message log, its time-stamper, archiver and cleaner (protocols.md §9, §12.1).

They live in ``STATE/message-log.toml`` beside the security server's own settings (NIIS keeps
them apart too, in ``message-log.ini``); every key is optional::

    database_url = "sqlite:///STATE/messagelog.db"   # default: messagelog.db in STATE
    hash_algorithm = "SHA-512"
    timestamp_immediately = false
    acceptable_timestamp_failure_period = 14400       # seconds; 0 switches the check off
    timestamp_records_limit = 10000
    timestamp_retry_delay = 60
    timestamping_interval = 0                          # seconds; 0 = from global configuration
    tsa_prioritization = "none"        # none|free_first|paid_first|only_free|only_paid
    max_loggable_body_size = 10485760
    truncated_body_allowed = false
    body_logging = true
    body_logging_local_overrides = ["SUBSYSTEM:EE/GOV/123/sub"]
    body_logging_remote_overrides = []
    archive_dir = "archive"                            # relative to STATE
    archive_interval = 21600
    archive_max_filesize = 33554432
    archive_grouping = "none"                          # none|member|subsystem
    archive_transaction_limit = 10000
    archive_encryption = false                         # OpenPGP via the gpg binary
    archive_gpg_home = "gpg"
    archive_encryption_keys = []                       # recipients; none = the home's own key
    keep_records_for = 30                              # days
    clean_interval = 43200
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossroad import settingsfile
from crossroad.crypto.algorithms import SHA512, DigestAlgorithm, digest_algorithm
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId
from crossroad.messagelog.records import BodyLogging, Grouping

FILE_NAME = "message-log.toml"
PRIORITIZATION = ("none", "free_first", "paid_first", "only_free", "only_paid")


@dataclass(frozen=True)
class LogSettings:
    """Every tunable of the message log (defaults are NIIS's)."""

    database_url: str = ""
    hash_algorithm: DigestAlgorithm = SHA512
    timestamp_immediately: bool = False
    acceptable_timestamp_failure_period: float = 14_400.0
    timestamp_records_limit: int = 10_000
    timestamp_retry_delay: float = 60.0
    #: Seconds between time-stamping rounds; 0 takes ``timeStampingIntervalSeconds`` from the
    #: global configuration's private parameters.
    timestamping_interval: float = 0.0
    tsa_prioritization: str = "none"
    max_loggable_body_size: int = 10 * 1024 * 1024
    truncated_body_allowed: bool = False
    body_logging: BodyLogging = field(default_factory=BodyLogging)
    archive_dir: Path | None = None
    archive_interval: float = 6 * 3600.0
    archive_max_filesize: int = 32 * 1024 * 1024
    archive_grouping: Grouping = Grouping.NONE
    archive_transaction_limit: int = 10_000
    archive_encryption: bool = False
    archive_gpg_home: Path | None = None
    archive_encryption_keys: tuple[str, ...] = ()
    keep_records_for: float = 30.0  # days
    clean_interval: float = 12 * 3600.0
    #: How long a proxy worker trusts its cached copy of the shared time-stamping status.
    status_refresh: float = 1.0

    def __post_init__(self) -> None:
        if self.tsa_prioritization not in PRIORITIZATION:
            raise XRoadError(
                Code.INVALID_CONFIGURATION,
                f"tsa_prioritization must be one of {', '.join(PRIORITIZATION)}",
            )
        for name in ("timestamp_records_limit", "archive_max_filesize", "max_loggable_body_size"):
            if getattr(self, name) < 1:
                raise XRoadError(Code.INVALID_CONFIGURATION, f"{name} must be positive")
        for name in (
            "acceptable_timestamp_failure_period",
            "timestamp_retry_delay",
            "timestamping_interval",
            "archive_interval",
            "keep_records_for",
            "clean_interval",
            "status_refresh",
        ):
            if getattr(self, name) < 0:
                raise XRoadError(Code.INVALID_CONFIGURATION, f"{name} must be >= 0")

    def replace(self, **changes: Any) -> LogSettings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def load(cls, state_dir: str | Path) -> LogSettings:
        """``STATE/message-log.toml`` (defaults when absent), paths resolved against STATE."""
        state = Path(state_dir)
        path = state / FILE_NAME
        data = settingsfile.read(path, required=False)
        return cls.from_mapping(data, state, where=str(path))

    @classmethod
    def from_mapping(
        cls, data: dict[str, Any], state_dir: Path, where: str = FILE_NAME
    ) -> LogSettings:
        known = {f.name for f in dataclasses.fields(cls)} | {
            "body_logging_local_overrides",
            "body_logging_remote_overrides",
        }
        settingsfile.refuse_unknown(data, (("", name) for name in known), where)
        with settingsfile.located(where):
            settings = cls(**_convert(data, state_dir))
        if not settings.database_url:
            url = f"sqlite:///{(state_dir / 'messagelog.db').resolve()}"
            settings = settings.replace(database_url=url)
        if settings.archive_dir is None:
            settings = settings.replace(archive_dir=state_dir / "archive")
        if settings.archive_gpg_home is None:
            settings = settings.replace(archive_gpg_home=state_dir / "gpg")
        return settings


def _convert(data: dict[str, Any], state_dir: Path) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    defaults = {f.name: f for f in dataclasses.fields(LogSettings)}
    overrides: dict[str, frozenset[ClientId]] = {}
    enabled = True
    for key, value in data.items():
        if key == "hash_algorithm":
            kwargs[key] = digest_algorithm(str(value))
        elif key == "archive_grouping":
            kwargs[key] = Grouping(str(value).lower())
        elif key in ("archive_dir", "archive_gpg_home"):
            path = Path(str(value))
            kwargs[key] = path if path.is_absolute() else state_dir / path
        elif key == "archive_encryption_keys":
            kwargs[key] = tuple(str(v) for v in settingsfile.as_list(key, value))
        elif key == "body_logging":
            enabled = settingsfile.typed(key, value, bool)
        elif key in ("body_logging_local_overrides", "body_logging_remote_overrides"):
            values = settingsfile.as_list(key, value)
            overrides[key] = frozenset(ClientId.parse(str(v)) for v in values)
        else:
            default = defaults[key].default
            expected = type(default) if default is not dataclasses.MISSING else str
            kwargs[key] = settingsfile.typed(key, value, expected)
    kwargs["body_logging"] = BodyLogging(
        enabled,
        overrides.get("body_logging_local_overrides", frozenset()),
        overrides.get("body_logging_remote_overrides", frozenset()),
    )
    return kwargs
