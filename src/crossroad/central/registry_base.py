"""What every part of the central server registry shares: transactions that write history,
input checks, and lookups of members, subsystems and security servers (protocols.md §11.1).

Every change goes through :class:`Tx` (``insert``/``update``/``delete``), which writes the
``history`` row (who, when, table, operation, old and new values as JSON) in the same
transaction as the change.  Database failures become coded errors at this boundary.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from crossroad.clock import SYSTEM, Clock
from crossroad.crypto.certs import cert_der, load_certificate
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.storage import central_schema as t
from crossroad.storage.engine import WRITE

#: Values never copied into the history table.
_SECRET_COLUMNS = {("api_keys", "key_hash")}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A host name (RFC 1123 labels) or an IPv4/IPv6 address, optionally with a port.
_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")

# System parameter keys (NIIS names, protocols.md §11.1).
INSTANCE_IDENTIFIER = "instanceIdentifier"
CENTRAL_SERVER_ADDRESS = "centralServerAddress"
OWNERS_GROUP = "securityServerOwnersGroup"
OWNERS_GROUP_DESCRIPTION = "Security server owners"


def utc(value: dt.datetime | None) -> dt.datetime | None:
    """Datetimes come back naive from SQLite; everything we write is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _json_value(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dt.datetime):
        return utc(value).isoformat()  # type: ignore[union-attr]
    return value


def _row_json(table: sa.Table, row: sa.RowMapping | dict[str, Any] | None) -> str | None:
    if row is None:
        return None
    data = {k: _json_value(v) for k, v in row.items() if (table.name, k) not in _SECRET_COLUMNS}
    return json.dumps(data, sort_keys=True, ensure_ascii=False)


class Tx:
    """One write transaction of one actor at one instant; every change is recorded in history."""

    def __init__(self, conn: sa.Connection, actor: str, now: dt.datetime) -> None:
        self.conn = conn
        self.actor = actor
        self.now = now

    def _pk(self, table: sa.Table) -> sa.Column[Any]:
        return next(iter(table.primary_key.columns))

    def _history(self, table: sa.Table, operation: str, key: object, old: Any, new: Any) -> None:
        self.conn.execute(
            t.history.insert().values(
                actor=self.actor,
                at=self.now,
                table_name=table.name,
                operation=operation,
                record_id=None if key is None else str(key),
                old_data=_row_json(table, old),
                new_data=_row_json(table, new),
            )
        )

    def insert(self, table: sa.Table, **values: Any) -> Any:
        """Insert one row (timestamps filled in) and return its primary key."""
        for column in ("created_at", "updated_at"):
            if column in table.c and column not in values:
                values[column] = self.now
        pk = self._pk(table)
        result = self.conn.execute(table.insert().values(**values))
        key = values.get(pk.name)
        if key is None:
            inserted = result.inserted_primary_key
            assert inserted is not None
            key = inserted[0]
            values = {pk.name: key, **values}
        self._history(table, "INSERT", key, None, values)
        return key

    def update(self, table: sa.Table, key: Any, **values: Any) -> None:
        pk = self._pk(table)
        old = self.conn.execute(sa.select(table).where(pk == key)).mappings().first()
        if old is None:
            raise XRoadError(Code.INTERNAL_ERROR, f"{table.name} row {key} vanished")
        if "updated_at" in table.c:
            values.setdefault("updated_at", self.now)
        self.conn.execute(table.update().where(pk == key).values(**values))
        self._history(table, "UPDATE", key, old, {**old, **values})

    def delete(self, table: sa.Table, *criteria: sa.ColumnElement[bool]) -> int:
        """Delete the rows matching ``criteria`` (each recorded); returns how many."""
        pk = self._pk(table)
        rows = self.conn.execute(sa.select(table).where(*criteria)).mappings().all()
        for row in rows:
            self.conn.execute(table.delete().where(pk == row[pk.name]))
            self._history(table, "DELETE", row[pk.name], row, None)
        return len(rows)

    # -- system parameters --

    def parameter(self, key: str) -> str | None:
        return self.conn.execute(
            sa.select(t.system_parameters.c.value).where(t.system_parameters.c.key == key)
        ).scalar()

    def set_parameter(self, key: str, value: str | None) -> None:
        current = self.parameter(key)
        if value is None:
            if current is not None:
                self.delete(t.system_parameters, t.system_parameters.c.key == key)
        elif current is None:
            self.insert(t.system_parameters, key=key, value=value)
        elif current != value:
            self.update(t.system_parameters, key, value=value)


class RegistryBase:
    """Engine, actor and clock, transactions, and the lookups every registry part needs."""

    def __init__(
        self,
        engine: sa.Engine,
        actor: str = "cli",
        *,
        clock: Clock = SYSTEM,
        strict_identifiers: bool = True,
    ) -> None:
        self.engine = engine
        self.actor = actor
        self.clock = clock
        self.strict_identifiers = strict_identifiers
        self._batch: Tx | None = None

    # -- transactions --

    @contextmanager
    def _write(self) -> Iterator[Tx]:
        if self._batch is not None:
            yield self._batch
            return
        with _database_errors(), self.engine.connect() as conn:
            conn.execution_options(**WRITE)
            with conn.begin():
                yield Tx(conn, self.actor, self.clock.now())

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        if self._batch is not None:
            yield self._batch.conn
            return
        with _database_errors(), self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run every call inside the block in one transaction (all or nothing; faster for
        bulk loads).  A registry in a batch must not be shared between threads."""
        if self._batch is not None:
            yield
            return
        with self._write() as tx:
            self._batch = tx
            try:
                yield
            finally:
                self._batch = None

    # -- identifiers --

    def _instance(self, conn: sa.Connection) -> str:
        value = Tx(conn, self.actor, self.clock.now()).parameter(INSTANCE_IDENTIFIER)
        if not value:
            raise XRoadError(
                Code.INSTANCE_IDENTIFIER_NOT_SET,
                "The instance identifier is not set: initialize the central server first",
            )
        return value

    def instance_identifier(self) -> str:
        with self._read() as conn:
            return self._instance(conn)

    def _check_client(self, conn: sa.Connection, client: ClientId) -> None:
        client.validate(strict=self.strict_identifiers)
        instance = self._instance(conn)
        if client.instance != instance:
            raise XRoadError(
                Code.INVALID_CLIENT_IDENTIFIER,
                f"{client} belongs to instance {client.instance}, this is {instance}",
            )

    def _member_row(self, conn: sa.Connection, client: ClientId) -> sa.RowMapping:
        """The ``members`` row of ``client``'s member (``member_not_found`` if absent)."""
        self._check_client(conn, client)
        row = (
            conn.execute(
                sa.select(t.members)
                .join(t.member_classes, t.members.c.member_class_id == t.member_classes.c.id)
                .where(
                    t.member_classes.c.code == client.member_class,
                    t.members.c.member_code == client.member_code,
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise XRoadError(Code.MEMBER_NOT_FOUND, f"No member {client.member_id()}")
        return row

    def _subsystem_row(self, conn: sa.Connection, client: ClientId) -> sa.RowMapping:
        member = self._member_row(conn, client)
        row = (
            conn.execute(
                sa.select(t.subsystems).where(
                    t.subsystems.c.member_id == member["id"],
                    t.subsystems.c.subsystem_code == client.subsystem_code,
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise XRoadError(Code.SUBSYSTEM_NOT_FOUND, f"No subsystem {client}")
        return row

    def _client_ref(self, conn: sa.Connection, client: ClientId) -> tuple[int, int | None]:
        """(member id, subsystem id or None) of an existing member or subsystem."""
        if client.subsystem_code is None:
            return self._member_row(conn, client)["id"], None
        row = self._subsystem_row(conn, client)
        return row["member_id"], row["id"]

    def _server_row(self, conn: sa.Connection, server: SecurityServerId) -> sa.RowMapping:
        server.validate(strict=self.strict_identifiers)
        try:
            owner = self._member_row(conn, server.owner)
        except XRoadError as exc:
            if exc.code != Code.MEMBER_NOT_FOUND:
                raise
            raise XRoadError(
                Code.SECURITY_SERVER_NOT_FOUND, f"No security server {server}"
            ) from None
        row = (
            conn.execute(
                sa.select(t.security_servers).where(
                    t.security_servers.c.owner_id == owner["id"],
                    t.security_servers.c.server_code == server.server_code,
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise XRoadError(Code.SECURITY_SERVER_NOT_FOUND, f"No security server {server}")
        return row

    def _client_ids(self, conn: sa.Connection) -> _ClientIds:
        return _ClientIds(conn, self._instance(conn))

    def _owners_group_code(self, tx: Tx) -> str:
        return tx.parameter(OWNERS_GROUP) or "security-server-owners"

    def _owners_group_id(self, tx: Tx) -> int:
        """The security-server-owners group, created on first use."""
        code = self._owners_group_code(tx)
        found = tx.conn.execute(
            sa.select(t.global_groups.c.id).where(t.global_groups.c.group_code == code)
        ).scalar()
        if found is not None:
            return int(found)
        return int(
            tx.insert(t.global_groups, group_code=code, description=OWNERS_GROUP_DESCRIPTION)
        )


class _ClientIds:
    """Maps (member id, subsystem id) rows back to :class:`ClientId` values, in bulk."""

    def __init__(self, conn: sa.Connection, instance: str) -> None:
        m, c = t.members, t.member_classes
        self.members = {
            row.id: ClientId(instance, row.code, row.member_code)
            for row in conn.execute(
                sa.select(m.c.id, c.c.code, m.c.member_code).join(c, m.c.member_class_id == c.c.id)
            )
        }
        self._subsystems: dict[int, str] | None = None
        self._conn = conn

    def subsystem_code(self, subsystem_id: int) -> str:
        if self._subsystems is None:
            s = t.subsystems
            self._subsystems = {
                row.id: row.subsystem_code
                for row in self._conn.execute(sa.select(s.c.id, s.c.subsystem_code))
            }
        return self._subsystems[subsystem_id]

    def client(self, member_id: int, subsystem_id: int | None) -> ClientId:
        member = self.members[member_id]
        if subsystem_id is None:
            return member
        return member.subsystem(self.subsystem_code(subsystem_id))


@contextmanager
def _database_errors() -> Iterator[None]:
    try:
        yield
    except IntegrityError as exc:
        raise XRoadError(
            Code.INVALID_REQUEST, f"The change conflicts with the registry: {exc.orig}"
        ) from exc
    except DBAPIError as exc:
        raise XRoadError(Code.IO_ERROR, f"Database error: {exc.orig}") from exc


# --- input checks -------------------------------------------------------------------------------


def certificate_der(cert: bytes | str, what: str) -> bytes:
    """DER of a certificate given in any spelling (``incorrect_certificate`` if unreadable)."""
    try:
        return cert_der(load_certificate(cert))
    except XRoadError as exc:
        raise XRoadError(exc.code, f"{what}: {exc.detail}") from None


def optional_text(value: str | None, what: str) -> str | None:
    """An optional name or message: ``None`` or blank means none."""
    if value is None:
        return None
    return check_text(value, what, empty=True) or None


def check_text(value: object, what: str, *, max_length: int = 255, empty: bool = False) -> str:
    """A name or description: a string of 1..255 characters without control characters."""
    if not isinstance(value, str):
        raise XRoadError(Code.INVALID_REQUEST, f"{what} must be a string")
    text = value.strip()
    if not text and not empty:
        raise XRoadError(Code.INVALID_REQUEST, f"{what} must not be empty")
    if len(text) > max_length:
        raise XRoadError(Code.INVALID_REQUEST, f"{what} is longer than {max_length} characters")
    if _CONTROL.search(text):
        raise XRoadError(Code.INVALID_REQUEST, f"{what} contains control characters")
    return text


def check_url(value: str, what: str, *, schemes: tuple[str, ...] = ("http", "https")) -> str:
    text = check_text(value, what, max_length=1024)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise XRoadError(Code.INVALID_URL, f"{what} is not a URL: {text!r}") from None
    if parts.scheme not in schemes or not parts.hostname or " " in text:
        raise XRoadError(
            Code.INVALID_URL, f"{what} must be an {'/'.join(schemes)} URL with a host: {text!r}"
        )
    return text


def check_ip(value: str, what: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise XRoadError(
            Code.INVALID_IP_ADDRESS, f"{what} is not an IP address: {value!r}"
        ) from None


def check_host(value: str, what: str) -> str:
    """A DNS name or an IP address (what security servers and the central server are at)."""
    text = check_text(value, what)
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    if len(text) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise XRoadError(
            Code.INVALID_SERVER_ADDRESS, f"{what} is not a host name or IP address: {text!r}"
        )
    return text
