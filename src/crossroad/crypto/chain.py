"""Certification paths to approved CAs and their validation at a given time (protocols.md §4.1,
§4.9 step 7, §10.3).

The approved CA certificates of the trust policy (top CAs and the intermediates the global
configuration lists) are trust anchors, as in NIIS ``CertChainFactory``/``CertChainVerifier``,
where the anchor is the configured CA certificate that issued the certificate.  A path may in
addition climb through intermediates the message carries itself (``extra_certs``) until it
meets an approved CA certificate.  Every certificate *below* the anchor is PKIX-checked at the
verification time and needs a matching, valid, fresh, GOOD OCSP response; the anchor and the
approved certificates above it are configuration and are not.

Fault codes are the ones NIIS peers see.  NIIS builds and validates the path in one PKIX
``CertPathBuilder`` run, so an unknown CA, a bad signature, an expired certificate or a
non-CA issuer all come out of the builder as ``cannot_create_cert_path.internal_error``; OCSP
problems come out as ``invalid_cert_path.<cause>`` (``cert_validation`` for a missing, REVOKED
or UNKNOWN response, ``incorrect_validation_info`` for a stale or badly signed one).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from crossroad.crypto import ocsp
from crossroad.crypto.certs import (
    basic_constraints,
    can_sign_certs,
    cert_der,
    critical_extensions,
    describe,
    names_equal,
    verify_issued_by,
)
from crossroad.crypto.trust import ApprovedCA, TrustPolicy
from crossroad.errors import Code, XRoadError

#: What NIIS reports when PKIX path building fails (a Java exception translated).
CANNOT_CREATE_CERT_PATH = f"{Code.CANNOT_CREATE_CERT_PATH}.{Code.INTERNAL_ERROR}"

# Longest chain of non-approved intermediates we follow (guards against crafted loops).
_MAX_EXTRA_DEPTH = 8

# Critical extensions a PKIX validator understands (Java's checkers); others fail the path.
_KNOWN_CRITICAL = frozenset(
    oid.dotted_string
    for oid in (
        ExtensionOID.BASIC_CONSTRAINTS,
        ExtensionOID.KEY_USAGE,
        ExtensionOID.EXTENDED_KEY_USAGE,
        ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
        ExtensionOID.CERTIFICATE_POLICIES,
        ExtensionOID.POLICY_MAPPINGS,
        ExtensionOID.POLICY_CONSTRAINTS,
        ExtensionOID.INHIBIT_ANY_POLICY,
        ExtensionOID.NAME_CONSTRAINTS,
    )
)


def _cannot(detail: str) -> XRoadError:
    return XRoadError(CANNOT_CREATE_CERT_PATH, detail)


@dataclass(frozen=True)
class CertPath:
    """A path from a certificate up to its approved CA.

    ``certs`` runs leaf first, top CA last (as far as the trust policy links them);
    ``certs[anchor]`` is the first certificate taken from the trust policy: the ones before
    it are checked (:attr:`checked`), it and the ones after it are trusted.
    """

    certs: tuple[x509.Certificate, ...]
    ca: ApprovedCA
    anchor: int

    @property
    def leaf(self) -> x509.Certificate:
        return self.certs[0]

    @property
    def top_ca(self) -> x509.Certificate:
        return self.ca.top_ca

    @property
    def checked(self) -> tuple[x509.Certificate, ...]:
        """The certificates that need PKIX checks and OCSP responses (leaf first)."""
        return self.certs[: self.anchor]

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        """The CA certificates between the leaf and the top CA (for ``CertificateValues``)."""
        top = cert_der(self.ca.top_ca)
        return tuple(c for c in self.certs[1:] if cert_der(c) != top)

    def issuer_of(self, index: int) -> x509.Certificate:
        return self.certs[index + 1]


# ---------------------------------------------------------------------------------------------
# Building


def _approved_issuers(
    cert: x509.Certificate, trust: TrustPolicy
) -> Iterable[tuple[ApprovedCA, x509.Certificate]]:
    for ca in trust.cas:
        for ca_cert in ca.ca_certs():
            if names_equal(ca_cert.subject, cert.issuer) and verify_issued_by(cert, ca_cert):
                yield ca, ca_cert


def _up_to_top(anchor: x509.Certificate, ca: ApprovedCA) -> list[x509.Certificate]:
    """The approved certificates above ``anchor`` within ``ca``, up to its top CA."""
    above: list[x509.Certificate] = []
    top = cert_der(ca.top_ca)
    current = anchor
    seen = {cert_der(anchor)}
    while cert_der(current) != top:
        parent = next(
            (
                c
                for c in ca.ca_certs()
                if cert_der(c) not in seen and names_equal(c.subject, current.issuer)
            ),
            None,
        )
        if parent is None:
            break
        above.append(parent)
        seen.add(cert_der(parent))
        current = parent
    return above


def _approved_self(cert: x509.Certificate, trust: TrustPolicy) -> ApprovedCA | None:
    der = cert_der(cert)
    for ca in trust.cas:
        if any(cert_der(c) == der for c in ca.ca_certs()):
            return ca
    return None


class _SamePolicy:
    """A cache key that matches only the very same trust policy object (held while cached)."""

    __slots__ = ("policy",)

    def __init__(self, policy: TrustPolicy) -> None:
        self.policy = policy

    def __hash__(self) -> int:
        return id(self.policy)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SamePolicy) and other.policy is self.policy


def build_path(
    leaf: x509.Certificate, extra_certs: Iterable[x509.Certificate], trust: TrustPolicy
) -> CertPath:
    """A path from ``leaf`` to an approved CA, through ``extra_certs`` where needed.

    Issuers are matched by name (Java semantics) and must verify the signature; approved CA
    certificates are preferred over extra certificates.  No path gives
    ``cannot_create_cert_path.internal_error``.

    The path is a pure function of the certificates' bytes and the trust policy: it is
    memoised per certificates and per trust policy *object* (a configuration snapshot builds
    its policies once; a new snapshot is a new object, so nothing outlives its policy).
    Time is not involved here; :func:`validate_path` checks the path at its time.
    """
    return _build_path(leaf, tuple(extra_certs), _SamePolicy(trust))


@functools.lru_cache(maxsize=1024)
def _build_path(
    leaf: x509.Certificate, extra_certs: tuple[x509.Certificate, ...], same: _SamePolicy
) -> CertPath:
    trust = same.policy
    own = _approved_self(leaf, trust)
    if own is not None:
        return CertPath((leaf, *_up_to_top(leaf, own)), own, 0)
    extras = [c for c in extra_certs if cert_der(c) != cert_der(leaf)]

    def search(chain: list[x509.Certificate]) -> CertPath | None:
        current = chain[-1]
        for ca, anchor in _approved_issuers(current, trust):
            return CertPath((*chain, anchor, *_up_to_top(anchor, ca)), ca, len(chain))
        if len(chain) > _MAX_EXTRA_DEPTH:
            return None
        on_path = {cert_der(c) for c in chain}
        for candidate in extras:
            if (
                cert_der(candidate) not in on_path
                and names_equal(candidate.subject, current.issuer)
                and verify_issued_by(current, candidate)
            ):
                found = search([*chain, candidate])
                if found is not None:
                    return found
        return None

    path = search([leaf])
    if path is None:
        if trust.ca_for_issuer(leaf) is None and not any(
            names_equal(c.subject, leaf.issuer) for c in extras
        ):
            raise _cannot(
                "Certificate is not issued by approved certification service provider: "
                + describe(leaf)
            )
        raise _cannot(f"Unable to find valid certification path for {describe(leaf)}")
    return path


# ---------------------------------------------------------------------------------------------
# Validation


def _check_validity(cert: x509.Certificate, at: dt.datetime) -> None:
    if not cert.not_valid_before_utc <= at <= cert.not_valid_after_utc:
        raise _cannot(
            f"Certificate {describe(cert)} is not valid at {at.isoformat()}"
            f" (valid from {cert.not_valid_before_utc.isoformat()}"
            f" to {cert.not_valid_after_utc.isoformat()})"
        )


def _check_critical_extensions(cert: x509.Certificate) -> None:
    try:
        unknown = [oid for oid in critical_extensions(cert) if oid not in _KNOWN_CRITICAL]
    except XRoadError as exc:
        raise _cannot(f"Certificate {describe(cert)}: {exc.detail}") from exc
    if unknown:
        raise _cannot(
            f"Certificate {describe(cert)} has unrecognised critical extensions: {unknown}"
        )


def _check_issuer(path: CertPath, index: int) -> None:
    """``path.certs[index]`` issues ``path.certs[index - 1]``: may it?"""
    issuer = path.certs[index]
    try:
        may_sign = can_sign_certs(issuer)
        constraints = basic_constraints(issuer)
    except XRoadError as exc:
        raise _cannot(f"Certificate {describe(issuer)}: {exc.detail}") from exc
    if not may_sign:
        raise _cannot(f"Certificate {describe(issuer)} may not sign certificates (keyUsage)")
    if index >= path.anchor:
        return  # configured trust anchors are taken as they are (as Java's TrustAnchor)
    if constraints is None or not constraints[0]:
        raise _cannot(f"Certificate {describe(issuer)} is not a CA certificate")
    limit = constraints[1]
    below = [c for c in path.certs[1:index] if not names_equal(c.subject, c.issuer)]
    if limit is not None and len(below) > limit:
        raise _cannot(f"Path length constraint of {describe(issuer)} exceeded")


def validate_path(
    path: CertPath,
    at: dt.datetime,
    ocsp_responses: Sequence[bytes] | None,
    trust: TrustPolicy,
) -> tuple[ocsp.OcspStatus, ...]:
    """PKIX-check ``path`` at ``at`` and, unless ``ocsp_responses`` is None (NIIS
    ``verifyChainOnly``), require a valid GOOD OCSP response for every checked certificate.
    Returns those responses' statuses, leaf first (empty without OCSP)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("the verification time must be timezone-aware")
    for index, cert in enumerate(path.checked):
        _check_validity(cert, at)
        _check_critical_extensions(cert)
        issuer = path.issuer_of(index)
        if not (names_equal(cert.issuer, issuer.subject) and verify_issued_by(cert, issuer)):
            raise _cannot(f"Certificate {describe(cert)} is not signed by {describe(issuer)}")
        _check_issuer(path, index + 1)
    if ocsp_responses is None:
        return ()
    statuses = []
    for index, cert in enumerate(path.checked):
        issuer = path.issuer_of(index)
        try:
            statuses.append(
                ocsp.find_and_verify(cert, issuer, ocsp_responses, trust, at, ca=path.ca)
            )
        except XRoadError as exc:
            raise exc.with_prefix(Code.INVALID_CERT_PATH) from exc
    return tuple(statuses)


def verify_path(
    leaf: x509.Certificate,
    extra_certs: Iterable[x509.Certificate],
    trust: TrustPolicy,
    at: dt.datetime,
    ocsp_responses: Sequence[bytes] | None,
) -> CertPath:
    """:func:`build_path` then :func:`validate_path`; returns the validated path."""
    path = build_path(leaf, extra_certs, trust)
    validate_path(path, at, ocsp_responses, trust)
    return path
