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
from starlette.middleware.base import RequestResponseEndpoint

from shared.http.problems import install_problem_handlers
from shared.messaging.consumer import Handler
from shared.runtime import Runtime, emitter_for, running
from shared.settings import ServiceSettings

BackgroundJob = Callable[[Runtime], Coroutine[Any, Any, None]]
log = structlog.get_logger(__name__)


async def _log_request(request: Request, call_next: RequestResponseEndpoint) -> Response:
    """One canonical line per request, with a request id bound for every line it causes.

    Only method, route and status are logged: paths may carry ids, never personal data,
    and query strings and bodies are left out.
    """
    started = time.perf_counter()
    request_id = request.headers.get("webhook-id") or uuid.uuid4().hex
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        response = await call_next(request)
        if not request.url.path.startswith("/health"):
            log.info(
                "request handled",
                request_id=request_id,
                method=request.method,
                path=request.url.path,
                status=response.status_code,
                ms=round((time.perf_counter() - started) * 1000, 2),
            )
        return response


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
) -> FastAPI:
    """The service's ASGI app; nothing connects until its lifespan starts."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with running(
            settings,
            service=service,
            schema=schema,
            migrations_dir=migrations_dir,
            emitter=emitter_for(settings, service=service, schema=schema),
            handlers=handlers,
        ) as runtime:
            app.state.runtime = runtime
            tasks = [asyncio.create_task(job(runtime)) for job in background]
            try:
                yield
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    app = FastAPI(title=title, version="0.1.0", description=description, lifespan=lifespan)
    install_problem_handlers(app)
    app.middleware("http")(_log_request)
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

    return app
