"""Global configuration generation: registry values → the files of each version V2..V6.

protocols.md §5.1 (every version from the minimum up to 6), §5.4 (private parameters: V2 for
version 2, V3 from version 3 on), §5.5 (shared parameters; ``source`` from V3 on, ``authCertHash``
SHA-1 in V2 and SHA-256 in V3+), §5.6 (optional parts), §11.1 (generation loop).

This is the sans-I/O core of the central server's generation cycle: it takes values (the
registry's shared parameters without sources, its private parameters, the configuration sources
with the certificates of *all* signing keys, the optional parts) and returns bytes.  The same
inputs always give the same bytes, so an unchanged registry gives unchanged files and clients
download nothing new (§5.2: they fetch a file only when its hash changes).

The *internal* directory carries every part of a version; the *external* one (for federation
partners) only the shared parameters (§5.1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from lxml import etree

from crossroad.crypto.algorithms import SHA1, SHA256
from crossroad.errors import Code, XRoadError
from crossroad.globalconf.model import (
    SHARED_VERSIONS,
    ConfigurationSource,
    PrivateParameters,
    SecurityServer,
    SharedParameters,
)
from crossroad.globalconf.privateparams import (
    parse_fetch_interval,
    parse_monitoring_params,
    parse_next_update,
    render_private_parameters,
)
from crossroad.globalconf.sharedparams import NSMAP, serialize, sub
from crossroad.identifiers import XROAD_NS, ClientId, SecurityServerId

__all__ = [
    "EXTERNAL_CONTENT_IDENTIFIERS",
    "FETCHINTERVAL",
    "MAX_VERSION",
    "MIN_VERSION",
    "MONITORING",
    "NEXTUPDATE",
    "PRIVATE_PARAMETERS",
    "SHARED_PARAMETERS",
    "ConfigurationPart",
    "GeneratedVersion",
    "generate",
    "generate_versions",
    "optional_part",
    "render_fetch_interval",
    "render_monitoring_params",
    "render_next_update",
]

PRIVATE_PARAMETERS = "PRIVATE-PARAMETERS"
SHARED_PARAMETERS = "SHARED-PARAMETERS"
MONITORING = "MONITORING"
FETCHINTERVAL = "FETCHINTERVAL"
NEXTUPDATE = "NEXTUPDATE"

PRIVATE_PARAMS_FILE = "private-params.xml"
SHARED_PARAMS_FILE = "shared-params.xml"

#: The file name of each optional part NIIS central servers are configured with (§5.2).
OPTIONAL_PART_FILES: Mapping[str, str] = {
    MONITORING: "monitoring-params.xml",
    FETCHINTERVAL: "fetchinterval-params.xml",
    NEXTUPDATE: "nextupdate-params.xml",
}

#: What the external directory (for federation partners) carries (§5.1).
EXTERNAL_CONTENT_IDENTIFIERS = frozenset({SHARED_PARAMETERS})

#: ``minimum-global-configuration-version`` default, and the newest version generated.
MIN_VERSION = 2
MAX_VERSION = max(SHARED_VERSIONS)

# Content identifiers must fit a MIME header parameter and file names a URL path segment.
_SAFE_FILE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True)
class ConfigurationPart:
    """One file of a configuration version: its content identifier, file name and bytes."""

    content_identifier: str
    file_name: str
    data: bytes = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        name = self.file_name
        if not name or name.startswith(".") or not set(name) <= _SAFE_FILE:
            raise XRoadError(Code.INVALID_REQUEST, f"Unusable configuration file name {name!r}")
        ident = self.content_identifier
        if not ident or not set(ident) <= _SAFE_FILE:
            raise XRoadError(Code.INVALID_REQUEST, f"Unusable content identifier {ident!r}")


@dataclass(frozen=True)
class GeneratedVersion:
    """The files of one version; ``parts`` are in directory order (private, shared, optional)."""

    version: int
    instance_identifier: str
    parts: tuple[ConfigurationPart, ...]

    @property
    def internal(self) -> tuple[ConfigurationPart, ...]:
        """The parts of the internal directory: all of them."""
        return self.parts

    @property
    def external(self) -> tuple[ConfigurationPart, ...]:
        """The parts of the external directory: the shared parameters only."""
        return tuple(p for p in self.parts if p.content_identifier in EXTERNAL_CONTENT_IDENTIFIERS)

    def part(self, content_identifier: str) -> ConfigurationPart | None:
        return next((p for p in self.parts if p.content_identifier == content_identifier), None)


# --- optional parts (§5.6) -----------------------------------------------------------------------


def _optional_root() -> etree._Element:
    return etree.Element(f"{{{XROAD_NS}}}conf", nsmap=NSMAP)


def render_monitoring_params(client: ClientId | None) -> bytes:
    """MONITORING: the client allowed to query the monitoring data of all security servers."""
    root = _optional_root()
    monitoring = sub(root, "monitoringClient")
    if client is not None:
        client.to_xml("monitoringClientId", parent=monitoring)
    return serialize(root)


def render_fetch_interval(seconds: int) -> bytes:
    """FETCHINTERVAL: how often security servers fetch OCSP responses (xs:int seconds)."""
    if not 0 < seconds < 2**31:
        raise XRoadError(Code.INVALID_REQUEST, f"OCSP fetch interval {seconds} is out of range")
    root = _optional_root()
    sub(root, "ocspFetchInterval", str(seconds))
    return serialize(root)


def render_next_update(verify: bool) -> bytes:
    """NEXTUPDATE: whether security servers check OCSP ``nextUpdate``."""
    root = _optional_root()
    sub(root, "verifyNextUpdate", "true" if verify else "false")
    return serialize(root)


_OPTIONAL_CHECKS = {
    MONITORING: parse_monitoring_params,
    FETCHINTERVAL: parse_fetch_interval,
    NEXTUPDATE: parse_next_update,
}


def optional_part(
    content_identifier: str, data: bytes, file_name: str | None = None
) -> ConfigurationPart:
    """An optional part as uploaded by an administrator.

    The three parts NIIS knows are checked with the same parser security servers use, so a
    malformed upload is refused here (``malformed_optional_parts_conf``) instead of breaking
    every client.  Other content identifiers pass as they are (clients keep unknown parts).
    """
    if content_identifier in (PRIVATE_PARAMETERS, SHARED_PARAMETERS):
        raise XRoadError(
            Code.INVALID_REQUEST, f"{content_identifier} is generated, not an optional part"
        )
    check = _OPTIONAL_CHECKS.get(content_identifier)
    if check is not None:
        check(data)
    name = file_name or OPTIONAL_PART_FILES.get(content_identifier)
    if name is None:
        raise XRoadError(
            Code.INVALID_REQUEST, f"Optional part {content_identifier} needs a file name"
        )
    return ConfigurationPart(content_identifier, name, data)


# --- shared and private parameters ----------------------------------------------------------------


def _with_auth_hashes(
    shared: SharedParameters,
    auth_certs: Mapping[SecurityServerId, Sequence[bytes]],
    version: int,
) -> SharedParameters:
    """Recompute ``authCertHash`` from the certificates: SHA-1 in V2, SHA-256 in V3+ (§5.5)."""
    digest = SHA1 if version == 2 else SHA256

    def server(s: SecurityServer) -> SecurityServer:
        certs = auth_certs.get(s.id)
        if certs is None:
            return s
        return dataclasses.replace(s, auth_cert_hashes=tuple(digest.digest(c) for c in certs))

    return dataclasses.replace(
        shared, security_servers=tuple(server(s) for s in shared.security_servers)
    )


def _check_version(version: int) -> None:
    if version not in SHARED_VERSIONS:
        raise XRoadError(
            Code.INVALID_REQUEST,
            f"Configuration version {version} is not one of {', '.join(map(str, SHARED_VERSIONS))}",
        )


def _check_instance(shared: SharedParameters, private: PrivateParameters) -> None:
    if shared.instance_identifier != private.instance_identifier:
        raise XRoadError(
            Code.INVALID_REQUEST,
            f"Shared parameters are for {shared.instance_identifier!r}, "
            f"private parameters for {private.instance_identifier!r}",
        )


def generate(
    shared: SharedParameters,
    private: PrivateParameters,
    version: int,
    sources: Sequence[ConfigurationSource],
    optional_parts: Iterable[ConfigurationPart] = (),
    *,
    auth_certs: Mapping[SecurityServerId, Sequence[bytes]] | None = None,
) -> dict[str, ConfigurationPart]:
    """The files of ``version``, keyed by file name, in directory order.

    ``shared`` comes without sources; ``sources`` (V3+) list each central server node with the
    verification certificates of all its signing keys, active first, so that clients learn a new
    key before it signs anything (key rotation, §5.5).  ``auth_certs`` (the DER authentication
    certificates per server) makes ``authCertHash`` right for every version; without it the
    hashes in ``shared`` are used as they are.
    """
    _check_version(version)
    _check_instance(shared, private)
    if version >= 3 and not sources:
        raise XRoadError(
            Code.INVALID_REQUEST, f"Version {version} needs at least one configuration source"
        )
    values = dataclasses.replace(shared, sources=tuple(sources) if version >= 3 else ())
    if auth_certs is not None:
        values = _with_auth_hashes(values, auth_certs, version)
    parts = [
        ConfigurationPart(
            PRIVATE_PARAMETERS,
            PRIVATE_PARAMS_FILE,
            render_private_parameters(private, 2 if version == 2 else 3),
        ),
        ConfigurationPart(SHARED_PARAMETERS, SHARED_PARAMS_FILE, values.render(version)),
    ]
    for part in optional_parts:
        if any(p.file_name == part.file_name for p in parts):
            raise XRoadError(
                Code.INVALID_REQUEST, f"Two configuration parts share the file {part.file_name}"
            )
        parts.append(part)
    return {p.file_name: p for p in parts}


def generate_versions(
    shared: SharedParameters,
    private: PrivateParameters,
    sources: Sequence[ConfigurationSource],
    optional_parts: Iterable[ConfigurationPart] = (),
    *,
    min_version: int = MIN_VERSION,
    auth_certs: Mapping[SecurityServerId, Sequence[bytes]] | None = None,
    shared_v2: SharedParameters | None = None,
) -> tuple[GeneratedVersion, ...]:
    """Every version from ``min_version`` up to :data:`MAX_VERSION`, oldest first.

    ``shared_v2`` (the same registry read with SHA-1 ``authCertHash``) is used for version 2
    when given; ``auth_certs`` is the other way to get every version's hashes right.
    """
    _check_version(min_version)
    optional = tuple(optional_parts)
    if shared_v2 is not None and shared_v2.instance_identifier != shared.instance_identifier:
        raise XRoadError(Code.INVALID_REQUEST, "V2 shared parameters are of another instance")

    def files(version: int) -> tuple[ConfigurationPart, ...]:
        values = shared_v2 if version == 2 and shared_v2 is not None else shared
        found = generate(values, private, version, sources, optional, auth_certs=auth_certs)
        return tuple(found.values())

    return tuple(
        GeneratedVersion(version, shared.instance_identifier, files(version))
        for version in range(min_version, MAX_VERSION + 1)
    )
