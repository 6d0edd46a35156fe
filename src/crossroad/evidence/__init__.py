"""Offline verification of message-log evidence: ASiC-E containers and log archives."""

from crossroad.evidence.report import ArchiveVerification, CertificateInfo, Check, Report
from crossroad.evidence.verifier import verify_archive, verify_archive_files, verify_container

__all__ = [
    "ArchiveVerification",
    "CertificateInfo",
    "Check",
    "Report",
    "verify_archive",
    "verify_archive_files",
    "verify_container",
]
