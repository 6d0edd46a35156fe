"""Registry part: approved certification services (top and intermediate CA certificates, OCSP
responders, certificate profile, authentication-only flag, CSR format, ACME server) and approved
time-stamping services (protocols.md §5.5 ``approvedCA``/``approvedTSA``, §10.2, §10.3).

Ids are the database ids the management API shows (``certification_service_id``,
``intermediate_ca_id``, ``ocsp_responder_id``, ``timestamping_service_id`` in NIIS's API).
OCSP responders and TSAs get cost type UNDEFINED unless told otherwise, as in NIIS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from crossroad.central.registry_base import (
    RegistryBase,
    certificate_der,
    check_ip,
    check_text,
    check_url,
    utc,
)
from crossroad.central.registry_records import (
    ApprovedCaRecord,
    ApprovedTsaRecord,
    CaCertRecord,
    OcspResponderRecord,
)
from crossroad.crypto.certs import load_certificate, subject_field
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import AcmeServer, CostType, CsrFormat
from crossroad.storage import central_schema as t

_UNSET: Any = object()


def _cert_name(der: bytes) -> str:
    """A service's default name: its certificate's CN (else the whole subject)."""
    cert = load_certificate(der)
    return subject_field(cert, "2.5.4.3") or cert.subject.rfc4514_string() or "unnamed"


def _cost(value: CostType | str | None) -> str | None:
    if value is None:
        return None
    try:
        return CostType(str(value).upper()).value
    except ValueError:
        raise XRoadError(
            Code.INVALID_REQUEST, f"Cost type must be FREE, PAID or UNDEFINED, not {value!r}"
        ) from None


def _csr_format(value: CsrFormat | str | None) -> str | None:
    if value is None:
        return None
    try:
        return CsrFormat(str(value).upper()).value
    except ValueError:
        raise XRoadError(
            Code.INVALID_REQUEST, f"CSR format must be PEM or DER, not {value!r}"
        ) from None


def _acme_columns(acme: AcmeServer | None) -> dict[str, str | None]:
    if acme is None:
        return dict.fromkeys(
            (
                "acme_directory_url",
                "acme_ip_address",
                "acme_auth_profile_id",
                "acme_sign_profile_id",
            )
        )
    return {
        "acme_directory_url": check_url(acme.directory_url, "ACME directory URL"),
        "acme_ip_address": check_ip(acme.ip_address, "ACME IP address")
        if acme.ip_address
        else None,
        "acme_auth_profile_id": check_text(
            acme.authentication_certificate_profile_id, "ACME authentication profile id"
        )
        if acme.authentication_certificate_profile_id
        else None,
        "acme_sign_profile_id": check_text(
            acme.signing_certificate_profile_id, "ACME signing profile id"
        )
        if acme.signing_certificate_profile_id
        else None,
    }


class ServicesMixin(RegistryBase):
    # -- approved CAs --

    def add_approved_ca(
        self,
        top_cert: bytes | str,
        certificate_profile_info: str,
        *,
        name: str | None = None,
        authentication_only: bool = False,
        default_csr_format: CsrFormat | str | None = None,
        acme_server: AcmeServer | None = None,
        intermediates: Sequence[bytes | str] = (),
        ocsp: Sequence[tuple[str, bytes | str | None, CostType | str | None]] = (),
    ) -> ApprovedCaRecord:
        """Approve a CA: its top certificate, profile, settings, intermediate certificates and
        the OCSP responders of the top CA (``(url, cert or None, cost type or None)``)."""
        der = certificate_der(top_cert, "CA certificate")
        name = check_text(name, "CA name") if name else _cert_name(der)
        profile = check_text(certificate_profile_info, "Certificate profile info")
        values = {
            "name": name,
            "certificate_profile_info": profile,
            "authentication_only": bool(authentication_only),
            "default_csr_format": _csr_format(default_csr_format),
            **_acme_columns(acme_server),
        }
        intermediate_ders = [
            certificate_der(c, "Intermediate CA certificate") for c in intermediates
        ]
        responders = [self._ocsp_values(url, cert, cost) for url, cert, cost in ocsp]
        with self._write() as tx:
            if tx.conn.execute(
                sa.select(t.approved_cas.c.id).where(t.approved_cas.c.name == name)
            ).scalar():
                raise XRoadError(
                    Code.CERTIFICATION_SERVICE_EXISTS, f"Approved CA {name!r} already exists"
                )
            ca_id = tx.insert(t.approved_cas, **values)
            top_id = tx.insert(t.ca_infos, ca_id=ca_id, is_top=True, cert=der)
            for responder in responders:
                tx.insert(t.ocsp_infos, ca_info_id=top_id, **responder)
            for inter in intermediate_ders:
                tx.insert(t.ca_infos, ca_id=ca_id, is_top=False, cert=inter)
        return self.approved_ca(int(ca_id))

    def update_approved_ca(
        self,
        ca_id: int,
        *,
        certificate_profile_info: str = _UNSET,
        authentication_only: bool = _UNSET,
        default_csr_format: CsrFormat | str | None = _UNSET,
        acme_server: AcmeServer | None = _UNSET,
    ) -> ApprovedCaRecord:
        """Change the settings given (the others stay as they are)."""
        values: dict[str, Any] = {}
        if certificate_profile_info is not _UNSET:
            values["certificate_profile_info"] = check_text(
                certificate_profile_info, "Certificate profile info"
            )
        if authentication_only is not _UNSET:
            values["authentication_only"] = bool(authentication_only)
        if default_csr_format is not _UNSET:
            values["default_csr_format"] = _csr_format(default_csr_format)
        if acme_server is not _UNSET:
            values.update(_acme_columns(acme_server))
        with self._write() as tx:
            self._require_ca(tx.conn, ca_id)
            if values:
                tx.update(t.approved_cas, ca_id, **values)
        return self.approved_ca(ca_id)

    def delete_approved_ca(self, ca_id: int) -> None:
        with self._write() as tx:
            self._require_ca(tx.conn, ca_id)
            infos = select_ids(tx.conn, t.ca_infos, t.ca_infos.c.ca_id == ca_id)
            if infos:
                tx.delete(t.ocsp_infos, t.ocsp_infos.c.ca_info_id.in_(infos))
            tx.delete(t.ca_infos, t.ca_infos.c.ca_id == ca_id)
            tx.delete(t.approved_cas, t.approved_cas.c.id == ca_id)

    def add_intermediate_ca(self, ca_id: int, cert: bytes | str) -> CaCertRecord:
        der = certificate_der(cert, "Intermediate CA certificate")
        with self._write() as tx:
            self._require_ca(tx.conn, ca_id)
            info_id = tx.insert(t.ca_infos, ca_id=ca_id, is_top=False, cert=der)
        return CaCertRecord(int(info_id), der)

    def delete_intermediate_ca(self, intermediate_id: int) -> None:
        with self._write() as tx:
            self._require_ca_info(tx.conn, intermediate_id, intermediate=True)
            tx.delete(t.ocsp_infos, t.ocsp_infos.c.ca_info_id == intermediate_id)
            tx.delete(t.ca_infos, t.ca_infos.c.id == intermediate_id)

    def add_ocsp_responder(
        self,
        ca_id: int,
        url: str,
        cert: bytes | str | None = None,
        cost_type: CostType | str | None = CostType.UNDEFINED,
        *,
        intermediate_id: int | None = None,
    ) -> OcspResponderRecord:
        """Add an OCSP responder to the top CA ``ca_id`` or to one of its intermediates."""
        values = self._ocsp_values(url, cert, cost_type)
        with self._write() as tx:
            self._require_ca(tx.conn, ca_id)
            if intermediate_id is None:
                info_id = tx.conn.execute(
                    sa.select(t.ca_infos.c.id).where(
                        t.ca_infos.c.ca_id == ca_id, t.ca_infos.c.is_top.is_(True)
                    )
                ).scalar_one()
            else:
                info = self._require_ca_info(tx.conn, intermediate_id, intermediate=True)
                if info["ca_id"] != ca_id:
                    raise XRoadError(
                        Code.INTERMEDIATE_CA_NOT_FOUND,
                        f"Intermediate CA {intermediate_id} is not under approved CA {ca_id}",
                    )
                info_id = intermediate_id
            ocsp_id = tx.insert(t.ocsp_infos, ca_info_id=info_id, **values)
        return self._ocsp_record(int(ocsp_id), values)

    def update_ocsp_responder(
        self,
        ocsp_id: int,
        *,
        url: str = _UNSET,
        cert: bytes | str | None = _UNSET,
        cost_type: CostType | str | None = _UNSET,
    ) -> OcspResponderRecord:
        values: dict[str, Any] = {}
        if url is not _UNSET:
            values["url"] = check_url(url, "OCSP responder URL")
        if cert is not _UNSET:
            values["cert"] = certificate_der(cert, "OCSP responder certificate") if cert else None
        if cost_type is not _UNSET:
            values["cost_type"] = _cost(cost_type)
        with self._write() as tx:
            row = self._require_ocsp(tx.conn, ocsp_id)
            if values:
                tx.update(t.ocsp_infos, ocsp_id, **values)
        return self._ocsp_record(ocsp_id, {**row, **values})

    def delete_ocsp_responder(self, ocsp_id: int) -> None:
        with self._write() as tx:
            self._require_ocsp(tx.conn, ocsp_id)
            tx.delete(t.ocsp_infos, t.ocsp_infos.c.id == ocsp_id)

    def approved_ca(self, ca_id: int) -> ApprovedCaRecord:
        with self._read() as conn:
            self._require_ca(conn, ca_id)
            return self._ca_records(conn, t.approved_cas.c.id == ca_id)[0]

    def approved_cas(self) -> tuple[ApprovedCaRecord, ...]:
        with self._read() as conn:
            return self._ca_records(conn)

    def _ca_records(
        self, conn: sa.Connection, *criteria: sa.ColumnElement[bool]
    ) -> tuple[ApprovedCaRecord, ...]:
        ca, info, ocsp = t.approved_cas, t.ca_infos, t.ocsp_infos
        responders: dict[int, list[OcspResponderRecord]] = {}
        for row in conn.execute(sa.select(ocsp).order_by(ocsp.c.id)).mappings():
            responders.setdefault(row["ca_info_id"], []).append(self._ocsp_record(row["id"], row))
        certs: dict[int, list[tuple[bool, CaCertRecord]]] = {}
        for cert_row in conn.execute(sa.select(info).order_by(info.c.id)):
            record = CaCertRecord(
                cert_row.id, bytes(cert_row.cert), tuple(responders.get(cert_row.id, ()))
            )
            certs.setdefault(cert_row.ca_id, []).append((cert_row.is_top, record))
        out = []
        for row in conn.execute(sa.select(ca).where(*criteria).order_by(ca.c.id)).mappings():
            entries = certs.get(row["id"], [])
            acme = None
            if row["acme_directory_url"]:
                acme = AcmeServer(
                    row["acme_directory_url"],
                    row["acme_ip_address"],
                    row["acme_auth_profile_id"],
                    row["acme_sign_profile_id"],
                )
            out.append(
                ApprovedCaRecord(
                    id=row["id"],
                    name=row["name"],
                    top=next(r for top, r in entries if top),
                    certificate_profile_info=row["certificate_profile_info"],
                    intermediates=tuple(r for top, r in entries if not top),
                    authentication_only=bool(row["authentication_only"]),
                    default_csr_format=CsrFormat(row["default_csr_format"])
                    if row["default_csr_format"]
                    else None,
                    acme_server=acme,
                    created_at=utc(row["created_at"]),
                    updated_at=utc(row["updated_at"]),
                )
            )
        return tuple(out)

    @staticmethod
    def _ocsp_values(
        url: str, cert: bytes | str | None, cost_type: CostType | str | None
    ) -> dict[str, Any]:
        return {
            "url": check_url(url, "OCSP responder URL"),
            "cert": certificate_der(cert, "OCSP responder certificate") if cert else None,
            "cost_type": _cost(cost_type),
        }

    @staticmethod
    def _ocsp_record(ocsp_id: int, values: Any) -> OcspResponderRecord:
        cert = values["cert"]
        cost = values["cost_type"]
        return OcspResponderRecord(
            ocsp_id,
            values["url"],
            bytes(cert) if cert is not None else None,
            CostType(cost) if cost else None,
        )

    def _require_ca(self, conn: sa.Connection, ca_id: int) -> None:
        found = conn.execute(
            sa.select(t.approved_cas.c.id).where(t.approved_cas.c.id == ca_id)
        ).scalar()
        if found is None:
            raise XRoadError(Code.CERTIFICATION_SERVICE_NOT_FOUND, f"No approved CA {ca_id}")

    def _require_ca_info(
        self, conn: sa.Connection, info_id: int, *, intermediate: bool
    ) -> sa.RowMapping:
        row = (
            conn.execute(sa.select(t.ca_infos).where(t.ca_infos.c.id == info_id)).mappings().first()
        )
        if row is None or (intermediate and row["is_top"]):
            raise XRoadError(Code.INTERMEDIATE_CA_NOT_FOUND, f"No intermediate CA {info_id}")
        return row

    def _require_ocsp(self, conn: sa.Connection, ocsp_id: int) -> sa.RowMapping:
        row = (
            conn.execute(sa.select(t.ocsp_infos).where(t.ocsp_infos.c.id == ocsp_id))
            .mappings()
            .first()
        )
        if row is None:
            raise XRoadError(Code.OCSP_RESPONDER_NOT_FOUND, f"No OCSP responder {ocsp_id}")
        return row

    # -- approved TSAs --

    def add_approved_tsa(
        self,
        url: str,
        cert: bytes | str,
        *,
        name: str | None = None,
        cost_type: CostType | str | None = CostType.UNDEFINED,
    ) -> ApprovedTsaRecord:
        der = certificate_der(cert, "TSA certificate")
        values = {
            "url": check_url(url, "TSA URL"),
            "cert": der,
            "name": check_text(name, "TSA name") if name else _cert_name(der),
            "cost_type": _cost(cost_type),
        }
        with self._write() as tx:
            tsa_id = tx.insert(t.approved_tsas, **values)
        return self.approved_tsa(int(tsa_id))

    def update_approved_tsa(
        self,
        tsa_id: int,
        *,
        url: str = _UNSET,
        cert: bytes | str = _UNSET,
        name: str = _UNSET,
        cost_type: CostType | str | None = _UNSET,
    ) -> ApprovedTsaRecord:
        values: dict[str, Any] = {}
        if url is not _UNSET:
            values["url"] = check_url(url, "TSA URL")
        if cert is not _UNSET:
            values["cert"] = certificate_der(cert, "TSA certificate")
        if name is not _UNSET:
            values["name"] = check_text(name, "TSA name")
        if cost_type is not _UNSET:
            values["cost_type"] = _cost(cost_type)
        with self._write() as tx:
            self._require_tsa(tx.conn, tsa_id)
            if values:
                tx.update(t.approved_tsas, tsa_id, **values)
        return self.approved_tsa(tsa_id)

    def delete_approved_tsa(self, tsa_id: int) -> None:
        with self._write() as tx:
            self._require_tsa(tx.conn, tsa_id)
            tx.delete(t.approved_tsas, t.approved_tsas.c.id == tsa_id)

    def approved_tsa(self, tsa_id: int) -> ApprovedTsaRecord:
        with self._read() as conn:
            self._require_tsa(conn, tsa_id)
            return self._tsa_records(conn, t.approved_tsas.c.id == tsa_id)[0]

    def approved_tsas(self) -> tuple[ApprovedTsaRecord, ...]:
        with self._read() as conn:
            return self._tsa_records(conn)

    def _tsa_records(
        self, conn: sa.Connection, *criteria: sa.ColumnElement[bool]
    ) -> tuple[ApprovedTsaRecord, ...]:
        tsa = t.approved_tsas
        return tuple(
            ApprovedTsaRecord(
                id=row.id,
                name=row.name,
                url=row.url,
                cert=bytes(row.cert),
                cost_type=CostType(row.cost_type) if row.cost_type else None,
                created_at=utc(row.created_at),
                updated_at=utc(row.updated_at),
            )
            for row in conn.execute(sa.select(tsa).where(*criteria).order_by(tsa.c.id))
        )

    def _require_tsa(self, conn: sa.Connection, tsa_id: int) -> None:
        found = conn.execute(
            sa.select(t.approved_tsas.c.id).where(t.approved_tsas.c.id == tsa_id)
        ).scalar()
        if found is None:
            raise XRoadError(
                Code.TIMESTAMPING_AUTHORITY_NOT_FOUND, f"No approved time-stamping service {tsa_id}"
            )


def select_ids(
    conn: sa.Connection, table: sa.Table, *criteria: sa.ColumnElement[bool]
) -> list[int]:
    return list(conn.execute(sa.select(table.c.id).where(*criteria)).scalars())
