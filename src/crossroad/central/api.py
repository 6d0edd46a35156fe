"""The central server management REST API (FastAPI, OpenAPI at ``/api/v1/openapi.json``) over
the registry (protocols.md §11.1).

Routes live per noun in :mod:`.api_members`, :mod:`.api_servers`, :mod:`.api_services` and
:mod:`.api_system`, all under ``/api/v1`` with NIIS's resource names.  Keys and roles are
checked by :mod:`.api_auth`.  Failures are JSON in NIIS's ``ErrorInfo`` shape with the X-Road
code: ``{"status": 404, "error": {"code": "member_not_found", "metadata": ["No member ..."]}}``;
the HTTP status follows the code (401 bad key, 403 role, 404 unknown, 409 duplicate or in use,
400 invalid, 500 internal).

If :mod:`crossroad.central.api_conf` exists and defines ``router`` (signing keys, source anchors,
on the distribution side), it is included under ``/api/v1`` too.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from crossroad.central.api_auth import RegistryFactory
from crossroad.central.registry import Registry
from crossroad.errors import Code, XRoadError

PREFIX = "/api/v1"
_log = logging.getLogger(__name__)

_UNAUTHORIZED = {Code.API_KEY_INVALID}
_FORBIDDEN = {Code.PERMISSION_DENIED}
_CONFLICT = {
    Code.INIT_ALREADY_INITIALIZED,
    Code.MEMBER_CLASS_IS_IN_USE,
    Code.MEMBER_REGISTERED_AND_CANNOT_BE_DELETED,
    Code.SUBSYSTEM_REGISTERED_AND_CANNOT_BE_DELETED,
    Code.OWNERS_GLOBAL_GROUP_CANNOT_BE_DELETED,
    Code.OWNERS_GLOBAL_GROUP_MEMBER_CANNOT_BE_DELETED,
    Code.CANNOT_ADD_MEMBER_TO_OWNERS_GROUP,
    Code.SIGNING_KEY_ACTION_NOT_POSSIBLE,
}
_SERVER_ERROR = {Code.INTERNAL_ERROR, Code.IO_ERROR}


def status_for(code: str) -> int:
    """The HTTP status of a failure with X-Road code ``code``."""
    if code in _UNAUTHORIZED:
        return 401
    if code in _FORBIDDEN:
        return 403
    if code.endswith(("_not_found", "_not_set")) or "_not_registered_" in code:
        return 404
    if code in _CONFLICT or code.endswith("_exists") or "_already_" in code:
        return 409
    if code in _SERVER_ERROR:
        return 500
    return 400


def _error(status: int, code: str, metadata: list[str], **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {
        "status": status,
        "error": {"code": code, "metadata": metadata, **extra},
    }
    headers = {"WWW-Authenticate": "X-Road-ApiKey"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(
    registry: RegistryFactory | sa.Engine,
    *,
    require_api_key: bool = True,
    config: object | None = None,
) -> FastAPI:
    """The management API over ``registry``: an engine, or a factory ``actor -> Registry``.

    ``require_api_key=False`` admits every request as ``api:anonymous`` (local tools, tests).
    ``config`` (a :class:`~crossroad.central.config.CentralConfig`) is kept in
    ``app.state.config`` for routes that need the state directory.
    """
    factory: Callable[[str], Registry]
    if isinstance(registry, sa.Engine):
        engine = registry

        def factory(actor: str) -> Registry:
            return Registry(engine, actor=actor)
    else:
        factory = registry
    app = FastAPI(
        title="crossroad central server management API",
        version="1.0.0",
        description=(
            "Registry of an X-Road instance: members, subsystems, security servers, global "
            "groups, approved certification and time-stamping services, system parameters. "
            "Authenticate with `Authorization: X-Road-ApiKey token=<key>`."
        ),
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
        responses={
            400: {"model": _error_model(), "description": "invalid request"},
            401: {"model": _error_model(), "description": "API key missing or unknown"},
            403: {"model": _error_model(), "description": "the API key lacks the role"},
        },
    )
    app.state.registry_factory = factory
    app.state.require_api_key = require_api_key
    app.state.config = config

    @app.exception_handler(XRoadError)
    async def _xroad_error(_request: Request, exc: XRoadError) -> JSONResponse:
        status = status_for(exc.code)
        if status >= 500:
            _log.error("management API: %s", exc)
        return _error(status, exc.code, [exc.detail] if exc.detail else [])

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: dict[str, list[str]] = {}
        for item in exc.errors():
            where = ".".join(str(p) for p in item.get("loc", ()))
            errors.setdefault(where, []).append(str(item.get("msg", "")))
        return _error(400, Code.VALIDATION_FAILURE, [], validation_errors=errors)

    from crossroad.central import api_members, api_servers, api_services, api_system

    for module in (api_members, api_servers, api_services, api_system):
        app.include_router(module.router, prefix=PREFIX)
    extra = _optional_router("crossroad.central.api_conf")
    if extra is not None:
        app.include_router(extra, prefix=PREFIX)
    return app


def _optional_router(name: str) -> Any:
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None
    return getattr(module, "router", None)


def _error_model() -> type:
    from crossroad.central.api_models import ErrorInfo

    return ErrorInfo
