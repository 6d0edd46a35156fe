"""Verification reports: what the offline evidence verifier found, as data and as text.

A :class:`Report` describes one ASiC-E container (§9.3): valid or not with the NIIS fault code,
who signed, when it was time-stamped and by which TSA, the certificates seen, and each named
check in the order it ran.  An :class:`ArchiveVerification` wraps the linking-info report of a
log archive (§9.5) with one :class:`Report` per container.  Errors are data here: verification
never raises, it returns a report with ``valid=False``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from crossroad.crypto.archive import ArchiveReport, ChainReport, Check

__all__ = ["ArchiveVerification", "CertificateInfo", "Check", "Report"]


def _iso(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# X-Road subjects carry serialNumber (FiVRK profile: INSTANCE/SERVER/CLASS); name it so.
_NAMES = {NameOID.SERIAL_NUMBER: "SERIALNUMBER", NameOID.ORGANIZATION_IDENTIFIER: "OI"}


def _name(name: x509.Name) -> str:
    return name.rfc4514_string(_NAMES)


@dataclass(frozen=True)
class CertificateInfo:
    """A certificate as the report shows it; ``role`` says what it was used for."""

    role: str
    subject: str
    issuer: str
    serial: int
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str

    @classmethod
    def of(cls, role: str, cert: x509.Certificate) -> CertificateInfo:
        return cls(
            role=role,
            subject=_name(cert.subject),
            issuer=_name(cert.issuer),
            serial=cert.serial_number,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            sha256=cert.fingerprint(hashes.SHA256()).hex(),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": str(self.serial),
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
            "sha256": self.sha256,
        }


@dataclass(frozen=True)
class Report:
    """The outcome of verifying one ASiC-E container.

    ``code`` is the NIIS fault code (``None`` when valid), ``detail`` its message.
    ``verified_at`` is the time the signature was checked at (the time-stamp's genTime unless
    the caller fixed another).  ``notes`` carries what NIIS prints besides the verdict, e.g.
    hash-chain digests of parts the container does not hold ("unverified").
    """

    valid: bool
    code: str | None
    detail: str
    checks: tuple[Check, ...]
    signer: str | None = None
    signing_cert: CertificateInfo | None = None
    timestamp_time: dt.datetime | None = None
    tsa: CertificateInfo | None = None
    verified_at: dt.datetime | None = None
    ocsp_time: dt.datetime | None = None
    certificates: tuple[CertificateInfo, ...] = ()
    notes: tuple[str, ...] = ()
    name: str | None = None

    @property
    def tsa_subject(self) -> str | None:
        return self.tsa.subject if self.tsa else None

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "code": self.code,
            "detail": self.detail,
            "container": self.name,
            "signer": self.signer,
            "signing_certificate": self.signing_cert.to_json() if self.signing_cert else None,
            "timestamp": {
                "gen_time": _iso(self.timestamp_time),
                "tsa": self.tsa.to_json() if self.tsa else None,
            },
            "verified_at": _iso(self.verified_at),
            "ocsp_produced_at": _iso(self.ocsp_time),
            "certificates": [c.to_json() for c in self.certificates],
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
            "notes": list(self.notes),
        }

    def render_text(self) -> str:
        lines = [
            f"Container: {self.name}" if self.name else "Container",
            f"Result: {'VALID' if self.valid else 'INVALID'}"
            + ("" if self.valid else f" ({self.code})"),
        ]
        if not self.valid and self.detail:
            lines.append(f"Reason: {self.detail}")
        lines.append(f"Signer: {self.signer or 'unknown'}")
        if self.signing_cert:
            c = self.signing_cert
            lines.append(f"Signing certificate: {c.subject} (serial {c.serial})")
            lines.append(
                f"  issued by {c.issuer}, valid {_iso(c.not_before)} .. {_iso(c.not_after)}"
            )
        lines.append(f"Time-stamp: {_iso(self.timestamp_time) or 'none'}")
        if self.tsa:
            lines.append(f"  by {self.tsa.subject}")
        if self.verified_at:
            lines.append(f"Verified at: {_iso(self.verified_at)}")
        if self.ocsp_time:
            lines.append(f"OCSP response produced at: {_iso(self.ocsp_time)}")
        if self.certificates:
            lines.append("Certificates:")
            for cert in self.certificates:
                lines.append(f"  [{cert.role}] {cert.subject} (serial {cert.serial})")
                lines.append(
                    f"      issuer {cert.issuer}; {_iso(cert.not_before)} .. {_iso(cert.not_after)}"
                )
        lines.append("Checks:")
        for check in self.checks:
            mark = "ok  " if check.ok else "FAIL"
            lines.append(f"  [{mark}] {check.name}" + (f": {check.detail}" if check.detail else ""))
        for note in self.notes:
            lines.append(f"Note: {note}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ArchiveVerification:
    """A log archive (or a chain of them) with the verdict on each container inside.

    ``containers`` is empty when containers were not verified (no trust policy given).
    """

    valid: bool
    code: str | None
    detail: str
    archive: ArchiveReport | ChainReport
    containers: tuple[Report, ...] = ()

    @property
    def last_digest(self) -> str | None:
        return self.archive.last_digest

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"valid": self.valid, "code": self.code, "detail": self.detail}
        out["linking"] = self.archive.to_json()
        out["last_digest"] = self.last_digest
        out["containers"] = [r.to_json() for r in self.containers]
        out["containers_verified"] = bool(self.containers)
        return out

    def render_text(self) -> str:
        reports = self.archive.reports if isinstance(self.archive, ChainReport) else (self.archive,)
        lines = [
            f"Result: {'VALID' if self.valid else 'INVALID'}"
            + ("" if self.valid else f" ({self.code})")
        ]
        if not self.valid and self.detail:
            lines.append(f"Reason: {self.detail}")
        for report in reports:
            lines.append(f"Archive: {report.name}")
            info = report.linking_info
            if info is not None:
                lines.append(
                    f"  previous archive: {info.previous_name or '-'}"
                    f" (digest {info.previous_digest or '-'}), {info.algorithm_name}"
                )
            for check in report.checks:
                mark = "ok  " if check.ok else "FAIL"
                first = check.detail.splitlines()[0] if check.detail else ""
                lines.append(f"  [{mark}] {check.name}" + (f": {first}" if first else ""))
            if report.last_digest:
                lines.append(f"  last digest: {report.last_digest}")
        if not self.containers:
            lines.append("Containers: not verified (no global configuration given)")
        for container in self.containers:
            lines.append("")
            lines.append(container.render_text().rstrip("\n"))
        return "\n".join(lines) + "\n"
