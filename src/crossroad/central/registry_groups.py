"""Registry part: global groups and their members (protocols.md §11.1, §5.5 ``globalGroup``).

The security-server-owners group (code from the ``securityServerOwnersGroup`` system parameter)
is kept by the registry from the server owners: it cannot be deleted and its members cannot be
added or removed by hand, as in NIIS.  Membership is exact: listing a member does not make its
subsystems members.
"""

from __future__ import annotations

import sqlalchemy as sa

from crossroad.central.registry_base import OWNERS_GROUP, RegistryBase, Tx, check_text, utc
from crossroad.central.registry_records import GlobalGroupRecord
from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, GlobalGroupId
from crossroad.storage import central_schema as t


class GroupsMixin(RegistryBase):
    def add_global_group(self, code: str, description: str) -> GlobalGroupRecord:
        description = check_text(description, "Group description")
        with self._write() as tx:
            GlobalGroupId(self._instance(tx.conn), code).validate(strict=self.strict_identifiers)
            if self._group_id(tx.conn, code) is not None:
                raise XRoadError(Code.GLOBAL_GROUP_EXISTS, f"Global group {code} already exists")
            tx.insert(t.global_groups, group_code=code, description=description)
        return self.global_group(code)

    def set_global_group_description(self, code: str, description: str) -> GlobalGroupRecord:
        description = check_text(description, "Group description")
        with self._write() as tx:
            tx.update(t.global_groups, self._require_group(tx.conn, code), description=description)
        return self.global_group(code)

    def delete_global_group(self, code: str) -> None:
        with self._write() as tx:
            group_id = self._require_group(tx.conn, code)
            if code == self._owners_group_code(tx):
                raise XRoadError(
                    Code.OWNERS_GLOBAL_GROUP_CANNOT_BE_DELETED,
                    f"{code} is the security server owners group",
                )
            tx.delete(t.global_group_members, t.global_group_members.c.group_id == group_id)
            tx.delete(t.global_groups, t.global_groups.c.id == group_id)

    def add_global_group_member(self, code: str, client: ClientId) -> None:
        with self._write() as tx:
            group_id = self._require_group(tx.conn, code)
            if code == self._owners_group_code(tx):
                raise XRoadError(
                    Code.CANNOT_ADD_MEMBER_TO_OWNERS_GROUP,
                    f"{code} follows the security server owners and is not edited by hand",
                )
            member_id, subsystem_id = self._client_ref(tx.conn, client)
            if self._group_member_id(tx, group_id, member_id, subsystem_id) is not None:
                raise XRoadError(
                    Code.GLOBAL_GROUP_MEMBER_EXISTS, f"{client} is already in global group {code}"
                )
            tx.insert(
                t.global_group_members,
                group_id=group_id,
                member_id=member_id,
                subsystem_id=subsystem_id,
            )

    def delete_global_group_member(self, code: str, client: ClientId) -> None:
        with self._write() as tx:
            group_id = self._require_group(tx.conn, code)
            if code == self._owners_group_code(tx):
                raise XRoadError(
                    Code.OWNERS_GLOBAL_GROUP_MEMBER_CANNOT_BE_DELETED,
                    f"{code} follows the security server owners and is not edited by hand",
                )
            member_id, subsystem_id = self._client_ref(tx.conn, client)
            link = self._group_member_id(tx, group_id, member_id, subsystem_id)
            if link is None:
                raise XRoadError(
                    Code.GLOBAL_GROUP_MEMBER_NOT_FOUND, f"{client} is not in global group {code}"
                )
            tx.delete(t.global_group_members, t.global_group_members.c.id == link)

    def global_group(self, code: str) -> GlobalGroupRecord:
        with self._read() as conn:
            self._require_group(conn, code)
            return self._group_records(conn, t.global_groups.c.group_code == code)[0]

    def global_groups(self) -> tuple[GlobalGroupRecord, ...]:
        """Every global group (the owners group included), in creation order."""
        with self._read() as conn:
            return self._group_records(conn)

    def groups_of(self, client: ClientId) -> tuple[str, ...]:
        """Codes of the global groups ``client`` is listed in (exactly, not via its member)."""
        with self._read() as conn:
            member_id, subsystem_id = self._client_ref(conn, client)
            g, m = t.global_groups, t.global_group_members
            subsystem = (
                m.c.subsystem_id.is_(None)
                if subsystem_id is None
                else m.c.subsystem_id == subsystem_id
            )
            rows = conn.execute(
                sa.select(g.c.group_code)
                .join(m, m.c.group_id == g.c.id)
                .where(m.c.member_id == member_id, subsystem)
                .order_by(g.c.id)
            )
            return tuple(rows.scalars())

    def _group_records(
        self, conn: sa.Connection, *criteria: sa.ColumnElement[bool]
    ) -> tuple[GlobalGroupRecord, ...]:
        ids = self._client_ids(conn)
        owners = Tx(conn, self.actor, self.clock.now()).parameter(OWNERS_GROUP)
        owners = owners or "security-server-owners"
        g, m = t.global_groups, t.global_group_members
        groups = conn.execute(sa.select(g).where(*criteria).order_by(g.c.id)).mappings().all()
        wanted = [row["id"] for row in groups]
        members: dict[int, list[ClientId]] = {}
        if wanted:
            for row in conn.execute(sa.select(m).where(m.c.group_id.in_(wanted)).order_by(m.c.id)):
                members.setdefault(row.group_id, []).append(
                    ids.client(row.member_id, row.subsystem_id)
                )
        return tuple(
            GlobalGroupRecord(
                code=row["group_code"],
                description=row["description"],
                members=tuple(members.get(row["id"], ())),
                owners_group=row["group_code"] == owners,
                created_at=utc(row["created_at"]),
                updated_at=utc(row["updated_at"]),
            )
            for row in groups
        )

    def _group_id(self, conn: sa.Connection, code: str) -> int | None:
        g = t.global_groups
        return conn.execute(sa.select(g.c.id).where(g.c.group_code == code)).scalar()

    def _require_group(self, conn: sa.Connection, code: str) -> int:
        found = self._group_id(conn, code)
        if found is None:
            raise XRoadError(Code.GLOBAL_GROUP_NOT_FOUND, f"No global group {code}")
        return found

    def _group_member_id(
        self, tx: Tx, group_id: int, member_id: int, subsystem_id: int | None
    ) -> int | None:
        m = t.global_group_members
        subsystem = (
            m.c.subsystem_id.is_(None) if subsystem_id is None else m.c.subsystem_id == subsystem_id
        )
        return tx.conn.execute(
            sa.select(m.c.id).where(m.c.group_id == group_id, m.c.member_id == member_id, subsystem)
        ).scalar()
