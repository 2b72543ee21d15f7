"""The pieces behind per-address limits: the limiter's peek and memory bound, the key an
address is counted under, the trusted-proxy setting, and every service serving with it."""

from __future__ import annotations

import importlib
from ipaddress import ip_network
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.requests import Request

from shared.http.ratelimit import RateLimiter, client_key
from shared.settings import ServiceSettings


def test_wait_tells_a_held_key_without_spending() -> None:
    """``wait`` is 0 while a token is left and never spends one; once ``take`` has emptied
    the bucket it says how long until the next token."""
    clock = [0.0]
    limiter = RateLimiter(rate_per_s=2, burst=2, clock=lambda: clock[0])
    assert [limiter.wait("a") for _ in range(5)] == [0.0] * 5
    assert [limiter.take("a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.wait("a") == pytest.approx(0.5)
    assert limiter.wait("b") == 0.0
    clock[0] += 0.5
    assert limiter.wait("a") == 0.0


def test_refilled_buckets_are_forgotten_and_held_ones_kept() -> None:
    """Keyed by address, the table would grow with every address that ever failed: full
    buckets (the same as none) are dropped, so 20,000 addresses failing once each, 100 a
    second, leave a few thousand entries, not 20,000. A held address is never dropped:
    that would forgive it."""
    clock = [0.0]
    limiter = RateLimiter(rate_per_s=0.5, burst=2, clock=lambda: clock[0])
    for n in range(20_000):
        clock[0] += 0.01
        limiter.take(f"10.0.{n // 256}.{n % 256}")
    assert len(limiter) < 10_000
    held = RateLimiter(rate_per_s=0.5, burst=2, clock=lambda: clock[0])
    held.take("held")
    held.take("held")
    for n in range(5_000):  # at the same instant, through a pass over the table
        held.take(f"10.0.{n // 256}.{n % 256}")
    assert held.wait("held") == pytest.approx(2.0)


def _request(host: str | None) -> Request:
    client = (host, 5000) if host is not None else None
    return Request({"type": "http", "client": client, "headers": []})


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),  # same subscriber's /64
        ("::ffff:192.0.2.7", "192.0.2.7"),  # IPv4 on a dual-stack socket, not one /64
        ("unknown", "unknown"),
        (None, "unknown"),
    ],
)
def test_client_key_counts_ipv6_per_64(host: str | None, key: str) -> None:
    """One IPv6 subscriber cannot take a fresh budget from each address of its /64."""
    assert client_key(_request(host)) == key


def test_trusted_proxies_is_comma_separated_and_empty_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No proxy is trusted unless named; addresses and networks, spaces allowed; a typo
    stops the service instead of trusting nothing (or everything) in silence."""
    monkeypatch.delenv("FAIRSHARE_TRUSTED_PROXIES", raising=False)
    assert ServiceSettings().trusted_proxies == ()
    monkeypatch.setenv("FAIRSHARE_TRUSTED_PROXIES", " 10.0.0.5, 172.16.0.0/12 ,fd00::/8")
    assert ServiceSettings().trusted_proxies == (
        ip_network("10.0.0.5"),
        ip_network("172.16.0.0/12"),
        ip_network("fd00::/8"),
    )
    for wrong in ("*", "10.0.0.300", "proxy.internal"):
        monkeypatch.setenv("FAIRSHARE_TRUSTED_PROXIES", wrong)
        with pytest.raises(ValidationError, match="FAIRSHARE_TRUSTED_PROXIES"):
            ServiceSettings()


@pytest.mark.parametrize("service", ["vacancies", "bank", "matching", "monitor"])
def test_every_service_is_served_with_its_trusted_proxies(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each service's ``main`` hands FAIRSHARE_TRUSTED_PROXIES to ``serve``: a service that
    left it out would be served trusting no proxy, and its limits would count the proxy."""
    module = importlib.import_module(f"services.{service}.app")
    served: dict[str, Any] = {}
    monkeypatch.setenv("FAIRSHARE_TRUSTED_PROXIES", "10.0.0.5")
    monkeypatch.setattr(module, "configure_logging", lambda *_a, **_k: None)
    monkeypatch.setattr(module, "create_app", lambda *_a, **_k: "app")
    monkeypatch.setattr(module, "serve", lambda app, **kwargs: served.update(kwargs, app=app))
    module.main()
    assert served["app"] == "app"
    assert served["trusted_proxies"] == (ip_network("10.0.0.5"),)
