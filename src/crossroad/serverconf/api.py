"""The security server's management REST API (FastAPI) over :class:`ServerConfStore`.

Resources follow NIIS's security server admin API (``/api/v1``): ``/clients`` (with
``/service-descriptions``, ``/local-groups``, ``/tls-certificates``, ``/service-clients``),
``/service-descriptions/{id}``, ``/services/{id}``, ``/endpoints/{id}``, ``/local-groups/{id}``,
``/initialization`` and ``/api-keys``, with NIIS's identifier encodings: a client is
``INSTANCE:CLASS:CODE[:SUBSYSTEM]``, a service ``<client>:<code>[.<version>]``, a global group
``INSTANCE:CODE``, a local group its numeric id.  Errors are NIIS ``ErrorInfo`` bodies
(``{"status": 404, "error": {"code": "client_not_found", "metadata": [...]}}``).

Callers authenticate with ``Authorization: X-Road-ApiKey token=<key>``; keys are stored hashed
and carry roles: observers read, service administrators manage descriptions, services, access
rights, local groups and client connection settings, registration officers manage clients,
system administrators initialize the server and manage keys.  The OpenAPI document is served at
``/api/v1/openapi.json``.
"""

import urllib.request
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from crossroad.errors import Code, XRoadError
from crossroad.serverconf.api_routes import add_routes
from crossroad.serverconf.descriptions import MAX_DESCRIPTION_SIZE
from crossroad.serverconf.store import ApiKeyRecord, Role, ServerConfStore

API_PREFIX = "/api/v1"
_SCHEME = "x-road-apikey"

#: Reads a description document from its URL (injected in tests; refuses non-HTTP URLs).
Fetcher = Callable[[str], bytes]

_CONFLICT = frozenset(
    {
        Code.CLIENT_ALREADY_EXISTS,
        Code.URL_ALREADY_EXISTS,
        Code.SERVICE_ALREADY_EXISTS,
        Code.SERVICE_CODE_ALREADY_EXISTS,
        Code.ENDPOINT_ALREADY_EXISTS,
        Code.DUPLICATE_ACCESSRIGHT,
        Code.LOCAL_GROUP_CODE_ALREADY_EXISTS,
        Code.LOCAL_GROUP_MEMBER_ALREADY_EXISTS,
        Code.CERTIFICATE_ALREADY_EXISTS,
        Code.API_KEY_EXISTS,
        Code.SERVER_ALREADY_FULLY_INITIALIZED,
    }
)


def http_status(code: str) -> int:
    """The HTTP status of an error code, as the NIIS admin API answers."""
    base = code.rsplit(".", 1)[-1]
    if base == Code.API_KEY_INVALID:
        return 401
    if base == Code.PERMISSION_DENIED:
        return 403
    if base.endswith("_not_found"):
        return 404
    if base in _CONFLICT:
        return 409
    if base in (Code.INTERNAL_ERROR, Code.IO_ERROR, Code.NETWORK_ERROR):
        return 500
    return 400


def error_body(status: int, code: str, *metadata: str) -> dict[str, Any]:
    return {"status": status, "error": {"code": code, "metadata": [m for m in metadata if m]}}


def fetch_url(url: str, timeout: float = 30.0) -> bytes:
    """GET a description over HTTP(S), at most 10 MiB (NIIS's limit)."""
    if not url.lower().startswith(("http://", "https://")):
        raise XRoadError(Code.INVALID_URL, f"Only http and https URLs can be read: {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            data: bytes = response.read(MAX_DESCRIPTION_SIZE + 1)
    except OSError as exc:
        raise XRoadError(Code.NETWORK_ERROR, f"Cannot read {url}: {exc}") from None
    if len(data) > MAX_DESCRIPTION_SIZE:
        raise XRoadError(Code.VALIDATION_FAILURE, f"{url} is larger than {MAX_DESCRIPTION_SIZE}")
    return data


def parse_api_key(authorization: str | None) -> str | None:
    """The key of ``Authorization: X-Road-ApiKey token=<key>`` (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != _SCHEME:
        return None
    name, sep, value = rest.strip().partition("=")
    if not sep or name.strip().lower() != "token" or not value.strip():
        return None
    return value.strip()


def role_from_text(text: str) -> Role:
    """A role in our spelling or NIIS's (``XROAD_SERVICE_ADMINISTRATOR``)."""
    name = text.strip().lower()
    name = name.removeprefix("xroad_")
    try:
        return Role(name)
    except ValueError:
        raise XRoadError(Code.INVALID_ROLE, f"Unknown role {text!r}") from None


class Auth:
    """FastAPI dependencies that authenticate the caller and check its roles."""

    def __init__(self, store: ServerConfStore) -> None:
        self.store = store

    def caller(self, authorization: Annotated[str | None, Header()] = None) -> ApiKeyRecord:
        secret = parse_api_key(authorization)
        record = self.store.authenticate(secret) if secret else None
        if record is None:
            raise XRoadError(Code.API_KEY_INVALID, "Missing or invalid API key")
        return record

    def require(self, *roles: Role) -> Callable[..., ApiKeyRecord]:
        """A dependency admitting keys with any of ``roles`` (no roles: any valid key)."""

        def check(
            record: Annotated[ApiKeyRecord, Depends(self.caller)],
        ) -> ApiKeyRecord:
            if roles and not (record.roles & set(roles)):
                wanted = ", ".join(sorted(roles))
                raise XRoadError(Code.PERMISSION_DENIED, f"This needs one of the roles {wanted}")
            return record

        return check


def create_app(store: ServerConfStore, *, fetch: Fetcher = fetch_url) -> FastAPI:
    """The management API of one security server."""
    app = FastAPI(
        title="crossroad security server management API",
        version="1.0.0",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )

    @app.exception_handler(XRoadError)
    async def _coded(_request: Request, exc: XRoadError) -> JSONResponse:
        status = http_status(exc.code)
        headers = {"WWW-Authenticate": "X-Road-ApiKey"} if status == 401 else None
        return JSONResponse(error_body(status, exc.code, exc.detail), status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        ]
        return JSONResponse(error_body(400, Code.VALIDATION_FAILURE, *details), 400)

    auth = Auth(store)
    add_routes(app, API_PREFIX, store, auth, fetch)

    read = auth.require()
    admin = auth.require(Role.SYSTEM_ADMINISTRATOR)

    @app.get(f"{API_PREFIX}/api-keys", tags=["api-keys"])
    def list_api_keys(_: Annotated[ApiKeyRecord, Depends(admin)]) -> list[dict[str, Any]]:
        return [_key_json(k) for k in store.api_keys()]

    @app.post(f"{API_PREFIX}/api-keys", tags=["api-keys"], status_code=200)
    def create_api_key(
        _: Annotated[ApiKeyRecord, Depends(admin)],
        body: Annotated[list[str] | dict[str, Any], Body()],
    ) -> dict[str, Any]:
        """Body: a list of roles (NIIS) or ``{"name": ..., "roles": [...]}``."""
        if isinstance(body, list):
            roles, name = body, None
        else:
            roles, name = list(body.get("roles") or []), body.get("name")
        wanted = [role_from_text(str(r)) for r in roles]
        if not name:
            name = f"key-{len(store.api_keys()) + 1}-{len(wanted)}"
        record, secret = store.create_api_key(str(name), wanted)
        return {**_key_json(record), "key": secret}

    @app.delete(f"{API_PREFIX}/api-keys/{{key_id}}", tags=["api-keys"], status_code=200)
    def revoke_api_key(_: Annotated[ApiKeyRecord, Depends(admin)], key_id: int) -> Response:
        store.revoke_api_key(key_id)
        return Response(status_code=200)

    @app.get(f"{API_PREFIX}/api-keys/current", tags=["api-keys"])
    def current_key(record: Annotated[ApiKeyRecord, Depends(read)]) -> dict[str, Any]:
        return _key_json(record)

    return app


def _key_json(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "roles": sorted(r.value for r in record.roles),
        "created_at": record.created_at.isoformat(),
    }
