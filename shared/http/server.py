"""Runs a service's ASGI app under uvicorn, letting uvicorn own signal handling."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI


def serve(app: FastAPI, *, host: str, port: int) -> None:
    """Serve ``app`` until SIGINT or SIGTERM; the app's lifespan tears down cleanly."""
    config = uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False)
    uvicorn.Server(config).run()
