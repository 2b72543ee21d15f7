"""The whole system as processes: a signed session is filled end to end, the monitor
page shows it, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from playwright.async_api import async_playwright

from tests.e2e.system import DevSystem, launch_chromium, start_system, stop_system

pytestmark = pytest.mark.e2e


async def _until(check: Any, timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(0.25)
    msg = f"not reached in {timeout_s} s"
    raise AssertionError(msg)


async def test_signed_session_is_filled_end_to_end(
    system: DevSystem, tmp_path: Path, artifacts_dir: Path
) -> None:
    """Practice posts (signed) → clinician offers time → matching offers → clinician
    accepts → matching fills → vacancies marks it filled → monitor shows it."""
    region, ods = "QE2", "A" + str(uuid.uuid4().int)[:5]
    secret = (
        system.cli(
            "org",
            "add",
            "--ods",
            ods,
            "--name",
            "Hilltop Surgery",
            "--sector",
            "general_practice",
            "--region",
            region,
            "--lat",
            "53.48",
            "--lon",
            "-2.24",
        )
        .split("webhook secret: ")[1]
        .split()[0]
    )
    # A community pharmacist will fill this practice's session: a move out of community
    # pharmacy, which its default 10% cap of one 9-hour window would hold back. The
    # ICB allows half here, and says so through the policy command.
    system.cli("policy", "set", "--region", region, "--cap", "community_pharmacy=50")
    assert "community_pharmacy" in system.cli("policy", "show", "--region", region)
    assert secret.startswith("whsec_")

    start = (datetime.now(UTC) + timedelta(days=2)).replace(minute=0, second=0, microsecond=0)
    delivery = tmp_path / "session.json"
    delivery.write_text(
        json.dumps(
            {
                "type": "session.posted",
                "timestamp": datetime.now(UTC).isoformat(),
                "data": {
                    "external_id": "rota-2026-12-01-am",
                    "role": "clinical_pharmacist",
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(hours=4, minutes=10)).isoformat(),
                },
            }
        )
    )
    posted = system.cli(
        "webhook",
        "post",
        "--ods",
        ods,
        "--secret",
        secret,
        "--url",
        system.url("vacancies"),
        str(delivery),
    )
    assert posted.startswith("202")

    token = (
        system.cli(
            "clinician",
            "add",
            "--name",
            "Priya Shah",
            "--profession",
            "pharmacist",
            "--home-sector",
            "community_pharmacy",
            "--region",
            region,
        )
        .strip()
        .splitlines()[-1]
    )
    other = (
        system.cli(
            "clinician",
            "add",
            "--name",
            "Tom Reed",
            "--profession",
            "gp",
            "--home-sector",
            "general_practice",
            "--region",
            region,
        )
        .strip()
        .splitlines()[-1]
    )

    async with httpx.AsyncClient(base_url=system.url("bank"), timeout=10) as bank:
        me = {"Authorization": f"Bearer {token}"}
        window = {
            "starts_at": (start - timedelta(hours=1)).isoformat(),
            "ends_at": (start + timedelta(hours=8)).isoformat(),
        }
        assert (await bank.post("/api/availability", json=window, headers=me)).status_code == 201

        async def offers() -> list[dict[str, Any]]:
            result: list[dict[str, Any]] = (await bank.get("/api/offers", headers=me)).json()
            return result

        [offer] = await _until(offers)
        assert offer["organisation"] == ods
        assert offer["reasons"]

        stranger = await bank.post(
            f"/api/offers/{offer['offer_id']}/accept", headers={"Authorization": f"Bearer {other}"}
        )
        assert stranger.status_code == 404
        assert stranger.headers["content-type"] == "application/problem+json"
        accepted = await bank.post(f"/api/offers/{offer['offer_id']}/accept", headers=me)
        assert accepted.status_code == 202
        again = await bank.post(f"/api/offers/{offer['offer_id']}/accept", headers=me)
        assert again.status_code == 409

        async def filled() -> bool:
            rows = json.loads(system.cli("sessions", "list", "--ods", ods, "--json"))
            return bool(rows[0]["status"] == "filled")

        await _until(filled)

        async def booked() -> bool:
            rows = (await bank.get("/api/bookings", headers=me)).json()
            return bool(rows) and rows[0]["status"] == "booked"

        await _until(booked)

    async with httpx.AsyncClient(base_url=system.url("monitor"), timeout=10) as monitor:
        assert (await monitor.get("/api/counts")).status_code == 401
        # The national viewer's code `fairshare dev` printed at start-up.
        dev_code = system.log.read_text().split("monitor invite code: ")[1].split()[0]
        signed_in = await monitor.post("/signin", data={"code": dev_code})
        assert signed_in.status_code == 303, signed_in.text

        async def counted() -> dict[str, Any] | None:
            for row in (await monitor.get("/api/counts")).json():
                if row["region"] == region and row["sector"] == "general_practice":
                    return row if row["filled"] == 1 else None
            return None

        row = await _until(counted)
        assert (row["posted"], row["offered"], row["filled"]) == (1, 1, 1)

    async with async_playwright() as p:
        browser = await launch_chromium(p)
        page = await browser.new_page(viewport={"width": 1200, "height": 800})
        await page.goto(system.url("monitor") + "/")
        # Not signed in: the form. A viewer of this region, as an ICB would invite one.
        assert page.url.endswith("/signin")
        invited = system.cli("icb", "invite", "--region", region, "--name", "Workforce team")
        await page.get_by_label("Invite code").fill(invited.split("invite code: ")[1].split()[0])
        await page.get_by_role("button", name="Sign in").click()
        await page.wait_for_url(system.url("monitor") + "/")
        cell = page.get_by_test_id(f"count-{region}-general_practice-filled")
        await cell.wait_for(timeout=15000)
        assert (await cell.inner_text()).strip() == "1"
        who = page.get_by_test_id("who")
        assert (await who.inner_text()).strip() == f"Signed in as Workforce team · region {region}"
        await page.screenshot(path=str(artifacts_dir / "monitor-dashboard.png"), full_page=True)
        await browser.close()

    # The sign-in limit is per connection address: a different X-Forwarded-For on each
    # attempt (all from 127.0.0.1) must not buy a fresh allowance (5 at once).
    async with httpx.AsyncClient(base_url=system.url("monitor"), timeout=10) as monitor:
        statuses = [
            (
                await monitor.post(
                    "/signin", data={"code": "NOT-A-REAL-CODE"}, headers={"x-forwarded-for": ip}
                )
            ).status_code
            for ip in (f"203.0.113.{n}" for n in range(1, 8))
        ]
        assert 429 in statuses, statuses
        assert set(statuses) <= {401, 429}, statuses


def test_ctrl_c_leaves_no_process_behind(tmp_path: Path) -> None:
    """SIGINT to `fairshare dev` stops services, broker and PostgreSQL: nothing is left."""
    dev = start_system(tmp_path / "data")
    procs = dev.processes()
    names = {p.name() for p in procs}
    assert "postgres" in names, names
    assert any(n.startswith("tansu") for n in names), names
    assert len(procs) >= 7  # supervisor, 4 services, broker, postmaster (+ its workers)
    assert stop_system(dev, signal.SIGINT) == 0
    deadline = time.monotonic() + 15
    alive = procs
    while alive and time.monotonic() < deadline:
        alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.2)
    assert not alive, [(p.pid, p.name()) for p in alive]
    assert "Stopped." in dev.log.read_text()
