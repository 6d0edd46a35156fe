"""MANIFEST "messagelog-archive": log archives with ``linkinginfo`` (ArchiveHashChainVerifier).

Each row goes through :func:`crossroad.crypto.archive.verify_archive` and ``crossroad verify``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossroad.cli.main import app
from crossroad.crypto.archive import LinkingInfo, verify_archive
from crossroad.errors import Code

LAST_2015 = "624334053a96e0e1209d342514b5d890aeaeee8f0659da69688a3eeac0304856"
LAST_2023 = (
    "9011ab557706b5050584d6888af7b390e5350f4edad296bd7a582aa51732aac7"
    "f49a4ec44dd361027945ade0de8b8cf607fb7b7d11f17b0560d44b965c358eaa"
)

# (file, expected error text prefix or None for VALID, last digest)
ROWS = [
    ("mlog-WITH_LINKINGINFO.zip", None, LAST_2015),
    ("message-archive-0.zip", None, LAST_2023),
    ("mlog-NO_LINKINGINFO.zip", "Linking info not found in archive file", None),
    (
        "mlog-NO_ASIC_CONTAINERS.zip",
        "There are no ASiC containers in archive file 'mlog-NO_ASIC_CONTAINERS.zip'",
        None,
    ),
    (
        "mlog-EXCESSIVE_FILES_IN_LINKINGINFO.zip",
        "File names in linking info and in archive file differ",
        None,
    ),
]


@pytest.mark.parametrize(("name", "error", "last"), ROWS)
def test_archive_rows(vectors: Path, name: str, error: str | None, last: str | None) -> None:
    data = (vectors / "messagelog-archive" / name).read_bytes()
    # Like NIIS --first: the previous digest is empty.
    report = verify_archive(data, "", name=name)
    if error is None:
        assert report.valid, report.detail
        assert report.code is None
        assert report.last_digest == last
    else:
        assert not report.valid
        assert report.code == Code.INVALID_LOG_ARCHIVE
        assert report.detail.startswith(error)


def test_first_lines(vectors: Path) -> None:
    import zipfile

    for name, algorithm in (
        ("mlog-WITH_LINKINGINFO.zip", "SHA-256"),
        ("message-archive-0.zip", "SHA-512"),
    ):
        with zipfile.ZipFile(vectors / "messagelog-archive" / name) as zf:
            info = LinkingInfo.parse(zf.read("linkinginfo"))
        assert (info.previous_digest, info.previous_name, info.algorithm_name) == (
            "",
            "",
            algorithm,
        )


def test_wrong_previous_digest(vectors: Path) -> None:
    data = (vectors / "messagelog-archive" / "message-archive-0.zip").read_bytes()
    report = verify_archive(data, "ab" * 64)
    assert not report.valid
    assert report.detail.startswith("Last hash steps given by user and in linking info differ")


@pytest.mark.parametrize(("name", "error", "last"), ROWS)
def test_archive_rows_through_cli(
    vectors: Path, name: str, error: str | None, last: str | None
) -> None:
    path = vectors / "messagelog-archive" / name
    runner = CliRunner()
    result = runner.invoke(app, ["verify", str(path), "--first", "--json"])
    assert result.exit_code == (0 if error is None else 1), result.output
    payload = json.loads(result.stdout)
    assert payload["valid"] is (error is None)
    assert payload["code"] == (None if error is None else Code.INVALID_LOG_ARCHIVE)
    if error is None:
        assert payload["last_digest"] == last
    else:
        assert payload["detail"].startswith(error)
    human = runner.invoke(app, ["verify", str(path), "--first"])
    assert human.exit_code == result.exit_code
    assert ("VALID" if error is None else "INVALID") in human.stdout
