"""The security server configuration store: tables on SQLite or PostgreSQL, typed changes, and
the immutable :class:`~crossroad.serverconf.model.ServerConf` snapshot (protocols.md §10.5).

Every change runs in one writing transaction and bumps ``ss_server.generation``;
:meth:`ServerConfStore.snapshot` reads that counter and rebuilds its snapshot only when it moved
(so changes made by the CLI or the management API in another process are seen), and
:attr:`ServerConfStore.current` returns the last snapshot without touching the database.

This module owns the server, clients, IS certificates, status changes and API keys; service
descriptions and services are in :mod:`crossroad.serverconf.store_services`, endpoints,
access rights and local groups in :mod:`crossroad.serverconf.store_access`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from cryptography.hazmat.primitives.serialization import Encoding

from crossroad.crypto.certs import load_certificate
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.serverconf.model import ClientStatus, ConnectionType
from crossroad.serverconf.store_access import AccessMixin
from crossroad.serverconf.store_base import (
    check_client_id,
    client_columns,
    client_from_row,
    utc,
)
from crossroad.storage import serverconf_schema as t

__all__ = ["ApiKeyRecord", "Role", "ServerConfStore", "api_key_hash"]

API_KEY_PREFIX = "ssk_"


class Role(StrEnum):
    """Roles of management API keys (NIIS security server roles)."""

    SYSTEM_ADMINISTRATOR = "system_administrator"
    SERVICE_ADMINISTRATOR = "service_administrator"
    REGISTRATION_OFFICER = "registration_officer"
    SECURITY_OFFICER = "security_officer"
    OBSERVER = "securityserver_observer"


@dataclass(frozen=True)
class ApiKeyRecord:
    id: int
    name: str
    roles: frozenset[Role]
    created_at: dt.datetime


def api_key_hash(secret: str) -> str:
    # The secrets are 256-bit random strings: a fast hash keeps lookups indexed and is enough.
    return hashlib.sha256(secret.strip().encode("utf-8")).hexdigest()


class ServerConfStore(AccessMixin):
    """Typed changes to the security server configuration; see the module docstring."""

    # -- the server --

    def initialize(self, owner: ClientId, server_code: str) -> SecurityServerId:
        """Set the owner member and server code (once) and add the owner as a client."""
        server_id = SecurityServerId(check_client_id(owner), server_code).validate()
        with self._write() as conn:
            row = conn.execute(sa.select(t.server).where(t.server.c.id == 1)).mappings().first()
            if row is not None and row["server_code"] is not None:
                raise XRoadError(
                    Code.SERVER_ALREADY_FULLY_INITIALIZED,
                    f"The server is already initialized as {self._server_id(row)}",
                )
            values = {
                "instance": owner.instance,
                "member_class": owner.member_class,
                "member_code": owner.member_code,
                "server_code": server_code,
                "updated_at": self.clock.now(),
            }
            if row is None:
                conn.execute(sa.insert(t.server).values(id=1, generation=0, **values))
            else:
                conn.execute(sa.update(t.server).where(t.server.c.id == 1).values(**values))
            if not self._has_client(conn, owner):
                self._insert_client(conn, owner, ClientStatus.SAVED, ConnectionType.SSLAUTH)
        return server_id

    @staticmethod
    def _server_id(row: Any) -> SecurityServerId:
        owner = ClientId(row["instance"], row["member_class"], row["member_code"])
        return SecurityServerId(owner, row["server_code"])

    def server_id(self) -> SecurityServerId | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.server).where(t.server.c.id == 1)).mappings().first()
        if row is None or row["server_code"] is None:
            return None
        return self._server_id(row)

    def require_server_id(self) -> SecurityServerId:
        server_id = self.server_id()
        if server_id is None:
            raise XRoadError(Code.SERVER_NOT_INITIALIZED, "The security server is not initialized")
        return server_id

    # -- clients --

    def _has_client(self, conn: sa.Connection, client: ClientId) -> bool:
        try:
            self._client_pk(conn, client)
        except XRoadError:
            return False
        return True

    def _insert_client(
        self, conn: sa.Connection, client: ClientId, status: ClientStatus, ct: ConnectionType
    ) -> None:
        now = self.clock.now()
        conn.execute(
            sa.insert(t.clients).values(
                **client_columns(client),
                status=status.value,
                connection_type=ct.value,
                created_at=now,
                updated_at=now,
            )
        )

    def add_client(
        self,
        client: ClientId,
        *,
        status: ClientStatus = ClientStatus.SAVED,
        connection_type: ConnectionType = ConnectionType.SSLAUTH,
    ) -> None:
        check_client_id(client)
        with self._write() as conn:
            if self._has_client(conn, client):
                raise XRoadError(Code.CLIENT_ALREADY_EXISTS, f"Client {client} already exists")
            self._insert_client(conn, client, status, connection_type)

    def _update_client(self, client: ClientId, **values: Any) -> None:
        with self._write() as conn:
            pk = self._client_pk(conn, client)
            conn.execute(
                sa.update(t.clients)
                .where(t.clients.c.id == pk)
                .values(updated_at=self.clock.now(), **values)
            )

    def set_client_status(self, client: ClientId, status: ClientStatus) -> None:
        self._update_client(client, status=ClientStatus(status).value)

    def register_client(self, client: ClientId) -> None:
        """Mark the client's registration as requested (the central server decides)."""
        self.set_client_status(client, ClientStatus.REGISTRATION_IN_PROGRESS)

    def unregister_client(self, client: ClientId) -> None:
        self.set_client_status(client, ClientStatus.DELETION_IN_PROGRESS)

    def set_connection_type(self, client: ClientId, connection_type: ConnectionType | str) -> None:
        try:
            ct = ConnectionType(connection_type)
        except ValueError:
            raise XRoadError(
                Code.INVALID_CONNECTION_TYPE, f"Unknown connection type {connection_type!r}"
            ) from None
        self._update_client(client, connection_type=ct.value)

    def sync_client_statuses(self, is_registered: Callable[[ClientId], bool]) -> list[ClientId]:
        """Follow the global configuration as NIIS's ``GlobalConfChecker`` does; returns the
        clients whose status changed.

        Registered there → ``registered`` (from saved, registration in progress, global error,
        enabling in progress); gone from there → ``global error`` (from registered) or
        ``disabled`` (from disabling in progress).
        """
        to_registered = {
            ClientStatus.SAVED,
            ClientStatus.REGISTRATION_IN_PROGRESS,
            ClientStatus.GLOBAL_ERROR,
            ClientStatus.ENABLING_IN_PROGRESS,
        }
        changed: list[ClientId] = []
        with self._write() as conn:
            for row in conn.execute(sa.select(t.clients)).mappings().all():
                cid = client_from_row(row)
                status = ClientStatus(row["status"])
                registered = is_registered(cid)
                new = status
                if registered and status in to_registered:
                    new = ClientStatus.REGISTERED
                elif not registered and status is ClientStatus.REGISTERED:
                    new = ClientStatus.GLOBAL_ERROR
                elif not registered and status is ClientStatus.DISABLING_IN_PROGRESS:
                    new = ClientStatus.DISABLED
                if new is not status:
                    conn.execute(
                        sa.update(t.clients)
                        .where(t.clients.c.id == row["id"])
                        .values(status=new.value, updated_at=self.clock.now())
                    )
                    changed.append(cid)
        return changed

    def delete_client(self, client: ClientId) -> None:
        """Remove a client and everything it owns here (never the owner member)."""
        server_id = self.server_id()
        if server_id is not None and server_id.owner == client:
            raise XRoadError(Code.CANNOT_DELETE_OWNER, "The owner member cannot be deleted")
        with self._write() as conn:
            pk = self._client_pk(conn, client)
            groups = sa.select(t.local_groups.c.id).where(t.local_groups.c.client_id == pk)
            descriptions = sa.select(t.service_descriptions.c.id).where(
                t.service_descriptions.c.client_id == pk
            )
            conn.execute(
                sa.delete(t.local_group_members).where(t.local_group_members.c.group_id.in_(groups))
            )
            conn.execute(sa.delete(t.local_groups).where(t.local_groups.c.client_id == pk))
            conn.execute(sa.delete(t.access_rights).where(t.access_rights.c.client_id == pk))
            conn.execute(sa.delete(t.endpoints).where(t.endpoints.c.client_id == pk))
            conn.execute(sa.delete(t.services).where(t.services.c.description_id.in_(descriptions)))
            conn.execute(
                sa.delete(t.service_descriptions).where(t.service_descriptions.c.client_id == pk)
            )
            conn.execute(sa.delete(t.is_certs).where(t.is_certs.c.client_id == pk))
            conn.execute(sa.delete(t.clients).where(t.clients.c.id == pk))

    # -- information-system TLS certificates --

    def add_is_cert(self, client: ClientId, cert: bytes) -> str:
        """Register an IS TLS certificate (any spelling); returns its SHA-256 hex."""
        der = load_certificate(cert).public_bytes(Encoding.DER)
        digest = hashlib.sha256(der).hexdigest()
        with self._write() as conn:
            pk = self._client_pk(conn, client)
            exists = conn.execute(
                sa.select(t.is_certs.c.id).where(
                    t.is_certs.c.client_id == pk, t.is_certs.c.cert_hash == digest
                )
            ).first()
            if exists is not None:
                raise XRoadError(Code.CERTIFICATE_ALREADY_EXISTS, "Certificate already exists")
            conn.execute(
                sa.insert(t.is_certs).values(
                    client_id=pk, cert_hash=digest, cert=der, created_at=self.clock.now()
                )
            )
        return digest

    def remove_is_cert(self, client: ClientId, cert_hash: str) -> None:
        wanted = cert_hash.lower().replace(":", "")
        with self._write() as conn:
            pk = self._client_pk(conn, client)
            done = conn.execute(
                sa.delete(t.is_certs).where(
                    t.is_certs.c.client_id == pk, t.is_certs.c.cert_hash == wanted
                )
            )
            if done.rowcount == 0:
                raise XRoadError(Code.CERTIFICATE_NOT_FOUND, f"No certificate {cert_hash}")

    # -- API keys --

    def create_api_key(self, name: str, roles: Iterable[Role | str]) -> tuple[ApiKeyRecord, str]:
        """A new API key; the secret is returned once and only its hash is kept."""
        try:
            wanted = frozenset(Role(r) for r in roles)
        except ValueError as exc:
            raise XRoadError(Code.INVALID_ROLE, str(exc)) from None
        if not wanted:
            raise XRoadError(Code.INVALID_ROLE, "An API key needs at least one role")
        if not name.strip():
            raise XRoadError(Code.VALIDATION_FAILURE, "An API key needs a name")
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now()
        with self._write() as conn:
            k = t.api_keys.c
            if conn.execute(sa.select(k.id).where(k.name == name)).first() is not None:
                raise XRoadError(Code.API_KEY_EXISTS, f"An API key named {name!r} exists")
            key_id = conn.execute(
                sa.insert(t.api_keys)
                .values(
                    name=name,
                    key_hash=api_key_hash(secret),
                    roles=",".join(sorted(wanted)),
                    created_at=now,
                )
                .returning(k.id)
            ).scalar_one()
        return ApiKeyRecord(int(key_id), name, wanted, now), secret

    def api_keys(self) -> tuple[ApiKeyRecord, ...]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.api_keys).order_by(t.api_keys.c.id)).mappings().all()
        return tuple(_api_key(r) for r in rows)

    def revoke_api_key(self, key: int | str) -> None:
        k = t.api_keys.c
        where = k.id == key if isinstance(key, int) else k.name == key
        with self._write() as conn:
            if conn.execute(sa.delete(t.api_keys).where(where)).rowcount == 0:
                raise XRoadError(Code.API_KEY_NOT_FOUND, f"No API key {key}")

    def authenticate(self, secret: str) -> ApiKeyRecord | None:
        k = t.api_keys.c
        with self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(t.api_keys).where(k.key_hash == api_key_hash(secret)))
                .mappings()
                .first()
            )
        return None if row is None else _api_key(row)


def _api_key(row: Any) -> ApiKeyRecord:
    roles = frozenset(Role(r) for r in str(row["roles"]).split(",") if r)
    return ApiKeyRecord(int(row["id"]), str(row["name"]), roles, utc(row["created_at"]))
