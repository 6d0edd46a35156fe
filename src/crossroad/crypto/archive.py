"""Message-log archive files and their ``linkinginfo`` hash chain (protocols.md §9.5).

An archive is a ZIP of ASiC-E containers ending with a ``linkinginfo`` entry::

    {previous archive's last digest | -} {previous archive file name | -} {digest name}
    {digest_1} {container_1 name}
    ...

where ``digest_i = hex(H(UTF-8(digest_{i-1} + hex(H(container_i bytes)))))`` and ``digest_0`` is
the previous archive's last digest (empty for the first archive).  The last digest links the
next archive to this one.

:func:`build_archive` writes an archive; :func:`verify_archive` checks one as NIIS
``ArchiveHashChainVerifier`` does (same checks, same order, same messages) and reports instead of
raising; :func:`verify_archive_chain` checks that consecutive archives link up, which detects a
removed or reordered archive file.  Verifying the containers themselves is
``crossroad.evidence.verifier``'s job.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

from crossroad.crypto.algorithms import SHA256, SHA384, SHA512, DigestAlgorithm, digest_algorithm
from crossroad.crypto.asic import read_zip
from crossroad.errors import Code, XRoadError

LINKING_INFO = "linkinginfo"
CONTAINER_SUFFIX = ".asice"
#: The digests NIIS's archive verifier accepts.
SUPPORTED_DIGESTS = (SHA256, SHA384, SHA512)
#: Default cap on the total uncompressed size of an archive (zip-bomb guard).
DEFAULT_MAX_SIZE = 1024 * 1024 * 1024
DEFAULT_MAX_ENTRIES = 100_000

_NAME_TIME = "%Y%m%d%H%M%S"
# NIIS replaces these in the group part of archive names.
_UNSAFE_GROUP_CHARS = re.compile(r"[\x00\\<>/:|*?\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Check:
    """One named verification step and its outcome."""

    name: str
    ok: bool
    detail: str = ""


def chain_digest(previous_hex: str, content: bytes, digest: DigestAlgorithm) -> str:
    """The next link: ``hex(H(UTF-8(previous_hex + hex(H(content)))))``."""
    step = previous_hex + digest.digest(content).hex()
    return digest.digest(step.encode()).hex()


@dataclass(frozen=True)
class LinkingInfo:
    """The ``linkinginfo`` entry: the link to the previous archive and one digest per container.

    ``previous_digest`` and ``previous_name`` are empty for the first archive (written ``-``).
    ``algorithm_name`` is kept as written (``SHA-512``; 2015 archives say ``SHA-256``).
    """

    previous_digest: str
    previous_name: str
    algorithm_name: str
    entries: tuple[tuple[str, str], ...]  # (chain digest hex, container file name)

    @property
    def algorithm(self) -> DigestAlgorithm:
        try:
            algorithm = digest_algorithm(self.algorithm_name)
        except XRoadError:
            algorithm = None
        if algorithm is None or algorithm not in SUPPORTED_DIGESTS:
            raise XRoadError(
                Code.INVALID_LOG_ARCHIVE,
                f"Digest algorithm id '{self.algorithm_name}' is not supported",
            )
        return algorithm

    @property
    def file_names(self) -> tuple[str, ...]:
        return tuple(name for _, name in self.entries)

    @property
    def last_digest(self) -> str:
        return self.entries[-1][0] if self.entries else self.previous_digest

    def digest_for(self, file_name: str) -> str | None:
        return next((d for d, n in self.entries if n == file_name), None)

    @classmethod
    def parse(cls, data: bytes) -> LinkingInfo:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise XRoadError(Code.INVALID_LOG_ARCHIVE, "Linking info is not UTF-8") from exc
        lines = re.split(r"\r?\n", text)
        while lines and lines[-1] == "":  # trailing empty lines do not count (Java split)
            lines.pop()
        if not lines:
            raise XRoadError(Code.INVALID_LOG_ARCHIVE, "Linking info is empty")
        first = lines[0].split()
        if len(first) != 3:
            raise XRoadError(
                Code.INVALID_LOG_ARCHIVE, f"Invalid linking info first line {lines[0][:200]!r}"
            )
        entries = []
        for line in lines[1:]:
            parts = line.split()
            if len(parts) != 2:
                raise XRoadError(Code.INVALID_LOG_ARCHIVE, "Invalid log archive format")
            entries.append((parts[0], parts[1]))
        info = cls(
            previous_digest="" if first[0] == "-" else first[0],
            previous_name="" if first[1] == "-" else first[1],
            algorithm_name=first[2],
            entries=tuple(entries),
        )
        info.algorithm  # noqa: B018 - fail early on an unknown digest
        return info

    def render(self) -> bytes:
        lines = [
            f"{self.previous_digest or '-'} {self.previous_name or '-'} {self.algorithm_name}",
            *(f"{digest} {name}" for digest, name in self.entries),
        ]
        return ("\n".join(lines) + "\n").encode()


def archive_file_name(
    start: dt.datetime, end: dt.datetime, last_digest: str, group: str = ""
) -> str:
    """``mlog-[group-]{start}-{end}-{first 16 hex of the last digest}.zip`` (UTC times)."""
    group_part = _UNSAFE_GROUP_CHARS.sub("_", group) + "-" if group else ""
    start_s = start.astimezone(dt.UTC).strftime(_NAME_TIME)
    end_s = end.astimezone(dt.UTC).strftime(_NAME_TIME)
    return f"mlog-{group_part}{start_s}-{end_s}-{last_digest[:16]}.zip"


def build_archive(
    containers: Sequence[tuple[str, bytes]],
    previous: tuple[str, str] | None,
    digest: DigestAlgorithm = SHA512,
    *,
    start: dt.datetime,
    end: dt.datetime,
    group: str = "",
) -> tuple[bytes, str, str]:
    """Write an archive of ``(file name, container bytes)``; returns (zip, last digest, name).

    ``previous`` is ``(last digest, file name)`` of the previous archive, ``None`` for the first.
    ``start``/``end`` are the times of the first and last record (they name the file).
    """
    if not containers:
        raise XRoadError(Code.INVALID_LOG_ARCHIVE, "An archive holds at least one container")
    if digest not in SUPPORTED_DIGESTS:
        raise XRoadError(Code.INVALID_LOG_ARCHIVE, f"Unsupported archive digest {digest.name}")
    names = [name for name, _ in containers]
    if len(set(names)) != len(names):
        raise XRoadError(Code.INVALID_LOG_ARCHIVE, "Container file names must be unique")
    for name in names:
        if not name.endswith(CONTAINER_SUFFIX) or "/" in name or any(c.isspace() for c in name):
            raise XRoadError(Code.INVALID_LOG_ARCHIVE, f"Bad container file name {name!r}")
    prev_digest, prev_name = previous or ("", "")
    last = prev_digest
    entries = []
    for name, content in containers:
        last = chain_digest(last, content, digest)
        entries.append((last, name))
    info = LinkingInfo(prev_digest, prev_name, digest.name, tuple(entries))
    when = end.astimezone(dt.UTC)
    date_time = (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for name, content in [*containers, (LINKING_INFO, info.render())]:
            entry = zipfile.ZipInfo(name, date_time=date_time)
            entry.create_system = 0
            entry.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(entry, content)
    return out.getvalue(), last, archive_file_name(start, end, last, group)


@dataclass(frozen=True)
class ArchiveReport:
    """The outcome of checking one archive's linking info (never raised: errors are data).

    ``last_digest`` is computed from the containers actually present (``None`` when the
    archive could not be read); ``containers`` are the ``.asice`` entries in ZIP order.
    """

    name: str
    valid: bool
    code: str | None
    detail: str
    checks: tuple[Check, ...]
    linking_info: LinkingInfo | None = None
    last_digest: str | None = None
    containers: tuple[tuple[str, bytes], ...] = ()

    def to_json(self) -> dict[str, object]:
        li = self.linking_info
        return {
            "valid": self.valid,
            "code": self.code,
            "detail": self.detail,
            "archive": self.name,
            "last_digest": self.last_digest,
            "previous_digest": li.previous_digest if li else None,
            "previous_archive": li.previous_name if li else None,
            "digest_algorithm": li.algorithm_name if li else None,
            "containers": [name for name, _ in self.containers],
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def verify_archive(
    data: bytes,
    previous_digest: str | None = None,
    previous_name: str | None = None,
    *,
    name: str = "archive",
    max_size: int = DEFAULT_MAX_SIZE,
) -> ArchiveReport:
    """Check an archive's linking info against its containers.

    ``previous_digest``: the last digest of the previous archive (``""`` = this must be the
    first archive, like NIIS ``--first``; ``None`` = the link is not checked).
    ``previous_name``: the previous archive's file name, checked when given.
    """
    checks: list[Check] = []
    info: LinkingInfo | None = None
    last: str | None = None
    containers: list[tuple[str, bytes]] = []

    def fail(detail: str, check: str) -> ArchiveReport:
        checks.append(Check(check, False, detail))
        return ArchiveReport(
            name=name,
            valid=False,
            code=Code.INVALID_LOG_ARCHIVE,
            detail=detail,
            checks=tuple(checks),
            linking_info=info,
            last_digest=last,
            containers=tuple(containers),
        )

    try:
        entries = read_zip(data, max_size, DEFAULT_MAX_ENTRIES, Code.INVALID_LOG_ARCHIVE)
    except XRoadError as err:
        return fail(
            f"File '{name}' cannot be extracted - it may not be a valid zip file. ({err.detail})",
            "zip",
        )
    checks.append(Check("zip", True, f"{len(entries)} entries"))
    raw_info = next((content for n, content in entries if n == LINKING_INFO), None)
    if raw_info is None:
        return fail(f"Linking info not found in archive file: {name}", "linkinginfo")
    try:
        info = LinkingInfo.parse(raw_info)
    except XRoadError as err:
        return fail(f"File '{name}' cannot be extracted: {err.detail}", "linkinginfo")
    checks.append(Check("linkinginfo", True, f"{len(info.entries)} files, {info.algorithm_name}"))
    containers = [(n, c) for n, c in entries if n.endswith(CONTAINER_SUFFIX)]
    running = info.previous_digest
    computed: dict[str, str] = {}
    for container_name, content in containers:
        running = chain_digest(running, content, info.algorithm)
        computed[container_name] = running
    last = running
    if not containers:
        return fail(
            f"There are no ASiC containers in archive file '{name}', at least one is expected.",
            "containers",
        )
    checks.append(Check("containers", True, f"{len(containers)} ASiC containers"))
    if previous_digest is not None:
        wanted = "" if previous_digest == "-" else previous_digest
        if wanted != info.previous_digest:
            return fail(
                "Last hash steps given by user and in linking info differ\n"
                f"\tBy user: '{wanted}'\n\tIn linking info: '{info.previous_digest}'",
                "link to previous archive",
            )
    if previous_name not in (None, "", "-") and previous_name != info.previous_name:
        return fail(
            "Previous archive file names given by user and in linking info differ\n"
            f"\tBy user: '{previous_name}'\n\tIn linking info: '{info.previous_name}'",
            "link to previous archive",
        )
    if previous_digest is None:
        link_detail = "not checked (linking info names " + (
            f"'{info.previous_name or '-'}', digest '{info.previous_digest[:16] or '-'}')"
        )
    else:
        link_detail = "first archive" if not info.previous_digest else "matches"
    checks.append(Check("link to previous archive", True, link_detail))
    in_archive = [n for n, _ in containers]
    listed = list(info.file_names)
    if set(in_archive) != set(listed) or len(set(listed)) != len(listed):
        return fail(
            "File names in linking info and in archive file differ\n"
            f"\tIn archive file: '{', '.join(in_archive)}'\n"
            f"\tIn linking info: '{', '.join(listed)}'",
            "file names",
        )
    checks.append(Check("file names", True, "linking info lists exactly the containers"))
    for container_name in in_archive:
        expected = info.digest_for(container_name)
        if computed[container_name] != expected:
            return fail(
                f"Digests of file '{container_name}' do not match:\n"
                f"\tDigest in linking info: {expected}\n"
                f"\tActual file digest: {computed[container_name]}",
                "digest chain",
            )
    checks.append(Check("digest chain", True, f"last digest {last}"))
    return ArchiveReport(
        name=name,
        valid=True,
        code=None,
        detail="",
        checks=tuple(checks),
        linking_info=info,
        last_digest=last,
        containers=tuple(containers),
    )


@dataclass(frozen=True)
class ChainReport:
    """The outcome of checking consecutive archives; ``reports`` follow the given order."""

    valid: bool
    code: str | None
    detail: str
    reports: tuple[ArchiveReport, ...]

    @property
    def last_digest(self) -> str | None:
        return self.reports[-1].last_digest if self.reports else None

    def to_json(self) -> dict[str, object]:
        return {
            "valid": self.valid,
            "code": self.code,
            "detail": self.detail,
            "last_digest": self.last_digest,
            "archives": [r.to_json() for r in self.reports],
        }


def verify_archive_chain(
    archives: Sequence[tuple[str, bytes]],
    *,
    previous_digest: str | None = None,
    previous_name: str | None = None,
) -> ChainReport:
    """Check ``(file name, bytes)`` archives in order, each linking to the one before.

    The first archive's link is checked against ``previous_digest``/``previous_name`` (see
    :func:`verify_archive`); a missing, extra or reordered archive breaks a link.
    """
    reports: list[ArchiveReport] = []
    prev_digest, prev_name = previous_digest, previous_name
    for archive_name, data in archives:
        report = verify_archive(data, prev_digest, prev_name, name=archive_name)
        reports.append(report)
        # Link the next archive to what this one really contains, even when it failed, so a
        # break is reported where it is.
        prev_digest = report.last_digest if report.last_digest is not None else "\x00unreadable"
        prev_name = archive_name
    failed = next((r for r in reports if not r.valid), None)
    if not reports:
        return ChainReport(False, Code.INVALID_LOG_ARCHIVE, "No archive files given", ())
    if failed is not None:
        detail = failed.detail
        if len(reports) > 1:
            detail = f"Archive file '{failed.name}': {detail}"
        return ChainReport(False, failed.code, detail, tuple(reports))
    return ChainReport(True, None, "", tuple(reports))
