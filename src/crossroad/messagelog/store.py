"""The message log's database: records, attachment chunks, time-stamps, archive bookkeeping
(protocols.md §9.1–9.2, §9.5; a shell over :mod:`crossroad.storage.messagelog_schema`).

Every write is one transaction.  A message record is inserted together with its attachments:
:class:`RecordWriter` inserts the row, then takes the body chunk by chunk (rows of at most
``chunk_size`` bytes), and commits or rolls back as a whole, so a record is never half logged.
It runs its few statements on the DB-API cursor (compiled once per dialect): it is on the path
of every message.
Time-stamps are stored atomically with the records they stamp, and only on records nobody
stamped in the meantime.  The archive bookkeeping (``archive_pending``, ``last_archive_digest``)
lives in :mod:`crossroad.messagelog.archive_store`.

Works on SQLite and PostgreSQL alike; writing transactions take SQLite's write lock up front
(``BEGIN IMMEDIATE``) so that concurrent writers queue instead of failing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from crossroad.crypto.asic import AsicContainer
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, ServiceId
from crossroad.messagelog.records import (
    MessageRecord,
    Side,
    StoredRecord,
    container_for,
)
from crossroad.storage import messagelog_schema as t
from crossroad.storage.engine import WRITE, migrate

#: Attachment bytes per ``logrecord_chunk`` row.
CHUNK_SIZE = 256 * 1024
_IN_BATCH = 500  # ids per IN (...) clause

_lr = t.logrecord
_ts = _lr.alias("ts")


@dataclass(frozen=True)
class TimestampStatus:
    """The shared time-stamping status: when stamping started failing (ms; None = it works)."""

    failed_since: int | None = None
    last_success: int | None = None
    last_error: str | None = None
    last_tsa: str | None = None


@dataclass(frozen=True)
class Pending:
    """A record waiting for its time-stamp."""

    id: int
    signature_hash: str
    signature: bytes


class _HotSql:
    """The logging path's statements, compiled once per dialect and run on the DB-API cursor:
    logging happens before every message is released, and SQLAlchemy's per-statement work
    would cost more than the database does."""

    def __init__(self, dialect: sa.Dialect) -> None:
        self.sqlite = dialect.name == "sqlite"
        self.positional = dialect.paramstyle in ("qmark", "numeric", "format")
        columns = list(_record_row_columns())
        record = _lr.insert().values({c: sa.bindparam(c) for c in columns}).returning(_lr.c.id)
        chunk = t.logrecord_chunk.insert().values(
            {c: sa.bindparam(c) for c in ("record", "attachment", "seq", "data")}
        )
        count = (
            _lr.update()
            .where(_lr.c.id == sa.bindparam("rid"))
            .values(attachments=sa.bindparam("count"))
        )
        self.record, self._record_names = self._compile(record, dialect)
        self.chunk, self._chunk_names = self._compile(chunk, dialect)
        self.count, self._count_names = self._compile(count, dialect)

    @staticmethod
    def _compile(stmt: Any, dialect: sa.Dialect) -> tuple[str, tuple[str, ...]]:
        compiled = stmt.compile(dialect=dialect)
        return str(compiled), tuple(compiled.positiontup or ())

    def args(self, which: str, params: dict[str, Any]) -> Any:
        if not self.positional:
            return params
        names = {"record": self._record_names, "chunk": self._chunk_names}.get(
            which, self._count_names
        )
        return tuple(params[n] for n in names)


_HOT: dict[str, _HotSql] = {}


def _hot(engine: sa.Engine) -> _HotSql:
    key = f"{engine.dialect.name}:{engine.dialect.paramstyle}"
    sql = _HOT.get(key)
    if sql is None:
        sql = _HOT[key] = _HotSql(engine.dialect)
    return sql


class RecordWriter:
    """One message record being logged: the row, then its attachments, then commit.

    Used from one thread at a time.  ``max_body``/``truncate`` apply NIIS's loggable body limit
    per attachment; ``attachments`` is how many will follow (the row says so from the start).
    With ``shared`` (a DB-API connection and cursor in a transaction) it writes into that
    transaction, which its owner commits (:mod:`.group_commit`).
    """

    def __init__(
        self,
        engine: sa.Engine,
        record: MessageRecord,
        *,
        chunk_size: int = CHUNK_SIZE,
        max_body: int | None = None,
        truncate: bool = False,
        attachments: int = 0,
        shared: tuple[Any, Any] | None = None,
    ) -> None:
        self._sql = _hot(engine)
        self._owned = shared is None
        self._raw = engine.raw_connection() if shared is None else shared[0]
        self._chunk_size = chunk_size
        self._max_body = max_body
        self._truncate = truncate
        self._planned = attachments
        self._attachment = 0
        self._seq = 0
        self._size = 0
        self._buffer = bytearray()
        self.closed = False
        try:
            self._cursor = self._raw.cursor() if shared is None else shared[1]
            if self._sql.sqlite and self._owned:
                # Take the write lock up front, as every writing transaction here does.
                self._cursor.execute("BEGIN IMMEDIATE")
            row = _record_row(record)
            row["attachments"] = attachments
            self._cursor.execute(self._sql.record, self._sql.args("record", row))
            inserted = self._cursor.fetchone()
            assert inserted is not None
            self.id = int(inserted[0])
        except Exception:
            self.rollback()
            raise

    def begin_attachment(self) -> None:
        self._flush()
        self._attachment += 1
        self._seq = 0
        self._size = 0

    def write(self, data: bytes) -> None:
        if not data:
            return
        if self._attachment == 0:
            self.begin_attachment()
        if self._max_body is not None and self._size + len(data) > self._max_body:
            if not self._truncate:
                raise XRoadError(
                    Code.LOGGING_FAILED, "Message attachment size exceeds maximum loggable size"
                )
            data = data[: max(0, self._max_body - self._size)]
        self._size += len(data)
        self._buffer += data
        while len(self._buffer) >= self._chunk_size:
            self._put(bytes(self._buffer[: self._chunk_size]))
            del self._buffer[: self._chunk_size]

    def _put(self, data: bytes) -> None:
        params = {"record": self.id, "attachment": self._attachment, "seq": self._seq, "data": data}
        self._cursor.execute(self._sql.chunk, self._sql.args("chunk", params))
        self._seq += 1

    def _flush(self) -> None:
        if self._buffer:
            self._put(bytes(self._buffer))
            self._buffer.clear()

    def commit(self) -> int:
        try:
            self._flush()
            if self._attachment != self._planned:
                params = {"rid": self.id, "count": self._attachment}
                self._cursor.execute(self._sql.count, self._sql.args("count", params))
            if self._owned:
                self._raw.commit()
        except BaseException:
            self.rollback()
            raise
        self.closed = True
        self._close()
        return self.id

    def rollback(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._owned:
            with contextlib.suppress(Exception):
                self._raw.rollback()
        self._close()

    def _close(self) -> None:
        if not self._owned:
            return
        with contextlib.suppress(Exception):
            self._cursor.close()
        with contextlib.suppress(Exception):
            self._raw.close()


def _record_row_columns() -> tuple[str, ...]:
    return (
        "discriminator", "time", "archived", "queryid", "xrequestid", "response", "side",
        "rest", "xroadinstance", "memberclass", "membercode", "subsystemcode", "service",
        "message", "signature", "hashchainresult", "hashchain", "signaturehash", "bodylogged",
        "attachments",
    )  # fmt: skip


def _record_row(record: MessageRecord) -> dict[str, Any]:
    c = record.client
    return {
        "discriminator": "m",
        "time": record.time_ms,
        "archived": False,
        "queryid": record.query_id[:255],
        "xrequestid": record.x_request_id[:255] if record.x_request_id else None,
        "response": record.response,
        "side": record.side.value,
        "rest": record.rest,
        "xroadinstance": c.instance,
        "memberclass": c.member_class,
        "membercode": c.member_code,
        "subsystemcode": c.subsystem_code or "",
        "service": str(record.service) if record.service is not None else None,
        "message": record.message,
        "signature": record.signature,
        "hashchainresult": record.hash_chain_result,
        "hashchain": record.hash_chain,
        "signaturehash": record.signature_hash,
        "bodylogged": record.body_logged,
        "attachments": 0,
    }


_COLUMNS = (
    _lr,
    _ts.c.timestamp.label("ts_token"),
    _ts.c.hashchainresult.label("ts_result"),
)


def stored_from_row(row: Any) -> StoredRecord:
    m = row._mapping
    client = ClientId(
        m["xroadinstance"], m["memberclass"], m["membercode"], m["subsystemcode"] or None
    )
    service = ServiceId.parse(m["service"]) if m["service"] else None
    record = MessageRecord(
        side=Side(m["side"]),
        response=bool(m["response"]),
        query_id=m["queryid"],
        client=client,
        service=service,
        rest=bool(m["rest"]),
        message=bytes(m["message"]),
        signature=bytes(m["signature"]),
        signature_hash=m["signaturehash"] or "",
        time_ms=int(m["time"]),
        x_request_id=m["xrequestid"],
        hash_chain_result=_opt_bytes(m["hashchainresult"]),
        hash_chain=_opt_bytes(m["hashchain"]),
        body_logged=bool(m["bodylogged"]),
    )
    return StoredRecord(
        id=int(m["id"]),
        record=record,
        attachments=int(m["attachments"] or 0),
        timestamp_id=m["timestamprecord"],
        timestamp=_opt_bytes(m["ts_token"]),
        ts_hash_chain_result=_opt_bytes(m["ts_result"]) if m["timestamphashchain"] else None,
        ts_hash_chain=_opt_bytes(m["timestamphashchain"]),
        archived=bool(m["archived"]),
        archive_file=m["archivefile"],
    )


def _opt_bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def chunked(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for i in range(0, len(ids), _IN_BATCH):
        yield ids[i : i + _IN_BATCH]


class MessageLogStore:
    """The message log tables of one database (migrated on open)."""

    def __init__(self, engine: sa.Engine, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.engine = engine
        self.chunk_size = chunk_size
        migrate(engine, t.COMPONENT)

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.execution_options(**WRITE).begin():
            yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- logging --------------------------------------------------------------------------

    def writer(
        self,
        record: MessageRecord,
        *,
        max_body: int | None = None,
        truncate: bool = False,
        attachments: int = 0,
    ) -> RecordWriter:
        return RecordWriter(
            self.engine,
            record,
            chunk_size=self.chunk_size,
            max_body=max_body,
            truncate=truncate,
            attachments=attachments,
        )

    def insert(
        self,
        record: MessageRecord,
        attachments: Sequence[Iterable[bytes]] = (),
        *,
        max_body: int | None = None,
        truncate: bool = False,
    ) -> int:
        """Log ``record`` with its attachments (each an iterable of chunks); returns its id."""
        writer = self.writer(
            record, max_body=max_body, truncate=truncate, attachments=len(attachments)
        )
        try:
            for attachment in attachments:
                writer.begin_attachment()
                for chunk in attachment:
                    writer.write(chunk)
            return writer.commit()
        except BaseException:
            writer.rollback()
            raise

    # -- reading --------------------------------------------------------------------------

    def select_records(self) -> sa.Select[Any]:
        return sa.select(*_COLUMNS).select_from(
            _lr.outerjoin(_ts, _lr.c.timestamprecord == _ts.c.id)
        )

    def get(self, record_id: int) -> StoredRecord | None:
        with self.read() as conn:
            row = conn.execute(
                self.select_records().where(_lr.c.id == record_id, _lr.c.discriminator == "m")
            ).first()
        return stored_from_row(row) if row is not None else None

    def find(
        self, query_id: str, client: ClientId, response: bool | None = None
    ) -> list[StoredRecord]:
        """The records of ``query_id`` whose local client is ``client`` (NIIS ``getByQueryId``)."""
        query = self.select_records().where(
            _lr.c.discriminator == "m",
            _lr.c.queryid == query_id,
            _lr.c.xroadinstance == client.instance,
            _lr.c.memberclass == client.member_class,
            _lr.c.membercode == client.member_code,
            _lr.c.subsystemcode == (client.subsystem_code or ""),
        )
        if response is not None:
            query = query.where(_lr.c.response == response)
        with self.read() as conn:
            return [stored_from_row(r) for r in conn.execute(query.order_by(_lr.c.id))]

    def records(
        self,
        *,
        limit: int = 50,
        after: int | None = None,
        query_id: str | None = None,
        stamped: bool | None = None,
        archived: bool | None = None,
        newest_first: bool = True,
    ) -> list[StoredRecord]:
        query = self.select_records().where(_lr.c.discriminator == "m")
        if query_id is not None:
            query = query.where(_lr.c.queryid == query_id)
        if stamped is not None:
            column = _lr.c.timestamprecord
            query = query.where(column.is_not(None) if stamped else column.is_(None))
        if archived is not None:
            query = query.where(_lr.c.archived == archived)
        if after is not None:
            query = query.where(_lr.c.id < after if newest_first else _lr.c.id > after)
        order = _lr.c.id.desc() if newest_first else _lr.c.id.asc()
        with self.read() as conn:
            return [stored_from_row(r) for r in conn.execute(query.order_by(order).limit(limit))]

    def attachment_chunks(self, record_id: int, attachment: int) -> Iterator[bytes]:
        """The chunks of one attachment (1-based), read a few rows at a time."""
        seq = 0
        while True:
            with self.read() as conn:
                rows = conn.execute(
                    sa.select(t.logrecord_chunk.c.seq, t.logrecord_chunk.c.data)
                    .where(
                        t.logrecord_chunk.c.record == record_id,
                        t.logrecord_chunk.c.attachment == attachment,
                        t.logrecord_chunk.c.seq >= seq,
                    )
                    .order_by(t.logrecord_chunk.c.seq)
                    .limit(8)
                ).all()
            if not rows:
                return
            for row in rows:
                yield bytes(row.data)
                seq = row.seq + 1

    def attachments(self, stored: StoredRecord) -> list[bytes]:
        return [
            b"".join(self.attachment_chunks(stored.id, i)) for i in range(1, stored.attachments + 1)
        ]

    def container(self, stored: StoredRecord) -> AsicContainer:
        return container_for(stored, self.attachments(stored))

    def counts(self) -> dict[str, int]:
        m = _lr.c
        with self.read() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.count().filter(m.discriminator == "m"),
                    sa.func.count().filter(m.discriminator == "m", m.timestamprecord.is_(None)),
                    sa.func.count().filter(m.discriminator == "m", m.archived.is_(True)),
                    sa.func.count().filter(m.discriminator == "t"),
                )
            ).one()
        return {"messages": row[0], "unstamped": row[1], "archived": row[2], "timestamps": row[3]}

    # -- time-stamping --------------------------------------------------------------------

    def unstamped(self, limit: int) -> list[Pending]:
        """The oldest records without a time-stamp (the time-stamper's queue)."""
        with self.read() as conn:
            rows = conn.execute(
                sa.select(_lr.c.id, _lr.c.signaturehash, _lr.c.signature)
                .where(_lr.c.discriminator == "m", _lr.c.timestamprecord.is_(None))
                .order_by(_lr.c.id)
                .limit(limit)
            ).all()
        return [Pending(int(r.id), r.signaturehash, bytes(r.signature)) for r in rows]

    def count_unstamped(self) -> int:
        with self.read() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(
                        _lr.c.discriminator == "m", _lr.c.timestamprecord.is_(None)
                    )
                ).scalar_one()
            )

    def _insert_timestamp(
        self, conn: sa.Connection, token: bytes, result: bytes | None, tsa: str, at_ms: int
    ) -> int:
        row = {
            "discriminator": "t",
            "time": at_ms,
            "archived": False,
            "timestamp": token,
            "hashchainresult": result,
            "tsaurl": tsa[:1024],
        }
        return int(conn.execute(_lr.insert().returning(_lr.c.id), row).scalar_one())

    def save_single_stamp(
        self,
        record_id: int,
        old_hash: str,
        signature: bytes,
        new_hash: str,
        token: bytes,
        tsa: str,
        at_ms: int,
    ) -> bool:
        """Store a single time-stamp: the signature with the token embedded, its new hash and
        the time-stamp record, atomically; False if the record was stamped meanwhile."""
        with self.write() as conn:
            ts_id = self._insert_timestamp(conn, token, None, tsa, at_ms)
            done = conn.execute(
                _lr.update()
                .where(
                    _lr.c.id == record_id,
                    _lr.c.timestamprecord.is_(None),
                    _lr.c.signaturehash == old_hash,
                )
                .values(signature=signature, signaturehash=new_hash, timestamprecord=ts_id)
            ).rowcount
            if done != 1:
                conn.rollback()
                return False
        return True

    def save_batch_stamp(
        self,
        record_ids: Sequence[int],
        token: bytes,
        result: bytes,
        chains: Sequence[bytes],
        tsa: str,
        at_ms: int,
    ) -> int:
        """Store a batch time-stamp and each record's chain, atomically; returns how many
        records it stamped (records stamped meanwhile are left as they are)."""
        if len(record_ids) != len(chains):
            raise XRoadError(Code.INTERNAL_ERROR, "Must have a hash chain for each log record")
        chain_of = dict(zip(record_ids, chains, strict=True))
        with self.write() as conn:
            waiting: list[int] = []
            for part in chunked(list(record_ids)):
                query = sa.select(_lr.c.id).where(
                    _lr.c.id.in_(part), _lr.c.timestamprecord.is_(None)
                )
                if conn.dialect.name == "postgresql":
                    query = query.with_for_update()
                waiting += [int(i) for i in conn.execute(query).scalars()]
            if not waiting:
                conn.rollback()
                return 0
            ts_id = self._insert_timestamp(conn, token, result, tsa, at_ms)
            conn.execute(
                _lr.update()
                .where(_lr.c.id == sa.bindparam("rid"))
                .values(timestamprecord=ts_id, timestamphashchain=sa.bindparam("chain")),
                [{"rid": i, "chain": chain_of[i]} for i in waiting],
            )
        return len(waiting)

    # -- shared status --------------------------------------------------------------------

    def status(self) -> TimestampStatus:
        s = t.messagelog_state
        with self.read() as conn:
            row = conn.execute(sa.select(s).where(s.c.id == 1)).first()
        if row is None:
            return TimestampStatus()
        return TimestampStatus(row.timestampfailed, row.lastsuccess, row.lasterror, row.lasttsa)

    def _upsert_status(self, conn: sa.Connection, values: dict[str, Any]) -> None:
        s = t.messagelog_state
        if conn.execute(s.update().where(s.c.id == 1).values(**values)).rowcount == 0:
            conn.execute(s.insert().values(id=1, **values))

    def set_failed(self, at_ms: int, error: str) -> TimestampStatus:
        """Record a failure; the failure period counts from the *first* failure."""
        s = t.messagelog_state
        with self.write() as conn:
            row = conn.execute(sa.select(s.c.timestampfailed).where(s.c.id == 1)).first()
            since = row.timestampfailed if row is not None and row.timestampfailed else at_ms
            self._upsert_status(conn, {"timestampfailed": since, "lasterror": error[:2000]})
        return self.status()

    def set_succeeded(self, at_ms: int, tsa: str | None) -> None:
        with self.write() as conn:
            values: dict[str, Any] = {"timestampfailed": None, "lastsuccess": at_ms}
            if tsa is not None:
                values["lasttsa"] = tsa[:1024]
            self._upsert_status(conn, values)
