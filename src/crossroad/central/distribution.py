"""Publication and HTTP distribution of the signed global configuration (a shell).

protocols.md §5.1 (``/internalconf`` and ``/externalconf``, ``?version=N``: none → 2, unknown →
404), §5.2 (the signed directory files, ``Content-location: /V{n}/{timestamp}/{file}``, old
timestamp folders deleted after the expiry interval), §11.1 (``.tmp`` files renamed into place;
all versions succeed or none is published).

On disk (``STATE/public``, the NIIS ``/var/lib/xroad/public`` layout)::

    V6/internalconf                      signed directory, internal source key
    V6/externalconf                      signed directory, external source key
    V6/20251110170000548026000/          content files of one generation
        private-params.xml  shared-params.xml  [optional parts]

:func:`publish` builds and signs every directory of every version in memory first; only when
all of them exist does it write anything.  Content folders are written under a hidden name and
renamed when complete; directory files are written as ``.tmp`` and renamed last, one
``os.replace`` each, so a client always reads either the previous or the new file, and the
previous files stay served when anything fails before the swap.  Each directory's content folder
is complete before the directory that names it appears.

:func:`distribution_app` serves that tree read-only (``application/octet-stream``, the signed
file as-is) and nothing else: every path component is matched against a strict pattern before
the file system is touched.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from crossroad.central.generation import ConfigurationPart, GeneratedVersion
from crossroad.central.keys import KeySource, SigningKey
from crossroad.crypto.algorithms import SHA512, DigestAlgorithm
from crossroad.crypto.certs import load_certificate
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.signed import (
    DirectoryEntry,
    build_signed_directory,
    content_location,
    directory_timestamp,
)

__all__ = [
    "DEFAULT_KEEP",
    "Publication",
    "build_publication",
    "delete_old_folders",
    "distribution_app",
    "publish",
    "published_versions",
]

log = logging.getLogger(__name__)

#: How long a superseded content folder stays (NIIS ``OLD_CONF_PRESERVING_SECONDS``).
DEFAULT_KEEP = dt.timedelta(seconds=600)
#: The version a client gets without ``?version=`` (§5.1).
DEFAULT_VERSION = 2
OCTET_STREAM = "application/octet-stream"

_DIRECTORY_FILES = {KeySource.INTERNAL: "internalconf", KeySource.EXTERNAL: "externalconf"}
_VERSION_DIR = re.compile(r"V([1-9][0-9]{0,2})")
_TIMESTAMP = re.compile(r"[0-9]{23}")
_FILE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}")
_TMP_PREFIX = ".tmp-"


# --- building (in memory) ---------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedVersion:
    version: int
    files: dict[str, bytes]  # content files of the timestamp folder
    directories: dict[str, bytes]  # "internalconf" / "externalconf" → signed directory


@dataclass(frozen=True)
class Publication:
    """Everything one generation publishes, fully built before any byte is written."""

    timestamp: str
    expires: dt.datetime
    versions: tuple[PublishedVersion, ...]

    def directory(self, version: int, source: KeySource | str = KeySource.INTERNAL) -> bytes:
        found = next((v for v in self.versions if v.version == version), None)
        if found is None:
            raise KeyError(version)
        return found.directories[_DIRECTORY_FILES[KeySource(source)]]


def _entry(gen: GeneratedVersion, timestamp: str, part: ConfigurationPart) -> DirectoryEntry:
    return DirectoryEntry(
        part.content_identifier,
        gen.instance_identifier,
        content_location(gen.version, timestamp, part.file_name),
        part.data,
    )


def _signed(
    generated: GeneratedVersion,
    parts: Sequence[DirectoryEntry],
    key: SigningKey,
    expires: dt.datetime,
    hash_algorithm: DigestAlgorithm,
    cert_hash_algorithm: DigestAlgorithm,
) -> bytes:
    return build_signed_directory(
        parts,
        expires=expires,
        version=generated.version,
        signing_cert=load_certificate(key.cert_der),
        sign=key.sign,
        algorithm=key.algorithm,
        hash_algorithm=hash_algorithm,
        cert_hash_algorithm=cert_hash_algorithm,
    )


def build_publication(
    generated: Sequence[GeneratedVersion],
    *,
    now: dt.datetime,
    expires: dt.datetime,
    internal_key: SigningKey,
    external_key: SigningKey,
    hash_algorithm: DigestAlgorithm = SHA512,
    cert_hash_algorithm: DigestAlgorithm = SHA512,
) -> Publication:
    """Sign the internal and external directory of every version (no file is touched)."""
    if not generated:
        raise XRoadError(Code.INVALID_REQUEST, "Nothing to publish: no configuration versions")
    timestamp = directory_timestamp(now)
    out = []
    for gen in generated:
        directories = {}
        for source, parts, key in (
            (KeySource.INTERNAL, gen.internal, internal_key),
            (KeySource.EXTERNAL, gen.external, external_key),
        ):
            entries = [_entry(gen, timestamp, p) for p in parts]
            directories[_DIRECTORY_FILES[source]] = _signed(
                gen, entries, key, expires, hash_algorithm, cert_hash_algorithm
            )
        out.append(
            PublishedVersion(gen.version, {p.file_name: p.data for p in gen.parts}, directories)
        )
    return Publication(timestamp, expires, tuple(out))


# --- writing -----------------------------------------------------------------------------------


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # not every file system can sync a directory; the rename is still atomic
    finally:
        os.close(fd)


def write_publication(public_dir: str | os.PathLike[str], publication: Publication) -> None:
    """Write ``publication`` under ``public_dir``: all versions, or (on failure) none."""
    root = Path(public_dir)
    created: list[Path] = []  # what to remove if we fail before the swap
    swaps: list[tuple[Path, Path]] = []
    try:
        for pv in publication.versions:
            vdir = root / f"V{pv.version}"
            vdir.mkdir(parents=True, exist_ok=True)
            final = vdir / publication.timestamp
            if final.exists():
                raise XRoadError(Code.IO_ERROR, f"Configuration folder {final} already exists")
            staging = vdir / f"{_TMP_PREFIX}{publication.timestamp}"
            created.append(staging)
            staging.mkdir()
            for name, data in pv.files.items():
                _write(staging / name, data)
            _fsync_dir(staging)
            os.replace(staging, final)
            created[-1] = final
            for name, data in pv.directories.items():
                tmp = vdir / f"{name}.tmp"
                created.append(tmp)
                _write(tmp, data)
                swaps.append((tmp, vdir / name))
            _fsync_dir(vdir)
    except BaseException:
        for path in created:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise
    # Everything is on disk: now switch every directory file over, oldest version first.
    for tmp, target in swaps:
        os.replace(tmp, target)
    for vdir in {target.parent for _, target in swaps}:
        _fsync_dir(vdir)


def publish(
    public_dir: str | os.PathLike[str],
    generated: Sequence[GeneratedVersion],
    *,
    now: dt.datetime,
    expires: dt.datetime,
    internal_key: SigningKey,
    external_key: SigningKey,
    keep: dt.timedelta = DEFAULT_KEEP,
    hash_algorithm: DigestAlgorithm = SHA512,
    cert_hash_algorithm: DigestAlgorithm = SHA512,
) -> Publication:
    """Build, sign and atomically publish every generated version; then delete content folders
    that were superseded more than ``keep`` ago."""
    publication = build_publication(
        generated,
        now=now,
        expires=expires,
        internal_key=internal_key,
        external_key=external_key,
        hash_algorithm=hash_algorithm,
        cert_hash_algorithm=cert_hash_algorithm,
    )
    write_publication(public_dir, publication)
    delete_old_folders(public_dir, now=now, keep=keep)
    return publication


def _timestamp_time(name: str) -> dt.datetime:
    base = dt.datetime.strptime(name[:14], "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    return base + dt.timedelta(microseconds=int(name[14:]) // 1000)


def _version_dirs(root: Path) -> Iterator[tuple[int, Path]]:
    if not root.is_dir():
        return
    for child in root.iterdir():
        found = _VERSION_DIR.fullmatch(child.name)
        if found and child.is_dir():
            yield int(found.group(1)), child


def _referenced(vdir: Path) -> set[str]:
    """Timestamp folders the served directory files of ``vdir`` point at."""
    names: set[str] = set()
    for name in _DIRECTORY_FILES.values():
        try:
            text = (vdir / name).read_bytes().decode("ascii", errors="replace")
        except OSError:
            continue
        names.update(re.findall(rf"Content-location: /{vdir.name}/([0-9]{{23}})/", text))
    return names


def delete_old_folders(
    public_dir: str | os.PathLike[str], *, now: dt.datetime, keep: dt.timedelta = DEFAULT_KEEP
) -> list[Path]:
    """Delete content folders (and leftover staging files) older than ``keep``, except those the
    served directories name.  Returns what was deleted."""
    deleted = []
    limit = now - keep
    for _, vdir in _version_dirs(Path(public_dir)):
        keep_names = _referenced(vdir)
        for child in vdir.iterdir():
            name = child.name
            stamp = name.removeprefix(_TMP_PREFIX)
            if name.endswith(".tmp") and name[:-4] in _DIRECTORY_FILES.values():
                stale = dt.datetime.fromtimestamp(child.stat().st_mtime, dt.UTC) < limit
            elif _TIMESTAMP.fullmatch(stamp) and name not in keep_names:
                stale = _timestamp_time(stamp) < limit
            else:
                continue
            if not stale:
                continue
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
            deleted.append(child)
    return deleted


def published_versions(public_dir: str | os.PathLike[str]) -> tuple[int, ...]:
    """Versions with a served internal directory, newest first."""
    return tuple(
        sorted(
            (v for v, d in _version_dirs(Path(public_dir)) if (d / "internalconf").is_file()),
            reverse=True,
        )
    )


# --- serving -------------------------------------------------------------------------------------


def _file_response(path: Path) -> web.StreamResponse:
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Content-Type": OCTET_STREAM})


def distribution_app(public_dir: str | os.PathLike[str]) -> web.Application:
    """The configuration download server: ``/internalconf``, ``/externalconf`` (``?version=N``),
    ``/V{n}/internalconf``, ``/V{n}/externalconf`` and ``/V{n}/{timestamp}/{file}``."""
    root = Path(public_dir).resolve()

    async def directory(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        raw = request.query.get("version")
        if raw is None:
            version = DEFAULT_VERSION
        elif raw.isascii() and raw.isdigit() and len(raw) <= 3:
            version = int(raw)
        else:
            raise web.HTTPNotFound()
        return _file_response(root / f"V{version}" / name)

    async def versioned_directory(request: web.Request) -> web.StreamResponse:
        vdir = request.match_info["vdir"]
        if not _VERSION_DIR.fullmatch(vdir):
            raise web.HTTPNotFound()
        return _file_response(root / vdir / request.match_info["name"])

    async def content(request: web.Request) -> web.StreamResponse:
        vdir, stamp, name = (request.match_info[k] for k in ("vdir", "stamp", "file"))
        if not (
            _VERSION_DIR.fullmatch(vdir) and _TIMESTAMP.fullmatch(stamp) and _FILE.fullmatch(name)
        ):
            raise web.HTTPNotFound()
        path = (root / vdir / stamp / name).resolve()
        if not path.is_relative_to(root):
            raise web.HTTPNotFound()
        return _file_response(path)

    app = web.Application()
    app.router.add_get(r"/{name:internalconf|externalconf}", directory)
    app.router.add_get(r"/{vdir:V[0-9]+}/{name:internalconf|externalconf}", versioned_directory)
    app.router.add_get(r"/{vdir:V[0-9]+}/{stamp:[0-9]+}/{file}", content)
    return app
