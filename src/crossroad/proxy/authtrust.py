"""Which peer security server is acceptable on the SS↔SS channel (protocols.md §4.1, §10.1,
§10.3).

NIIS decides in three places, and so does this module, with the same order of checks and the
same fault codes:

* :func:`check_registered` — the provider, in the TLS handshake (``AuthTrustManager``): the
  client's leaf certificate must be the registered authentication certificate (SHA-256 hash in
  V3+, SHA-1 in V2) of *some* security server in global configuration;
* :func:`verify_provider_cert` — the consumer, after the handshake (``AuthTrustVerifier``,
  ``CertHelper.verifyAuthCert``): the leaf is an authentication certificate, has a path to an
  approved CA of the provider's instance, every certificate below that CA has a valid, fresh,
  GOOD OCSP response, and the certificate belongs to a security server on which the service
  provider is a registered client or the owner (``authCertMatchesMember``);
* :func:`verify_client_cert` — the provider, per request (``verifySslClientCert``): the same
  checks of the client's TLS chain against the OCSP responses the request carries and the
  request's client.

Failures are ``ssl_authentication_failed`` (path and OCSP failures keep their cause:
``ssl_authentication_failed.invalid_cert_path.cert_validation``, ...); the provider side
reports plain ``ssl_authentication_failed``, as NIIS wraps every cause there.

Pure: snapshot, certificates, OCSP DERs and the time ``at`` in, a value or an error out.
Fetching the OCSP responses is :mod:`crossroad.proxy.ocsp_cache`'s.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from crossroad.crypto.certs import cert_der, describe, is_auth_cert, java_rfc2253
from crossroad.crypto.chain import CertPath, build_path, validate_path
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId, SecurityServerId

__all__ = [
    "AuthenticatedPeer",
    "approved_ca_certs",
    "check_registered",
    "ocsp_subjects",
    "verify_auth_cert",
    "verify_client_cert",
    "verify_provider_cert",
]

Chain = Sequence[x509.Certificate]


def _fail(detail: str) -> XRoadError:
    return XRoadError(Code.SSL_AUTHENTICATION_FAILED, detail)


@dataclass(frozen=True)
class AuthenticatedPeer:
    """A peer that passed: its security server and the validated path of its certificate."""

    server: SecurityServerId
    path: CertPath

    @property
    def cert(self) -> x509.Certificate:
        return self.path.leaf


def approved_ca_certs(
    snapshot: GlobalConfSnapshot, at: dt.datetime | None = None
) -> tuple[x509.Certificate, ...]:
    """Every approved CA certificate (top and intermediate) of every instance (with ``at``:
    of the instances whose configuration has not expired), without duplicates: what the
    provider's TLS stack may accept a client certificate under."""
    seen: set[bytes] = set()
    out = []
    for instance in snapshot.instances(at):
        for cert in snapshot.trust_policy(instance).all_ca_certs():
            der = cert_der(cert)
            if der not in seen:
                seen.add(der)
                out.append(cert)
    return tuple(out)


def check_registered(snapshot: GlobalConfSnapshot, chain: Chain) -> SecurityServerId:
    """The server whose registered authentication certificate the peer presented (provider
    side, in the handshake); ``ssl_authentication_failed`` for any other certificate."""
    if not chain:
        raise _fail("The peer did not present a TLS certificate")
    server = snapshot.server_by_auth_cert(chain[0])
    if server is None:
        raise _fail(
            f"The TLS certificate {describe(chain[0])} is not the authentication certificate"
            " of any security server in global configuration"
        )
    return server


def _path(snapshot: GlobalConfSnapshot, chain: Chain, instance: str) -> CertPath:
    try:
        trust = snapshot.trust_policy(instance)
        return build_path(chain[0], chain[1:], trust)
    except XRoadError as exc:
        raise exc.with_prefix(Code.SSL_AUTHENTICATION_FAILED) from exc


def ocsp_subjects(
    snapshot: GlobalConfSnapshot, chain: Chain, instance: str
) -> tuple[tuple[x509.Certificate, x509.Certificate], ...]:
    """The certificates of the peer's chain that need OCSP responses, leaf first, each with
    its issuer: those below the approved CA certificate the path is anchored at.  A chain
    without a path to an approved CA of ``instance`` fails here, before anything is
    downloaded."""
    if not chain:
        raise _fail("The peer did not present a TLS certificate")
    path = _path(snapshot, chain, instance)
    return tuple((cert, path.issuer_of(i)) for i, cert in enumerate(path.checked))


def verify_auth_cert(
    snapshot: GlobalConfSnapshot,
    chain: Chain,
    ocsp_responses: Sequence[bytes],
    member: ClientId,
    at: dt.datetime,
) -> AuthenticatedPeer:
    """NIIS ``CertHelper.verifyAuthCert``: ``chain`` (leaf first) authenticates a security
    server on which ``member`` is a registered client or the owner, at ``at``."""
    if not chain:
        raise _fail("The peer did not present a TLS certificate")
    leaf = chain[0]
    try:
        auth = is_auth_cert(leaf)
    except XRoadError:
        auth = False
    if not auth:
        raise _fail(f"Peer certificate {describe(leaf)} is not an authentication certificate")
    path = _path(snapshot, chain, member.instance)
    try:
        validate_path(path, at, list(ocsp_responses), snapshot.trust_policy(member.instance))
    except XRoadError as exc:
        raise exc.with_prefix(Code.SSL_AUTHENTICATION_FAILED) from exc
    server = snapshot.server_by_auth_cert(leaf)
    if server is None:
        raise _fail(
            f"Authentication certificate {java_rfc2253(leaf.subject)} is not associated"
            " with any security server"
        )
    if not snapshot.is_client_registered(member, server):
        raise _fail(f"Client '{member}' is not registered at security server {server}")
    return AuthenticatedPeer(server, path)


def verify_provider_cert(
    snapshot: GlobalConfSnapshot,
    chain: Chain,
    ocsp_responses: Sequence[bytes],
    provider: ClientId,
    at: dt.datetime,
) -> AuthenticatedPeer:
    """Consumer side, after the handshake: the provider's server may serve ``provider``."""
    return verify_auth_cert(snapshot, chain, ocsp_responses, provider, at)


def verify_client_cert(
    snapshot: GlobalConfSnapshot,
    chain: Chain,
    ocsp_responses: Sequence[bytes],
    client: ClientId,
    at: dt.datetime,
) -> AuthenticatedPeer:
    """Provider side, per request: the consumer's TLS chain, checked with the OCSP responses
    of the request's OCSP part, authenticates a server on which ``client`` is registered."""
    if not ocsp_responses:
        raise _fail("Cannot verify TLS certificate, corresponding OCSP response is missing")
    try:
        return verify_auth_cert(snapshot, chain, ocsp_responses, client, at)
    except XRoadError as exc:
        if exc.code == Code.SSL_AUTHENTICATION_FAILED:
            raise
        raise XRoadError(Code.SSL_AUTHENTICATION_FAILED, f"{exc.code}: {exc.detail}") from exc
