"""Registry part: configuration sources and their signing-key records, optional configuration
parts, and federation trusted anchors (protocols.md §5.1–5.3, §5.6, §5.7, §11.1).

The registry keeps only records here: the distribution side generates the keys (whose private
halves live in files named by ``key_reference``), signs and publishes.  A source has several
signing keys of which exactly one is active once it has any; the first key added becomes active,
activating another deactivates the previous one, and the active key cannot be deleted.
"""

from __future__ import annotations

import datetime as dt
import re

import sqlalchemy as sa

from crossroad.central.registry_base import RegistryBase, Tx, certificate_der, check_text, utc
from crossroad.central.registry_records import (
    ConfigurationPartRecord,
    ConfigurationSourceRecord,
    SigningKeyRecord,
    SourceType,
    TrustedAnchorRecord,
)
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import ConfigurationSource
from crossroad.globalconf.privateparams import (
    anchor_hash,
    parse_anchor,
    parse_fetch_interval,
    parse_monitoring_params,
    parse_next_update,
)
from crossroad.storage import central_schema as t

DEFAULT_NODE = "node_0"
#: The optional parts a central server distributes (§5.6), their files and validators.
OPTIONAL_PARTS = {
    "MONITORING": ("monitoring-params.xml", parse_monitoring_params),
    "FETCHINTERVAL": ("fetchinterval-params.xml", parse_fetch_interval),
    "NEXTUPDATE": ("nextupdate-params.xml", parse_next_update),
}
_RESERVED_PARTS = ("PRIVATE-PARAMETERS", "SHARED-PARAMETERS")
_CONTENT_ID = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,63}")
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def _source_type(value: SourceType | str) -> SourceType:
    try:
        return SourceType(str(value).lower())
    except ValueError:
        raise XRoadError(
            Code.INVALID_REQUEST, f"Configuration source must be internal or external: {value!r}"
        ) from None


class ConfMixin(RegistryBase):
    # -- configuration sources --

    def configuration_sources(self) -> tuple[ConfigurationSourceRecord, ...]:
        s = t.configuration_sources
        with self._read() as conn:
            return tuple(
                ConfigurationSourceRecord(
                    SourceType(row.source_type),
                    row.ha_node_name,
                    bytes(row.anchor_file) if row.anchor_file is not None else None,
                    row.anchor_file_hash,
                    utc(row.anchor_generated_at),
                )
                for row in conn.execute(sa.select(s).order_by(s.c.id))
            )

    def save_source_anchor(
        self,
        source_type: SourceType | str,
        anchor_file: bytes,
        generated_at: dt.datetime,
        *,
        ha_node_name: str = DEFAULT_NODE,
    ) -> None:
        """Record the anchor just generated for a source (its SHA-224 hash as NIIS shows it)."""
        parse_anchor(anchor_file)
        with self._write() as tx:
            source_id = self._source_id(tx, _source_type(source_type), ha_node_name)
            tx.update(
                t.configuration_sources,
                source_id,
                anchor_file=anchor_file,
                anchor_file_hash=anchor_hash(anchor_file),
                anchor_generated_at=generated_at,
            )

    def _source_id(self, tx: Tx, source_type: SourceType, node: str) -> int:
        """The source row, created on first use."""
        s = t.configuration_sources
        found = tx.conn.execute(
            sa.select(s.c.id).where(s.c.source_type == source_type.value, s.c.ha_node_name == node)
        ).scalar()
        if found is not None:
            return int(found)
        return int(tx.insert(s, source_type=source_type.value, ha_node_name=node))

    # -- signing keys --

    def add_signing_key(
        self,
        source_type: SourceType | str,
        key_id: str,
        cert: bytes | str,
        key_reference: str,
        *,
        activate: bool | None = None,
        ha_node_name: str = DEFAULT_NODE,
    ) -> SigningKeyRecord:
        """Record a configuration signing key; the first key of a source becomes active
        (``activate`` forces either way)."""
        kind = _source_type(source_type)
        key_id = check_text(key_id, "Key id")
        key_reference = check_text(key_reference, "Key reference", max_length=1024)
        der = certificate_der(cert, "Signing key certificate")
        k = t.configuration_signing_keys
        with self._write() as tx:
            if tx.conn.execute(sa.select(k.c.id).where(k.c.key_identifier == key_id)).scalar():
                raise XRoadError(Code.SIGNING_KEY_EXISTS, f"Signing key {key_id} already exists")
            source_id = self._source_id(tx, kind, ha_node_name)
            has_active = tx.conn.execute(
                sa.select(k.c.id).where(k.c.source_id == source_id, k.c.active.is_(True))
            ).scalar()
            active = has_active is None if activate is None else activate
            if active and has_active is not None:
                tx.update(k, has_active, active=False)
            tx.insert(
                k,
                source_id=source_id,
                key_identifier=key_id,
                cert=der,
                active=active,
                key_reference=key_reference,
            )
        return self.signing_key(key_id)

    def activate_signing_key(self, key_id: str) -> SigningKeyRecord:
        """Make ``key_id`` its source's active key (the previously active one stays, inactive)."""
        k = t.configuration_signing_keys
        with self._write() as tx:
            row = self._key_row(tx.conn, key_id)
            for other in tx.conn.execute(
                sa.select(k.c.id).where(k.c.source_id == row["source_id"], k.c.active.is_(True))
            ).scalars():
                if other != row["id"]:
                    tx.update(k, other, active=False)
            if not row["active"]:
                tx.update(k, row["id"], active=True)
        return self.signing_key(key_id)

    def delete_signing_key(self, key_id: str) -> SigningKeyRecord:
        """Delete an inactive key's record (returned, so the caller can remove its file)."""
        record = self.signing_key(key_id)
        k = t.configuration_signing_keys
        with self._write() as tx:
            row = self._key_row(tx.conn, key_id)
            if row["active"]:
                raise XRoadError(
                    Code.SIGNING_KEY_ACTION_NOT_POSSIBLE,
                    f"Signing key {key_id} is active: activate another key first",
                )
            tx.delete(k, k.c.id == row["id"])
        return record

    def signing_key(self, key_id: str) -> SigningKeyRecord:
        with self._read() as conn:
            self._key_row(conn, key_id)
            k = t.configuration_signing_keys
            return self._key_records(conn, k.c.key_identifier == key_id)[0]

    def signing_keys(
        self, source_type: SourceType | str | None = None
    ) -> tuple[SigningKeyRecord, ...]:
        """Every signing key (of one source type), oldest first."""
        criteria = []
        if source_type is not None:
            criteria.append(
                t.configuration_sources.c.source_type == _source_type(source_type).value
            )
        with self._read() as conn:
            return self._key_records(conn, *criteria)

    def active_signing_key(
        self, source_type: SourceType | str, *, ha_node_name: str = DEFAULT_NODE
    ) -> SigningKeyRecord | None:
        for key in self.signing_keys(source_type):
            if key.active and key.ha_node_name == ha_node_name:
                return key
        return None

    def shared_sources(self, address: str | None = None) -> tuple[ConfigurationSource, ...]:
        """V3+ ``source`` entries: one per HA node, at ``address`` (default: the central server
        address), listing every internal and external key's certificate (rotation, §5.5)."""
        if address is None:
            from crossroad.central.registry_base import CENTRAL_SERVER_ADDRESS

            with self._read() as conn:
                address = Tx(conn, self.actor, self.clock.now()).parameter(CENTRAL_SERVER_ADDRESS)
            if not address:
                raise XRoadError(
                    Code.CENTRAL_SERVER_ADDRESS_NOT_SET, "The central server address is not set"
                )
        nodes: dict[str, dict[SourceType, list[bytes]]] = {}
        for key in self.signing_keys():
            nodes.setdefault(key.ha_node_name, {}).setdefault(key.source_type, []).append(key.cert)
        return tuple(
            ConfigurationSource(
                address,
                tuple(certs.get(SourceType.INTERNAL, ())),
                tuple(certs.get(SourceType.EXTERNAL, ())),
            )
            for _, certs in sorted(nodes.items())
        )

    def _key_row(self, conn: sa.Connection, key_id: str) -> sa.RowMapping:
        k = t.configuration_signing_keys
        row = conn.execute(sa.select(k).where(k.c.key_identifier == key_id)).mappings().first()
        if row is None:
            raise XRoadError(Code.SIGNING_KEY_NOT_FOUND, f"No signing key {key_id}")
        return row

    def _key_records(
        self, conn: sa.Connection, *criteria: sa.ColumnElement[bool]
    ) -> tuple[SigningKeyRecord, ...]:
        k, s = t.configuration_signing_keys, t.configuration_sources
        query = (
            sa.select(k, s.c.source_type, s.c.ha_node_name)
            .join(s, k.c.source_id == s.c.id)
            .where(*criteria)
            .order_by(k.c.id)
        )
        return tuple(
            SigningKeyRecord(
                key_id=row.key_identifier,
                source_type=SourceType(row.source_type),
                cert=bytes(row.cert),
                active=bool(row.active),
                key_reference=row.key_reference,
                created_at=utc(row.created_at),
                ha_node_name=row.ha_node_name,
            )
            for row in conn.execute(query)
        )

    # -- optional configuration parts --

    def set_configuration_part(
        self, content_identifier: str, data: bytes, file_name: str | None = None
    ) -> ConfigurationPartRecord:
        """Upload (or replace) an optional part; the known ones (§5.6) are validated."""
        ident = content_identifier.strip().upper()
        if ident in _RESERVED_PARTS or not _CONTENT_ID.fullmatch(ident):
            raise XRoadError(
                Code.UNKNOWN_CONFIGURATION_PART,
                f"{content_identifier!r} is not a content identifier for an optional part",
            )
        known = OPTIONAL_PARTS.get(ident)
        if file_name is None:
            file_name = known[0] if known else f"{ident.lower()}-params.xml"
        if not _FILE_NAME.fullmatch(file_name):
            raise XRoadError(Code.INVALID_REQUEST, f"Bad file name for a part: {file_name!r}")
        if known is not None:
            try:
                known[1](data)
            except XRoadError as exc:
                raise XRoadError(Code.CONFIGURATION_PART_VALIDATION_FAILED, exc.detail) from None
        p = t.configuration_parts
        with self._write() as tx:
            found = tx.conn.execute(
                sa.select(p.c.id).where(p.c.content_identifier == ident)
            ).scalar()
            if found is None:
                tx.insert(p, content_identifier=ident, file_name=file_name, data=data)
            else:
                tx.update(p, found, file_name=file_name, data=data)
            return ConfigurationPartRecord(ident, file_name, data, tx.now)

    def configuration_parts(self) -> tuple[ConfigurationPartRecord, ...]:
        p = t.configuration_parts
        with self._read() as conn:
            return tuple(
                ConfigurationPartRecord(
                    row.content_identifier, row.file_name, bytes(row.data), utc(row.updated_at)
                )
                for row in conn.execute(sa.select(p).order_by(p.c.content_identifier))
            )

    def delete_configuration_part(self, content_identifier: str) -> None:
        p = t.configuration_parts
        ident = content_identifier.strip().upper()
        with self._write() as tx:
            if not tx.delete(p, p.c.content_identifier == ident):
                raise XRoadError(
                    Code.UNKNOWN_CONFIGURATION_PART, f"No configuration part {content_identifier}"
                )

    # -- trusted anchors (federation) --

    def add_trusted_anchor(self, anchor_file: bytes) -> TrustedAnchorRecord:
        """Upload a federation partner's anchor; it replaces an earlier one of that instance."""
        anchor = parse_anchor(anchor_file)
        instance = anchor.instance_identifier
        a = t.trusted_anchors
        with self._write() as tx:
            if instance == self._instance(tx.conn):
                raise XRoadError(
                    Code.TRUSTED_ANCHOR_VERIFICATION_FAILED,
                    f"The anchor is of this instance ({instance}), not of a federation partner",
                )
            tx.delete(a, a.c.instance_identifier == instance)
            tx.insert(
                a,
                instance_identifier=instance,
                anchor_file=anchor_file,
                anchor_hash=anchor_hash(anchor_file),
                generated_at=anchor.generated_at,
            )
            now = tx.now
        return TrustedAnchorRecord(
            instance, anchor_hash(anchor_file), anchor_file, anchor.generated_at, now
        )

    def trusted_anchors(self) -> tuple[TrustedAnchorRecord, ...]:
        a = t.trusted_anchors
        with self._read() as conn:
            return tuple(
                TrustedAnchorRecord(
                    row.instance_identifier,
                    row.anchor_hash,
                    bytes(row.anchor_file),
                    utc(row.generated_at),
                    utc(row.created_at),
                )
                for row in conn.execute(sa.select(a).order_by(a.c.instance_identifier))
            )

    def delete_trusted_anchor(self, ref: str) -> None:
        """Delete a trusted anchor by its hash (any case, with or without colons) or instance."""
        a = t.trusted_anchors
        wanted = ref.replace(":", "").upper()
        with self._write() as tx:
            for row in tx.conn.execute(sa.select(a.c.id, a.c.instance_identifier, a.c.anchor_hash)):
                if row.instance_identifier == ref or row.anchor_hash.replace(":", "") == wanted:
                    tx.delete(a, a.c.id == row.id)
                    return
            raise XRoadError(Code.TRUSTED_ANCHOR_NOT_FOUND, f"No trusted anchor {ref}")
