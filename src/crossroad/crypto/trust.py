"""The trust policy that verification is checked against: approved CAs, OCSP responders, TSAs.

A :class:`TrustPolicy` is the crypto core's view of the global configuration's trust part
(shared parameters ``approvedCA``, ``approvedTSA``, ``ocspFreshnessSeconds`` and the NEXTUPDATE
optional part; protocols.md §5.5, §10.3).  ``crossroad.globalconf`` builds it from a
configuration snapshot; tests and tools may build it directly.  It is an immutable value.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509


@dataclass(frozen=True)
class OcspResponder:
    """One ``ocsp`` element of an approved CA (or of one of its intermediates)."""

    url: str
    cert: x509.Certificate | None = None
    cost_type: str | None = None  # V6: FREE / PAID / UNDEFINED


@dataclass(frozen=True)
class IntermediateCA:
    cert: x509.Certificate
    ocsp: tuple[OcspResponder, ...] = ()


@dataclass(frozen=True)
class ApprovedCA:
    """An approved certification service: its top CA, intermediates and OCSP responders."""

    name: str
    top_ca: x509.Certificate
    certificate_profile: str
    intermediates: tuple[IntermediateCA, ...] = ()
    ocsp: tuple[OcspResponder, ...] = ()
    authentication_only: bool = False

    def ca_certs(self) -> tuple[x509.Certificate, ...]:
        return (self.top_ca, *(i.cert for i in self.intermediates))

    def responders(self) -> tuple[OcspResponder, ...]:
        """All OCSP responders of this CA and of its intermediates."""
        return (*self.ocsp, *(r for i in self.intermediates for r in i.ocsp))


@dataclass(frozen=True)
class ApprovedTSA:
    name: str
    url: str
    cert: x509.Certificate
    cost_type: str | None = None


@dataclass(frozen=True)
class TrustPolicy:
    """What a verifier trusts, for one X-Road instance.

    ``ocsp_freshness_seconds``: an OCSP response is fresh at time *t* if its ``thisUpdate``
    is not before *t* − freshness (NIIS measures from thisUpdate; protocols.md §12.5 item 9).
    ``verify_ocsp_next_update``: whether a ``nextUpdate`` before *t* makes the response stale
    (the NEXTUPDATE optional part; default true).
    """

    instance: str
    cas: tuple[ApprovedCA, ...] = ()
    tsas: tuple[ApprovedTSA, ...] = ()
    ocsp_freshness_seconds: int = 3600
    verify_ocsp_next_update: bool = True
    _by_subject: dict[bytes, tuple[ApprovedCA, x509.Certificate]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        index: dict[bytes, tuple[ApprovedCA, x509.Certificate]] = {}
        for ca in self.cas:
            for cert in ca.ca_certs():
                index.setdefault(cert.subject.public_bytes(), (ca, cert))
        object.__setattr__(self, "_by_subject", index)

    def ca_cert_by_subject(self, name: x509.Name) -> tuple[ApprovedCA, x509.Certificate] | None:
        """The approved CA certificate (top or intermediate) whose subject is ``name``."""
        return self._by_subject.get(name.public_bytes())

    def ca_for_issuer(self, cert: x509.Certificate) -> ApprovedCA | None:
        found = self.ca_cert_by_subject(cert.issuer)
        return found[0] if found else None

    def all_ca_certs(self) -> Iterable[x509.Certificate]:
        for ca in self.cas:
            yield from ca.ca_certs()

    def ocsp_responder_certs(self) -> tuple[x509.Certificate, ...]:
        return tuple(r.cert for ca in self.cas for r in ca.responders() if r.cert is not None)

    def tsa_certs(self) -> tuple[x509.Certificate, ...]:
        return tuple(t.cert for t in self.tsas)
