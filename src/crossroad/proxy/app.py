"""The proxies' listeners: aiohttp applications and sites (protocols.md §0.3, §4.1, §10.6).

* :func:`client_app` — the client proxy, served on 8080 (HTTP) and 8443 (HTTPS with the
  internal TLS certificate; information systems' certificates checked per client);
* :func:`server_app` — the server proxy on 5500 (TLS 1.2, mutual authentication with the
  authentication certificate; plain HTTP when ``ssl_enabled`` is off);
* :func:`start_proxies` — all of them (and the OCSP download service on 5577 when asked)
  on one event loop, for ``crossroad security-server run``, the demo and the tests.

One catch-all route per application: the handlers own their whole URL space (§2.1).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from crossroad.proxy import client, server
from crossroad.proxy.context import ProxyContext
from crossroad.proxy.ocsp_service import start_ocsp_service
from crossroad.proxy.tls import ServerTls

__all__ = ["RunningProxies", "client_app", "server_app", "start_proxies"]


def _app(handler: object, ctx: ProxyContext) -> web.Application:
    async def route(request: web.Request) -> web.StreamResponse:
        return await handler(request, ctx)  # type: ignore[operator,no-any-return]

    app = web.Application(client_max_size=1024**4)
    app.router.add_route("*", "/{tail:.*}", route)
    return app


def client_app(ctx: ProxyContext) -> web.Application:
    return _app(client.handle, ctx)


def server_app(ctx: ProxyContext) -> web.Application:
    return _app(server.handle, ctx)


@dataclass
class RunningProxies:
    """Where the listeners are bound (port 0 asked → the port given)."""

    client_port: int | None = None
    client_tls_port: int | None = None
    server_port: int | None = None
    ocsp_port: int | None = None
    runners: list[web.AppRunner] = field(default_factory=list)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def start_proxies(
    ctx: ProxyContext,
    *,
    client_host: str = "127.0.0.1",
    client_port: int | None = 8080,
    client_tls_port: int | None = None,
    server_host: str = "0.0.0.0",  # noqa: S104 (the SS-facing port is public by design)
    server_port: int | None = 5500,
    ocsp_port: int | None = None,
) -> AsyncIterator[RunningProxies]:
    """Run the listeners until the context exits (``None`` port: that listener is off)."""
    running = RunningProxies()
    try:
        if client_port is not None or client_tls_port is not None:
            runner = web.AppRunner(client_app(ctx), access_log=None, handle_signals=False)
            await runner.setup()
            running.runners.append(runner)
            if client_port is not None:
                sock = _listen(client_host, client_port)
                running.client_port = sock.getsockname()[1]
                await web.SockSite(runner, sock).start()
            if client_tls_port is not None:
                ctx.is_tls = ServerTls(ctx.is_server_context())
                sock = _listen(client_host, client_tls_port)
                running.client_tls_port = sock.getsockname()[1]
                await web.SockSite(runner, sock, ssl_context=ctx.is_tls.context).start()
        if server_port is not None:
            runner = web.AppRunner(server_app(ctx), access_log=None, handle_signals=False)
            await runner.setup()
            running.runners.append(runner)
            ssl_context = None
            if ctx.settings.ssl_enabled:
                await ctx.auth_material()
                assert ctx.server_tls is not None
                ssl_context = ctx.server_tls.context
            sock = _listen(server_host, server_port)
            running.server_port = sock.getsockname()[1]
            await web.SockSite(runner, sock, ssl_context=ssl_context).start()
        if ocsp_port is not None:
            provider = getattr(ctx.signer, "ocsp_responses", None)
            if provider is None:
                raise RuntimeError("the OCSP download service needs a signer with ocsp_responses")
            runner, running.ocsp_port = await start_ocsp_service(provider, server_host, ocsp_port)
            running.runners.append(runner)
        yield running
    finally:
        for runner in reversed(running.runners):
            await runner.cleanup()
