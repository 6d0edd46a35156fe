"""Shared machinery of the serverconf store: transactions that move the change counter, the
snapshot cache and its loader, and identifier/row conversions (protocols.md §10.5)."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from crossroad.clock import SYSTEM, Clock
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, GlobalGroupId, LocalGroupId, parse_identifier
from crossroad.serverconf.model import (
    AccessRight,
    Client,
    ClientStatus,
    ConnectionType,
    DescriptionType,
    Endpoint,
    GroupMember,
    LocalGroup,
    ServerConf,
    Service,
    ServiceDescription,
    Subject,
)
from crossroad.storage import serverconf_schema as t
from crossroad.storage.engine import WRITE


def utc(value: Any) -> dt.datetime:
    """A database timestamp as an aware UTC datetime (SQLite drops the zone)."""
    if not isinstance(value, dt.datetime):
        raise TypeError(f"not a datetime: {value!r}")
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def _opt_utc(value: Any) -> dt.datetime | None:
    return None if value is None else utc(value)


def client_columns(client: ClientId) -> dict[str, str]:
    return {
        "instance": client.instance,
        "member_class": client.member_class,
        "member_code": client.member_code,
        "subsystem_code": client.subsystem_code or "",
    }


def client_from_row(m: Any) -> ClientId:
    return ClientId(m["instance"], m["member_class"], m["member_code"], m["subsystem_code"] or None)


def subject_from_text(text: str) -> Subject:
    """An access-right subject from its ``TYPE:...`` form (member, subsystem or group)."""
    try:
        ident = parse_identifier(text.strip())
    except XRoadError as exc:
        raise XRoadError(Code.INVALID_SERVICE_CLIENT_ID, exc.detail) from None
    if not isinstance(ident, (ClientId, GlobalGroupId, LocalGroupId)):
        raise XRoadError(Code.INVALID_SERVICE_CLIENT_ID, f"{text!r} cannot hold access rights")
    try:
        return ident.validate()
    except XRoadError as exc:
        raise XRoadError(Code.INVALID_SERVICE_CLIENT_ID, exc.detail) from None


def check_client_id(client: ClientId) -> ClientId:
    try:
        return client.validate()
    except XRoadError as exc:
        raise XRoadError(Code.INVALID_CLIENT_IDENTIFIER, exc.detail) from None


class StoreBase:
    """Transactions, the snapshot, and the lookups every part of the store needs."""

    def __init__(self, engine: sa.Engine, clock: Clock = SYSTEM, *, migrate: bool = True) -> None:
        self.engine = engine
        self.clock = clock
        if migrate:
            t.migrate(engine)
        self._lock = threading.Lock()
        self._snapshot: ServerConf | None = None

    # -- transactions --

    @contextmanager
    def _write(self) -> Iterator[sa.Connection]:
        """One writing transaction; the generation moves with it."""
        with self.engine.connect() as conn, conn.execution_options(**WRITE).begin():
            yield conn
            now = self.clock.now()
            done = conn.execute(
                sa.update(t.server)
                .where(t.server.c.id == 1)
                .values(generation=t.server.c.generation + 1, updated_at=now)
            )
            if done.rowcount == 0:
                conn.execute(sa.insert(t.server).values(id=1, generation=1, updated_at=now))

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                # All SELECTs of one snapshot see the same committed state.
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def _client_pk(self, conn: sa.Connection, client: ClientId) -> int:
        c = t.clients.c
        cols = client_columns(client)
        pk = conn.execute(
            sa.select(c.id).where(*(getattr(c, k) == v for k, v in cols.items()))
        ).scalar()
        if pk is None:
            raise XRoadError(Code.CLIENT_NOT_FOUND, f"Client {client} not found")
        return int(pk)

    # -- snapshot --

    @property
    def current(self) -> ServerConf:
        """The last snapshot read (reads one if there is none yet); no database access."""
        snap = self._snapshot
        return snap if snap is not None else self.snapshot()

    def snapshot(self) -> ServerConf:
        """An up-to-date snapshot: one cheap query, and a rebuild only after a change."""
        with self._lock:
            with self.engine.connect() as conn:
                generation = conn.execute(
                    sa.select(t.server.c.generation).where(t.server.c.id == 1)
                ).scalar()
            snap = self._snapshot
            if snap is not None and snap.generation == (generation or 0):
                return snap
            snap = self._load()
            self._snapshot = snap
            return snap

    def _load(self) -> ServerConf:
        with self._read() as conn:
            server = conn.execute(sa.select(t.server).where(t.server.c.id == 1)).mappings().first()
            rows = {
                name: list(conn.execute(sa.select(table).order_by(table.c.id)).mappings())
                for name, table in (
                    ("clients", t.clients),
                    ("certs", t.is_certs),
                    ("descriptions", t.service_descriptions),
                    ("services", t.services),
                    ("endpoints", t.endpoints),
                    ("rights", t.access_rights),
                    ("groups", t.local_groups),
                    ("members", t.local_group_members),
                )
            }
        owner = None
        if server is not None and server["instance"] is not None:
            owner = ClientId(server["instance"], server["member_class"], server["member_code"])
        by_client: dict[int, dict[str, list[Any]]] = {
            r["id"]: {"certs": [], "descriptions": [], "endpoints": [], "rights": [], "groups": []}
            for r in rows["clients"]
        }
        services: dict[int, list[Service]] = {}
        for r in rows["services"]:
            services.setdefault(r["description_id"], []).append(
                Service(
                    r["service_code"],
                    r["service_version"],
                    r["title"],
                    r["url"],
                    r["timeout"],
                    bool(r["ssl_authentication"]),
                    r["id"],
                )
            )
        members: dict[int, list[GroupMember]] = {}
        for r in rows["members"]:
            member = parse_identifier(r["member"])
            if isinstance(member, ClientId):
                members.setdefault(r["group_id"], []).append(
                    GroupMember(member, _opt_utc(r["added_at"]))
                )
        client_ids = {r["id"]: client_from_row(r) for r in rows["clients"]}
        for r in rows["certs"]:
            by_client[r["client_id"]]["certs"].append(bytes(r["cert"]))
        for r in rows["descriptions"]:
            by_client[r["client_id"]]["descriptions"].append(
                ServiceDescription(
                    r["id"],
                    client_ids[r["client_id"]],
                    DescriptionType(r["type"]),
                    r["url"],
                    tuple(services.get(r["id"], ())),
                    bool(r["disabled"]),
                    r["disabled_notice"],
                    _opt_utc(r["refreshed_at"]),
                    None if r["content"] is None else bytes(r["content"]),
                )
            )
        for r in rows["endpoints"]:
            by_client[r["client_id"]]["endpoints"].append(
                Endpoint(r["id"], r["service_code"], r["method"], r["path"], bool(r["generated"]))
            )
        for r in rows["rights"]:
            by_client[r["client_id"]]["rights"].append(
                AccessRight(
                    subject_from_text(r["subject"]),
                    r["endpoint_id"],
                    _opt_utc(r["rights_given_at"]),
                )
            )
        for r in rows["groups"]:
            by_client[r["client_id"]]["groups"].append(
                LocalGroup(
                    r["id"],
                    r["group_code"],
                    r["description"],
                    tuple(members.get(r["id"], ())),
                    _opt_utc(r["updated_at"]),
                )
            )
        clients = tuple(
            Client(
                client_ids[r["id"]],
                ClientStatus(r["status"]),
                ConnectionType(r["connection_type"]),
                tuple(by_client[r["id"]]["certs"]),
                tuple(by_client[r["id"]]["descriptions"]),
                tuple(by_client[r["id"]]["endpoints"]),
                tuple(by_client[r["id"]]["rights"]),
                tuple(by_client[r["id"]]["groups"]),
            )
            for r in rows["clients"]
        )
        return ServerConf(
            owner=owner,
            server_code=None if server is None else server["server_code"],
            clients=clients,
            generation=0 if server is None else int(server["generation"]),
        )
