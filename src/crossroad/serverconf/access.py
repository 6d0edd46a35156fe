"""Access decisions of the provider security server (protocols.md §4.10 step 2–3, §10.4, §3.4).

:func:`check_access` raises the NIIS codes in the provider-side order: the provider client must
be registered here (``unknown_member``), the service must exist (``unknown_service``) with the
right type (``service_type``: SOAP vs REST), the access rights must allow the caller
(``access_denied``) and the service must be enabled (``service_disabled``, with its notice).

Access rights are per (provider, service code) and name one subject each: an exact member or
subsystem (a MEMBER right does not cover the member's subsystems), a global group (membership is
asked of the global configuration through a callback) or a local group of the provider.  Each
right points at an endpoint; a request matches it when the method is equal (case-insensitive) or
the endpoint's is ``*``, and the path matches the endpoint's glob (``*`` within one segment,
``**`` across segments, ``\\*`` a literal star), NIIS's ``PathGlob`` to the letter.  SOAP
requests carry no method or path, so only the base endpoint (``*``, ``**``) admits them.

The REST path is percent-decoded and normalised (``.`` and ``seg/..`` removed, repeated slashes
collapsed) before matching, and any ``..`` left afterwards is refused, as NIIS does.  Where NIIS
would fail on a path (invalid percent-encoding, characters outside RFC 3986 ``pchar``), we refuse
access.  An encoded slash (``%2F``) stays encoded, so it can neither split nor join segments.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from crossroad.errors import Code, XRoadError
from crossroad.identifiers import ClientId, GlobalGroupId, ServiceId
from crossroad.serverconf.model import (
    ANY_METHOD,
    ANY_PATH,
    DescriptionType,
    Endpoint,
    ServerConf,
    ServiceEntry,
)

#: ``membership(client, group)``: is ``client`` in the global group (global configuration).
GlobalGroupMembership = Callable[[ClientId, GlobalGroupId], bool]

_REST_TYPES = (DescriptionType.REST, DescriptionType.OPENAPI3)
# RFC 3986 pchar without the percent sign: what a path may carry unencoded (plus "/").
_PCHAR = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@/]*")


# ---------------------------------------------------------------------------------------------
# Path globs and normalisation


@functools.lru_cache(maxsize=1024)
def compile_glob(glob: str) -> re.Pattern[str]:
    """The regular expression of an endpoint path glob (NIIS ``PathGlob``).

    ``*`` matches within one segment (possessively, as NIIS does), ``**`` (or more stars) matches
    anything, ``\\*`` and ``\\\\`` escape; every other character is literal.
    """
    out = ["^"]
    i, n = 0, len(glob)
    while i < n:
        ch = glob[i]
        if ch == "\\":
            nxt = glob[i + 1] if i + 1 < n else ""
            if nxt in ("*", "\\"):
                out.append("\\" + nxt)
                i += 2
                continue
            out.append("\\\\")
        elif ch == "*":
            if i + 1 < n and glob[i + 1] == "*":
                out.append(".*")
                while i + 1 < n and glob[i + 1] == "*":
                    i += 1
            else:
                out.append("[^/]*+")
        else:
            # Every other character is literal (NIIS leaves "?" unescaped, a regex quantifier
            # there; a literal is what an operator writing a path means).
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.DOTALL)


def glob_matches(glob: str, path: str) -> bool:
    return compile_glob(glob).match(path) is not None


def normalize_path(path: str) -> str | None:
    """The request path as ACLs see it, or ``None`` when it must be refused.

    Percent-decodes (UTF-8, ``%2F`` kept encoded), removes dot segments and repeated slashes,
    and refuses anything that still contains ``..`` or is not a valid URI path.
    """
    if not _PCHAR.fullmatch(path.replace("%", "")):
        return None
    try:
        decoded = _percent_decode(path)
    except ValueError:
        return None
    absolute = decoded.startswith("/")
    segments = decoded.split("/")
    out: list[str] = []
    trailing = decoded.endswith("/") and len(decoded) > 1
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment in ("", "."):
            if last and segment == ".":
                trailing = True
            continue
        if segment == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not absolute:
                out.append("..")
            else:
                out.append("..")  # above the root: kept, and refused below
            if last:
                trailing = True
            continue
        out.append(segment)
    result = ("/" if absolute else "") + "/".join(out)
    if trailing and out:
        result += "/"
    if ".." in result:
        return None
    return result


def _percent_decode(path: str) -> str:
    if "%" not in path:
        return path
    raw = bytearray()
    i, n = 0, len(path)
    while i < n:
        ch = path[i]
        if ch == "%":
            hex_digits = path[i + 1 : i + 3]
            if len(hex_digits) != 2 or not all(c in "0123456789abcdefABCDEF" for c in hex_digits):
                raise ValueError("invalid percent-encoding")
            value = int(hex_digits, 16)
            if value == 0x2F:
                raw += b"%2F"  # an encoded slash is data, not a separator
            else:
                raw.append(value)
            i += 3
        else:
            raw += ch.encode("ascii")
            i += 1
    return raw.decode("utf-8")  # UnicodeDecodeError is a ValueError


def endpoint_matches(endpoint: Endpoint, method: str | None, path: str | None) -> bool:
    """Whether a request (``method``, normalised ``path``; ``None`` for SOAP) hits ``endpoint``."""
    if endpoint.method != ANY_METHOD and (
        method is None or endpoint.method.upper() != method.upper()
    ):
        return False
    if endpoint.path == ANY_PATH:
        return True
    return path is not None and glob_matches(endpoint.path, path)


# ---------------------------------------------------------------------------------------------
# The decision


def acl_endpoints(
    conf: ServerConf,
    membership: GlobalGroupMembership,
    client: ClientId,
    provider: ClientId,
    service_code: str,
) -> tuple[Endpoint, ...]:
    """The endpoints of ``service_code`` that ``client`` holds an access right to."""
    acl = conf.acl(provider, service_code)
    found: list[Endpoint] = list(acl.direct.get(client, ()))
    for local, endpoints in acl.local_groups:
        if conf.in_local_group(provider, local.group_code, client):
            found.extend(endpoints)
    for group, endpoints in acl.global_groups:
        if membership(client, group):
            found.extend(endpoints)
    return tuple(found)


def is_allowed(
    conf: ServerConf,
    membership: GlobalGroupMembership,
    client: ClientId,
    service: ServiceId,
    *,
    method: str | None = None,
    path: str | None = None,
) -> bool:
    """Whether the access rights let ``client`` call ``service`` (no other checks)."""
    normalized: str | None = None
    if path is not None:
        normalized = normalize_path(path)
        if normalized is None:
            return False
    acl = conf.acl(service.client, service.service_code)
    # The common case, an exact subject, needs no group lookups.
    for endpoint in acl.direct.get(client, ()):
        if endpoint_matches(endpoint, method, normalized):
            return True
    for local, endpoints in acl.local_groups:
        if any(endpoint_matches(e, method, normalized) for e in endpoints) and conf.in_local_group(
            service.client, local.group_code, client
        ):
            return True
    for group, endpoints in acl.global_groups:
        if any(endpoint_matches(e, method, normalized) for e in endpoints) and membership(
            client, group
        ):
            return True
    return False


def check_provider(conf: ServerConf, provider: ClientId) -> None:
    """The provider must be a registered client of this server (``unknown_member``)."""
    if not conf.is_registered(provider):
        raise XRoadError(Code.UNKNOWN_MEMBER, f"Client '{provider}' not found")


def check_service_access(
    conf: ServerConf,
    membership: GlobalGroupMembership,
    client: ClientId,
    service: ServiceId,
    *,
    method: str | None = None,
    path: str | None = None,
    rest: bool | None = None,
) -> ServiceEntry:
    """Steps after the provider check: exists, type, access rights, enabled.

    ``rest`` says which interface the request came through; by default a request with a
    ``method`` is REST.  Returns the service entry (URL, timeout, TLS settings) on success.
    """
    is_rest = method is not None if rest is None else rest
    entry = conf.service(service)
    if entry is None:
        raise XRoadError(Code.UNKNOWN_SERVICE, f"Unknown service: {service}")
    if is_rest and entry.type not in _REST_TYPES:
        raise XRoadError(
            Code.SERVICE_TYPE, "Service is a SOAP service and cannot be called using REST interface"
        )
    if not is_rest and entry.type is not DescriptionType.WSDL:
        raise XRoadError(
            Code.SERVICE_TYPE, "Service is a REST service and cannot be called using SOAP interface"
        )
    if not is_allowed(conf, membership, client, service, method=method, path=path):
        raise XRoadError(Code.ACCESS_DENIED, f"Request is not allowed: {service}")
    if entry.description.disabled:
        notice = entry.description.disabled_notice or f"Service '{service}' is disabled"
        raise XRoadError(Code.SERVICE_DISABLED, f"Service {service} is disabled: {notice}")
    return entry


def check_access(
    conf: ServerConf,
    globalconf_membership: GlobalGroupMembership,
    client: ClientId,
    service: ServiceId,
    *,
    method: str | None = None,
    path: str | None = None,
    rest: bool | None = None,
) -> ServiceEntry:
    """All provider-side access checks of §4.10 in NIIS's order; raises the first failure.

    The proxy checks the ``securityServer`` header and the TLS client certificate between the
    provider check and the rest: it can call :func:`check_provider` and
    :func:`check_service_access` separately for that.
    """
    check_provider(conf, service.client)
    return check_service_access(
        conf, globalconf_membership, client, service, method=method, path=path, rest=rest
    )


# ---------------------------------------------------------------------------------------------
# Metaservices (protocols.md §7.2–7.3)


def list_methods(conf: ServerConf, provider: ClientId) -> tuple[ServiceId, ...]:
    """SOAP ``listMethods``: the provider's WSDL services (with versions)."""
    return tuple(e.id for e in conf.services_of(provider, (DescriptionType.WSDL,)))


def allowed_methods(
    conf: ServerConf, membership: GlobalGroupMembership, client: ClientId, provider: ClientId
) -> tuple[ServiceId, ...]:
    """SOAP ``allowedMethods``: the WSDL services ``client`` holds any access right to."""
    return tuple(
        e.id
        for e in conf.services_of(provider, (DescriptionType.WSDL,))
        if acl_endpoints(conf, membership, client, provider, e.service.service_code)
    )


@dataclass(frozen=True)
class RestServiceInfo:
    """One entry of the REST ``listMethods`` / ``allowedMethods`` answer (PR-MREST)."""

    service: ServiceId
    service_type: str  # "REST" or "OPENAPI"
    endpoints: tuple[tuple[str, str], ...]  # (method, path)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.service.to_json())
        out["service_type"] = self.service_type
        out["endpoint_list"] = [{"method": m, "path": p} for m, p in self.endpoints]
        return out


def _rest_info(conf: ServerConf, entry: ServiceEntry, keep: Iterable[Endpoint]) -> RestServiceInfo:
    kind = "OPENAPI" if entry.type is DescriptionType.OPENAPI3 else "REST"
    return RestServiceInfo(entry.id, kind, tuple((e.method, e.path) for e in keep))


def rest_services(conf: ServerConf, provider: ClientId) -> tuple[RestServiceInfo, ...]:
    """REST ``listMethods``: every REST/OpenAPI service with its endpoints (base excluded)."""
    out = []
    for entry in conf.services_of(provider, _REST_TYPES):
        endpoints = conf.endpoints(provider, entry.service.service_code)
        out.append(_rest_info(conf, entry, (e for e in endpoints if not e.is_base)))
    return tuple(out)


def allowed_rest_services(
    conf: ServerConf, membership: GlobalGroupMembership, client: ClientId, provider: ClientId
) -> tuple[RestServiceInfo, ...]:
    """REST ``allowedMethods``: services with any right, listing the endpoints a right covers.

    As in NIIS, an endpoint is listed when one of the client's endpoints matches its method and
    path *as written* (so a right on ``/pets/**`` lists ``/pets/*``).
    """
    out = []
    for entry in conf.services_of(provider, _REST_TYPES):
        code = entry.service.service_code
        granted = acl_endpoints(conf, membership, client, provider, code)
        if not granted:
            continue
        keep = [
            e
            for e in conf.endpoints(provider, code)
            if not e.is_base and any(endpoint_matches(g, e.method, e.path) for g in granted)
        ]
        out.append(_rest_info(conf, entry, keep))
    return tuple(out)
