"""The Starlette application: webhook ingress, health, metrics, API, dashboard, sandbox."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from collector.runtime import Runtime
from collector.web import masking
from collector.web.api import api_routes, install_error_handlers, openapi_document
from collector.web.auth import Auth, error_body
from collector.web.cluster import ClusterView
from collector.web.context import WebContext, web
from collector.web.dashboard import dashboard_routes
from collector.web.ingress import PATH as WEBHOOK_PATH
from collector.web.ingress import WebhookEndpoint
from collector.web.live import Hub


class App(Starlette):
    """Starlette, with webhook POSTs handed to the bare endpoint before any routing."""

    def __init__(self, webhook: WebhookEndpoint, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.webhook = webhook

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == WEBHOOK_PATH and scope["method"] == "POST":
            await self.webhook(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


async def healthz(request: Request) -> Response:
    runtime = web(request).runtime
    writable = await runtime.store.writable()
    body = {
        "status": "ok" if writable else "degraded",
        "store": "writable" if writable else "unwritable",
        "mode": runtime.mode,
    }
    return Response(
        orjson.dumps(body), status_code=200 if writable else 503, media_type="application/json"
    )


async def readyz(request: Request) -> Response:
    """200 when the store answers with the schema this code was built for (for a load
    balancer); 503 with the reason otherwise. /healthz is the liveness probe."""
    runtime = web(request).runtime
    problem = await runtime.store.ready()
    if problem is None:
        body = orjson.dumps({"status": "ready", "mode": runtime.mode})
        return Response(body, status_code=200, media_type="application/json")
    code, message = problem
    return Response(
        orjson.dumps(error_body(code, message)), status_code=503, media_type="application/json"
    )


async def metrics(request: Request) -> Response:
    runtime = web(request).runtime
    payload = await runtime.metrics.render(runtime.store)
    return Response(payload, media_type="text/plain; version=0.0.4; charset=utf-8")


def create_app(runtime: Runtime) -> App:
    """Build the ASGI app around a runtime; the lifespan starts and stops it."""
    webhook = WebhookEndpoint(runtime)
    # admin API, live streams and dashboard: behind the admin token (the webhook stays open)
    auth = Auth.for_runtime(runtime)
    hub = Hub(runtime.forms)
    runtime.subscribe(decisions=hub.on_decision, deliveries=hub.on_delivery)
    # /metrics: bytes held by the web's bounded caches and buffers, and their limits (the
    # runtime registers the engine's)
    memory = runtime.metrics
    memory.memory_sources += [hub.memory, masking.memory]
    memory.memory_limits.update(hub.limits(), masker_patterns=masking.MASKER_CACHE_BYTES)
    # several instances on one PostgreSQL database: the others' updates reach this hub too
    cluster = None
    if runtime.session_notices is not None:
        cluster = ClusterView(hub, runtime.store, runtime.session_notices)
        memory.memory_sources.append(cluster.memory)
        memory.memory_limits.update(cluster.limits())

    routes = [
        Route(WEBHOOK_PATH, webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *api_routes(auth),
        *dashboard_routes(),
    ]
    if runtime.sandbox is not None:
        routes.append(Mount("/_sandbox/telnyx", app=runtime.sandbox.asgi_app()))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await runtime.start()
        following = None
        if cluster is not None:
            following = asyncio.create_task(cluster.run(), name="cluster-view")
        try:
            yield
        finally:
            if following is not None:
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)
            await runtime.stop()

    app = App(webhook, routes=routes, lifespan=lifespan)
    install_error_handlers(app)
    app.state.web = WebContext(runtime, hub, auth, openapi=openapi_document(list(runtime.forms)))
    return app
