"""Store part: endpoints, access rights and local groups (protocols.md §10.4–10.5, §3.4).

Access rights given on a service go to its base endpoint (``*``, ``**``); a local group subject
must be a group of the service's client; generated endpoints (from an OpenAPI description) can
be neither changed nor removed; deleting an endpoint or a local group removes its rights.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, GlobalGroupId, LocalGroupId
from crossroad.serverconf.model import ANY_METHOD, ANY_PATH, HTTP_METHODS, Subject
from crossroad.serverconf.store_base import check_client_id, subject_from_text
from crossroad.serverconf.store_services import ServicesMixin
from crossroad.storage import serverconf_schema as t


def _check_endpoint(method: str, path: str) -> tuple[str, str]:
    method = method.upper()
    if method != ANY_METHOD and method not in HTTP_METHODS:
        raise XRoadError(Code.VALIDATION_FAILURE, f"Unknown HTTP method {method!r}")
    if not path or (path != ANY_PATH and not path.startswith(("/", "*"))):
        raise XRoadError(Code.VALIDATION_FAILURE, f"Endpoint path {path!r} must start with '/'")
    return method, path


class AccessMixin(ServicesMixin):
    # -- endpoints --

    def _endpoint_row(self, conn: sa.Connection, endpoint_id: int) -> Any:
        row = (
            conn.execute(sa.select(t.endpoints).where(t.endpoints.c.id == endpoint_id))
            .mappings()
            .first()
        )
        if row is None:
            raise XRoadError(Code.ENDPOINT_NOT_FOUND, f"Endpoint {endpoint_id} not found")
        return row

    def add_endpoint(self, provider: ClientId, service_code: str, method: str, path: str) -> int:
        method, path = _check_endpoint(method, path)
        with self._write() as conn:
            pk = self._client_pk(conn, provider)
            if not any(
                r["service_code"] == service_code for r in self._client_services(conn, pk, None)
            ):
                raise XRoadError(
                    Code.SERVICE_NOT_FOUND, f"{provider} has no service {service_code}"
                )
            e = t.endpoints.c
            exists = conn.execute(
                sa.select(e.id).where(
                    e.client_id == pk,
                    e.service_code == service_code,
                    e.method == method,
                    e.path == path,
                )
            ).first()
            if exists is not None:
                raise XRoadError(Code.ENDPOINT_ALREADY_EXISTS, f"Endpoint {method} {path} exists")
            return self._ensure_endpoint(conn, pk, service_code, method, path, generated=False)

    def update_endpoint(self, endpoint_id: int, method: str, path: str) -> None:
        method, path = _check_endpoint(method, path)
        with self._write() as conn:
            row = self._endpoint_row(conn, endpoint_id)
            if row["generated"]:
                raise XRoadError(
                    Code.ILLEGAL_GENERATED_ENDPOINT_UPDATE, "Generated endpoints cannot be changed"
                )
            e = t.endpoints.c
            clash = conn.execute(
                sa.select(e.id).where(
                    e.client_id == row["client_id"],
                    e.service_code == row["service_code"],
                    e.method == method,
                    e.path == path,
                    e.id != endpoint_id,
                )
            ).first()
            if clash is not None:
                raise XRoadError(Code.ENDPOINT_ALREADY_EXISTS, f"Endpoint {method} {path} exists")
            conn.execute(
                sa.update(t.endpoints).where(e.id == endpoint_id).values(method=method, path=path)
            )

    def delete_endpoint(self, endpoint_id: int) -> None:
        with self._write() as conn:
            row = self._endpoint_row(conn, endpoint_id)
            if row["generated"]:
                raise XRoadError(
                    Code.ILLEGAL_GENERATED_ENDPOINT_REMOVE, "Generated endpoints cannot be removed"
                )
            conn.execute(
                sa.delete(t.access_rights).where(t.access_rights.c.endpoint_id == endpoint_id)
            )
            conn.execute(sa.delete(t.endpoints).where(t.endpoints.c.id == endpoint_id))

    # -- access rights --

    def _check_subjects(
        self, conn: sa.Connection, client_pk: int, subjects: Iterable[Subject | str]
    ) -> list[Subject]:
        out: list[Subject] = []
        for subject in subjects:
            value = subject_from_text(subject) if isinstance(subject, str) else subject
            if isinstance(value, LocalGroupId):
                g = t.local_groups.c
                found = conn.execute(
                    sa.select(g.id).where(
                        g.client_id == client_pk, g.group_code == value.group_code
                    )
                ).first()
                if found is None:
                    raise XRoadError(Code.LOCAL_GROUP_NOT_FOUND, f"Local group {value} not found")
            elif isinstance(value, ClientId):
                check_client_id(value)
            elif not isinstance(value, GlobalGroupId):
                raise XRoadError(Code.INVALID_SERVICE_CLIENT_ID, f"{value} cannot hold rights")
            out.append(value)
        return out

    def _target_endpoint(
        self,
        conn: sa.Connection,
        provider: ClientId,
        service_code: str | None,
        endpoint_id: int | None,
    ) -> tuple[int, int]:
        if endpoint_id is not None:
            row = self._endpoint_row(conn, endpoint_id)
            pk = self._client_pk(conn, provider)
            if row["client_id"] != pk:
                raise XRoadError(
                    Code.ENDPOINT_NOT_FOUND, f"{provider} has no endpoint {endpoint_id}"
                )
            return pk, endpoint_id
        pk = self._client_pk(conn, provider)
        if service_code is None or not any(
            r["service_code"] == service_code for r in self._client_services(conn, pk, None)
        ):
            raise XRoadError(Code.SERVICE_NOT_FOUND, f"{provider} has no service {service_code}")
        return pk, self._ensure_endpoint(conn, pk, service_code)

    def add_access_rights(
        self,
        provider: ClientId,
        service_code: str | None,
        subjects: Iterable[Subject | str],
        *,
        endpoint_id: int | None = None,
    ) -> None:
        """Let ``subjects`` call the service (its base endpoint) or one endpoint of it."""
        with self._write() as conn:
            pk, eid = self._target_endpoint(conn, provider, service_code, endpoint_id)
            now = self.clock.now()
            a = t.access_rights.c
            for subject in self._check_subjects(conn, pk, subjects):
                text = str(subject)
                exists = conn.execute(
                    sa.select(a.id).where(a.endpoint_id == eid, a.subject == text)
                ).first()
                if exists is not None:
                    raise XRoadError(Code.DUPLICATE_ACCESSRIGHT, f"{text} already has this right")
                conn.execute(
                    sa.insert(t.access_rights).values(
                        client_id=pk, endpoint_id=eid, subject=text, rights_given_at=now
                    )
                )

    def remove_access_rights(
        self,
        provider: ClientId,
        service_code: str | None,
        subjects: Iterable[Subject | str],
        *,
        endpoint_id: int | None = None,
    ) -> None:
        with self._write() as conn:
            pk, eid = self._target_endpoint(conn, provider, service_code, endpoint_id)
            a = t.access_rights.c
            for subject in subjects:
                text = str(subject_from_text(subject) if isinstance(subject, str) else subject)
                done = conn.execute(
                    sa.delete(t.access_rights).where(
                        a.client_id == pk, a.endpoint_id == eid, a.subject == text
                    )
                )
                if done.rowcount == 0:
                    raise XRoadError(Code.ACCESSRIGHT_NOT_FOUND, f"{text} has no such right")

    # -- local groups --

    def _group_row(self, conn: sa.Connection, group_id: int) -> Any:
        row = (
            conn.execute(sa.select(t.local_groups).where(t.local_groups.c.id == group_id))
            .mappings()
            .first()
        )
        if row is None:
            raise XRoadError(Code.LOCAL_GROUP_NOT_FOUND, f"Local group {group_id} not found")
        return row

    def add_local_group(self, owner: ClientId, code: str, description: str) -> int:
        LocalGroupId(code).validate()
        if not description.strip():
            raise XRoadError(Code.VALIDATION_FAILURE, "A local group needs a description")
        with self._write() as conn:
            pk = self._client_pk(conn, owner)
            g = t.local_groups.c
            if conn.execute(sa.select(g.id).where(g.client_id == pk, g.group_code == code)).first():
                raise XRoadError(
                    Code.LOCAL_GROUP_CODE_ALREADY_EXISTS, f"Local group {code} already exists"
                )
            return int(
                conn.execute(
                    sa.insert(t.local_groups)
                    .values(
                        client_id=pk,
                        group_code=code,
                        description=description,
                        updated_at=self.clock.now(),
                    )
                    .returning(g.id)
                ).scalar_one()
            )

    def update_local_group(self, group_id: int, description: str) -> None:
        with self._write() as conn:
            self._group_row(conn, group_id)
            conn.execute(
                sa.update(t.local_groups)
                .where(t.local_groups.c.id == group_id)
                .values(description=description, updated_at=self.clock.now())
            )

    def delete_local_group(self, group_id: int) -> None:
        """Remove a local group, its members and every access right given to it."""
        with self._write() as conn:
            row = self._group_row(conn, group_id)
            subject = str(LocalGroupId(row["group_code"]))
            a = t.access_rights.c
            conn.execute(
                sa.delete(t.access_rights).where(
                    a.client_id == row["client_id"], a.subject == subject
                )
            )
            conn.execute(
                sa.delete(t.local_group_members).where(t.local_group_members.c.group_id == group_id)
            )
            conn.execute(sa.delete(t.local_groups).where(t.local_groups.c.id == group_id))

    def add_local_group_members(self, group_id: int, members: Iterable[ClientId]) -> None:
        with self._write() as conn:
            self._group_row(conn, group_id)
            m = t.local_group_members.c
            now = self.clock.now()
            for member in members:
                text = str(check_client_id(member))
                if conn.execute(
                    sa.select(m.id).where(m.group_id == group_id, m.member == text)
                ).first():
                    raise XRoadError(
                        Code.LOCAL_GROUP_MEMBER_ALREADY_EXISTS, f"{text} is already a member"
                    )
                conn.execute(
                    sa.insert(t.local_group_members).values(
                        group_id=group_id, member=text, added_at=now
                    )
                )
            conn.execute(
                sa.update(t.local_groups)
                .where(t.local_groups.c.id == group_id)
                .values(updated_at=now)
            )

    def remove_local_group_members(self, group_id: int, members: Iterable[ClientId]) -> None:
        with self._write() as conn:
            self._group_row(conn, group_id)
            m = t.local_group_members.c
            for member in members:
                done = conn.execute(
                    sa.delete(t.local_group_members).where(
                        m.group_id == group_id, m.member == str(member)
                    )
                )
                if done.rowcount == 0:
                    raise XRoadError(Code.LOCAL_GROUP_MEMBER_NOT_FOUND, f"{member} is not a member")
            conn.execute(
                sa.update(t.local_groups)
                .where(t.local_groups.c.id == group_id)
                .values(updated_at=self.clock.now())
            )
