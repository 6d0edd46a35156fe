"""API-key authentication and role checks of the central server management API (§11.1).

Keys are sent as NIIS does: ``Authorization: X-Road-ApiKey token=<key>``.  A missing or unknown
key is 401 (``api_key_invalid``), a key without the role an operation needs is 403
(``permission_denied``).  ``system_administrator`` passes every role check.  A route asks for
a :class:`~crossroad.central.registry.Registry` acting as ``api:<key name>`` with
``Depends(requires(Role.X, ...))``; ``requires()`` without roles admits any valid key (reads).
Modules that add routes (``crossroad.central.api_conf``) use the same dependency.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from fastapi import Header, Request

from crossroad.central.registry import Registry, Role
from crossroad.errors import Code, XRoadError

_HEADER = re.compile(r"\s*X-Road-ApiKey\s+token\s*=\s*(\S+)\s*", re.IGNORECASE)

RegistryFactory = Callable[[str], Registry]


def api_key_from_header(value: str | None) -> str:
    """The key of an ``Authorization: X-Road-ApiKey token=<key>`` header."""
    if not value:
        raise XRoadError(Code.API_KEY_INVALID, "Authorization: X-Road-ApiKey token=<key> missing")
    match = _HEADER.fullmatch(value)
    if match is None:
        raise XRoadError(
            Code.API_KEY_INVALID, "Authorization must be of the form X-Road-ApiKey token=<key>"
        )
    return match.group(1)


def requires(*roles: Role) -> Callable[..., Registry]:
    """A FastAPI dependency: the caller's registry, if its key has one of ``roles``."""

    def dependency(
        request: Request,
        authorization: str | None = Header(
            default=None, description="X-Road-ApiKey token=<api key>"
        ),
    ) -> Registry:
        factory: RegistryFactory = request.app.state.registry_factory
        if not request.app.state.require_api_key:
            return factory("api:anonymous")
        secret = api_key_from_header(authorization)
        key = factory("api").authenticate(secret)
        if key is None:
            raise XRoadError(Code.API_KEY_INVALID, "Unknown API key")
        if roles and Role.SYSTEM_ADMINISTRATOR not in key.roles and not key.roles & set(roles):
            wanted = ", ".join(sorted(r.value for r in roles))
            raise XRoadError(
                Code.PERMISSION_DENIED, f"API key {key.name!r} lacks the role(s) {wanted}"
            )
        return factory(f"api:{key.name}")

    return dependency


#: The roles that may change each area.
REGISTRATION = (Role.REGISTRATION_OFFICER,)
SECURITY = (Role.SECURITY_OFFICER,)
ADMINISTRATION = (Role.SYSTEM_ADMINISTRATOR,)
