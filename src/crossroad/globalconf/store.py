"""Writing the configuration directory atomically (a shell; protocols.md §5.2, §5.7).

The configuration client writes the NIIS ``VersionedConfigurationDirectory`` layout that
:mod:`.directory` reads::

    instance-identifier
    EE/private-params.xml   + .metadata     {"contentIdentifier", "instanceIdentifier",
    EE/shared-params.xml    + .metadata      "expirationDate", "contentLocation",
    EE/<optional parts>     + .metadata      "configurationVersion", ...}
    bar/shared-params.xml   + .metadata     federation partners: shared parameters only

A reader must never see a mix of two downloads, so a download never edits files in place.
Every successful download becomes a complete new *generation* tree, written under
``.<name>.generations/`` beside the directory, and the directory path itself is a symbolic link
that is swapped to the new generation with one ``rename`` (atomic on POSIX).  Files that did
not change are hard-linked from the previous generation (generations are never modified, so
sharing inodes is safe).  The previous generation is kept until the next swap, so a reader that
resolved the link just before a swap can still finish reading.

If the directory exists as a plain directory (written by another tool, or an older layout), the
first swap moves it aside once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from crossroad.errors import Code, XRoadError
from crossroad.globalconf.directory import (
    INSTANCE_IDENTIFIER_FILE,
    METADATA_SUFFIX,
    PRIVATE_PARAMS_FILE,
    SHARED_PARAMS_FILE,
    Metadata,
    load_directory,
)
from crossroad.globalconf.snapshot import GlobalConfSnapshot

CONTENT_ID_PRIVATE_PARAMETERS = "PRIVATE-PARAMETERS"
CONTENT_ID_SHARED_PARAMETERS = "SHARED-PARAMETERS"

_GENERATIONS_SUFFIX = ".generations"
_URL_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-*_")


def escape_instance(instance: str) -> str:
    """The directory name of an instance: Java ``URLEncoder.encode(id, "UTF-8")``, as NIIS does.

    ``""``, ``"."`` and ``".."`` would land on the root or outside it and are refused.
    """
    out = []
    for char in instance:
        if char in _URL_SAFE:
            out.append(char)
        elif char == " ":
            out.append("+")
        else:
            out.extend(f"%{b:02X}" for b in char.encode("utf-8"))
    name = "".join(out)
    if name in ("", ".", ".."):
        raise XRoadError(
            Code.MALFORMED_GLOBALCONF, f"Invalid instance identifier {instance!r} for a directory"
        )
    return name


def part_file_name(
    content_identifier: str, content_location: str, content_file_name: str | None = None
) -> str:
    """The file a part is stored in: fixed names for the parameters, else the file-name hint or
    the last segment of the content location (NIIS ``FileNameProviderImpl``)."""
    if content_identifier == CONTENT_ID_PRIVATE_PARAMETERS:
        return PRIVATE_PARAMS_FILE
    if content_identifier == CONTENT_ID_SHARED_PARAMETERS:
        return SHARED_PARAMS_FILE
    source = content_file_name if content_file_name and content_file_name.strip() else None
    source = source or content_location
    name = source.split("?", 1)[0].replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    unprintable = any(ord(c) < 0x20 or ord(c) == 0x7F for c in name)
    if name.strip() in ("", ".", "..") or name.endswith(METADATA_SUFFIX) or unprintable:
        raise XRoadError(
            Code.MALFORMED_GLOBALCONF,
            f"Configuration part {content_identifier} has no usable file name ({source!r})",
        )
    if name == INSTANCE_IDENTIFIER_FILE:
        raise XRoadError(
            Code.MALFORMED_GLOBALCONF,
            f"Configuration part {content_identifier} uses a reserved name",
        )
    return name


@dataclass(frozen=True)
class PartMetadata:
    """The ``*.metadata`` JSON written next to every stored part."""

    content_identifier: str
    instance_identifier: str
    expiration_date: dt.datetime
    configuration_version: int
    content_location: str | None = None
    content_file_name: str | None = None

    def to_json(self) -> bytes:
        expires = self.expiration_date.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        raw: dict[str, str] = {
            "contentIdentifier": self.content_identifier,
            "instanceIdentifier": self.instance_identifier,
            "expirationDate": expires,
        }
        if self.content_file_name:
            raw["contentFileName"] = self.content_file_name
        if self.content_location is not None:
            raw["contentLocation"] = self.content_location
        # NIIS writes the version as a JSON string; readers accept either.
        raw["configurationVersion"] = str(self.configuration_version)
        return json.dumps(raw, separators=(",", ":")).encode()


def _save_error(what: str, exc: OSError) -> XRoadError:
    return XRoadError(Code.GLOBAL_CONF_PART_FILE_SAVE_FAILURE, f"Cannot write {what}: {exc}")


class ConfigurationStore:
    """The configuration directory at ``path`` and its generations."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).absolute()
        self.generations = self.path.parent / f".{self.path.name}{_GENERATIONS_SUFFIX}"

    def current(self) -> Path | None:
        """The tree readers see now (the resolved generation), or None if there is none."""
        if self.path.is_dir():
            return self.path.resolve()
        return None

    def current_file(self, instance: str, name: str) -> Path | None:
        root = self.current()
        if root is None:
            return None
        found = root / escape_instance(instance) / name
        return found if found.is_file() else None

    def begin(self, instance_identifier: str) -> Generation:
        """Start a new generation for the own instance ``instance_identifier``."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.generations.mkdir(exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix="tmp-", dir=self.generations))
        except OSError as exc:
            raise _save_error(f"a new generation in {self.generations}", exc) from exc
        return Generation(self, tmp, instance_identifier)

    def _next_name(self) -> str:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S%f")
        for n in itertools.count():
            name = f"gen-{stamp}-{n}"
            if not (self.generations / name).exists():
                return name
        raise AssertionError("unreachable")  # pragma: no cover

    def _swap(self, tree: Path) -> Path | None:
        """Point ``path`` at ``tree`` with one atomic rename of a fresh symbolic link.  Returns
        where a plain directory found at ``path`` was moved."""
        moved = None
        if self.path.exists() and not self.path.is_symlink():
            # A plain directory from elsewhere: moved aside once (the only non-atomic step).
            moved = self.generations / f"{self._next_name()}-moved"
            self.path.rename(moved)
        link = self.generations / f"link-{tree.name}"
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        link.symlink_to(os.path.relpath(tree, self.path.parent))
        os.replace(link, self.path)
        return moved

    def _prune(self, keep: set[Path]) -> None:
        """Delete generations except ``keep`` (the current and the previous one)."""
        for child in self.generations.iterdir():
            if child.resolve() in keep:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    child.unlink()


class Generation:
    """A configuration tree being written; invisible to readers until :meth:`commit`."""

    def __init__(self, store: ConfigurationStore, root: Path, instance_identifier: str) -> None:
        self.store = store
        self.root = root
        self.instance_identifier = instance_identifier
        self._written: set[tuple[str, str]] = set()
        self._done = False

    def __enter__(self) -> Generation:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._done:
            self.abort()

    def _target(self, instance: str, name: str) -> Path:
        key = (escape_instance(instance).lower(), name.lower())
        if key in self._written:
            raise XRoadError(
                Code.GLOBAL_CONF_PART_DUPLICATE_TARGET,
                f"Two configuration parts resolve to {instance}/{name}",
            )
        self._written.add(key)
        directory = self.root / escape_instance(instance)
        directory.mkdir(exist_ok=True)
        return directory / name

    def write(
        self, instance: str, name: str, data: bytes | Path, metadata: PartMetadata | None
    ) -> None:
        """Store one part: ``data`` is the content, or an unchanged file of the current tree
        (hard-linked, copied where links are impossible)."""
        target = self._target(instance, name)
        try:
            if isinstance(data, Path):
                _link_or_copy(data, target)
            else:
                target.write_bytes(data)
            if metadata is not None:
                (target.parent / (name + METADATA_SUFFIX)).write_bytes(metadata.to_json())
        except OSError as exc:
            raise _save_error(f"{instance}/{name}", exc) from exc

    def keep_instance(self, instance: str) -> bool:
        """Carry an instance directory over from the current tree unchanged (a federation
        partner whose download failed this time keeps its own expiry).  False if absent."""
        root = self.store.current()
        if root is None:
            return False
        source = root / escape_instance(instance)
        if not source.is_dir():
            return False
        for file in sorted(source.iterdir()):
            if not file.is_file():
                continue
            if file.name.endswith(METADATA_SUFFIX):
                target = self.root / escape_instance(instance) / file.name
            else:
                target = self._target(instance, file.name)
            target.parent.mkdir(exist_ok=True)
            _link_or_copy(file, target)
        return True

    def commit(self) -> Path:
        """Make this tree the configuration: fsync, rename into place, swap the link, prune."""
        store = self.store
        try:
            (self.root / INSTANCE_IDENTIFIER_FILE).write_text(
                self.instance_identifier, encoding="utf-8"
            )
            _fsync_tree(self.root)
            previous = store.current()
            final = store.generations / store._next_name()
            self.root.rename(final)
            self.root = final
            moved = store._swap(final)
            _fsync_dir(store.path.parent)
        except OSError as exc:
            self.abort()
            raise _save_error(f"the configuration directory {store.path}", exc) from exc
        self._done = True
        keep = {final.resolve()}
        if moved is not None:
            keep.add(moved.resolve())
        elif previous is not None:
            keep.add(previous)
        store._prune(keep)
        return final

    def abort(self) -> None:
        self._done = True
        shutil.rmtree(self.root, ignore_errors=True)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(root: Path) -> None:
    # Contents must be durable before the link points at them, or a crash could expose
    # empty files under a valid-looking directory.
    for directory, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                fd = os.open(os.path.join(directory, name), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(Path(directory))


def load_snapshot(root: str | Path) -> GlobalConfSnapshot:
    """The snapshot of a stored configuration tree: own and federated parameters with their
    expiry, and the own instance's optional parts (found by their metadata)."""
    directory = load_directory(root)
    own = directory.instance
    files = directory.files_of(own)
    if files is None or files.shared is None:
        raise XRoadError(
            Code.MALFORMED_GLOBALCONF, f"No shared parameters for own instance {own} in {root}"
        )
    federated = []
    federated_expires = {}
    for name in directory.instances():
        other = directory.files_of(name)
        if name == own or other is None or other.shared is None:
            continue
        federated.append(other.shared)
        if other.shared_metadata and other.shared_metadata.expiration_date:
            federated_expires[other.shared.instance_identifier] = (
                other.shared_metadata.expiration_date
            )
    optional: dict[str, bytes] = {}
    own_dir = Path(root) / escape_instance(own)
    for meta_file in sorted(own_dir.glob("*" + METADATA_SUFFIX)):
        content = meta_file.with_name(meta_file.name[: -len(METADATA_SUFFIX)])
        try:
            meta = Metadata.parse(meta_file.read_bytes())
            cid = meta.content_identifier
            if cid and cid not in (CONTENT_ID_PRIVATE_PARAMETERS, CONTENT_ID_SHARED_PARAMETERS):
                optional[cid] = content.read_bytes()
        except (OSError, XRoadError):
            continue  # an unreadable optional part is left out, as a broken file is skipped
    shared_meta, private_meta = files.shared_metadata, files.private_metadata
    return GlobalConfSnapshot.build(
        files.shared,
        files.private,
        federated=federated,
        shared_expires=shared_meta.expiration_date if shared_meta else None,
        private_expires=private_meta.expiration_date if private_meta else None,
        federated_expires=federated_expires,
        version=shared_meta.configuration_version if shared_meta else None,
        optional_parts=optional,
    )
