"""Builds a service's FastAPI app around its runtime; each service supplies its parts."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http.problems import install_problem_handlers
from shared.messaging.consumer import Handler
from shared.metrics import Metrics
from shared.runtime import Runtime, emitter_for, running
from shared.settings import ServiceSettings

BackgroundJob = Callable[[Runtime], Coroutine[Any, Any, None]]
# A service's own gauges: registers them in the service's metrics and adds their source.
GaugeSet = Callable[[Metrics], None]
log = structlog.get_logger(__name__)


class _LogRequests:
    """One canonical line per request, with a request id bound for every line it causes,
    and its count and latency in the metrics, by route template.

    Only method, route and status are logged: paths may carry ids, never personal data,
    and query strings and bodies are left out. Plain ASGI rather than Starlette's
    ``BaseHTTPMiddleware``, whose extra task and streams per request were a third of the
    web hook's time under load (and which buffers nothing a live stream needs).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope.get("headers") or ())
        request_id = headers.get(b"webhook-id", b"").decode("latin-1") or uuid.uuid4().hex
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        path: str = scope["path"]
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, sending)
            finally:
                # The router leaves the route it chose in the scope: its template (e.g.
                # /webhooks/{ods_code}) is the label, so ids in paths never become series.
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                self.metrics.request(
                    method=scope["method"],
                    route=route,
                    status=status,
                    seconds=time.perf_counter() - started,
                )
                if not path.startswith("/health"):
                    log.info(
                        "request handled",
                        request_id=request_id,
                        method=scope["method"],
                        path=path,
                        status=status,
                        ms=round((time.perf_counter() - started) * 1000, 2),
                    )


def service_app(
    settings: ServiceSettings,
    *,
    service: str,
    schema: str,
    migrations_dir: Path,
    title: str,
    description: str,
    routers: Sequence[APIRouter] = (),
    handlers: dict[str, Handler] | None = None,
    background: Sequence[BackgroundJob] = (),
    gauges: Sequence[GaugeSet] = (),
) -> FastAPI:
    """The service's ASGI app; nothing connects until its lifespan starts."""
    # One per app, and so one per process: see shared/metrics.py.
    metrics = Metrics(ttl_s=settings.metrics_ttl_s)
    for gauge_set in gauges:
        gauge_set(metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(
            settings,
            service=service,
            schema=schema,
            migrations_dir=migrations_dir,
            emitter=emitter_for(settings, service=service, schema=schema),
            handlers=handlers,
            metrics=metrics,
        ) as runtime:
            app.state.runtime = runtime
            metrics.bind(runtime)
            tasks = [asyncio.create_task(job(runtime)) for job in background]
            try:
                yield
            finally:
                metrics.unbind()
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app = FastAPI(title=title, version="0.1.0", description=description, lifespan=lifespan)
    app.state.metrics = metrics
    install_problem_handlers(app)
    app.add_middleware(_LogRequests, metrics=metrics)
    for router in routers:
        app.include_router(router)

    @app.get(
        "/health",
        summary="Readiness: database, broker, consumer progress and lag",
        responses={503: {"description": "Not ready: `problems` says why."}},
    )
    async def health(response: Response) -> dict[str, Any]:
        runtime: Runtime = app.state.runtime
        ready, report = await runtime.readiness()
        if not ready:
            response.status_code = 503
        return report

    @app.get("/health/live", summary="Liveness: the process answers")
    async def live() -> dict[str, str]:
        return {"status": "ok", "service": service}

    # For Prometheus, not for the API's users: outside the OpenAPI document, and asking
    # for no sign-in on any service (the monitor's too), because it holds aggregates
    # only. Operators reach it on their internal network (deploy/README.md).
    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics(request: Request) -> Response:
        await metrics.refresh()
        body, content_type = metrics.exposition(request.headers.get("accept"))
        return Response(body, media_type=content_type)

    return app
