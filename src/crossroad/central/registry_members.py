"""Registry part: member classes, members and subsystems (protocols.md §11.1, §5.5 ``member``).

Members and subsystems are identified by :class:`ClientId` of this instance; codes follow the
central server's strict identifier rules (§1.2) unless the registry was opened lenient.  A
member or subsystem that is still registered on a security server (as owner or client) cannot
be deleted, as in NIIS; its group memberships go with it.
"""

from __future__ import annotations

import sqlalchemy as sa

from crossroad.central.registry_base import RegistryBase, check_text, optional_text, utc
from crossroad.central.registry_records import MemberRecord, SubsystemRecord
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import MemberClass
from crossroad.identifiers import ClientId
from crossroad.storage import central_schema as t


class MembersMixin(RegistryBase):
    # -- member classes --

    def add_member_class(self, code: str, description: str) -> MemberClass:
        ClientId("X", code, "X").validate(strict=self.strict_identifiers)
        description = check_text(description, "Member class description")
        with self._write() as tx:
            if self._member_class_id(tx.conn, code) is not None:
                raise XRoadError(Code.MEMBER_CLASS_EXISTS, f"Member class {code} already exists")
            tx.insert(t.member_classes, code=code, description=description)
        return MemberClass(code, description)

    def set_member_class_description(self, code: str, description: str) -> MemberClass:
        description = check_text(description, "Member class description")
        with self._write() as tx:
            class_id = self._require_member_class(tx.conn, code)
            tx.update(t.member_classes, class_id, description=description)
        return MemberClass(code, description)

    def delete_member_class(self, code: str) -> None:
        with self._write() as tx:
            class_id = self._require_member_class(tx.conn, code)
            used = tx.conn.execute(
                sa.select(sa.func.count()).where(t.members.c.member_class_id == class_id)
            ).scalar()
            if used:
                raise XRoadError(
                    Code.MEMBER_CLASS_IS_IN_USE,
                    f"Member class {code} has {used} member(s): delete them first",
                )
            tx.delete(t.member_classes, t.member_classes.c.id == class_id)

    def member_classes(self) -> tuple[MemberClass, ...]:
        with self._read() as conn:
            return self._member_classes(conn)

    def _member_classes(self, conn: sa.Connection) -> tuple[MemberClass, ...]:
        c = t.member_classes
        rows = conn.execute(sa.select(c.c.code, c.c.description).order_by(c.c.code))
        return tuple(MemberClass(row.code, row.description) for row in rows)

    def _member_class_id(self, conn: sa.Connection, code: str) -> int | None:
        c = t.member_classes
        return conn.execute(sa.select(c.c.id).where(c.c.code == code)).scalar()

    def _require_member_class(self, conn: sa.Connection, code: str) -> int:
        found = self._member_class_id(conn, code)
        if found is None:
            raise XRoadError(Code.MEMBER_CLASS_NOT_FOUND, f"No member class {code}")
        return found

    # -- members --

    def add_member(self, member: ClientId, name: str) -> MemberRecord:
        if member.subsystem_code is not None:
            raise XRoadError(
                Code.INVALID_CLIENT_IDENTIFIER, f"{member} is a subsystem: use add_subsystem"
            )
        name = check_text(name, "Member name")
        with self._write() as tx:
            self._check_client(tx.conn, member)
            class_id = self._require_member_class(tx.conn, member.member_class)
            exists = tx.conn.execute(
                sa.select(t.members.c.id).where(
                    t.members.c.member_class_id == class_id,
                    t.members.c.member_code == member.member_code,
                )
            ).scalar()
            if exists is not None:
                raise XRoadError(Code.MEMBER_EXISTS, f"Member {member} already exists")
            tx.insert(
                t.members, member_class_id=class_id, member_code=member.member_code, name=name
            )
        return MemberRecord(member, name)

    def rename_member(self, member: ClientId, name: str) -> MemberRecord:
        if member.subsystem_code is not None:
            raise XRoadError(
                Code.INVALID_CLIENT_IDENTIFIER, f"{member} is a subsystem: use rename_subsystem"
            )
        name = check_text(name, "Member name")
        with self._write() as tx:
            row = self._member_row(tx.conn, member)
            tx.update(t.members, row["id"], name=name)
        return self.member(member)

    def delete_member(self, member: ClientId) -> None:
        """Delete a member with its subsystems; refused while it owns a security server or it
        or one of its subsystems is a client of one."""
        with self._write() as tx:
            row = self._member_row(tx.conn, member.member_id())
            owned = tx.conn.execute(
                sa.select(sa.func.count()).where(t.security_servers.c.owner_id == row["id"])
            ).scalar()
            registered = tx.conn.execute(
                sa.select(sa.func.count()).where(t.server_clients.c.member_id == row["id"])
            ).scalar()
            if owned or registered:
                raise XRoadError(
                    Code.MEMBER_REGISTERED_AND_CANNOT_BE_DELETED,
                    f"{member.member_id()} owns {owned} security server(s) and is a client of "
                    f"{registered}: delete those first",
                )
            tx.delete(t.global_group_members, t.global_group_members.c.member_id == row["id"])
            tx.delete(t.subsystems, t.subsystems.c.member_id == row["id"])
            tx.delete(t.members, t.members.c.id == row["id"])

    def member(self, member: ClientId) -> MemberRecord:
        """One member with its subsystems (``member_not_found`` if absent)."""
        with self._read() as conn:
            row = self._member_row(conn, member.member_id())
            subs = conn.execute(
                sa.select(t.subsystems.c.subsystem_code, t.subsystems.c.name)
                .where(t.subsystems.c.member_id == row["id"])
                .order_by(t.subsystems.c.id)
            )
            member_id = member.member_id()
            return MemberRecord(
                member_id,
                row["name"],
                tuple(SubsystemRecord(member_id.subsystem(s.subsystem_code), s.name) for s in subs),
                utc(row["created_at"]),
                utc(row["updated_at"]),
            )

    def members(self) -> tuple[MemberRecord, ...]:
        """Every member with its subsystems, in registration order."""
        with self._read() as conn:
            return self._member_records(conn)

    def _member_records(self, conn: sa.Connection) -> tuple[MemberRecord, ...]:
        m, c, s = t.members, t.member_classes, t.subsystems
        instance = self._instance(conn)
        subs: dict[int, list[tuple[str, str | None]]] = {}
        for sub in conn.execute(
            sa.select(s.c.member_id, s.c.subsystem_code, s.c.name).order_by(s.c.id)
        ):
            subs.setdefault(sub.member_id, []).append((sub.subsystem_code, sub.name))
        out = []
        for row in conn.execute(
            sa.select(m, c.c.code.label("class_code"))
            .join(c, m.c.member_class_id == c.c.id)
            .order_by(m.c.id)
        ).mappings():
            member_id = ClientId(instance, row["class_code"], row["member_code"])
            out.append(
                MemberRecord(
                    member_id,
                    row["name"],
                    tuple(
                        SubsystemRecord(member_id.subsystem(code), name)
                        for code, name in subs.get(row["id"], ())
                    ),
                    utc(row["created_at"]),
                    utc(row["updated_at"]),
                )
            )
        return tuple(out)

    # -- subsystems --

    def add_subsystem(self, subsystem: ClientId, name: str | None = None) -> SubsystemRecord:
        if subsystem.subsystem_code is None:
            raise XRoadError(Code.INVALID_CLIENT_IDENTIFIER, f"{subsystem} is not a subsystem")
        name = optional_text(name, "Subsystem name")
        with self._write() as tx:
            member = self._member_row(tx.conn, subsystem)
            exists = tx.conn.execute(
                sa.select(t.subsystems.c.id).where(
                    t.subsystems.c.member_id == member["id"],
                    t.subsystems.c.subsystem_code == subsystem.subsystem_code,
                )
            ).scalar()
            if exists is not None:
                raise XRoadError(Code.SUBSYSTEM_EXISTS, f"Subsystem {subsystem} already exists")
            tx.insert(
                t.subsystems,
                member_id=member["id"],
                subsystem_code=subsystem.subsystem_code,
                name=name,
            )
        return SubsystemRecord(subsystem, name)

    def rename_subsystem(self, subsystem: ClientId, name: str | None) -> SubsystemRecord:
        """Set (or with ``None``/empty clear) the V5+ ``subsystemName``."""
        if subsystem.subsystem_code is None:
            raise XRoadError(Code.INVALID_CLIENT_IDENTIFIER, f"{subsystem} is not a subsystem")
        name = optional_text(name, "Subsystem name")
        with self._write() as tx:
            row = self._subsystem_row(tx.conn, subsystem)
            tx.update(t.subsystems, row["id"], name=name)
        return SubsystemRecord(subsystem, name)

    def delete_subsystem(self, subsystem: ClientId) -> None:
        if subsystem.subsystem_code is None:
            raise XRoadError(Code.INVALID_CLIENT_IDENTIFIER, f"{subsystem} is not a subsystem")
        with self._write() as tx:
            row = self._subsystem_row(tx.conn, subsystem)
            registered = tx.conn.execute(
                sa.select(sa.func.count()).where(t.server_clients.c.subsystem_id == row["id"])
            ).scalar()
            if registered:
                raise XRoadError(
                    Code.SUBSYSTEM_REGISTERED_AND_CANNOT_BE_DELETED,
                    f"{subsystem} is registered on {registered} security server(s)",
                )
            tx.delete(t.global_group_members, t.global_group_members.c.subsystem_id == row["id"])
            tx.delete(t.subsystems, t.subsystems.c.id == row["id"])
