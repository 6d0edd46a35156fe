"""Registry part: security servers, their authentication certificates, clients and maintenance
mode (protocols.md §11.1, §5.5 ``securityServer``).

The owner of a security server is implicitly its client (§5.5), so it cannot be registered as
one.  The security-server-owners global group follows the owners: a member joins it with its
first server and leaves it with its last.  Authentication certificates are unique across the
instance (by SHA-256 of the DER).
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa

from crossroad.central.registry_base import (
    RegistryBase,
    Tx,
    certificate_der,
    check_host,
    optional_text,
    utc,
)
from crossroad.central.registry_records import (
    AuthCertRecord,
    SecurityServerRecord,
    ServerClientRecord,
)
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, SecurityServerId
from crossroad.storage import central_schema as t


class ServersMixin(RegistryBase):
    # -- servers --

    def add_security_server(
        self, server: SecurityServerId, address: str | None = None
    ) -> SecurityServerRecord:
        server.validate(strict=self.strict_identifiers)
        address = check_host(address, "Server address") if address else None
        with self._write() as tx:
            owner = self._member_row(tx.conn, server.owner)
            exists = tx.conn.execute(
                sa.select(t.security_servers.c.id).where(
                    t.security_servers.c.owner_id == owner["id"],
                    t.security_servers.c.server_code == server.server_code,
                )
            ).scalar()
            if exists is not None:
                raise XRoadError(Code.SECURITY_SERVER_EXISTS, f"{server} already exists")
            tx.insert(
                t.security_servers,
                owner_id=owner["id"],
                server_code=server.server_code,
                address=address,
                in_maintenance=False,
            )
            self._sync_owner(tx, owner["id"])
        return self.security_server(server)

    def delete_security_server(self, server: SecurityServerId) -> None:
        """Delete a server with its authentication certificates and client registrations."""
        with self._write() as tx:
            row = self._server_row(tx.conn, server)
            tx.delete(t.auth_certs, t.auth_certs.c.server_id == row["id"])
            tx.delete(t.server_clients, t.server_clients.c.server_id == row["id"])
            tx.delete(t.security_servers, t.security_servers.c.id == row["id"])
            self._sync_owner(tx, row["owner_id"])

    def set_server_address(self, server: SecurityServerId, address: str | None) -> None:
        address = check_host(address, "Server address") if address else None
        with self._write() as tx:
            row = self._server_row(tx.conn, server)
            tx.update(t.security_servers, row["id"], address=address)

    def set_maintenance_mode(
        self, server: SecurityServerId, enabled: bool, message: str | None = None
    ) -> None:
        """Maintenance mode (V5+ ``inMaintenanceMode``); the message only counts when enabled."""
        message = optional_text(message, "Maintenance message")
        with self._write() as tx:
            row = self._server_row(tx.conn, server)
            tx.update(
                t.security_servers,
                row["id"],
                in_maintenance=bool(enabled),
                maintenance_message=message if enabled else None,
            )

    def security_server(self, server: SecurityServerId) -> SecurityServerRecord:
        with self._read() as conn:
            row = self._server_row(conn, server)
            return self._server_records(conn, t.security_servers.c.id == row["id"])[0]

    def security_servers(self, owner: ClientId | None = None) -> tuple[SecurityServerRecord, ...]:
        """Every security server (or those of ``owner``), in registration order."""
        with self._read() as conn:
            if owner is None:
                return self._server_records(conn)
            member = self._member_row(conn, owner.member_id())
            return self._server_records(conn, t.security_servers.c.owner_id == member["id"])

    def _server_records(
        self, conn: sa.Connection, *criteria: sa.ColumnElement[bool]
    ) -> tuple[SecurityServerRecord, ...]:
        ids = self._client_ids(conn)
        s, a, c = t.security_servers, t.auth_certs, t.server_clients
        servers = conn.execute(sa.select(s).where(*criteria).order_by(s.c.id)).mappings().all()
        wanted = [row["id"] for row in servers]
        certs: dict[int, list[AuthCertRecord]] = {}
        clients: dict[int, list[ServerClientRecord]] = {}
        names = {
            row.id: row.name for row in conn.execute(sa.select(t.members.c.id, t.members.c.name))
        }
        if wanted:
            for row in conn.execute(sa.select(a).where(a.c.server_id.in_(wanted)).order_by(a.c.id)):
                certs.setdefault(row.server_id, []).append(
                    AuthCertRecord(row.id, bytes(row.cert), row.cert_hash, utc(row.created_at))
                )
            for row in conn.execute(sa.select(c).where(c.c.server_id.in_(wanted)).order_by(c.c.id)):
                clients.setdefault(row.server_id, []).append(
                    ServerClientRecord(ids.client(row.member_id, row.subsystem_id), row.enabled)
                )
        return tuple(
            SecurityServerRecord(
                id=SecurityServerId(ids.members[row["owner_id"]], row["server_code"]),
                owner_name=names[row["owner_id"]],
                address=row["address"],
                in_maintenance=bool(row["in_maintenance"]),
                maintenance_message=row["maintenance_message"],
                auth_certs=tuple(certs.get(row["id"], ())),
                clients=tuple(clients.get(row["id"], ())),
                created_at=utc(row["created_at"]),
                updated_at=utc(row["updated_at"]),
            )
            for row in servers
        )

    def _sync_owner(self, tx: Tx, member_id: int) -> None:
        """Keep ``member_id`` in the owners group exactly while it owns a server."""
        group_id = self._owners_group_id(tx)
        g = t.global_group_members
        owns = tx.conn.execute(
            sa.select(sa.func.count()).where(t.security_servers.c.owner_id == member_id)
        ).scalar()
        listed = tx.conn.execute(
            sa.select(g.c.id).where(
                g.c.group_id == group_id, g.c.member_id == member_id, g.c.subsystem_id.is_(None)
            )
        ).scalar()
        if owns and listed is None:
            tx.insert(g, group_id=group_id, member_id=member_id, subsystem_id=None)
        elif not owns and listed is not None:
            tx.delete(g, g.c.id == listed)

    # -- authentication certificates --

    def add_auth_cert(self, server: SecurityServerId, cert: bytes | str) -> AuthCertRecord:
        """Register an authentication certificate (DER, PEM or base64) of ``server``."""
        der = certificate_der(cert, "Authentication certificate")
        digest = hashlib.sha256(der).hexdigest()
        with self._write() as tx:
            row = self._server_row(tx.conn, server)
            holder = tx.conn.execute(
                sa.select(t.auth_certs.c.server_id).where(t.auth_certs.c.cert_hash == digest)
            ).scalar()
            if holder is not None:
                raise XRoadError(
                    Code.CERTIFICATE_ALREADY_EXISTS,
                    f"Authentication certificate {digest} is already registered",
                )
            cert_id = tx.insert(t.auth_certs, server_id=row["id"], cert=der, cert_hash=digest)
            return AuthCertRecord(int(cert_id), der, digest, tx.now)

    def delete_auth_cert(self, server: SecurityServerId, cert: int | str) -> None:
        """Remove an authentication certificate by its id or SHA-256 hex hash."""
        a = t.auth_certs
        with self._write() as tx:
            row = self._server_row(tx.conn, server)
            match = a.c.id == cert if isinstance(cert, int) else a.c.cert_hash == cert.lower()
            if not tx.delete(a, a.c.server_id == row["id"], match):
                raise XRoadError(
                    Code.SS_AUTH_CERTIFICATE_NOT_FOUND,
                    f"{server} has no authentication certificate {cert}",
                )

    # -- clients --

    def add_server_client(
        self, server: SecurityServerId, client: ClientId, *, enabled: bool = True
    ) -> ServerClientRecord:
        """Register a member or subsystem as a client of ``server``."""
        with self._write() as tx:
            row = self._server_row(tx.conn, server)
            member_id, subsystem_id = self._client_ref(tx.conn, client)
            if subsystem_id is None and member_id == row["owner_id"]:
                raise XRoadError(
                    Code.INVALID_REQUEST,
                    f"{client} owns {server} and is its client implicitly",
                )
            if self._server_client_id(tx.conn, row["id"], member_id, subsystem_id) is not None:
                code = (
                    Code.SUBSYSTEM_ALREADY_REGISTERED_TO_SECURITY_SERVER
                    if client.is_subsystem
                    else Code.MEMBER_ALREADY_REGISTERED_TO_SECURITY_SERVER
                )
                raise XRoadError(code, f"{client} is already a client of {server}")
            tx.insert(
                t.server_clients,
                server_id=row["id"],
                member_id=member_id,
                subsystem_id=subsystem_id,
                enabled=bool(enabled),
            )
        return ServerClientRecord(client, bool(enabled))

    def set_server_client_enabled(
        self, server: SecurityServerId, client: ClientId, enabled: bool
    ) -> None:
        """Enable or disable a client; disabled clients are left out of the configuration."""
        with self._write() as tx:
            link = self._require_server_client(tx.conn, server, client)
            tx.update(t.server_clients, link, enabled=bool(enabled))

    def delete_server_client(self, server: SecurityServerId, client: ClientId) -> None:
        with self._write() as tx:
            link = self._require_server_client(tx.conn, server, client)
            tx.delete(t.server_clients, t.server_clients.c.id == link)

    def _server_client_id(
        self, conn: sa.Connection, server_id: int, member_id: int, subsystem_id: int | None
    ) -> int | None:
        c = t.server_clients
        subsystem = (
            c.c.subsystem_id.is_(None)
            if subsystem_id is None
            else (c.c.subsystem_id == subsystem_id)
        )
        return conn.execute(
            sa.select(c.c.id).where(
                c.c.server_id == server_id, c.c.member_id == member_id, subsystem
            )
        ).scalar()

    def _require_server_client(
        self, conn: sa.Connection, server: SecurityServerId, client: ClientId
    ) -> int:
        row = self._server_row(conn, server)
        member_id, subsystem_id = self._client_ref(conn, client)
        found = self._server_client_id(conn, row["id"], member_id, subsystem_id)
        if found is None:
            code = (
                Code.SUBSYSTEM_NOT_REGISTERED_TO_SECURITY_SERVER
                if client.is_subsystem
                else Code.MEMBER_NOT_REGISTERED_TO_SECURITY_SERVER
            )
            raise XRoadError(code, f"{client} is not a client of {server}")
        return found
