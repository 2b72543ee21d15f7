"""The whole system as processes: a signed session is filled end to end, the monitor
page shows it, a real Prometheus scrapes every service, and Ctrl-C leaves no process
behind."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import string
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from playwright.async_api import async_playwright
from standardwebhooks import Webhook

from tests.e2e.prometheus_support import running_prometheus
from tests.e2e.system import SERVICES, DevSystem, launch_chromium, start_system, stop_system

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


async def test_a_real_prometheus_scrapes_every_service(system: DevSystem, tmp_path: Path) -> None:
    """Debian's Prometheus, scraping every second with the deploy's alert rules: every
    service is up within 20 s; a session posted for the next hours is counted where it
    went (the web hook's route template, matching's and the monitor's consumers, the
    handler histogram, matching's open sessions and those starting within a day, the
    monitor's figures); lag is reported per partition and outbox backlog per service,
    both drained to 0; every alert rule evaluates without error."""
    region = "".join(random.choices(string.ascii_uppercase, k=3))
    ods = "M" + uuid.uuid4().hex[:5].upper()
    with running_prometheus(system, tmp_path) as prom:
        # Posted while Prometheus finds its targets (it applies them after 5 s): counters
        # keep what happened before the first scrape.
        secret = system.cli(
            "org", "add", "--ods", ods, "--name", "Scraped Surgery",
            "--sector", "general_practice", "--region", region, "--lat", "53.48", "--lon", "-2.24",
        ).split("webhook secret: ")[1].split()[0]  # fmt: skip
        start = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)
        body = json.dumps(
            {
                "type": "session.posted",
                "timestamp": datetime.now(UTC).isoformat(),
                "data": {
                    "external_id": "scraped-1",
                    "role": "gp",
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(hours=4)).isoformat(),
                },
            }
        )
        msg_id, now = f"msg_{uuid.uuid4().hex}", datetime.now(UTC)
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, now, body),
            "content-type": "application/json",
        }
        async with httpx.AsyncClient(base_url=system.url("vacancies"), timeout=10) as vacancies:
            posted = await vacancies.post(f"/webhooks/{ods}", content=body, headers=headers)
        assert posted.status_code == 202, posted.text

        async def all_up() -> bool:
            up = await prom.query("up")
            return sorted((s["labels"]["job"], s["value"]) for s in up) == [
                (service, 1.0) for service in sorted(SERVICES)
            ]

        await prom.until("every service's target up", all_up, timeout_s=20)

        expected: dict[str, Callable[[float], bool]] = {
            'fairshare_http_requests_total{job="vacancies", route="/webhooks/{ods_code}",'
            ' method="POST", status="202"}': lambda v: v >= 1,
            'fairshare_messages_total{job="matching", topic="vacancies.events",'
            ' outcome="handled"}': lambda v: v >= 1,
            'fairshare_messages_total{job="monitor", topic="vacancies.events",'
            ' outcome="handled"}': lambda v: v >= 1,
            'fairshare_handler_duration_seconds_count{job="matching",'
            ' event_type="session.posted"}': lambda v: v >= 1,
            f'fairshare_open_sessions{{job="matching", region="{region}"}}': lambda v: v == 1,
            f'fairshare_open_sessions_starting_within_24h{{job="matching", region="{region}"}}': (
                lambda v: v == 1
            ),
            f'fairshare_sessions{{job="monitor", region="{region}", sector="general_practice",'
            ' figure="posted"}': lambda v: v == 1,
            'sum(fairshare_outbox_backlog{job="vacancies"})': lambda v: v == 0,
            'sum(fairshare_consumer_lag{job="monitor"})': lambda v: v == 0,
        }
        seen: dict[str, list[float]] = {}

        async def as_expected() -> bool:
            for promql in expected:
                seen[promql] = [s["value"] for s in await prom.query(promql)]
            return all(len(seen[q]) == 1 and ok(seen[q][0]) for q, ok in expected.items())

        try:
            await prom.until("the posted session in every series", as_expected, timeout_s=15)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nlast seen: {seen}") from exc

        # Lag per partition: matching reads the bank's stream and vacancies', 4 each.
        lag = await prom.query('fairshare_consumer_lag{job="matching"}')
        partitions = {(s["labels"]["topic"], s["labels"]["partition"]) for s in lag}
        assert partitions == {
            (t, str(p)) for t in ("bank.events", "vacancies.events") for p in range(4)
        }
        ages = await prom.query("fairshare_outbox_oldest_unpublished_age_seconds")
        assert sorted(s["labels"]["job"] for s in ages) == sorted(SERVICES)

        rules = await prom.rules()
        assert {r["name"] for r in rules} >= {"FairshareConsumerStuck", "FairshareSectorPastCap"}
        assert [r["name"] for r in rules if r["health"] != "ok"] == []


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
