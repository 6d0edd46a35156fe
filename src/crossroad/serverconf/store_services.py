"""Store part: service descriptions and services, with NIIS's rules (protocols.md §10.5, §3.4;
NIIS ``ServiceDescriptionService``).

* A new description is disabled with the notice "Out of order" unless asked otherwise; every
  service gets its base endpoint (``*``, ``**``), OpenAPI operations become generated endpoints.
* Service codes of the metaservices are reserved; a client's description URLs are unique; a
  WSDL service (code and version) or a REST service code may exist once per client.
* Refreshing keeps each surviving service's URL, timeout and TLS setting; access rights and
  endpoints of services that disappeared are removed with them.

The shell reads description documents (file, URL); this module takes their bytes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa

from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, ServiceId
from crossroad.serverconf.descriptions import WsdlService, parse_openapi, parse_wsdl
from crossroad.serverconf.model import (
    ANY_METHOD,
    ANY_PATH,
    DEFAULT_DISABLED_NOTICE,
    DEFAULT_TIMEOUT,
    RESERVED_SERVICE_CODES,
    DescriptionType,
)
from crossroad.serverconf.store_base import StoreBase
from crossroad.storage import serverconf_schema as t

MAX_TIMEOUT = 1000  # seconds, NIIS's API limit


def check_url(url: str, code: str = Code.INVALID_URL, schemes: tuple[str, ...] = ()) -> str:
    allowed = schemes or ("http", "https")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise XRoadError(code, f"Malformed URL {url!r}") from None
    if parts.scheme not in allowed or (parts.scheme != "file" and not parts.hostname):
        raise XRoadError(code, f"Malformed URL {url!r}: expected {' or '.join(allowed)}")
    return url


def _check_code(service_code: str) -> None:
    if service_code in RESERVED_SERVICE_CODES:
        raise XRoadError(Code.SERVICE_CODE_RESERVED, f"Service code {service_code} is reserved")
    ServiceId(ClientId("x", "x", "x"), service_code).validate()


class ServicesMixin(StoreBase):
    # -- helpers --

    def _description(self, conn: sa.Connection, description_id: int) -> Any:
        row = (
            conn.execute(
                sa.select(t.service_descriptions).where(
                    t.service_descriptions.c.id == description_id
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise XRoadError(
                Code.SERVICE_DESCRIPTION_NOT_FOUND,
                f"Service description {description_id} not found",
            )
        return row

    def _client_services(self, conn: sa.Connection, client_pk: int, skip: int | None) -> list[Any]:
        sd, s = t.service_descriptions.c, t.services.c
        query = (
            sa.select(t.services, sd.url)
            .join(t.service_descriptions, sd.id == s.description_id)
            .where(sd.client_id == client_pk)
        )
        if skip is not None:
            query = query.where(sd.id != skip)
        return list(conn.execute(query).mappings())

    def _check_new_description(
        self,
        conn: sa.Connection,
        client_pk: int,
        url: str,
        dtype: DescriptionType,
        skip: int | None,
    ) -> None:
        sd = t.service_descriptions.c
        query = sa.select(sd.url).where(sd.client_id == client_pk)
        if skip is not None:
            query = query.where(sd.id != skip)
        for (other,) in conn.execute(query):
            same = other.lower() == url.lower() if dtype is DescriptionType.WSDL else other == url
            if same:
                raise XRoadError(Code.URL_ALREADY_EXISTS, f"URL {url} already exists")

    def _ensure_endpoint(
        self,
        conn: sa.Connection,
        client_pk: int,
        code: str,
        method: str = ANY_METHOD,
        path: str = ANY_PATH,
        generated: bool = True,
    ) -> int:
        e = t.endpoints.c
        found = conn.execute(
            sa.select(e.id).where(
                e.client_id == client_pk, e.service_code == code, e.method == method, e.path == path
            )
        ).scalar()
        if found is not None:
            return int(found)
        return int(
            conn.execute(
                sa.insert(t.endpoints)
                .values(
                    client_id=client_pk,
                    service_code=code,
                    method=method,
                    path=path,
                    generated=generated,
                )
                .returning(e.id)
            ).scalar_one()
        )

    def _drop_service_codes(self, conn: sa.Connection, client_pk: int, codes: set[str]) -> None:
        if not codes:
            return
        e = t.endpoints.c
        ids = sa.select(e.id).where(e.client_id == client_pk, e.service_code.in_(codes))
        conn.execute(sa.delete(t.access_rights).where(t.access_rights.c.endpoint_id.in_(ids)))
        conn.execute(
            sa.delete(t.endpoints).where(e.client_id == client_pk, e.service_code.in_(codes))
        )

    def _insert_description(
        self, conn: sa.Connection, client_pk: int, dtype: DescriptionType, url: str, **values: Any
    ) -> int:
        now = self.clock.now()
        disabled = values.pop("disabled", True)
        return int(
            conn.execute(
                sa.insert(t.service_descriptions)
                .values(
                    client_id=client_pk,
                    type=dtype.value,
                    url=url,
                    disabled=disabled,
                    disabled_notice=DEFAULT_DISABLED_NOTICE,
                    refreshed_at=now,
                    created_at=now,
                    **values,
                )
                .returning(t.service_descriptions.c.id)
            ).scalar_one()
        )

    def _insert_service(self, conn: sa.Connection, description_id: int, **values: Any) -> None:
        values.setdefault("timeout", DEFAULT_TIMEOUT)
        values.setdefault("ssl_authentication", True)
        conn.execute(sa.insert(t.services).values(description_id=description_id, **values))

    # -- adding descriptions --

    def _wsdl_services(self, content: bytes) -> tuple[WsdlService, ...]:
        parsed = parse_wsdl(content)
        for service in parsed:
            if service.service_code in RESERVED_SERVICE_CODES:
                raise XRoadError(
                    Code.SERVICE_CODE_RESERVED, f"Service code {service.service_code} is reserved"
                )
        return parsed

    @staticmethod
    def _check_wsdl_conflicts(parsed: Iterable[WsdlService], existing: list[Any]) -> None:
        taken = {
            (r["service_code"].lower(), (r["service_version"] or "").lower()): r for r in existing
        }
        for service in parsed:
            other = taken.get((service.service_code.lower(), (service.version or "").lower()))
            if other is not None:
                raise XRoadError(
                    Code.SERVICE_ALREADY_EXISTS,
                    f"Service {service.service_code} already exists in {other['url']}",
                )

    def add_wsdl(self, client: ClientId, url: str, content: bytes, *, enabled: bool = False) -> int:
        """Add a WSDL description (its bytes read by the caller from ``url``); returns its id."""
        check_url(url, schemes=("http", "https", "file"))
        parsed = self._wsdl_services(content)
        for service in parsed:
            if service.url is not None and not service.url.startswith(("http://", "https://")):
                raise XRoadError(Code.INVALID_SERVICE_URL, f"Invalid service URL {service.url}")
        with self._write() as conn:
            pk = self._client_pk(conn, client)
            self._check_new_description(conn, pk, url, DescriptionType.WSDL, None)
            self._check_wsdl_conflicts(parsed, self._client_services(conn, pk, None))
            did = self._insert_description(
                conn, pk, DescriptionType.WSDL, url, content=content, disabled=not enabled
            )
            for service in parsed:
                self._insert_service(
                    conn,
                    did,
                    service_code=service.service_code,
                    service_version=service.version,
                    title=service.title,
                    url=service.url,
                )
                self._ensure_endpoint(conn, pk, service.service_code)
        return did

    def _check_rest_code(self, conn: sa.Connection, pk: int, code: str, skip: int | None) -> None:
        _check_code(code)
        for other in self._client_services(conn, pk, skip):
            if other["service_code"].lower() == code.lower():
                raise XRoadError(
                    Code.SERVICE_CODE_ALREADY_EXISTS,
                    f"Service code {code} already exists in {other['url']}",
                )

    def add_openapi(
        self,
        client: ClientId,
        url: str,
        content: bytes,
        service_code: str,
        *,
        enabled: bool = False,
    ) -> int:
        """Add an OpenAPI 3 description as one REST service with generated endpoints."""
        check_url(url, schemes=("http", "https", "file"))
        described = parse_openapi(content, url)
        with self._write() as conn:
            pk = self._client_pk(conn, client)
            self._check_rest_code(conn, pk, service_code, None)
            self._check_new_description(conn, pk, url, DescriptionType.OPENAPI3, None)
            did = self._insert_description(
                conn, pk, DescriptionType.OPENAPI3, url, content=content, disabled=not enabled
            )
            self._insert_service(conn, did, service_code=service_code, url=described.base_url)
            self._ensure_endpoint(conn, pk, service_code)
            for method, path in described.operations:
                self._ensure_endpoint(conn, pk, service_code, method, path)
        return did

    def add_rest(
        self, client: ClientId, url: str, service_code: str, *, enabled: bool = False
    ) -> int:
        """Add a plain REST service: its base URL and code, with the base endpoint only."""
        check_url(url)
        with self._write() as conn:
            pk = self._client_pk(conn, client)
            self._check_rest_code(conn, pk, service_code, None)
            self._check_new_description(conn, pk, url, DescriptionType.REST, None)
            did = self._insert_description(
                conn, pk, DescriptionType.REST, url, disabled=not enabled
            )
            self._insert_service(conn, did, service_code=service_code, url=url)
            self._ensure_endpoint(conn, pk, service_code)
        return did

    # -- changing descriptions --

    def enable_description(self, description_id: int) -> None:
        with self._write() as conn:
            self._description(conn, description_id)
            conn.execute(
                sa.update(t.service_descriptions)
                .where(t.service_descriptions.c.id == description_id)
                .values(disabled=False)
            )

    def disable_description(self, description_id: int, notice: str | None = None) -> None:
        with self._write() as conn:
            self._description(conn, description_id)
            conn.execute(
                sa.update(t.service_descriptions)
                .where(t.service_descriptions.c.id == description_id)
                .values(disabled=True, disabled_notice=notice)
            )

    def delete_description(self, description_id: int) -> None:
        with self._write() as conn:
            row = self._description(conn, description_id)
            pk = row["client_id"]
            own = {r["service_code"] for r in self._services_of(conn, description_id)}
            elsewhere = {r["service_code"] for r in self._client_services(conn, pk, description_id)}
            self._drop_service_codes(conn, pk, own - elsewhere)
            conn.execute(sa.delete(t.services).where(t.services.c.description_id == description_id))
            conn.execute(
                sa.delete(t.service_descriptions).where(
                    t.service_descriptions.c.id == description_id
                )
            )

    def _services_of(self, conn: sa.Connection, description_id: int) -> list[Any]:
        s = t.services.c
        return list(
            conn.execute(
                sa.select(t.services).where(s.description_id == description_id).order_by(s.id)
            ).mappings()
        )

    def refresh_description(
        self, description_id: int, content: bytes | None = None, *, url: str | None = None
    ) -> None:
        """Re-read a WSDL or OpenAPI description from ``content`` (optionally at a new URL).

        A REST description has nothing to re-read; its refresh time moves.
        """
        with self._write() as conn:
            row = self._description(conn, description_id)
            dtype = DescriptionType(row["type"])
            pk = row["client_id"]
            new_url = url or row["url"]
            if url is not None:
                check_url(url, schemes=("http", "https", "file"))
                self._check_new_description(conn, pk, url, dtype, description_id)
            values: dict[str, Any] = {"refreshed_at": self.clock.now(), "url": new_url}
            if dtype is not DescriptionType.REST:
                if content is None:
                    raise XRoadError(Code.MISSING_PARAMETER, "The description content is needed")
                values["content"] = content
                if dtype is DescriptionType.WSDL:
                    self._refresh_wsdl(conn, pk, description_id, content)
                else:
                    self._refresh_openapi(conn, pk, description_id, content, new_url)
            conn.execute(
                sa.update(t.service_descriptions)
                .where(t.service_descriptions.c.id == description_id)
                .values(**values)
            )

    def _refresh_wsdl(self, conn: sa.Connection, pk: int, did: int, content: bytes) -> None:
        parsed = self._wsdl_services(content)
        self._check_wsdl_conflicts(parsed, self._client_services(conn, pk, did))
        old = self._services_of(conn, did)
        kept = {(r["service_code"], r["service_version"]): r for r in old}
        new_codes = {s.service_code for s in parsed}
        removed = {r["service_code"] for r in old} - new_codes
        conn.execute(sa.delete(t.services).where(t.services.c.description_id == did))
        for service in parsed:
            previous = kept.get((service.service_code, service.version))
            settings: dict[str, Any] = {"url": service.url}
            if previous is not None:
                settings = {
                    "url": previous["url"],
                    "timeout": previous["timeout"],
                    "ssl_authentication": previous["ssl_authentication"],
                }
            self._insert_service(
                conn,
                did,
                service_code=service.service_code,
                service_version=service.version,
                title=service.title,
                **settings,
            )
            self._ensure_endpoint(conn, pk, service.service_code)
        elsewhere = {r["service_code"] for r in self._client_services(conn, pk, did)}
        self._drop_service_codes(conn, pk, removed - elsewhere)

    def _refresh_openapi(
        self, conn: sa.Connection, pk: int, did: int, content: bytes, url: str
    ) -> None:
        described = parse_openapi(content, url)
        services = self._services_of(conn, did)
        if not services:
            raise XRoadError(Code.SERVICE_NOT_FOUND, f"Description {did} has no service")
        code = services[0]["service_code"]
        e = t.endpoints.c
        parsed = set(described.operations)
        for row in conn.execute(
            sa.select(t.endpoints).where(e.client_id == pk, e.service_code == code)
        ).mappings():
            key = (row["method"], row["path"])
            if key == (ANY_METHOD, ANY_PATH):
                continue
            if key in parsed and not row["generated"]:
                # A manual endpoint the description now defines becomes generated.
                conn.execute(sa.update(t.endpoints).where(e.id == row["id"]).values(generated=True))
            elif key not in parsed and row["generated"]:
                conn.execute(
                    sa.delete(t.access_rights).where(t.access_rights.c.endpoint_id == row["id"])
                )
                conn.execute(sa.delete(t.endpoints).where(e.id == row["id"]))
        for method, path in described.operations:
            self._ensure_endpoint(conn, pk, code, method, path)

    def update_rest_description(
        self, description_id: int, *, url: str | None = None, service_code: str | None = None
    ) -> None:
        """Change a REST/OpenAPI description's URL or its service code (endpoints follow)."""
        with self._write() as conn:
            row = self._description(conn, description_id)
            dtype = DescriptionType(row["type"])
            if dtype is DescriptionType.WSDL:
                raise XRoadError(
                    Code.WRONG_SERVICEDESCRIPTION_TYPE, "Expected a REST or OPENAPI3 description"
                )
            pk = row["client_id"]
            services = self._services_of(conn, description_id)
            if url is not None:
                check_url(url)
                self._check_new_description(conn, pk, url, dtype, description_id)
                conn.execute(
                    sa.update(t.service_descriptions)
                    .where(t.service_descriptions.c.id == description_id)
                    .values(url=url)
                )
                if dtype is DescriptionType.REST and services:
                    conn.execute(
                        sa.update(t.services)
                        .where(t.services.c.id == services[0]["id"])
                        .values(url=url)
                    )
            if service_code is not None and services:
                old = services[0]["service_code"]
                if service_code != old:
                    self._check_rest_code(conn, pk, service_code, description_id)
                    conn.execute(
                        sa.update(t.services)
                        .where(t.services.c.id == services[0]["id"])
                        .values(service_code=service_code)
                    )
                    conn.execute(
                        sa.update(t.endpoints)
                        .where(t.endpoints.c.client_id == pk, t.endpoints.c.service_code == old)
                        .values(service_code=service_code)
                    )

    # -- services --

    def _service_row(self, conn: sa.Connection, service: ServiceId) -> Any:
        s, sd = t.services.c, t.service_descriptions.c
        pk = self._client_pk(conn, service.client)
        version = (
            s.service_version.is_(None)
            if service.service_version is None
            else s.service_version == service.service_version
        )
        row = (
            conn.execute(
                sa.select(t.services)
                .join(t.service_descriptions, sd.id == s.description_id)
                .where(sd.client_id == pk, s.service_code == service.service_code, version)
            )
            .mappings()
            .first()
        )
        if row is None:
            raise XRoadError(Code.SERVICE_NOT_FOUND, f"Service {service} not found")
        return row

    def update_service(
        self,
        service: ServiceId,
        *,
        url: str | None = None,
        timeout: int | None = None,
        ssl_authentication: bool | None = None,
        url_all: bool = False,
        timeout_all: bool = False,
        ssl_auth_all: bool = False,
    ) -> None:
        """Change a service's URL, timeout or TLS verification (``*_all``: for every service of
        its description, as NIIS's ServiceUpdate)."""
        if url is not None:
            check_url(url, Code.INVALID_SERVICE_URL)
        if timeout is not None and not 0 <= timeout <= MAX_TIMEOUT:
            raise XRoadError(Code.VALIDATION_FAILURE, f"Timeout must be 0..{MAX_TIMEOUT} seconds")
        with self._write() as conn:
            row = self._service_row(conn, service)
            for column, value, everywhere in (
                ("url", url, url_all),
                ("timeout", timeout, timeout_all),
                ("ssl_authentication", ssl_authentication, ssl_auth_all),
            ):
                if value is None:
                    continue
                s = t.services.c
                where = (
                    s.description_id == row["description_id"] if everywhere else s.id == row["id"]
                )
                conn.execute(sa.update(t.services).where(where).values({column: value}))
