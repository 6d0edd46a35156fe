"""Configuration anchors of the central server's own sources (protocols.md §5.3, §11.1).

An anchor tells a configuration client where to download a directory (``downloadURL``) and which
certificates may sign it (``verificationCert``).  The central server keeps one anchor per source
(internal, external), with the certificates of *all* the source's signing keys, active first, so
that an anchor exported before a key is activated already trusts it (key rotation).  Operators
compare anchors by their SHA-224 hash (:func:`crossroad.globalconf.privateparams.anchor_hash`).

The anchor is regenerated only when what it says changes (instance, URLs, certificates): the
stored one (the registry keeps it with its configuration source) is reused otherwise, so its
``generatedAt`` and hash stay the same across exports, as on a NIIS central server where anchors
are regenerated when keys change.  This module is pure: the caller reads and stores the bytes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from crossroad.central.keys import KeySource
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import AnchorSource, ConfigurationAnchor
from crossroad.globalconf.privateparams import anchor_hash, parse_anchor, render_anchor

__all__ = [
    "ExportedAnchor",
    "build_anchor",
    "directory_path",
    "download_urls",
    "public_address",
    "refresh_anchor",
]


def directory_path(source: KeySource | str) -> str:
    """The URL path of a source's directory: ``internalconf`` or ``externalconf``."""
    return f"{KeySource(source).value}conf"


def public_address(address: str, port: int) -> str:
    """``host[:port]`` as clients should use it (the port is left out when it is HTTP's 80).

    This is also the V3+ shared-parameters ``source/address``: clients build
    ``http(s)://ADDRESS/internalconf`` from it (§5.5).
    """
    host = address.strip()
    if port == 80 or _has_port(host):
        return host
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def _has_port(host: str) -> bool:
    if host.startswith("["):
        return "]:" in host
    return host.count(":") == 1


def download_urls(address: str, source: KeySource | str) -> tuple[str, ...]:
    """The ``downloadURL`` values of a source served over plain HTTP at ``address``."""
    return (f"http://{address}/{directory_path(source)}",)


def build_anchor(
    instance: str,
    urls: Sequence[str],
    certs: Sequence[bytes],
    generated_at: dt.datetime,
) -> ConfigurationAnchor:
    """An anchor with one ``source`` per URL, each listing every verification certificate."""
    if not urls:
        raise XRoadError(Code.INVALID_REQUEST, "An anchor needs at least one download URL")
    if not certs:
        raise XRoadError(Code.INVALID_REQUEST, "An anchor needs at least one verification cert")
    return ConfigurationAnchor(
        instance_identifier=instance,
        sources=tuple(AnchorSource(url, tuple(certs)) for url in urls),
        generated_at=generated_at,
    )


@dataclass(frozen=True)
class ExportedAnchor:
    source: KeySource
    data: bytes
    anchor: ConfigurationAnchor

    @property
    def hash(self) -> str:
        """SHA-224 of the file, upper-case hex pairs joined by colons (as NIIS shows it)."""
        return anchor_hash(self.data)


def _same(a: ConfigurationAnchor, b: ConfigurationAnchor) -> bool:
    return a.instance_identifier == b.instance_identifier and a.sources == b.sources


def refresh_anchor(
    stored: bytes | None,
    source: KeySource | str,
    *,
    instance: str,
    urls: Sequence[str],
    certs: Sequence[bytes],
    now: dt.datetime,
) -> tuple[ExportedAnchor, bool]:
    """The current anchor of ``source`` and whether it is new: the ``stored`` one while it
    still says the same, else one generated at ``now`` (the caller stores it)."""
    src = KeySource(source)
    wanted = build_anchor(instance, urls, certs, now)
    if stored is not None:
        try:
            previous = parse_anchor(stored)
        except XRoadError:
            previous = None  # a damaged record is simply regenerated
        if previous is not None and _same(previous, wanted):
            return ExportedAnchor(src, stored, previous), False
    return ExportedAnchor(src, render_anchor(wanted), wanted), True
