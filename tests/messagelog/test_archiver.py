"""Archiving: files with ``linkinginfo`` continued across files and runs, grouping, a removed or
reordered file detected, crashes between writing a file and committing it (no duplicate, no
broken chain after the restart), the cleaner, and OpenPGP encryption through gpg."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from crossroad.crypto.archive import verify_archive, verify_archive_chain
from crossroad.errors import XRoadError
from crossroad.evidence.verifier import verify_archive_files
from crossroad.messagelog.archive_store import ArchiveStore, PendingArchive
from crossroad.messagelog.archiver import Archiver, ArchiveRun
from crossroad.messagelog.cleaner import clean_once
from crossroad.messagelog.manager import MessageLog
from crossroad.messagelog.records import Grouping, Side, record_id_from_name
from crossroad.messagelog.settings import LogSettings
from crossroad.messagelog.store import MessageLogStore
from crossroad.testing.clock import FrozenClock

from .conftest import OTHER, Conf, Signers, make_record

pytestmark = pytest.mark.integration


def logged_and_stamped(mlog: MessageLog, signers: Signers, count: int, **kw: Any) -> None:
    for i in range(count):
        attachments = [b"attachment %d " % i * 50] if i % 3 == 0 else []
        mlog.log(make_record(signers, attachments=attachments, **kw), [[a] for a in attachments])

    async def go() -> None:
        result = await mlog.timestamper.stamp_once()
        await mlog.close()
        assert result.ok, result.error

    asyncio.run(go())


def files_of(run: ArchiveRun) -> list[tuple[str, bytes]]:
    return [(f.path.name, f.path.read_bytes()) for f in run.files]


def all_containers(files: list[tuple[str, bytes]]) -> list[str]:
    names = []
    for name, data in files:
        report = verify_archive(data, name=name)
        assert report.valid, report.detail
        names += [n for n, _ in report.containers]
    return names


@pytest.fixture
def small(settings: LogSettings) -> LogSettings:
    # A few containers per file: every test makes a chain of several files.
    return settings.replace(archive_max_filesize=40_000)


def test_chain_over_several_files(
    store: MessageLogStore, small: LogSettings, conf: Conf, signers: Signers
) -> None:
    mlog = MessageLog(store, small, conf)
    logged_and_stamped(mlog, signers, 12)
    progress: list[tuple[int, int]] = []
    run = Archiver(store, small).archive_once(lambda done, total: progress.append((done, total)))
    assert len(run.files) >= 3
    assert run.records == 12
    assert progress[0] == (0, 12)
    assert progress[-1] == (12, 12)
    files = files_of(run)
    chain = verify_archive_chain(files, previous_digest="")
    assert chain.valid, chain.detail
    names = all_containers(files)
    assert len(names) == len(set(names)) == 12
    assert all(n.startswith("mlog-") and n.endswith(".zip") for n, _ in files)
    # every container in the archives verifies as evidence
    snapshot = conf()
    assert snapshot is not None
    full = verify_archive_files(files, snapshot.trust_policy(), previous_digest="")
    assert full.valid, full.detail
    assert store.counts()["archived"] == 12
    assert ArchiveStore(store).last_archive("") == (chain.last_digest, files[-1][0])

    # a removed or reordered file breaks the chain
    removed = verify_archive_chain([files[0], *files[2:]], previous_digest="")
    assert not removed.valid
    assert removed.code == "invalid_log_archive"
    reordered = verify_archive_chain([files[1], files[0], *files[2:]], previous_digest="")
    assert not reordered.valid

    # the next run continues the chain from the last file
    logged_and_stamped(mlog, signers, 4)
    more = Archiver(store, small).archive_once()
    chain = verify_archive_chain(files + files_of(more), previous_digest="")
    assert chain.valid, chain.detail
    assert Archiver(store, small).archive_once().files == []


def test_grouping(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers
) -> None:
    grouped = settings.replace(archive_grouping=Grouping.MEMBER)
    mlog = MessageLog(store, grouped, conf)
    logged_and_stamped(mlog, signers, 3)
    logged_and_stamped(mlog, signers, 2, client=OTHER)
    logged_and_stamped(mlog, signers, 2, side=Side.SERVER)  # the provider EE/GOV/222
    run = Archiver(store, grouped).archive_once()
    groups = {f.group: f for f in run.files}
    assert set(groups) == {"EE/COM/111", "EE/COM/333", "EE/GOV/222"}
    assert groups["EE/COM/111"].records == 3
    assert groups["EE/COM/111"].path.name.startswith("mlog-EE_COM_111-")
    for archive_file in run.files:
        report = verify_archive(archive_file.path.read_bytes(), "", name=archive_file.path.name)
        assert report.valid, report.detail
    by_subsystem = settings.replace(archive_grouping=Grouping.SUBSYSTEM)
    logged_and_stamped(MessageLog(store, by_subsystem, conf), signers, 1)
    (one,) = Archiver(store, by_subsystem).archive_once().files
    assert one.group == "EE/COM/111/client"
    assert one.path.name.startswith("mlog-EE_COM_111_client-")


class Crash(Exception):
    pass


def crash(path: Path) -> None:
    raise Crash(path.name)


def test_crash_after_write_rolls_forward(
    store: MessageLogStore, small: LogSettings, conf: Conf, signers: Signers
) -> None:
    mlog = MessageLog(store, small, conf)
    logged_and_stamped(mlog, signers, 10)
    first = Archiver(store, small).archive_once()  # a chain exists before the crash
    logged_and_stamped(mlog, signers, 10)
    with pytest.raises(Crash) as crashed:
        Archiver(store, small, after_write=crash).archive_once()
    written = small.archive_dir / str(crashed.value)  # type: ignore[operator]
    assert written.is_file()
    assert ArchiveStore(store).pending()[0].filename == written.name
    assert store.counts()["archived"] == 10
    # restart: the file in place is committed, the rest archived after it
    run = Archiver(store, small).archive_once()
    assert run.recovered == [written.name]
    files = [*files_of(first), (written.name, written.read_bytes()), *files_of(run)]
    chain = verify_archive_chain(files, previous_digest="")
    assert chain.valid, chain.detail
    names = all_containers(files)
    assert len(names) == len(set(names)) == 20
    assert sorted(record_id_from_name(n) or 0 for n in names) == sorted(
        r.id for r in store.records(limit=100)
    )
    assert store.counts()["archived"] == 20
    assert ArchiveStore(store).pending() == []
    assert sorted(p.name for p in small.archive_dir.iterdir()) == sorted(n for n, _ in files)  # type: ignore[union-attr]


@pytest.mark.parametrize("damage", ["missing", "truncated"])
def test_crash_before_the_file_is_whole_releases(
    store: MessageLogStore, small: LogSettings, conf: Conf, signers: Signers, damage: str
) -> None:
    mlog = MessageLog(store, small, conf)
    logged_and_stamped(mlog, signers, 8)
    with pytest.raises(Crash) as crashed:
        Archiver(store, small, after_write=crash).archive_once()
    written = small.archive_dir / str(crashed.value)  # type: ignore[operator]
    if damage == "missing":  # the crash came before the rename
        written.unlink()
    else:
        written.write_bytes(written.read_bytes()[:100])
    (small.archive_dir / "tmp-mlog-123.tmp").write_bytes(b"half")  # type: ignore[operator]
    run = Archiver(store, small).archive_once()
    assert run.released == [written.name]
    assert not (small.archive_dir / "tmp-mlog-123.tmp").exists()  # type: ignore[operator]
    files = files_of(run)
    assert verify_archive_chain(files, previous_digest="").valid
    names = all_containers(files)
    assert len(names) == len(set(names)) == 8
    assert sorted(p.name for p in small.archive_dir.iterdir()) == sorted(n for n, _ in files)  # type: ignore[union-attr]


def test_concurrent_archiver_cannot_fork_the_chain(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers
) -> None:
    mlog = MessageLog(store, settings, conf)
    logged_and_stamped(mlog, signers, 2)
    archives = ArchiveStore(store)
    with pytest.raises(Crash):
        Archiver(store, settings, after_write=crash).archive_once()
    (pending,) = archives.pending()
    # another archiver may not begin a file in the same group while one is pending
    with pytest.raises(XRoadError):
        archives.begin(PendingArchive("x.zip", "", "", "", "d", 0, 0), [])
    archives.commit(pending.filename)
    with pytest.raises(XRoadError):  # the chain moved on: "" is no longer the last digest
        archives.begin(PendingArchive("y.zip", "", "", "", "d", 0, 0), [])


def test_cleaner(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers
) -> None:
    mlog = MessageLog(store, settings, conf)
    logged_and_stamped(mlog, signers, 4)
    Archiver(store, settings).archive_once()
    logged_and_stamped(mlog, signers, 2)  # stamped, not archived: must stay
    mlog.log(make_record(signers))  # not even stamped: must stay
    clock = FrozenClock(dt.datetime.now(dt.UTC))
    assert clean_once(store, settings, clock) == 0  # too young
    clock.advance(31 * 86400)
    assert clean_once(store, settings, clock) == 4
    counts = store.counts()
    assert counts["messages"] == 3
    assert counts["archived"] == 0
    assert counts["timestamps"] == 1  # the archived records' stamp went with them


def test_encrypted_archives(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers, tmp_path: Path
) -> None:
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed")
    home = tmp_path / "g"
    home.mkdir(mode=0o700)
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--passphrase", "", "--quick-gen-key",
         "mlog archive <mlog@example.test>", "future-default", "default", "never"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    encrypted = settings.replace(archive_encryption=True, archive_gpg_home=home)
    mlog = MessageLog(store, encrypted, conf)
    logged_and_stamped(mlog, signers, 3)
    (archive_file,) = Archiver(store, encrypted).archive_once().files
    assert archive_file.path.name.endswith(".zip.gpg")
    data = archive_file.path.read_bytes()
    assert not data.startswith(b"PK")
    clear = subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--decrypt"],
        input=data, check=True, capture_output=True, timeout=60,
    ).stdout  # fmt: skip
    report = verify_archive(clear, "", name=archive_file.path.name)
    assert report.valid, report.detail
    assert report.linking_info is not None
    assert report.linking_info.previous_digest == ""
    assert len(report.containers) == 3
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], check=False)


def same_entries(a: bytes, b: bytes) -> bool:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(a)) as za, zipfile.ZipFile(io.BytesIO(b)) as zb:
        return [(i.filename, za.read(i)) for i in za.infolist()] == [
            (i.filename, zb.read(i)) for i in zb.infolist()
        ]


def test_flipped_bytes_are_detected(
    store: MessageLogStore, settings: LogSettings, conf: Conf, signers: Signers
) -> None:
    import random

    from crossroad.evidence.verifier import verify_container

    mlog = MessageLog(store, settings, conf)
    logged_and_stamped(mlog, signers, 3)
    trust = conf().trust_policy()  # type: ignore[union-attr]
    stored = store.records(limit=1)[0]
    container = store.container(stored)
    data = container.render()
    assert verify_container(data, trust).valid
    # the message changed by one byte: the signature's reference no longer matches
    message = bytearray(container.message)
    message[message.index(b"<ns:n>1") + 6] ^= 0x01
    changed = dataclasses.replace(container, message=bytes(message), manifest=None)
    report = verify_container(changed.render(), trust)
    assert (report.valid, report.code) == (False, "invalid_signature_value")
    # any byte of the file flipped: invalid, unless the byte is ZIP bookkeeping no reader
    # uses (a time, a "version made by") and every entry still reads the same
    rng = random.Random(3)
    for position in rng.sample(range(len(data)), 60):
        flipped = bytearray(data)
        flipped[position] ^= 0xFF
        if verify_container(bytes(flipped), trust).valid:
            assert same_entries(bytes(flipped), data), position
    (archive_file,) = Archiver(store, settings).archive_once().files
    archive = archive_file.path.read_bytes()
    assert verify_archive(archive, "").valid
    for position in rng.sample(range(len(archive)), 60):
        flipped = bytearray(archive)
        flipped[position] ^= 0xFF
        checked = verify_archive(bytes(flipped), "")
        if checked.valid:
            assert same_entries(bytes(flipped), archive), position
        else:
            assert checked.code == "invalid_log_archive"
