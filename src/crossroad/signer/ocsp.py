"""OCSP responses for the signer's own certificates, fetched in the background (§10.3).

Each own certificate (authentication and signing) gets a task that fetches a response for
every certificate of its path that needs one (the leaf and any intermediate below the
approved CA) every ``interval`` seconds (``ocspFetchInterval``, default 1200 s) and after a
failure every ``retry`` seconds (``signer.ocsp-retry-delay``, 60 s).  Responders are tried
in order: the configured URLs, the approved CA's responders from the trust policy, then the
certificate's AIA.  A response is verified with :func:`crossroad.crypto.ocsp.verify_status`
against the trust policy the caller supplies (from the global configuration) before it is
cached, in memory and as ``<state>/ocsp/<sha1 of cert>.der``.

Only a verified GOOD response that is still fresh (``thisUpdate`` + ``ocspFreshnessSeconds``,
and ``nextUpdate`` when the policy checks it) is handed out, for signing or for the OCSP
download service; a REVOKED or UNKNOWN one is kept (it tells the operator why) but never
served.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtensionOID

from crossroad.clock import SYSTEM, Clock
from crossroad.crypto import chain, ocsp
from crossroad.crypto.certs import cert_hash_hex, describe
from crossroad.crypto.trust import TrustPolicy
from crossroad.errors import Code, XRoadError
from crossroad.signer.tokens import write_private
from crossroad.trust.client import fetch_ocsp

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 1200.0
DEFAULT_RETRY = 60.0

TrustSource = Callable[[], TrustPolicy | None]


@dataclass(frozen=True)
class CachedResponse:
    """A verified OCSP response about one certificate."""

    der: bytes
    status: str  # GOOD, REVOKED or UNKNOWN
    this_update: dt.datetime
    next_update: dt.datetime | None
    fresh_until: dt.datetime
    fetched_at: dt.datetime

    def usable(self, at: dt.datetime) -> bool:
        return self.status == ocsp.GOOD and at < self.fresh_until


def aia_ocsp_urls(cert: x509.Certificate) -> list[str]:
    try:
        aia = cert.extensions.get_extension_for_oid(ExtensionOID.AUTHORITY_INFORMATION_ACCESS)
    except (x509.ExtensionNotFound, ValueError):
        return []
    return [
        str(d.access_location.value)
        for d in aia.value  # type: ignore[attr-defined]
        if d.access_method == AuthorityInformationAccessOID.OCSP
        and isinstance(d.access_location, x509.UniformResourceIdentifier)
    ]


def _fresh_until(status: ocsp.OcspStatus, trust: TrustPolicy) -> dt.datetime:
    until = status.this_update + dt.timedelta(seconds=trust.ocsp_freshness_seconds)
    if trust.verify_ocsp_next_update and status.next_update is not None:
        until = min(until, status.next_update)
    return until


class OcspCache:
    """OCSP responses for own certificates: background fetching, verification, caching."""

    def __init__(
        self,
        directory: Path,
        trust: TrustSource,
        *,
        interval: float = DEFAULT_INTERVAL,
        retry: float = DEFAULT_RETRY,
        responder_urls: Sequence[str] = (),
        clock: Clock = SYSTEM,
    ) -> None:
        self.directory = directory
        self.trust = trust
        self.interval = interval
        self.retry = retry
        self.responder_urls = tuple(responder_urls)
        self.clock = clock
        self.fetches = 0  # responses fetched (for status and tests)
        self._cache: dict[str, CachedResponse] = {}
        self._errors: dict[str, str] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake: dict[str, asyncio.Event] = {}
        self._session: aiohttp.ClientSession | None = None

    # -- lookups -----------------------------------------------------------------------

    def _policy(self) -> TrustPolicy:
        policy = self.trust()
        if policy is None:
            raise XRoadError(
                Code.CERT_VALIDATION,
                "No trust policy (global configuration) to verify OCSP responses with",
            )
        return policy

    def path(self, cert: x509.Certificate) -> chain.CertPath:
        return chain.build_path(cert, (), self._policy())

    def cached(self, cert: x509.Certificate) -> CachedResponse | None:
        return self._cache.get(cert_hash_hex(cert))

    def response(self, cert: x509.Certificate) -> bytes:
        """A GOOD, fresh, verified response about ``cert`` (else ``cert_validation``)."""
        entry = self._cache.get(cert_hash_hex(cert))
        now = self.clock.now()
        if entry is not None and entry.usable(now):
            return entry.der
        if entry is not None and entry.status != ocsp.GOOD:
            why = f"the responder says {entry.status}"
        elif entry is not None:
            why = f"the response of {entry.this_update.isoformat()} is no longer fresh"
        else:
            why = self._errors.get(cert_hash_hex(cert), "none fetched yet")
        raise XRoadError(
            Code.CERT_VALIDATION, f"No valid OCSP response for {describe(cert)}: {why}"
        )

    def signing_material(
        self, cert: x509.Certificate
    ) -> tuple[tuple[x509.Certificate, ...], list[bytes]]:
        """(intermediate CA certificates, OCSP responses leaf first) for a signature by ``cert``."""
        path = self.path(cert)
        return path.intermediates, [self.response(c) for c in path.checked]

    def responses_by_hash(self, hashes: Sequence[str]) -> list[bytes | None]:
        """Usable responses by SHA-1 hex of the certificate (OCSP download service)."""
        now = self.clock.now()
        out: list[bytes | None] = []
        for value in hashes:
            entry = self._cache.get(value.strip().lower().replace(":", ""))
            out.append(entry.der if entry is not None and entry.usable(now) else None)
        return out

    def describe(self, cert: x509.Certificate) -> dict[str, Any]:
        entry = self.cached(cert)
        key = cert_hash_hex(cert)
        return {
            "status": entry.status if entry else None,
            "usable": bool(entry and entry.usable(self.clock.now())),
            "this_update": entry.this_update.isoformat() if entry else None,
            "fresh_until": entry.fresh_until.isoformat() if entry else None,
            "error": self._errors.get(key),
        }

    # -- verification and storage ------------------------------------------------------

    def _file(self, cert: x509.Certificate) -> Path:
        return self.directory / f"{cert_hash_hex(cert)}.der"

    def _verify(
        self, der: bytes, cert: x509.Certificate, issuer: x509.Certificate, path: chain.CertPath
    ) -> CachedResponse:
        trust = self._policy()
        now = self.clock.now()
        status = ocsp.verify_status(der, cert, issuer, trust, now, ca=path.ca)
        return CachedResponse(
            der=bytes(der),
            status=status.status,
            this_update=status.this_update,
            next_update=status.next_update,
            fresh_until=_fresh_until(status, trust),
            fetched_at=now,
        )

    def _store(self, cert: x509.Certificate, entry: CachedResponse) -> None:
        key = cert_hash_hex(cert)
        self._cache[key] = entry
        self._errors.pop(key, None)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_private(self._file(cert), entry.der)
        except OSError as exc:
            log.warning("cannot save the OCSP response of %s: %s", describe(cert), exc)

    def load_saved(self, cert: x509.Certificate) -> None:
        """Take the saved responses of ``cert``'s path into memory if they still verify."""
        try:
            path = self.path(cert)
        except XRoadError:
            return
        for index, member in enumerate(path.checked):
            file = self._file(member)
            if cert_hash_hex(member) in self._cache or not file.is_file():
                continue
            try:
                entry = self._verify(file.read_bytes(), member, path.issuer_of(index), path)
            except (OSError, XRoadError) as exc:
                log.info("saved OCSP response of %s not used: %s", describe(member), exc)
                continue
            self._cache[cert_hash_hex(member)] = entry

    # -- fetching ----------------------------------------------------------------------

    def _urls(self, cert: x509.Certificate, path: chain.CertPath) -> list[str]:
        urls = [*self.responder_urls, *(r.url for r in path.ca.responders())]
        urls += aia_ocsp_urls(cert)
        return list(dict.fromkeys(u for u in urls if u))

    async def _fetch_one(
        self, cert: x509.Certificate, issuer: x509.Certificate, path: chain.CertPath
    ) -> CachedResponse:
        urls = self._urls(cert, path)
        if not urls:
            raise XRoadError(Code.CERT_VALIDATION, f"No OCSP responder known for {describe(cert)}")
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        problems = []
        for url in urls:
            try:
                der = await fetch_ocsp(self._session, url, cert, issuer)
                entry = self._verify(der, cert, issuer, path)
            except XRoadError as err:
                problems.append(f"{url}: {err}")
                continue
            self.fetches += 1
            return entry
        raise XRoadError(
            Code.CERT_VALIDATION,
            f"No usable OCSP response for {describe(cert)}: " + "; ".join(problems),
        )

    async def refresh(self, cert: x509.Certificate) -> CachedResponse:
        """Fetch, verify and cache responses for ``cert`` and its intermediates now."""
        try:
            path = self.path(cert)
            leaf_entry: CachedResponse | None = None
            for index, member in enumerate(path.checked):
                entry = await self._fetch_one(member, path.issuer_of(index), path)
                self._store(member, entry)
                if index == 0:
                    leaf_entry = entry
                if entry.status != ocsp.GOOD:
                    log.warning("OCSP: %s is %s", describe(member), entry.status)
        except XRoadError as err:
            self._errors[cert_hash_hex(cert)] = err.detail
            raise
        if leaf_entry is None:  # an approved CA certificate itself: nothing to check
            raise XRoadError(Code.CERT_VALIDATION, f"{describe(cert)} is a CA certificate")
        return leaf_entry

    # -- background tasks --------------------------------------------------------------

    def tracked(self) -> tuple[str, ...]:
        return tuple(self._tasks)

    def track(self, cert: x509.Certificate) -> None:
        """Keep ``cert``'s responses fresh in the background (from now, until untracked)."""
        key = cert_hash_hex(cert)
        if key in self._tasks:
            return
        self.load_saved(cert)
        wake = asyncio.Event()
        self._wake[key] = wake
        self._tasks[key] = asyncio.get_running_loop().create_task(
            self._run(cert, wake), name=f"ocsp-{key[:12]}"
        )

    def wake(self) -> None:
        """Fetch every tracked certificate's responses now (e.g. a new trust policy)."""
        for event in self._wake.values():
            event.set()

    async def _run(self, cert: x509.Certificate, wake: asyncio.Event) -> None:
        while True:
            try:
                await self.refresh(cert)
                delay = self.interval
            except XRoadError as err:
                log.warning("OCSP fetch for %s failed: %s", describe(cert), err)
                delay = self.retry
            wake.clear()
            # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that arrives
            # just as the event is set, and the task would never stop.
            waiter = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=delay)
            finally:
                waiter.cancel()

    async def untrack(self, cert_id: str) -> None:
        task = self._tasks.pop(cert_id, None)
        self._wake.pop(cert_id, None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        for key in list(self._tasks):
            await self.untrack(key)
        if self._session is not None:
            await self._session.close()
            self._session = None
