"""The configuration directory on disk, as the configuration client writes it (a shell).

Layout (NIIS ``VersionedConfigurationDirectory``)::

    instance-identifier              own instance code (no newline needed)
    EE/private-params.xml            + private-params.xml.metadata
    EE/shared-params.xml             + shared-params.xml.metadata
    EE/<optional part files>         monitoring-params.xml, fetchinterval-params.xml, ...
    bar/shared-params.xml            federation partners: shared parameters only

``*.metadata`` is JSON: ``contentIdentifier``, ``instanceIdentifier``, ``expirationDate``
(ISO 8601) and ``configurationVersion`` (absent ⇒ 2).  Instances are looked up by directory
name.  A broken file is skipped and reported in :attr:`ConfigurationDirectory.problems`, never
fatal; the directory itself is checked the way ``FSGlobalConfValidator`` does (protocols.md §5.2):
not a directory → ``global_conf_configuration_error``, no instance subdirectory →
``malformed_globalconf``, no ``instance-identifier`` → ``global_conf_missing_instance_identifier``.

Parsing is delegated to the core (:mod:`.sharedparams`, :mod:`.privateparams`); this module only
reads files.  Validity (§5.2: own private and shared parameters unexpired) is judged at a time
the caller passes in.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography import x509

from crossroad.crypto.trust import TrustPolicy
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import PrivateParameters, SharedParameters
from crossroad.globalconf.privateparams import parse_next_update, parse_private_parameters
from crossroad.globalconf.sharedparams import parse_shared_parameters

INSTANCE_IDENTIFIER_FILE = "instance-identifier"
PRIVATE_PARAMS_FILE = "private-params.xml"
SHARED_PARAMS_FILE = "shared-params.xml"
NEXTUPDATE_FILE = "nextupdate-params.xml"
METADATA_SUFFIX = ".metadata"


class DirectoryState(StrEnum):
    """``GlobalConfInitState`` values that a look at the file system can yield."""

    READY_TO_INIT = "READY_TO_INIT"
    FAILURE_CONFIGURATION_ERROR = "FAILURE_CONFIGURATION_ERROR"
    FAILURE_MALFORMED = "FAILURE_MALFORMED"
    FAILURE_MISSING_INSTANCE_IDENTIFIER = "FAILURE_MISSING_INSTANCE_IDENTIFIER"


_STATE_ERRORS = {
    DirectoryState.FAILURE_CONFIGURATION_ERROR: (
        Code.GLOBAL_CONF_CONFIGURATION_ERROR,
        "is not a directory",
    ),
    DirectoryState.FAILURE_MALFORMED: (
        Code.MALFORMED_GLOBALCONF,
        "holds no instance directories (configuration not downloaded yet?)",
    ),
    DirectoryState.FAILURE_MISSING_INSTANCE_IDENTIFIER: (
        Code.GLOBAL_CONF_MISSING_INSTANCE_IDENTIFIER,
        f"has no {INSTANCE_IDENTIFIER_FILE} file",
    ),
}


def check_directory(path: str | Path) -> DirectoryState:
    """Classify ``path`` the way NIIS ``FSGlobalConfValidator`` does, in the same order."""
    try:
        root = Path(path)
        if not root.is_dir():
            return DirectoryState.FAILURE_CONFIGURATION_ERROR
        if not any(child.is_dir() for child in root.iterdir()):
            return DirectoryState.FAILURE_MALFORMED
        if not (root / INSTANCE_IDENTIFIER_FILE).exists():
            return DirectoryState.FAILURE_MISSING_INSTANCE_IDENTIFIER
    except OSError:
        return DirectoryState.FAILURE_CONFIGURATION_ERROR
    return DirectoryState.READY_TO_INIT


@dataclass(frozen=True)
class Metadata:
    """A ``*.metadata`` file."""

    content_identifier: str | None = None
    instance_identifier: str | None = None
    expiration_date: dt.datetime | None = None
    configuration_version: int = 2

    @classmethod
    def parse(cls, data: bytes) -> Metadata:
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise XRoadError(Code.MALFORMED_GLOBALCONF, f"metadata is not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise XRoadError(Code.MALFORMED_GLOBALCONF, "metadata must be a JSON object")
        return cls(
            content_identifier=_opt_str(raw, "contentIdentifier"),
            instance_identifier=_opt_str(raw, "instanceIdentifier"),
            expiration_date=_opt_datetime(raw, "expirationDate"),
            configuration_version=_version(raw.get("configurationVersion")),
        )


def _opt_str(raw: Mapping[str, Any], key: str) -> str | None:
    value = raw.get(key)
    return value if isinstance(value, str) else None


def _opt_datetime(raw: Mapping[str, Any], key: str) -> dt.datetime | None:
    value = raw.get(key)
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise XRoadError(Code.MALFORMED_GLOBALCONF, f"metadata {key} {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _version(value: Any) -> int:
    if value is None:
        return 2
    try:
        return int(value)
    except (TypeError, ValueError):
        raise XRoadError(Code.MALFORMED_GLOBALCONF, f"configurationVersion {value!r}") from None


@dataclass(frozen=True)
class LoadProblem:
    """A file that could not be read; it was skipped."""

    path: Path
    error: XRoadError


@dataclass(frozen=True)
class InstanceFiles:
    """What one instance directory holds."""

    name: str
    shared: SharedParameters | None = None
    private: PrivateParameters | None = None
    shared_metadata: Metadata | None = None
    private_metadata: Metadata | None = None
    verify_next_update: bool | None = None  # NEXTUPDATE optional part, when present


@dataclass(frozen=True)
class ConfigurationDirectory:
    path: Path
    instance: str
    _instances: Mapping[str, InstanceFiles] = field(repr=False)
    problems: tuple[LoadProblem, ...] = ()

    def instances(self) -> tuple[str, ...]:
        """Instances with shared parameters (own instance and federation partners)."""
        return tuple(sorted(n for n, f in self._instances.items() if f.shared is not None))

    def files_of(self, instance: str) -> InstanceFiles | None:
        return self._instances.get(instance)

    def shared(self, instance: str | None = None) -> SharedParameters | None:
        found = self._instances.get(instance or self.instance)
        return found.shared if found else None

    def private(self, instance: str | None = None) -> PrivateParameters | None:
        found = self._instances.get(instance or self.instance)
        return found.private if found else None

    def shared_version(self, instance: str | None = None) -> int | None:
        found = self._instances.get(instance or self.instance)
        if found is None or found.shared is None:
            return None
        return found.shared_metadata.configuration_version if found.shared_metadata else 2

    def trust_policy(self, instance: str | None = None) -> TrustPolicy:
        """The trust policy of ``instance`` (own by default); NEXTUPDATE comes from the own
        instance's optional part (default: verify)."""
        shared = self.shared(instance)
        if shared is None:
            raise XRoadError(
                Code.MALFORMED_GLOBALCONF,
                f"No shared parameters for instance {instance or self.instance!r} in {self.path}",
            )
        own = self._instances.get(self.instance)
        nextupdate = own.verify_next_update if own else None
        return shared.trust_policy(nextupdate=True if nextupdate is None else nextupdate)

    def ocsp_responder_certs(self) -> tuple[x509.Certificate, ...]:
        """OCSP responder certificates of every instance (NIIS answers across the federation)."""
        return tuple(
            cert
            for name in self.instances()
            for cert in self.trust_policy(name).ocsp_responder_certs()
        )

    def tsa_certs(self) -> tuple[x509.Certificate, ...]:
        """Approved TSA certificates of every instance."""
        return tuple(
            cert for name in self.instances() for cert in self.trust_policy(name).tsa_certs()
        )

    def expires_at(self, instance: str | None = None) -> dt.datetime | None:
        """The earliest expiration of the instance's parameter files (None: none recorded)."""
        found = self._instances.get(instance or self.instance)
        if found is None:
            return None
        dates = [
            m.expiration_date
            for m in (found.shared_metadata, found.private_metadata)
            if m is not None and m.expiration_date is not None
        ]
        return min(dates) if dates else None

    def check_valid(self, at: dt.datetime) -> None:
        """§5.2: the own instance's shared and private parameters must exist and be unexpired."""
        own = self._instances.get(self.instance)
        if own is None or own.shared is None or own.private is None:
            raise XRoadError(
                Code.GLOBAL_CONF_OUTDATED,
                f"No valid configuration for own instance {self.instance}",
            )
        expires = self.expires_at()
        if expires is not None and expires <= at:
            raise XRoadError(
                Code.GLOBAL_CONF_OUTDATED, f"Global configuration expired at {expires.isoformat()}"
            )

    def files(self) -> tuple[Path, ...]:
        """Configuration files (everything but ``instance-identifier`` and ``*.metadata``)."""
        return tuple(
            sorted(
                p
                for p in self.path.rglob("*")
                if p.is_file()
                and p.name != INSTANCE_IDENTIFIER_FILE
                and not p.name.endswith(METADATA_SUFFIX)
            )
        )


def load_directory(path: str | Path, *, allow_empty: bool = False) -> ConfigurationDirectory:
    """Read a configuration directory.  Broken files are skipped and listed in ``problems``."""
    state = check_directory(path)
    if state is DirectoryState.FAILURE_MALFORMED and allow_empty:
        state = (
            DirectoryState.READY_TO_INIT
            if (Path(path) / INSTANCE_IDENTIFIER_FILE).exists()
            else DirectoryState.FAILURE_MISSING_INSTANCE_IDENTIFIER
        )
    if state is not DirectoryState.READY_TO_INIT:
        code, what = _STATE_ERRORS[state]
        raise XRoadError(code, f"Global configuration directory {path} {what}")
    root = Path(path)
    try:
        instance = (root / INSTANCE_IDENTIFIER_FILE).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise XRoadError(
            Code.GLOBAL_CONF_MISSING_INSTANCE_IDENTIFIER, f"Cannot read instance identifier: {exc}"
        ) from exc
    if not instance:
        raise XRoadError(Code.GLOBAL_CONF_MISSING_INSTANCE_IDENTIFIER, "Instance identifier empty")
    problems: list[LoadProblem] = []
    instances = {
        child.name: _load_instance(child, problems)
        for child in sorted(root.iterdir())
        if child.is_dir()
    }
    return ConfigurationDirectory(root, instance, instances, tuple(problems))


def _read(path: Path, parse: Any, problems: list[LoadProblem]) -> Any:
    if not path.is_file():
        return None
    try:
        return parse(path.read_bytes())
    except XRoadError as exc:
        problems.append(LoadProblem(path, exc))
    except OSError as exc:
        problems.append(LoadProblem(path, XRoadError(Code.IO_ERROR, str(exc))))
    return None


def _load_instance(directory: Path, problems: list[LoadProblem]) -> InstanceFiles:
    def meta(name: str) -> Metadata | None:
        result: Metadata | None = _read(
            directory / (name + METADATA_SUFFIX), Metadata.parse, problems
        )
        return result

    return InstanceFiles(
        name=directory.name,
        shared=_read(directory / SHARED_PARAMS_FILE, parse_shared_parameters, problems),
        private=_read(directory / PRIVATE_PARAMS_FILE, parse_private_parameters, problems),
        shared_metadata=meta(SHARED_PARAMS_FILE),
        private_metadata=meta(PRIVATE_PARAMS_FILE),
        verify_next_update=_read(directory / NEXTUPDATE_FILE, parse_next_update, problems),
    )
