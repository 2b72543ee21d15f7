"""Runs a service's ASGI app under uvicorn, letting uvicorn own signal handling."""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv4Network, IPv6Network

import uvicorn
from fastapi import FastAPI


def uvicorn_config(
    app: FastAPI,
    *,
    host: str,
    port: int,
    trusted_proxies: Sequence[IPv4Network | IPv6Network] = (),
) -> uvicorn.Config:
    """How every service is served (``serve`` runs it; tests serve it in-process).

    The client address and scheme are the connection's own unless the peer is one of
    ``trusted_proxies`` (``FAIRSHARE_TRUSTED_PROXIES``): only then does uvicorn's
    ProxyHeadersMiddleware take them from X-Forwarded-For/-Proto, the client being the
    nearest address in X-Forwarded-For that is not itself a trusted proxy. Each rate
    limit keys on that address, so trusting a header anyone can send would hand out a
    fresh budget per request. uvicorn's own default trusts loopback (or
    ``FORWARDED_ALLOW_IPS``), which any local process can reach: both are overridden
    here, and with no proxy configured the middleware is not installed at all."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # Long-lived responses (the bank's live offer stream) would otherwise hold a
        # graceful shutdown open for ever; after 5 s they are cut and the lifespan still
        # closes cleanly.
        timeout_graceful_shutdown=5,
        # Longer than clients keep idle connections (httpx: 5 s, the same as uvicorn's
        # default): with equal timeouts a client could send on a connection the server
        # was closing and get a ReadError (2 in 60,000 posts of the sustained benchmark).
        timeout_keep_alive=75,
        proxy_headers=bool(trusted_proxies),
        # Always given, never None: None would make uvicorn read FORWARDED_ALLOW_IPS.
        forwarded_allow_ips=[str(network) for network in trusted_proxies],
    )


def serve(
    app: FastAPI,
    *,
    host: str,
    port: int,
    trusted_proxies: Sequence[IPv4Network | IPv6Network] = (),
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM; the app's lifespan tears down cleanly."""
    uvicorn.Server(uvicorn_config(app, host=host, port=port, trusted_proxies=trusted_proxies)).run()
