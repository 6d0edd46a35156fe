"""Log archives: linkinginfo, building, verifying one archive and a chain of archives."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crossroad.crypto.algorithms import SHA1, SHA256, SHA512
from crossroad.crypto.archive import (
    LinkingInfo,
    archive_file_name,
    build_archive,
    chain_digest,
    verify_archive,
    verify_archive_chain,
)
from crossroad.errors import Code, XRoadError

T0 = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
T1 = dt.datetime(2025, 1, 2, 9, 0, 0, tzinfo=dt.UTC)


def _containers(tag: str, n: int = 2) -> list[tuple[str, bytes]]:
    return [(f"q{tag}{i}-request-ABC{i}.asice", f"container {tag} {i}".encode()) for i in range(n)]


def _chain(count: int = 3) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    previous = None
    for i in range(count):
        data, last, name = build_archive(_containers(str(i)), previous, start=T0, end=T1)
        out.append((name, data))
        previous = (last, name)
    return out


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return out.getvalue()


def test_chain_digest_definition() -> None:
    prev = "ab" * 32
    content = b"hello"
    inner = hashlib.sha512(content).hexdigest()
    assert (
        chain_digest(prev, content, SHA512) == hashlib.sha512((prev + inner).encode()).hexdigest()
    )


def test_build_first_archive() -> None:
    containers = _containers("a", 3)
    data, last, name = build_archive(containers, None, start=T0, end=T1)
    zf = zipfile.ZipFile(io.BytesIO(data))
    assert zf.namelist() == [n for n, _ in containers] + ["linkinginfo"]
    lines = zf.read("linkinginfo").decode().splitlines()
    assert lines[0] == "- - SHA-512"
    running = ""
    for line, (cname, content) in zip(lines[1:], containers, strict=True):
        running = chain_digest(running, content, SHA512)
        assert line == f"{running} {cname}"
    assert last == running
    assert name == f"mlog-20250102030405-20250102090000-{last[:16]}.zip"
    report = verify_archive(data, "", name=name)
    assert report.valid, report.detail
    assert report.last_digest == last
    assert [c.name for c in report.checks] == [
        "zip",
        "linkinginfo",
        "containers",
        "link to previous archive",
        "file names",
        "digest chain",
    ]
    assert build_archive(containers, None, start=T0, end=T1)[0] == data  # deterministic


def test_file_name_with_group() -> None:
    name = archive_file_name(T0, T1, "0123456789abcdef0123", group="GOV/123:x")
    assert name == "mlog-GOV_123_x-20250102030405-20250102090000-0123456789abcdef.zip"


def test_chain_of_three_verifies() -> None:
    archives = _chain(3)
    report = verify_archive_chain(archives, previous_digest="")
    assert report.valid, report.detail
    assert report.last_digest == report.reports[-1].last_digest
    # Each archive names its predecessor.
    for (prev_name, _), rep in zip(archives, report.reports[1:], strict=False):
        assert rep.linking_info is not None
        assert rep.linking_info.previous_name == prev_name


def test_removed_archive_is_detected() -> None:
    archives = _chain(3)
    report = verify_archive_chain([archives[0], archives[2]])
    assert not report.valid
    assert report.code == Code.INVALID_LOG_ARCHIVE
    assert report.reports[1].name == archives[2][0]
    assert "Last hash steps given by user and in linking info differ" in report.detail


def test_reordered_archives_are_detected() -> None:
    archives = _chain(3)
    report = verify_archive_chain([archives[1], archives[0], archives[2]])
    assert not report.valid
    assert not report.reports[1].valid


def test_first_archive_must_start_when_asked() -> None:
    archives = _chain(2)
    assert not verify_archive(archives[1][1], "").valid
    assert verify_archive(archives[1][1]).valid  # link not checked
    assert verify_archive(archives[1][1], previous_name=archives[0][0]).valid
    bad = verify_archive(archives[1][1], previous_name="mlog-other.zip")
    assert not bad.valid
    assert "file names given by user" in bad.detail


def test_reordered_containers_are_detected() -> None:
    containers = _containers("x", 3)
    data, _, _ = build_archive(containers, None, start=T0, end=T1)
    info = zipfile.ZipFile(io.BytesIO(data)).read("linkinginfo")
    swapped = _zip([containers[1], containers[0], containers[2], ("linkinginfo", info)])
    report = verify_archive(swapped, "")
    assert not report.valid
    assert report.detail.startswith("Digests of file ")


def test_changed_container_is_detected() -> None:
    containers = _containers("x", 2)
    data, _, _ = build_archive(containers, None, start=T0, end=T1)
    info = zipfile.ZipFile(io.BytesIO(data)).read("linkinginfo")
    changed = _zip([containers[0], (containers[1][0], b"forged"), ("linkinginfo", info)])
    assert not verify_archive(changed).valid


def test_removed_container_is_detected() -> None:
    containers = _containers("x", 2)
    data, _, _ = build_archive(containers, None, start=T0, end=T1)
    info = zipfile.ZipFile(io.BytesIO(data)).read("linkinginfo")
    report = verify_archive(_zip([containers[0], ("linkinginfo", info)]))
    assert report.detail.startswith("File names in linking info and in archive file differ")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("a.asice", b"x")], "Linking info not found in archive file"),
        ([("linkinginfo", b"- - SHA-512\n")], "There are no ASiC containers in archive file"),
        ([("a.asice", b"x"), ("linkinginfo", b"- -\n")], "cannot be extracted"),
        ([("a.asice", b"x"), ("linkinginfo", b"- - SHA-512\nabc\n")], "cannot be extracted"),
        ([("a.asice", b"x"), ("linkinginfo", b"- - SHA-1\nab a.asice\n")], "not supported"),
        ([("a.asice", b"x"), ("linkinginfo", b"\xff\n")], "cannot be extracted"),
    ],
)
def test_invalid_archives(entries: list[tuple[str, bytes]], message: str) -> None:
    report = verify_archive(_zip(entries), name="arch.zip")
    assert not report.valid
    assert report.code == Code.INVALID_LOG_ARCHIVE
    assert message in report.detail
    assert not report.checks[-1].ok


@pytest.mark.parametrize("data", [b"", b"garbage", b"PK\x03\x04" + b"\x00" * 40])
def test_not_a_zip(data: bytes) -> None:
    report = verify_archive(data, name="x.zip")
    assert report.code == Code.INVALID_LOG_ARCHIVE
    assert "cannot be extracted - it may not be a valid zip file" in report.detail


def test_empty_zip_has_no_linking_info() -> None:
    report = verify_archive(b"PK\x05\x06" + b"\x00" * 18, name="x.zip")
    assert report.detail == "Linking info not found in archive file: x.zip"


def test_linking_info_round_trip_and_spellings() -> None:
    text = b"abc first.zip SHA256\r\nd1 a.asice\r\nd2 b.asice\r\n\r\n"
    info = LinkingInfo.parse(text)
    assert info.previous_digest == "abc"
    assert info.previous_name == "first.zip"
    assert info.algorithm is SHA256
    assert info.file_names == ("a.asice", "b.asice")
    assert info.last_digest == "d2"
    assert info.digest_for("b.asice") == "d2"
    assert LinkingInfo.parse(info.render()) == info
    assert LinkingInfo.parse(b"- - SHA-256\n").algorithm is SHA256


def test_build_archive_refusals() -> None:
    with pytest.raises(XRoadError):
        build_archive([], None, start=T0, end=T1)
    with pytest.raises(XRoadError):
        build_archive([("a.asice", b"1"), ("a.asice", b"2")], None, start=T0, end=T1)
    with pytest.raises(XRoadError):
        build_archive([("a b.asice", b"1")], None, start=T0, end=T1)
    with pytest.raises(XRoadError):
        build_archive([("a.txt", b"1")], None, start=T0, end=T1)
    with pytest.raises(XRoadError):
        build_archive([("a.asice", b"1")], None, SHA1, start=T0, end=T1)


def test_sha256_archive() -> None:
    data, last, _ = build_archive(
        _containers("s"), ("ff" * 32, "prev.zip"), SHA256, start=T0, end=T1
    )
    report = verify_archive(data, "ff" * 32, "prev.zip")
    assert report.valid
    assert report.last_digest == last
    assert len(last) == 64


ARCHIVE = _chain(1)[0][1]
ORIGINAL = verify_archive(ARCHIVE, "").containers


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, len(ARCHIVE) - 1), st.integers(1, 255))
def test_flipped_byte_is_never_a_forgery(index: int, mask: int) -> None:
    data = bytearray(ARCHIVE)
    data[index] ^= mask
    report = verify_archive(bytes(data), "")
    if report.valid:
        assert report.containers == ORIGINAL
    else:
        assert report.code == Code.INVALID_LOG_ARCHIVE


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_linking_info_random(data: bytes) -> None:
    try:
        LinkingInfo.parse(data)
    except XRoadError as err:
        code = err.code
    else:
        code = Code.INVALID_LOG_ARCHIVE
    assert code == Code.INVALID_LOG_ARCHIVE


@pytest.mark.parametrize("first_line", [b"a b c", b"- - SHA-999", b"- - MD5"])
def test_unknown_linking_digest_is_an_archive_error(first_line: bytes) -> None:
    with pytest.raises(XRoadError) as err:
        LinkingInfo.parse(first_line + b"\n")
    assert err.value.code == Code.INVALID_LOG_ARCHIVE
