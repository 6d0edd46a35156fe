"""Registry part: initialization, system parameters, the management service, API keys and the
history of changes (protocols.md §11.1 system parameters, §5.4 ``managementService``).

System parameters keep NIIS's keys and defaults.  ``authCertRegUrl`` may contain the
``%{centralServerAddress}`` placeholder, resolved when private parameters are built.  API keys
are random secrets shown once; only their SHA-256 is stored (the secrets carry 256 bits of
entropy, so a fast hash is enough and lookups stay indexed).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterable

import sqlalchemy as sa

from crossroad.central.registry_base import (
    CENTRAL_SERVER_ADDRESS,
    INSTANCE_IDENTIFIER,
    OWNERS_GROUP,
    RegistryBase,
    Tx,
    certificate_der,
    check_host,
    check_text,
    check_url,
    utc,
)
from crossroad.central.registry_records import ApiKeyRecord, HistoryRecord, Role
from crossroad.crypto.algorithms import digest_algorithm
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import ManagementService
from crossroad.identifiers import ClientId, GlobalGroupId
from crossroad.storage import central_schema as t

SHA512_URI = "http://www.w3.org/2001/04/xmlenc#sha512"
MANAGEMENT_SERVICE_PROVIDER = "managementServiceProviderId"
AUTH_CERT_REG_URL = "authCertRegUrl"
AUTH_CERT_REG_CERT = "authCertRegServiceCert"
ADDRESS_PLACEHOLDER = "%{centralServerAddress}"

#: Defaults of the system parameters (NIIS's, protocols.md §11.1).
DEFAULTS: dict[str, str] = {
    "confExpireIntervalSeconds": "600",
    "ocspFreshnessSeconds": "3600",
    "timeStampingIntervalSeconds": "60",
    OWNERS_GROUP: "security-server-owners",
    AUTH_CERT_REG_URL: f"https://{ADDRESS_PLACEHOLDER}:4001/managementservice/",
    "confHashAlgoUri": SHA512_URI,
    "confSignDigestAlgoId": "SHA-512",
    "confSignCertHashAlgoUri": SHA512_URI,
    "minimumGlobalConfigurationVersion": "2",
}
#: Integer parameters and their ranges.
_INTS = {
    "confExpireIntervalSeconds": (60, 86400 * 7),
    "ocspFreshnessSeconds": (60, 86400 * 30),
    "timeStampingIntervalSeconds": (60, 86400),
    "minimumGlobalConfigurationVersion": (2, 6),
}
#: Set through their own methods, shown by parameters().
_MANAGED = (INSTANCE_IDENTIFIER, MANAGEMENT_SERVICE_PROVIDER, AUTH_CERT_REG_CERT)
SETTABLE = (*DEFAULTS, CENTRAL_SERVER_ADDRESS)
API_KEY_PREFIX = "crk_"


def api_key_hash(secret: str) -> str:
    return hashlib.sha256(secret.strip().encode("utf-8")).hexdigest()


class SystemMixin(RegistryBase):
    # -- initialization and system parameters --

    def initialize(
        self, instance_identifier: str, central_server_address: str | None = None
    ) -> None:
        """Set the instance identifier (once) and the central server address; create the
        security-server-owners group.  Repeating it with the same identifier is harmless."""
        GlobalGroupId(instance_identifier, "x").validate(strict=self.strict_identifiers)
        with self._write() as tx:
            current = tx.parameter(INSTANCE_IDENTIFIER)
            if current and current != instance_identifier:
                raise XRoadError(
                    Code.INIT_ALREADY_INITIALIZED,
                    f"The instance identifier is {current} and cannot be changed",
                )
            tx.set_parameter(INSTANCE_IDENTIFIER, instance_identifier)
            if central_server_address:
                address = check_host(central_server_address, "Central server address")
                tx.set_parameter(CENTRAL_SERVER_ADDRESS, address)
            self._owners_group_id(tx)

    def parameters(self) -> dict[str, str]:
        """Every system parameter: the stored values over the defaults."""
        with self._read() as conn:
            return self._parameters(conn)

    def _parameters(self, conn: sa.Connection) -> dict[str, str]:
        p = t.system_parameters
        stored = {row.key: row.value for row in conn.execute(sa.select(p.c.key, p.c.value))}
        return dict(sorted({**DEFAULTS, **stored}.items()))

    def parameter(self, key: str) -> str | None:
        return self.parameters().get(key)

    def int_parameter(self, key: str) -> int:
        return int(self.parameters()[key])

    def set_parameter(self, key: str, value: str | None) -> None:
        """Set a system parameter (``None`` restores its default)."""
        if key in _MANAGED:
            raise XRoadError(
                Code.INVALID_SYSTEM_PARAMETER,
                f"{key} is set through its own operation (initialize, management service)",
            )
        if key not in SETTABLE:
            raise XRoadError(
                Code.INVALID_SYSTEM_PARAMETER,
                f"Unknown system parameter {key!r}; known: {', '.join(sorted(SETTABLE))}",
            )
        if value is not None:
            value = self._check_parameter(key, value)
        with self._write() as tx:
            if key == OWNERS_GROUP:
                self._rename_owners_group(tx, value or DEFAULTS[OWNERS_GROUP])
            tx.set_parameter(key, value)
            self._check_intervals(tx)

    def _check_parameter(self, key: str, value: str) -> str:
        text = check_text(value, key)
        if key in _INTS:
            low, high = _INTS[key]
            if not text.isdigit() or not low <= int(text) <= high:
                raise XRoadError(
                    Code.INVALID_SYSTEM_PARAMETER, f"{key} must be an integer {low}..{high}"
                )
            return str(int(text))
        if key == CENTRAL_SERVER_ADDRESS:
            return check_host(text, "Central server address")
        if key == AUTH_CERT_REG_URL:
            check_url(text.replace(ADDRESS_PLACEHOLDER, "cs.invalid"), AUTH_CERT_REG_URL)
            return text
        if key in ("confHashAlgoUri", "confSignCertHashAlgoUri"):
            try:
                return digest_algorithm(text).uri
            except XRoadError as exc:
                raise XRoadError(Code.INVALID_SYSTEM_PARAMETER, exc.detail) from None
        if key == "confSignDigestAlgoId":
            try:
                return digest_algorithm(text).name
            except XRoadError as exc:
                raise XRoadError(Code.INVALID_SYSTEM_PARAMETER, exc.detail) from None
        if key == OWNERS_GROUP:
            GlobalGroupId("X", text).validate(strict=self.strict_identifiers)
        return text

    def _check_intervals(self, tx: Tx) -> None:
        # §5.4: the time-stamping interval must be shorter than the OCSP freshness period.
        def value(key: str) -> int:
            return int(tx.parameter(key) or DEFAULTS[key])

        stamp = value("timeStampingIntervalSeconds")
        fresh = value("ocspFreshnessSeconds")
        if stamp >= fresh:
            raise XRoadError(
                Code.INVALID_SYSTEM_PARAMETER,
                f"timeStampingIntervalSeconds ({stamp}) must be less than "
                f"ocspFreshnessSeconds ({fresh})",
            )

    def _rename_owners_group(self, tx: Tx, code: str) -> None:
        old = self._owners_group_code(tx)
        if old == code:
            return
        g = t.global_groups
        if tx.conn.execute(sa.select(g.c.id).where(g.c.group_code == code)).scalar():
            raise XRoadError(Code.GLOBAL_GROUP_EXISTS, f"Global group {code} already exists")
        group_id = self._owners_group_id(tx)
        tx.update(g, group_id, group_code=code)

    # -- management service --

    def set_management_service(
        self,
        provider: ClientId | None = None,
        *,
        auth_cert_reg_url: str | None = None,
        auth_cert_reg_cert: bytes | str | None = None,
    ) -> None:
        """Set what is given: the management service provider (an existing member or
        subsystem), the authCertReg address and the TLS certificate security servers pin."""
        der = (
            certificate_der(auth_cert_reg_cert, "authCertReg TLS certificate")
            if (auth_cert_reg_cert)
            else None
        )
        if auth_cert_reg_url is not None:
            self._check_parameter(AUTH_CERT_REG_URL, auth_cert_reg_url)
        with self._write() as tx:
            if provider is not None:
                try:
                    self._client_ref(tx.conn, provider)
                except XRoadError as exc:
                    raise XRoadError(Code.INVALID_SERVICE_PROVIDER_ID, exc.detail) from None
                tx.set_parameter(MANAGEMENT_SERVICE_PROVIDER, str(provider))
            if auth_cert_reg_url is not None:
                tx.set_parameter(AUTH_CERT_REG_URL, auth_cert_reg_url.strip())
            if der is not None:
                tx.set_parameter(AUTH_CERT_REG_CERT, base64.b64encode(der).decode("ascii"))

    def management_service(self) -> ManagementService:
        """The management service as private parameters carry it (placeholder resolved)."""
        return self._management_service(self.parameters())

    def _management_service(self, params: dict[str, str]) -> ManagementService:
        provider = params.get(MANAGEMENT_SERVICE_PROVIDER)
        if not provider:
            raise XRoadError(
                Code.MANAGEMENT_SERVICE_PROVIDER_NOT_SET,
                "The management service provider is not set",
            )
        url = params[AUTH_CERT_REG_URL]
        if ADDRESS_PLACEHOLDER in url:
            address = params.get(CENTRAL_SERVER_ADDRESS)
            if not address:
                raise XRoadError(
                    Code.CENTRAL_SERVER_ADDRESS_NOT_SET,
                    f"{AUTH_CERT_REG_URL} refers to the central server address, which is not set",
                )
            url = url.replace(ADDRESS_PLACEHOLDER, address)
        cert = params.get(AUTH_CERT_REG_CERT)
        return ManagementService(
            auth_cert_reg_service_address=url,
            management_request_service_provider_id=ClientId.parse(provider),
            auth_cert_reg_service_cert=base64.b64decode(cert) if cert else None,
        )

    # -- API keys --

    def create_api_key(self, name: str, roles: Iterable[Role | str]) -> tuple[ApiKeyRecord, str]:
        """A new API key with ``roles``; returns its record and the secret (shown only now)."""
        name = check_text(name, "API key name")
        wanted = _roles(roles)
        secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
        with self._write() as tx:
            k = t.api_keys
            if tx.conn.execute(sa.select(k.c.id).where(k.c.name == name)).scalar():
                raise XRoadError(Code.API_KEY_EXISTS, f"An API key named {name!r} exists")
            key_id = tx.insert(
                k,
                name=name,
                key_hash=api_key_hash(secret),
                roles=",".join(sorted(r.value for r in wanted)),
            )
            return ApiKeyRecord(int(key_id), name, wanted, tx.now), secret

    def api_keys(self) -> tuple[ApiKeyRecord, ...]:
        with self._read() as conn:
            return tuple(
                _api_key(row)
                for row in conn.execute(sa.select(t.api_keys).order_by(t.api_keys.c.id))
            )

    def revoke_api_key(self, key: int | str) -> None:
        """Delete an API key by id or name."""
        k = t.api_keys
        match = k.c.id == key if isinstance(key, int) else k.c.name == key
        with self._write() as tx:
            if not tx.delete(k, match):
                raise XRoadError(Code.API_KEY_NOT_FOUND, f"No API key {key}")

    def authenticate(self, secret: str) -> ApiKeyRecord | None:
        """The API key whose secret this is, or ``None``."""
        k = t.api_keys
        with self._read() as conn:
            row = conn.execute(sa.select(k).where(k.c.key_hash == api_key_hash(secret))).first()
            return _api_key(row) if row is not None else None

    # -- history --

    def history(self, limit: int = 100, *, table: str | None = None) -> tuple[HistoryRecord, ...]:
        """The newest ``limit`` changes first (optionally of one table)."""
        h = t.history
        query = sa.select(h).order_by(h.c.id.desc()).limit(max(0, int(limit)))
        if table is not None:
            query = query.where(h.c.table_name == table)
        with self._read() as conn:
            return tuple(
                HistoryRecord(
                    id=row.id,
                    actor=row.actor,
                    at=utc(row.at),  # type: ignore[arg-type]
                    table_name=row.table_name,
                    operation=row.operation,
                    record_id=row.record_id,
                    old_data=json.loads(row.old_data) if row.old_data else None,
                    new_data=json.loads(row.new_data) if row.new_data else None,
                )
                for row in conn.execute(query)
            )


def _roles(roles: Iterable[Role | str]) -> frozenset[Role]:
    out = set()
    for role in roles:
        try:
            out.add(Role(str(role).strip().lower()))
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise XRoadError(
                Code.INVALID_REQUEST, f"Unknown role {role!r}; known: {known}"
            ) from None
    if not out:
        raise XRoadError(Code.INVALID_REQUEST, "An API key needs at least one role")
    return frozenset(out)


def _api_key(row: sa.Row[tuple[object, ...]]) -> ApiKeyRecord:
    m = row._mapping
    roles = frozenset(Role(r) for r in str(m["roles"]).split(",") if r)
    return ApiKeyRecord(int(m["id"]), str(m["name"]), roles, utc(m["created_at"]))
