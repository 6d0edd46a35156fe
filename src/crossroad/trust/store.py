"""The trust services' state: one SQLite database (and exported certificates) under a directory.

Holds the CA, OCSP responder and TSA keys (PEM, encrypted when a passphrase is given) with their
certificates, every certificate the CA issued with its revocation state (the
:class:`~crossroad.trust.ca.CertRegistry` of the CA), the serial counters and a few settings
(instance, certificate profile, responder URL).  Every change is one SQLite transaction, so the
state survives crashes and restarts, and the CLI may revoke while the services run: the OCSP
responder reads the database on every request.  The public certificates are also written as
``ca.pem``, ``ocsp.pem`` and ``tsa.pem`` (atomically, via rename) for tools such as openssl.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes

from crossroad.errors import Code, XRoadError
from crossroad.trust.ca import (
    CertRecord,
    MemoryRegistry,
    Profile,
    TestCA,
    generate_key,
    parse_name,
    parse_profile,
)
from crossroad.trust.ocsp_responder import TestOcspResponder

DB_NAME = "trust.sqlite"
SCHEMA_VERSION = 1
PASSPHRASE_ENV = "CROSSROAD_TRUST_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS keys (
    role TEXT PRIMARY KEY,          -- ca, ocsp, tsa
    key_pem TEXT NOT NULL,
    cert_pem TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS certs (
    serial INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'good',
    revoked_at TEXT,
    reason TEXT,
    pem TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class KeyPair:
    key: CertificateIssuerPrivateKeyTypes
    cert: x509.Certificate


def _ts(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).isoformat()


def _from_ts(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if text else None


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class TrustStore:
    """The SQLite state of one set of trust services (also the CA's certificate registry)."""

    def __init__(self, directory: Path, conn: sqlite3.Connection) -> None:
        self.directory = directory
        self._conn = conn

    @classmethod
    def open(cls, directory: str | os.PathLike[str], *, create: bool = True) -> TrustStore:
        """Open (and with ``create``, make) the state under ``directory``."""
        path = Path(directory)
        db = path / DB_NAME
        if not create and not db.is_file():
            raise XRoadError(
                Code.IO_ERROR,
                f"{path} holds no trust services state (run `crossroad trust init {path}`)",
            )
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            conn = sqlite3.connect(db, isolation_level=None, timeout=10.0)
            os.chmod(db, 0o600)  # the database holds private keys
            conn.execute("PRAGMA journal_mode=WAL")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                conn.close()
                raise XRoadError(
                    Code.IO_ERROR,
                    f"{db} has schema version {version}; this crossroad knows {SCHEMA_VERSION}",
                )
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except (OSError, sqlite3.Error) as exc:
            raise XRoadError(Code.IO_ERROR, f"Cannot open trust state {db}: {exc}") from exc
        return cls(path, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> TrustStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (taken immediately, so concurrent writers queue up)."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise XRoadError(Code.IO_ERROR, f"Cannot write trust state: {exc}") from exc
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    # -- settings and counters -------------------------------------------------------------

    def setting(self, name: str, default: str | None = None) -> str | None:
        row = self._conn.execute("SELECT value FROM settings WHERE name=?", (name,)).fetchone()
        return row[0] if row else default

    def set_setting(self, name: str, value: str) -> None:
        with self._tx() as tx:
            tx.execute(
                "INSERT INTO settings(name, value) VALUES(?, ?) "
                "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                (name, value),
            )

    def _next(self, counter: str) -> int:
        with self._tx() as tx:
            tx.execute(
                "INSERT INTO counters(name, value) VALUES(?, 1) "
                "ON CONFLICT(name) DO UPDATE SET value=value+1",
                (counter,),
            )
            return int(
                tx.execute("SELECT value FROM counters WHERE name=?", (counter,)).fetchone()[0]
            )

    def next_tsa_serial(self) -> int:
        """The serial number of the next time-stamp token (never repeats, survives restarts)."""
        return self._next("tsa_serial")

    @property
    def instance(self) -> str | None:
        return self.setting("instance")

    @property
    def profile(self) -> Profile:
        return parse_profile(self.setting("profile", Profile.FIVRK.value) or "fivrk")

    @property
    def encrypted(self) -> bool:
        return self.setting("encrypted") == "1"

    # -- CertRegistry ----------------------------------------------------------------------

    def allocate_serial(self) -> int:
        return self._next("cert_serial")

    def add(self, record: CertRecord) -> None:
        with self._tx() as tx:
            self._insert(tx, record)

    @staticmethod
    def _insert(tx: sqlite3.Connection, record: CertRecord) -> None:
        tx.execute(
            "INSERT INTO certs(serial, kind, subject, not_before, not_after, pem) "
            "VALUES(?, ?, ?, ?, ?, ?)",
            (
                record.serial,
                record.kind,
                record.subject,
                _ts(record.not_before),
                _ts(record.not_after),
                record.pem,
            ),
        )

    def get(self, serial: int) -> CertRecord | None:
        if not 0 <= serial < 2**63:  # SQLite integers are 64-bit signed; none of ours is larger
            return None
        row = self._conn.execute(
            "SELECT serial, kind, subject, not_before, not_after, pem, revoked_at, reason "
            "FROM certs WHERE serial=?",
            (serial,),
        ).fetchone()
        return self._record(row) if row else None

    def set_revoked(self, serial: int, at: dt.datetime, reason: str) -> None:
        with self._tx() as tx:
            tx.execute(
                "UPDATE certs SET status='revoked', revoked_at=?, reason=? WHERE serial=?",
                (_ts(at), reason, serial),
            )

    def records(self) -> Iterator[CertRecord]:
        rows = self._conn.execute(
            "SELECT serial, kind, subject, not_before, not_after, pem, revoked_at, reason "
            "FROM certs ORDER BY serial"
        ).fetchall()
        return iter([self._record(r) for r in rows])

    @staticmethod
    def _record(row: tuple[object, ...]) -> CertRecord:
        serial, kind, subject, nb, na, pem, revoked_at, reason = row
        return CertRecord(
            serial=int(serial),  # type: ignore[call-overload]
            kind=str(kind),
            subject=str(subject),
            not_before=_from_ts(str(nb)),  # type: ignore[arg-type]
            not_after=_from_ts(str(na)),  # type: ignore[arg-type]
            pem=str(pem),
            revoked_at=_from_ts(revoked_at),  # type: ignore[arg-type]
            reason=str(reason) if reason is not None else None,
        )

    # -- keys ------------------------------------------------------------------------------

    @property
    def initialised(self) -> bool:
        row = self._conn.execute("SELECT COUNT(*) FROM keys").fetchone()
        return bool(row[0] >= 3)

    def initialise(
        self,
        *,
        now: dt.datetime,
        instance: str = "DEV",
        profile: str | Profile = Profile.FIVRK,
        ca_name: str = "/O=Test/CN=Test CA",
        ocsp_name: str = "/O=Test/CN=Test OCSP",
        tsa_name: str = "/O=Test/CN=Test TSA",
        key_type: str = "rsa2048",
        passphrase: bytes | None = None,
        ocsp_url: str = "http://127.0.0.1:8888/",
        days: int = 7300,
    ) -> None:
        """Create the CA, OCSP responder and TSA keys and certificates (once)."""
        if self.initialised:
            raise XRoadError(Code.INVALID_REQUEST, f"{self.directory} is already initialised")
        prof = parse_profile(profile)
        for name in (ca_name, ocsp_name, tsa_name):
            parse_name(name)
        # Issue into a staging registry and write everything in one transaction, so a failure
        # half-way leaves no orphan records behind.
        staging = MemoryRegistry()
        ca = TestCA.create(
            ca_name, now=now, key_type=key_type, days=days, registry=staging, ocsp_url=ocsp_url
        )
        ocsp_key = generate_key(key_type)
        ocsp_cert = ca.issue_ocsp_responder(ocsp_key.public_key(), ocsp_name, now=now, days=days)
        tsa_key = generate_key(key_type)
        tsa_cert = ca.issue_tsa(tsa_key.public_key(), tsa_name, now=now, days=days)
        records = list(staging.records())
        with self._tx() as tx:
            if tx.execute("SELECT COUNT(*) FROM keys").fetchone()[0]:
                raise XRoadError(Code.INVALID_REQUEST, f"{self.directory} is already initialised")
            tx.execute("DELETE FROM certs")
            for role, pair in (
                ("ca", KeyPair(ca.key, ca.cert)),
                ("ocsp", KeyPair(ocsp_key, ocsp_cert)),
                ("tsa", KeyPair(tsa_key, tsa_cert)),
            ):
                tx.execute(
                    "INSERT INTO keys(role, key_pem, cert_pem) VALUES(?, ?, ?)",
                    (role, _key_pem(pair.key, passphrase), _cert_pem(pair.cert)),
                )
            for record in records:
                self._insert(tx, record)
            tx.execute(
                "INSERT INTO counters(name, value) VALUES('cert_serial', ?) "
                "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                (max(r.serial for r in records),),
            )
            for name, value in (
                ("instance", instance),
                ("profile", prof.value),
                ("ocsp_url", ocsp_url),
                ("encrypted", "1" if passphrase else "0"),
                ("created", _ts(now)),
            ):
                tx.execute(
                    "INSERT INTO settings(name, value) VALUES(?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value=excluded.value",
                    (name, value),
                )
        self.export_certificates()

    def certificate(self, role: str) -> x509.Certificate:
        """The certificate of ``role`` (``ca``, ``ocsp``, ``tsa``); needs no passphrase."""
        row = self._conn.execute("SELECT cert_pem FROM keys WHERE role=?", (role,)).fetchone()
        if row is None:
            raise XRoadError(Code.IO_ERROR, f"{self.directory} is not initialised (no {role} key)")
        return x509.load_pem_x509_certificate(row[0].encode("ascii"))

    def key_pair(self, role: str, passphrase: bytes | None = None) -> KeyPair:
        row = self._conn.execute(
            "SELECT key_pem, cert_pem FROM keys WHERE role=?", (role,)
        ).fetchone()
        if row is None:
            raise XRoadError(Code.IO_ERROR, f"{self.directory} is not initialised (no {role} key)")
        if self.encrypted and not passphrase:
            raise XRoadError(
                Code.IO_ERROR,
                f"The keys in {self.directory} are encrypted: give the passphrase "
                f"(--passphrase-file or ${PASSPHRASE_ENV})",
            )
        try:
            key = serialization.load_pem_private_key(
                row[0].encode("ascii"), password=passphrase if self.encrypted else None
            )
        except (ValueError, TypeError) as exc:
            raise XRoadError(
                Code.IO_ERROR, f"Cannot open the {role} key: wrong passphrase or damaged state"
            ) from exc
        cert = x509.load_pem_x509_certificate(row[1].encode("ascii"))
        return KeyPair(key, cert)  # type: ignore[arg-type]

    def load_ca(self, passphrase: bytes | None = None) -> TestCA:
        """The CA, with this store as its registry and the configured responder URL."""
        pair = self.key_pair("ca", passphrase)
        return TestCA(pair.key, pair.cert, self, ocsp_url=self.setting("ocsp_url"))

    def ocsp_responder(
        self, passphrase: bytes | None = None, *, next_update: dt.timedelta | None = None
    ) -> TestOcspResponder:
        pair = self.key_pair("ocsp", passphrase)
        return TestOcspResponder(
            self.certificate("ca"), pair.key, pair.cert, next_update=next_update
        )

    def export_certificates(self) -> dict[str, Path]:
        """Write ``ca.pem``, ``ocsp.pem``, ``tsa.pem`` next to the database; return their paths."""
        paths = {}
        for role in ("ca", "ocsp", "tsa"):
            path = self.directory / f"{role}.pem"
            _write_atomic(path, _cert_pem(self.certificate(role)).encode("ascii"))
            paths[role] = path
        return paths


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def _key_pem(key: CertificateIssuerPrivateKeyTypes, passphrase: bytes | None) -> str:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    ).decode("ascii")
