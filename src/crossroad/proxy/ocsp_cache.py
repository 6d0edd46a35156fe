"""OCSP responses of peers' authentication chains, cached until stale (protocols.md §4.1 step
3, §4.2, §10.3).

The consumer verifies the provider's TLS certificate with OCSP responses the provider itself
serves on its download service (peers never ask the other party's CA).  NIIS keeps what it
downloaded and uses it as long as it is fresh; so does :class:`PeerOcspCache`:

* an entry is keyed by the SHA-256 hash of the certificate and used while it is fresh under
  the trust policy of the instance it is checked for (``thisUpdate`` within
  ``ocspFreshnessSeconds``, ``nextUpdate`` not passed when NEXTUPDATE says so); a stale entry
  is dropped and downloaded again;
* only a response that verifies (CertID, responder, signature, freshness) is stored, so a peer
  cannot plant a bad response for a certificate other peers share (an intermediate CA); what
  it sends is still handed to the verifier, which then fails with the exact cause;
* concurrent requests for the same certificate share one download; entries are bounded.

Safe to share between tasks (one event loop per download) and threads (the table is locked).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp
from cryptography import x509

from crossroad.crypto import ocsp
from crossroad.crypto.algorithms import SHA256
from crossroad.crypto.certs import cert_der
from crossroad.crypto.trust import TrustPolicy
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.snapshot import GlobalConfSnapshot
from crossroad.identifiers import ClientId
from crossroad.proxy import authtrust
from crossroad.proxy.ocsp_service import DEFAULT_PORT, fetch_peer_ocsp

__all__ = ["Fetcher", "PeerOcspCache"]

#: ``fetch(address, certs) -> responses`` (one per certificate, in order).
Fetcher = Callable[[str, Sequence[x509.Certificate]], Awaitable[list[bytes]]]

DEFAULT_MAX_ENTRIES: Final = 10_000

Subject = tuple[x509.Certificate, x509.Certificate]  # (certificate, its issuer)


@dataclass(frozen=True)
class _Entry:
    der: bytes
    this_update: dt.datetime
    next_update: dt.datetime | None


def _key(cert: x509.Certificate) -> bytes:
    return SHA256.digest(cert_der(cert))


def _fresh(entry: _Entry, trust: TrustPolicy, at: dt.datetime) -> bool:
    if entry.this_update < at - dt.timedelta(seconds=trust.ocsp_freshness_seconds):
        return False
    return not (
        trust.verify_ocsp_next_update and entry.next_update is not None and entry.next_update < at
    )


class PeerOcspCache:
    """Peers' OCSP responses by certificate, downloaded from their port 5577 when missing.

    ``fetch`` replaces the download (default: :func:`fetch_peer_ocsp` on ``port`` with a
    session of this cache, closed by :meth:`close`)."""

    def __init__(
        self,
        fetch: Fetcher | None = None,
        *,
        port: int = DEFAULT_PORT,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._fetch = fetch
        self._port = port
        self._max = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._inflight: dict[tuple[int, bytes], asyncio.Future[bytes]] = {}
        self._session: aiohttp.ClientSession | None = None
        self.downloads = 0  # number of downloads made (for status pages and tests)

    # -- the table ------------------------------------------------------------------------

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def get(self, cert: x509.Certificate, trust: TrustPolicy, at: dt.datetime) -> bytes | None:
        """The cached response for ``cert`` if it is still fresh under ``trust`` at ``at``."""
        key = _key(cert)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if not _fresh(entry, trust, at):
                del self._entries[key]
                return None
            return entry.der

    def store(
        self,
        cert: x509.Certificate,
        issuer: x509.Certificate,
        der: bytes,
        trust: TrustPolicy,
        at: dt.datetime,
    ) -> bool:
        """Keep ``der`` for ``cert`` if it is a valid, fresh response about it (any status:
        a REVOKED answer is as much an answer as a GOOD one); whether it was kept."""
        try:
            status = ocsp.verify_status(der, cert, issuer, trust, at)
        except XRoadError:
            return False
        entry = _Entry(bytes(der), status.this_update, status.next_update)
        with self._lock:
            self._entries[_key(cert)] = entry
            self._entries.move_to_end(_key(cert))
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        return True

    # -- downloads ------------------------------------------------------------------------

    async def _download(self, address: str, certs: Sequence[x509.Certificate]) -> list[bytes]:
        self.downloads += 1
        if self._fetch is not None:
            found = list(await self._fetch(address, certs))
        else:
            if self._session is None or self._session.closed:
                self._session = aiohttp.ClientSession()
            found = await fetch_peer_ocsp(self._session, address, certs, port=self._port)
        if len(found) != len(certs):
            raise XRoadError(
                Code.INTERNAL_ERROR,
                "Could not get all OCSP responses from server"
                f" (expected {len(certs)}, but got {len(found)})",
            )
        return found

    async def responses(
        self,
        subjects: Sequence[Subject],
        address: str,
        snapshot: GlobalConfSnapshot,
        at: dt.datetime,
        *,
        instance: str | None = None,
    ) -> list[bytes]:
        """A response for every ``(certificate, issuer)`` of ``subjects``, in order: fresh
        cached ones, the others downloaded from ``address`` in one request (and stored when
        they verify).  Freshness follows ``instance``'s trust policy (own by default).
        Download failures are the coded errors of :func:`fetch_peer_ocsp`."""
        trust = snapshot.trust_policy(instance)
        out: list[bytes | None] = [self.get(cert, trust, at) for cert, _ in subjects]
        loop_id = id(asyncio.get_running_loop())
        mine: list[int] = []
        waiting: list[tuple[int, asyncio.Future[bytes]]] = []
        with self._lock:
            for i, (cert, _) in enumerate(subjects):
                if out[i] is not None:
                    continue
                slot = (loop_id, _key(cert))
                pending = self._inflight.get(slot)
                if pending is None:
                    self._inflight[slot] = asyncio.get_running_loop().create_future()
                    mine.append(i)
                else:
                    waiting.append((i, pending))
        if mine:
            await self._fetch_mine(subjects, mine, out, address, trust, at, loop_id)
        for i, future in waiting:
            out[i] = await asyncio.shield(future)
        return [der if der is not None else b"" for der in out]

    async def _fetch_mine(
        self,
        subjects: Sequence[Subject],
        mine: Sequence[int],
        out: list[bytes | None],
        address: str,
        trust: TrustPolicy,
        at: dt.datetime,
        loop_id: int,
    ) -> None:
        futures: dict[int, asyncio.Future[bytes]] = {}
        with self._lock:
            for i in mine:
                futures[i] = self._inflight[(loop_id, _key(subjects[i][0]))]
        try:
            found = await self._download(address, [subjects[i][0] for i in mine])
        except BaseException as exc:
            self._settle(subjects, futures, loop_id, error=exc)
            raise
        for i, der in zip(mine, found, strict=True):
            cert, issuer = subjects[i]
            self.store(cert, issuer, der, trust, at)
            out[i] = der
        self._settle(subjects, futures, loop_id, results={i: out[i] or b"" for i in mine})

    def _settle(
        self,
        subjects: Sequence[Subject],
        futures: dict[int, asyncio.Future[bytes]],
        loop_id: int,
        *,
        results: dict[int, bytes] | None = None,
        error: BaseException | None = None,
    ) -> None:
        with self._lock:
            for i in futures:
                self._inflight.pop((loop_id, _key(subjects[i][0])), None)
        for i, future in futures.items():
            if future.done():
                continue
            if results is not None:
                future.set_result(results[i])
            else:
                future.set_exception(
                    error
                    if isinstance(error, Exception)
                    else XRoadError(Code.INTERNAL_ERROR, "OCSP download was cancelled")
                )
                future.exception()  # retrieved here: nobody may be waiting for it

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the consumer's check -------------------------------------------------------------

    async def verify_provider(
        self,
        snapshot: GlobalConfSnapshot,
        chain: Sequence[x509.Certificate],
        provider: ClientId,
        address: str,
        at: dt.datetime,
    ) -> authtrust.AuthenticatedPeer:
        """NIIS ``AuthTrustVerifier``: the provider's TLS ``chain`` (from
        :func:`crossroad.proxy.tls.peer_chain`) with OCSP from this cache or from the download
        service at ``address``, checked by :func:`~crossroad.proxy.authtrust.
        verify_provider_cert`.  Every failure is ``ssl_authentication_failed[.cause]``."""
        subjects = authtrust.ocsp_subjects(snapshot, chain, provider.instance)
        try:
            responses = await self.responses(
                subjects, address, snapshot, at, instance=provider.instance
            )
        except XRoadError as exc:
            raise exc.with_prefix(Code.SSL_AUTHENTICATION_FAILED) from exc
        return authtrust.verify_provider_cert(snapshot, chain, responses, provider, at)
