"""A real Prometheus (Debian's binary) scraping a running system, for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from fairshare.infra import free_port
from tests.e2e.system import SERVICES, DevSystem

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"

Series = list[dict[str, Any]]


@dataclass
class Prometheus:
    """A running Prometheus and its HTTP API."""

    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    async def query(self, promql: str) -> Series:
        """The instant vector ``promql`` gives now: each series' labels and value."""
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            answer = await client.get("/api/v1/query", params={"query": promql})
        body = answer.json()
        assert body["status"] == "success", body
        return [
            {"labels": r["metric"], "value": float(r["value"][1])} for r in body["data"]["result"]
        ]

    async def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its health and last evaluation."""
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as client:
            body = (await client.get("/api/v1/rules")).json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]

    async def until(
        self, what: str, check: Callable[[], Awaitable[bool]], *, timeout_s: float
    ) -> None:
        """Wait, at most ``timeout_s``, until ``check`` holds."""
        deadline = time.monotonic() + timeout_s
        while not await self._holds(check):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-3000:]
                msg = f"not within {timeout_s} s: {what}\nprometheus log:\n{tail}"
                raise AssertionError(msg)
            await asyncio.sleep(0.25)

    @staticmethod
    async def _holds(check: Callable[[], Awaitable[bool]]) -> bool:
        try:
            return await check()
        except httpx.TransportError:  # not listening yet
            return False


def _config(system: DevSystem) -> dict[str, Any]:
    """Scrape every service once a second on its real port, with the deploy's rules."""
    return {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {
                "job_name": service,
                "static_configs": [{"targets": [system.url(service).removeprefix("http://")]}],
            }
            for service in SERVICES
        ],
    }


@contextlib.contextmanager
def running_prometheus(system: DevSystem, work: Path) -> Iterator[Prometheus]:
    """Start Prometheus on a free loopback port against ``system``; stop it after."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: `make` installs Debian's prometheus package"
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump(_config(system)))
    port = free_port()
    log = work / "prometheus.log"
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc, log)
        yield Prometheus(proc, url, log)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 10) -> None:
    """Until Prometheus answers /-/ready (its API answers 503 while it starts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                return
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            msg = f"prometheus not ready within {timeout_s} s:\n{tail}"
            raise AssertionError(msg)
        time.sleep(0.1)
