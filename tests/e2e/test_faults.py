"""Nothing lost and nothing wrong, whatever fails: faults injected into a busy system.

One real ``fairshare dev`` (embedded PostgreSQL, a private Tansu broker, the four
services as processes, the supervisor that restarts them) for the module. Each test
drives a burst (practices posting and cancelling through the signed web hook,
clinicians accepting, declining and giving up bookings through the bank's API: see
tests/e2e/chaos.py), injects one fault at a random moment of it, lets the burst run on
through the recovery, stops it, waits until every event is handled and every callback
delivered, and then asserts:

- every session acknowledged with 202 exists;
- ``fairshare.consistency`` finds no problem (statuses agree across services, the
  bank's bookings are matching's, nobody double-booked, no booking of a cancelled
  session or of a booking the clinician gave up, nothing counted or said twice, the
  monitor's figures match the services' own);
- every callback was delivered (its signature verified by our receiver) and each
  session's last callback states where it stands;
- no message was dead-lettered.

The faults, one per test, in order: SIGKILL to each service; the broker paused
(SIGSTOP) for 20 s; PostgreSQL killed; the broker killed (it comes back empty, and
the outboxes publish their kept events again). A last test runs ``fairshare check``
against the system. The module takes about three minutes on two cores, much of it
restarted consumers waiting out their group's rebalance (about 13 s each, with the 6 s
session timeout of shared/settings.py).

FAIRSHARE_FAULTS_SEED picks another seed (the run prints its own);
FAIRSHARE_KEEP_FAULTS_LOG=1 keeps the system's log and data directory for a post-mortem.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
import pytest

from fairshare import consistency
from fairshare.infra import postmaster_pid
from tests.e2e import privacy_scan
from tests.e2e.chaos import Driver, Figures, Receiver, World, receiving
from tests.e2e.system import ports_below_ephemeral
from tests.e2e.test_supervisor import SERVICES, Dev, _clean_up, _wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(200)]

SEED = int(os.environ.get("FAIRSHARE_FAULTS_SEED", "20260"))
STARTUP_S = 90
RECOVERY_S = 75  # a restarted consumer waits out its group's rebalance (about 13 s)
SETTLE_S = 90  # every event handled, every callback delivered, after the burst stops
AFTER_RECOVERY_S = 2.0  # the burst goes on this long once the system is whole again
PAUSE_S = 20.0
# Quicker callback retries than production's 30 s doubling to an hour, so a refused
# callback, or one whose sender was killed mid-flight, is delivered within the test.
ENV = {
    "FAIRSHARE_VACANCIES_CALLBACK_BASE_S": "1",
    "FAIRSHARE_VACANCIES_CALLBACK_CAP_S": "4",
    "FAIRSHARE_VACANCIES_CALLBACK_TIMEOUT_S": "5",
    # Every clinician signs in from this one address.
    "FAIRSHARE_BANK_SIGNIN_BURST": "100",
}


@dataclass
class Run:
    """The module's system, world and record of what happened."""

    dev: Dev
    world: World
    dsn: str
    rng: random.Random
    rows: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


@pytest.fixture(scope="module")
def run() -> Iterator[Run]:
    """``fairshare dev`` with the world registered, and a callback receiver."""
    root = Path(tempfile.mkdtemp(prefix="fairshare-faults-"))
    root.chmod(0o755)  # PostgreSQL runs as another user when we are root
    base_port = ports_below_ephemeral(len(SERVICES) + 1)
    kafka_port = base_port + len(SERVICES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRSHARE_")} | ENV
    log = root / "dev.log"
    argv = [sys.executable, "-m", "fairshare", "dev", "--data-dir", str(root / "data")]
    argv += ["--kafka-port", str(kafka_port), "--base-port", str(base_port)]
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
    dev = Dev(proc, root / "data", log, kafka_port, base_port)
    try:
        with receiving() as receiver:
            took = _wait_for(dev.all_healthy, STARTUP_S, "healthy system", dev)
            rng = random.Random(SEED)
            world = World(
                data_dir=dev.data_dir,
                vacancies=f"http://127.0.0.1:{dev.port('vacancies')}",
                bank=f"http://127.0.0.1:{dev.port('bank')}",
                receiver=receiver,
                rng=rng,
            )
            set_up = time.monotonic()
            world.set_up(["".join(rng.choices("BCDEGHJKLMNPRSTVWXYZ", k=3)) for _ in range(2)])
            dsn = json.loads((dev.data_dir / "runtime.json").read_text())["database_url"]
            print(
                f"\nseed {SEED}: fairshare dev healthy in {took:.1f} s; {len(world.orgs)}"
                f" organisations and {len(world.clinicians)} clinicians set up in"
                f" {time.monotonic() - set_up:.1f} s"
            )
            yield Run(dev, world, dsn, rng)
    finally:
        # A paused broker would hold up the supervisor's stop.
        broker = dev.child("broker", "--listener-url") if dev.proc.poll() is None else None
        with contextlib.suppress(psutil.Error):
            if broker is not None:
                broker.resume()
        _clean_up(dev)
        if os.environ.get("FAIRSHARE_KEEP_FAULTS_LOG"):
            print(f"\nlog kept at {log}")
        else:
            shutil.rmtree(root, ignore_errors=True)


# Faults ------------------------------------------------------------------------------


async def _off_loop(check: Callable[[], bool]) -> bool:
    """Run a blocking check (psutil, sync HTTP) without stalling the driver."""
    return await asyncio.to_thread(check)


async def _until(check: Callable[[], bool], within_s: float, what: str, dev: Dev) -> float:
    started = time.monotonic()
    while not await _off_loop(check):
        if dev.proc.poll() is not None:
            pytest.fail(f"fairshare dev exited ({dev.proc.returncode}) waiting for {what}")
        if time.monotonic() - started > within_s:
            pytest.fail(f"no {what} within {within_s} s; the log ends:\n{dev.output()[-4000:]}")
        await asyncio.sleep(0.25)
    return time.monotonic() - started


def _kill_service(name: str) -> Callable[[Dev], Awaitable[str]]:
    async def inject(dev: Dev) -> str:
        victim = dev.child("serve", name)
        assert victim is not None, f"no {name} process"
        victim.kill()
        await _until(
            lambda: dev.pid_of("serve", name) not in (None, victim.pid) and dev.all_healthy(),
            RECOVERY_S,
            f"{name} restarted and every service healthy",
            dev,
        )
        return f"SIGKILL {name} (pid {victim.pid})"

    return inject


async def _pause_broker(dev: Dev) -> str:
    broker = dev.child("broker", "--listener-url")
    assert broker is not None
    broker.suspend()
    try:
        await asyncio.sleep(PAUSE_S)
    finally:
        broker.resume()
    await _until(dev.all_healthy, RECOVERY_S, "every service healthy after SIGCONT", dev)
    return f"SIGSTOP broker (pid {broker.pid}) for {PAUSE_S:g} s, then SIGCONT"


async def _kill_postgres(dev: Dev) -> str:
    before = dev.supervisor_lines().count("PostgreSQL is back")
    pid = postmaster_pid(dev.data_dir / "pg")
    assert pid is not None
    psutil.Process(pid).kill()
    await _until(
        lambda: dev.supervisor_lines().count("PostgreSQL is back") > before and dev.all_healthy(),
        RECOVERY_S,
        "PostgreSQL back and every service healthy",
        dev,
    )
    return f"SIGKILL PostgreSQL (postmaster pid {pid})"


async def _lose_broker(dev: Dev) -> str:
    before = dev.supervisor_lines().count("Kafka broker is back")
    broker = dev.child("broker", "--listener-url")
    assert broker is not None
    broker.kill()
    await _until(
        lambda: dev.supervisor_lines().count("Kafka broker is back") > before and dev.all_healthy(),
        RECOVERY_S,
        "an empty broker back and every service healthy",
        dev,
    )
    return f"SIGKILL broker (pid {broker.pid}): its in-memory log is lost"


FAULTS: dict[str, Callable[[Dev], Awaitable[str]]] = {
    **{f"kill-{name}": _kill_service(name) for name in SERVICES},
    "pause-broker": _pause_broker,
    "kill-postgres": _kill_postgres,
    "lose-broker": _lose_broker,
}


# Quiescence and checks -----------------------------------------------------------------


async def _health(dev: Dev) -> list[dict[str, Any]] | None:
    """Every service's readiness report, or None while any is unready."""
    reports = []
    async with httpx.AsyncClient(timeout=2) as client:
        for name in SERVICES:
            try:
                answer = await client.get(f"http://127.0.0.1:{dev.port(name)}/health")
            except httpx.HTTPError:
                return None
            if answer.status_code != 200:
                return None
            reports.append(answer.json())
    return reports


async def _settle(r: Run) -> tuple[consistency.Snapshot, float, list[str]]:
    """Wait until every outbox is published, every consumer's lag is 0, every event is
    in its consumers' inboxes, every callback delivered and no re-plan owed.

    Returns the settled snapshot, how long it took, and what was waited for (each
    kind of unsettled work, with when it was last seen)."""
    started = time.monotonic()
    left: list[str] = ["nothing looked at yet"]
    waited: dict[str, float] = {}
    while time.monotonic() - started < SETTLE_S:
        reports = await _health(r.dev)
        quiet = reports is not None and all(
            rep.get("outbox_pending") == 0 and rep.get("consumer", {}).get("total_lag", 0) == 0
            for rep in reports
        )
        if quiet:
            snap, left = await consistency.wait_until_settled(r.dsn, timeout_s=0)
            if not left:
                seen = [f"{what} (until {at:.1f} s)" for what, at in waited.items()]
                return snap, time.monotonic() - started, seen
        else:
            left = [f"health: {reports}"]
        for line in left:
            what = "a service unready or lagging" if line.startswith("health") else line
            waited[re.sub(r"\d+ ", "", what, count=1)] = time.monotonic() - started
        await asyncio.sleep(0.5)
    pytest.fail(f"not settled {SETTLE_S} s after the burst: {left}\n{r.dev.output()[-3000:]}")


async def _callbacks(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(
            "SELECT c.id, c.webhook_id, c.session_id, c.event_type, c.status, s.status AS now,"
            " s.clinician_id FROM vacancies.callbacks c JOIN vacancies.sessions s"
            " ON s.id = c.session_id ORDER BY c.id"
        )
        return rows
    finally:
        await conn.close()


def _callback_problems(
    snap: consistency.Snapshot, rows: list[asyncpg.Record], receiver: Receiver
) -> list[str]:
    """Every callback delivered and received; each session's last one says where it is."""
    found = []
    last: dict[Any, asyncpg.Record] = {}
    for row in rows:
        if row["status"] != "delivered":
            found.append(f"callback {row['id']} ({row['event_type']}) is {row['status']}")
        elif row["webhook_id"] not in receiver.received:
            found.append(f"callback {row['id']} is marked delivered but never reached us")
        last[row["session_id"]] = row
    for s in snap.sessions:
        if s.status in ("offered", "filled", "unfilled") and s.id not in last:
            found.append(f"session {s.external_id} is {s.status} but was never called back")
            continue
        newest = last.get(s.id)
        if newest is None or s.status == "cancelled":
            continue  # never moved on by Fairshare, or cancelled by its organisation
        body = receiver.received.get(newest["webhook_id"], {}).get("data", {})
        if body.get("status") != s.status:
            found.append(
                f"session {s.external_id} is {s.status}; its last callback"
                f" ({newest['event_type']}) said {body.get('status')}"
            )
        elif s.status == "filled" and body.get("clinician_id") != str(s.clinician_id):
            found.append(f"session {s.external_id}: last callback names another clinician")
    return found


def _dead_letters(dev: Dev) -> list[str]:
    return [line for line in dev.output().splitlines() if "dead-lettered" in line]


def _figures(snap: consistency.Snapshot) -> dict[str, int]:
    bank = snap.bank_offers
    return {
        "sessions": len(snap.sessions),
        "filled": sum(s.status == "filled" for s in snap.sessions),
        "open/offered": sum(s.status in ("open", "offered") for s in snap.sessions),
        "cancelled": sum(s.status == "cancelled" for s in snap.sessions),
        "offers": len(snap.matching_offers),
        "booked": sum(o.status == "booked" for o in bank),
        "given up": sum(o.status == "cancelled_by_me" for o in bank),
        "refused": sum(o.status == "refused" for o in bank),
        "moves": len(snap.moves),
        "drain alerts": len(snap.matching_alerts),
        "callbacks": len(snap.callbacks),
    }


# The tests ----------------------------------------------------------------------------


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault_during_a_burst_loses_nothing_and_breaks_nothing(run: Run, fault: str) -> None:
    """A burst of posts and answers; the fault at a random moment; the burst goes on
    through the recovery; then, once quiet, everything agrees and nothing is missing."""
    r, world = run, run.world
    before = Figures(**vars(world.figures))
    driver = Driver(world, seed=r.rng.randrange(10**6))
    driver.start()
    try:
        await asyncio.sleep(r.rng.uniform(1, 4))
        injected = time.monotonic()
        what = await FAULTS[fault](r.dev)
        recovered = time.monotonic() - injected
        await asyncio.sleep(AFTER_RECOVERY_S)
    finally:
        await driver.stop()
    burst = world.figures.minus(before)
    snap, settled, waited = await _settle(r)
    rows = await _callbacks(r.dsn)

    figures = _figures(snap)
    line = (
        f"{fault:>15}: whole again {recovered:5.1f} s after the fault, settled"
        f" {settled:4.1f} s after the burst | burst: {burst.posted} posted"
        f" ({burst.batches} batches), {burst.org_cancellations} cancelled by practices,"
        f" {burst.accepted} accepted, {burst.declined} declined,"
        f" {burst.clinician_cancellations} given up, {burst.failed_requests} failed requests,"
        f" {burst.unanswered} unanswered | now: {figures}"
    )
    r.rows.append(line)
    print(f"\n{what}\n{line}")
    if settled > 5:
        print(f"{'':>17}waited for: {'; '.join(waited)}")

    stored = {str(s.id) for s in snap.sessions}
    missing = [
        f"{ods}/{external_id}"
        for (ods, external_id), session_id in world.acknowledged.items()
        if session_id not in stored
    ]
    assert not missing, f"sessions acknowledged with 202 but not stored: {missing}"
    problems = consistency.problems(snap)
    assert not problems, "the services disagree:\n" + "\n".join(problems)
    late = _callback_problems(snap, rows, world.receiver)
    assert not late, "callbacks:\n" + "\n".join(late[:30])
    assert world.receiver.bad_signatures == 0
    dead = _dead_letters(r.dev)
    assert not dead, "dead-lettered:\n" + "\n".join(dead[:10])


def test_fairshare_check_finds_the_system_consistent(run: Run) -> None:
    """The command, finding the database through runtime.json as the other commands do,
    says "consistent" and exits 0 after everything the faults did."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRSHARE_")}
    done = subprocess.run(
        [sys.executable, "-m", "fairshare", "check", "--wait", "30"],
        env={**env, "FAIRSHARE_DATA_DIR": str(run.dev.data_dir)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout.partition("\n")[0]) == (0, "consistent"), (
        done.stdout + done.stderr
    )


def test_what_the_run_did(run: Run, artifacts_dir: Path) -> None:
    """Print the figures of every fault, and the totals (also kept in
    test-artifacts/faults.txt); every fault was injected."""
    f = run.world.figures
    summary = (
        f"{len(run.rows)} faults injected in {time.monotonic() - run.started:.0f} s;"
        f" {f.posted} sessions posted ({f.batches} batches), {f.org_cancellations} cancelled"
        f" by practices, {f.accepted} offers accepted, {f.declined} declined,"
        f" {f.answer_refused} answers refused by the bank, {f.clinician_cancellations}"
        f" bookings given up, {f.failed_requests} requests failed during faults,"
        f" {f.unanswered} deliveries never answered; callbacks: {len(run.world.receiver.received)}"
        f" received, {run.world.receiver.refused_on_purpose} refused once on purpose"
    )
    print(f"\n{summary}")
    for row in run.rows:
        print(row)
    (artifacts_dir / "faults.txt").write_text("\n".join([summary, *run.rows]) + "\n")
    assert len(run.rows) == len(FAULTS)
    assert f.posted > 0
    assert f.accepted > 0


async def test_no_personal_data_or_secret_in_any_event_or_log_line(run: Run) -> None:
    """After every fault: every record of every topic (from the earliest offset), every
    outbox row (a day of events: what the lost broker dropped too) and every line of
    the system's logs hold none of the names, e-mails, phones, register numbers, invite
    codes, tokens, API keys and web hook secrets the world made, nor any clinician's
    own words they kept to themselves, nor (in logs) any free text at all. See
    tests/e2e/privacy_scan.py."""
    started = time.monotonic()
    needles = privacy_scan.needles(run.world)
    # The needles match the data as the bank stores it (else the scan proves nothing).
    stored = await privacy_scan.table_rows(run.dsn, "bank.clinicians")
    as_given = {
        text for c in run.world.clinicians for text in (c.name, c.email, c.phone, c.register_number)
    }
    unmatched = [
        n.text for n in needles if n.text in as_given and not privacy_scan.found_in(stored, n)
    ]
    assert not unmatched, f"not stored as the scan searches for them: {unmatched}"

    result = privacy_scan.Result()
    result.needles.update(n.kind for n in needles)
    records = await privacy_scan.kafka_records(f"127.0.0.1:{run.dev.kafka_port}")
    privacy_scan.scan(records, needles, "Kafka records", result)
    privacy_scan.scan(await privacy_scan.outbox_rows(run.dsn), needles, "outbox rows", result)
    privacy_scan.scan(privacy_scan.log_lines(run.dev.log.parent), needles, "log lines", result)
    took = time.monotonic() - started
    print(
        f"\nprivacy scan: {dict(result.counts)} searched in {took:.1f} s for"
        f" {sum(result.needles.values())} needles ({dict(result.needles)});"
        f" {len(result.findings)} found"
    )
    for allowed, hits in result.allowed.items():
        print(f"  allowed: {hits} × {allowed}")
    assert result.counts["Kafka records"] > 0
    assert result.counts["outbox rows"] > 0
    assert result.counts["log lines"] > 0
    assert not result.findings, f"{len(result.findings)} found:\n" + "\n".join(result.findings[:40])
