"""The message log store on SQLite and PostgreSQL: records and attachments round trip, bodies
are written chunk by chunk, a failure leaves nothing behind, time-stamps are stored atomically,
and the migrated schema is the declared one."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from crossroad.crypto.algorithms import SHA512
from crossroad.errors import XRoadError
from crossroad.messagelog.records import Side
from crossroad.messagelog.store import MessageLogStore
from crossroad.storage import messagelog_schema
from crossroad.storage.engine import create_engine, current_revision

from .conftest import CLIENT, PROVIDER, Signers, make_record


@pytest.fixture
def pg_or_sqlite(database_url: str) -> Iterator[MessageLogStore]:
    engine = create_engine(database_url)
    yield MessageLogStore(engine, chunk_size=1000)
    engine.dispose()


def test_migrated_schema_equals_declared(pg_or_sqlite: MessageLogStore) -> None:
    engine = pg_or_sqlite.engine
    MessageLogStore(engine)  # migrating again is a no-op
    assert current_revision(engine, "messagelog") == "0001"
    with engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"compare_type": True}),
            messagelog_schema.metadata,
        )
    assert [d for d in diff if d[0] != "remove_table"] == []


def test_round_trip(pg_or_sqlite: MessageLogStore, signers: Signers) -> None:
    store = pg_or_sqlite
    body = bytes(range(256)) * 40  # 10 240 bytes: eleven chunks of at most 1000
    record = make_record(signers, rest=True, attachments=[body], x_request_id="rid-1")
    chunks = [body[i : i + 333] for i in range(0, len(body), 333)]
    rid = store.insert(record, [iter(chunks)])
    stored = store.get(rid)
    assert stored is not None
    assert stored.record == record
    assert stored.attachments == 1
    assert not stored.stamped
    assert stored.archived is False
    assert store.attachments(stored) == [body]
    assert all(len(c) <= 1000 for c in store.attachment_chunks(rid, 1))
    assert len(list(store.attachment_chunks(rid, 1))) == 11
    assert record.signature_hash == base64.b64encode(SHA512.digest(record.signature)).decode()
    assert record.client == CLIENT
    assert record.x_request_id == "rid-1"
    # the provider side keeps the provider as the record's client (NIIS does the same)
    server = make_record(signers, side=Side.SERVER, query_id=record.query_id)
    sid = store.insert(server)
    assert store.get(sid).record.client == PROVIDER  # type: ignore[union-attr]
    assert [r.id for r in store.find(record.query_id, CLIENT)] == [rid]
    assert [r.id for r in store.find(record.query_id, PROVIDER)] == [sid]
    assert store.find(record.query_id, CLIENT, response=True) == []
    assert store.count_unstamped() == 2
    assert [p.id for p in store.unstamped(10)] == [rid, sid]


def test_several_attachments_and_empty(pg_or_sqlite: MessageLogStore, signers: Signers) -> None:
    store = pg_or_sqlite
    parts = [b"first" * 300, b"", b"third"]
    record = make_record(signers, attachments=parts)
    rid = store.insert(record, [[p] for p in parts])
    stored = store.get(rid)
    assert stored is not None
    assert stored.attachments == 3
    assert store.attachments(stored) == parts


def test_failure_leaves_nothing(pg_or_sqlite: MessageLogStore, signers: Signers) -> None:
    store = pg_or_sqlite

    def broken() -> Iterator[bytes]:
        yield b"x" * 5000
        raise OSError("spool vanished")

    with pytest.raises(OSError, match="spool vanished"):
        store.insert(make_record(signers), [broken()])
    assert store.counts()["messages"] == 0
    with store.read() as conn:
        assert (
            conn.execute(
                sa.select(sa.func.count()).select_from(messagelog_schema.logrecord_chunk)
            ).scalar_one()
            == 0
        )


def test_loggable_body_limit(pg_or_sqlite: MessageLogStore, signers: Signers) -> None:
    store = pg_or_sqlite
    with pytest.raises(XRoadError) as err:
        store.insert(make_record(signers), [[b"x" * 2000]], max_body=1500)
    assert err.value.code == "logging_failed"
    rid = store.insert(
        make_record(signers), [[b"x" * 1000, b"y" * 1000]], max_body=1500, truncate=True
    )
    stored = store.get(rid)
    assert stored is not None
    assert store.attachments(stored) == [b"x" * 1000 + b"y" * 500]


def test_batch_stamp_is_atomic_and_skips_stamped(
    pg_or_sqlite: MessageLogStore, signers: Signers
) -> None:
    store = pg_or_sqlite
    ids = [store.insert(make_record(signers)) for _ in range(3)]
    assert store.save_batch_stamp(ids[:1], b"tok1", b"<r1/>", [b"<c1/>"], "http://tsa", 1) == 1
    # the first one is stamped already: only two of three are taken
    count = store.save_batch_stamp(ids, b"tok2", b"<r2/>", [b"a", b"b", b"c"], "http://tsa", 2)
    assert count == 2
    first, second = store.get(ids[0]), store.get(ids[1])
    assert first is not None
    assert second is not None
    assert first.timestamp == b"tok1"
    assert first.ts_hash_chain == b"<c1/>"
    assert second.timestamp == b"tok2"
    assert second.ts_hash_chain == b"b"
    assert second.ts_hash_chain_result == b"<r2/>"
    assert store.count_unstamped() == 0
    assert store.save_batch_stamp(ids, b"t", b"r", [b"a", b"b", b"c"], "u", 3) == 0
    assert store.counts()["timestamps"] == 2


def test_single_stamp_needs_the_old_hash(pg_or_sqlite: MessageLogStore, signers: Signers) -> None:
    store = pg_or_sqlite
    record = make_record(signers)
    rid = store.insert(record)
    assert not store.save_single_stamp(rid, "stale", b"<sig/>", "h", b"tok", "u", 1)
    assert store.save_single_stamp(rid, record.signature_hash, b"<sig/>", "h", b"tok", "u", 1)
    stored = store.get(rid)
    assert stored is not None
    assert stored.record.signature == b"<sig/>"
    assert stored.record.signature_hash == "h"
    assert stored.timestamp == b"tok"
    assert not stored.batch_stamped
    assert not store.save_single_stamp(rid, "h", b"<again/>", "h2", b"tok", "u", 2)


def test_shared_status(pg_or_sqlite: MessageLogStore) -> None:
    store = pg_or_sqlite
    assert store.status().failed_since is None
    store.set_failed(1000, "down")
    store.set_failed(5000, "still down")  # the period counts from the first failure
    status = store.status()
    assert status.failed_since == 1000
    assert status.last_error == "still down"
    store.set_succeeded(6000, "http://tsa")
    status = store.status()
    assert status.failed_since is None
    assert status.last_success == 6000
    assert status.last_tsa == "http://tsa"
