"""A busy region for fault tests: practices posting, clinicians answering, callbacks heard.

``World`` registers organisations and clinicians through the ``fairshare`` commands
(in-process, for speed) and the bank's sign-in API; ``Driver`` then plays the busy
part: signed web hook posts and cancellations, and clinicians accepting, declining
and giving up bookings at random (seeded). Every request copes with the system being
half down: a web hook delivery is retried with its webhook-id until it is answered,
so a session acknowledged with 202 must exist whatever failed. ``Receiver`` is the
organisations' callback endpoint: it verifies every signature and, to exercise the
retries, refuses the first attempt at one callback in seven.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import time
import uuid
import zlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from typer.testing import CliRunner

from fairshare.cli import app as cli_app
from fairshare.infra import free_port

# What each kind of organisation posts, and who joins the bank: (profession, home sector).
ORGS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("A", "general_practice", ("gp", "clinical_pharmacist", "advanced_practitioner")),
    ("F", "community_pharmacy", ("community_pharmacist",)),
    ("N", "community_nursing", ("community_nurse",)),
)
CLINICIANS: tuple[tuple[str, str], ...] = (
    ("gp", "general_practice"),
    ("gp", "general_practice"),
    ("pharmacist", "community_pharmacy"),
    ("pharmacist", "community_pharmacy"),
    ("advanced_nurse_practitioner", "community_nursing"),
    ("advanced_nurse_practitioner", "community_nursing"),
    ("paramedic", "general_practice"),
    ("practice_nurse", "community_nursing"),
)
# Clinicians' names: made-up, and distinctive enough to find in any event or log line.
FIRST_NAMES = ("Amara", "Bronwen", "Catriona", "Dervla", "Eilidh", "Fenella", "Gwendolyn", "Hollis")
SURNAMES = (
    "Okonkwo-Hartley", "Pemberton-Quayle", "Ravensworth", "Strachan-Ibekwe",
    "Tregothnan", "Underhill-Amadi", "Vandersloot", "Wetherspoon-Nkemelu",
)  # fmt: skip
PRACTICE_REASON = "The clinic is closed that day."
DAYS = (2, 3, 4, 5)  # sessions and availability, days from now
DELIVERY_GIVE_UP_S = 60.0  # a web hook delivery is retried this long
REQUEST_TIMEOUT_S = 10.0


def fairshare(data_dir: Path, *args: str) -> str:
    """Run a ``fairshare`` command in this process (as a shell would, minus start-up)."""
    result = CliRunner().invoke(cli_app, [*args, "--data-dir", str(data_dir)])
    assert result.exit_code == 0, f"fairshare {' '.join(args)}: {result.output}"
    return result.output


def _after(output: str, label: str) -> str:
    return output.split(label, 1)[1].split(maxsplit=1)[0]


class Receiver:
    """Organisations' callback endpoint on loopback, in a thread of its own."""

    def __init__(self, refuse_one_in: int = 7) -> None:
        self.secrets: dict[str, str] = {}
        self.received: dict[str, dict[str, Any]] = {}  # webhook-id → verified body
        self.heard: dict[str, str] = {}  # session id → the status last called back
        self.attempts: Counter[str] = Counter()
        self.refused_on_purpose = 0
        self.bad_signatures = 0
        self._refuse_one_in = refuse_one_in
        self._lock = threading.Lock()
        self.port = free_port()
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, ods: str) -> str:
        """Where ``ods``'s callbacks go."""
        return f"http://127.0.0.1:{self.port}/hook/{ods}"

    def start(self) -> None:
        """Serve until :meth:`stop`."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, ods: str, body: bytes, headers: dict[str, str]) -> int:
        secret = self.secrets.get(ods)
        try:
            if secret is None:
                raise WebhookVerificationError("unknown organisation")
            payload = Webhook(secret).verify(body, headers)
        except WebhookVerificationError:
            with self._lock:
                self.bad_signatures += 1
            return 401
        webhook_id = headers["webhook-id"]
        with self._lock:
            self.attempts[webhook_id] += 1
            first = self.attempts[webhook_id] == 1
            if first and zlib.crc32(webhook_id.encode()) % self._refuse_one_in == 0:
                self.refused_on_purpose += 1
                return 503
            self.received[webhook_id] = payload
            data = payload.get("data", {})
            self.heard[str(data.get("session_id"))] = str(data.get("status"))
        return 204

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                code = receiver._answer(self.path.rsplit("/", 1)[-1], body, headers)
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


@dataclass
class Org:
    """An organisation of the world, with what it needs to post."""

    ods: str
    region: str
    sector: str
    secret: str
    roles: tuple[str, ...]
    api_key: str = ""


@dataclass
class Clinician:
    """A signed-in clinician."""

    id: str
    token: str
    region: str
    profession: str
    # What the bank keeps of them and must never let out (tests/e2e/privacy_scan.py).
    name: str = ""
    email: str = ""
    phone: str = ""
    register_number: str = ""
    invite_code: str = ""


@dataclass
class Figures:
    """What the driver did, and what it could not do."""

    posted: int = 0  # sessions acknowledged as created (202, or "created" in a batch)
    batches: int = 0
    unanswered: int = 0  # deliveries given up with no answer: the session may or may not exist
    org_cancellations: int = 0
    accepted: int = 0
    declined: int = 0
    answer_refused: int = 0  # 404/409/410 from the bank: answered, expired or withdrawn
    clinician_cancellations: int = 0
    failed_requests: int = 0  # a service, the broker or the database was away

    def minus(self, other: Figures) -> Figures:
        """What changed since ``other``."""
        return Figures(**{k: v - getattr(other, k) for k, v in vars(self).items()})


@dataclass
class World:
    """Two regions, each with a practice, a pharmacy and a nursing organisation, and
    eight clinicians; every organisation calls back to ``receiver``."""

    data_dir: Path
    vacancies: str
    bank: str
    receiver: Receiver
    rng: random.Random
    orgs: list[Org] = field(default_factory=list)
    clinicians: list[Clinician] = field(default_factory=list)
    acknowledged: dict[tuple[str, str], str] = field(default_factory=dict)  # → session id
    # Clinicians' own words given with a cancellation → shared with the practice?
    cancellation_texts: dict[str, bool] = field(default_factory=dict)
    cancelled: set[tuple[str, str]] = field(default_factory=set)
    figures: Figures = field(default_factory=Figures)
    next_external: int = 0

    def set_up(self, regions: list[str]) -> None:
        """Register organisations and clinicians; clinicians sign in and offer four days."""
        for r, region in enumerate(regions):
            caps = [f"--cap={sector}=100" for _, sector, _ in ORGS]
            # Pharmacy hours may leave it only up to 15% of what its two pharmacists offer
            # (112 h): four practice sessions raise a drain alert (at 80% of the cap), and
            # the drain guard holds back a fifth.
            caps[1] = "--cap=community_pharmacy=15"
            fairshare(self.data_dir, "policy", "set", "--region", region, *caps)
            for letter, sector, roles in ORGS:
                ods = f"{letter}{r}{self.rng.randrange(10**4):04d}"
                out = fairshare(
                    self.data_dir,
                    *("org", "add", "--ods", ods, "--name", f"{sector} {ods}"),
                    *("--sector", sector, "--region", region),
                    *("--lat", f"{53.4 + r / 10:.2f}", "--lon", "-2.24"),
                )
                secret = _after(out, "webhook secret: ")
                fairshare(self.data_dir, "org", "set-callback", ods, self.receiver.url(ods))
                self.receiver.secrets[ods] = secret
                self.orgs.append(Org(ods, region, sector, secret, roles, _after(out, "API key: ")))
            with httpx.Client(base_url=self.bank, timeout=REQUEST_TIMEOUT_S) as bank:
                for n, (profession, home) in enumerate(CLINICIANS):
                    first, surname = FIRST_NAMES[n], SURNAMES[(n + 3 * r) % len(SURNAMES)]
                    person = {
                        "name": f"{first} {surname}",
                        "email": f"{first}.{surname}.{region}@example.nhs.uk".lower(),
                        "phone": f"07700 900{r * 100 + n:03d}",
                        "register_number": _register_number(profession, r * 100 + n),
                    }
                    out = fairshare(
                        self.data_dir,
                        *("clinician", "invite", "--name", person["name"]),
                        *("--profession", profession, "--home-sector", home),
                        *("--region", region, "--lat", f"{53.4 + r / 10:.2f}", "--lon", "-2.25"),
                        *("--email", person["email"], "--phone", person["phone"]),
                        *("--register", REGISTERS[profession]),
                        *("--register-number", person["register_number"]),
                    )
                    code = _after(out, "invite code: ")
                    signed = bank.post("/api/auth/exchange", json={"code": code})
                    assert signed.status_code == 200, signed.text
                    me = signed.json()
                    clinician = Clinician(
                        me["clinician_id"],
                        me["token"],
                        region,
                        profession,
                        invite_code=code,
                        **person,
                    )
                    self.clinicians.append(clinician)
                    for day in DAYS:
                        start = _day(day) + timedelta(hours=7)
                        window = {
                            "starts_at": start.isoformat(),
                            "ends_at": (start + timedelta(hours=14)).isoformat(),
                        }
                        offered = bank.post(
                            "/api/availability",
                            json=window,
                            headers={"Authorization": f"Bearer {clinician.token}"},
                        )
                        assert offered.status_code == 201, offered.text


REGISTERS = {
    "gp": "GMC",
    "pharmacist": "GPhC",
    "advanced_nurse_practitioner": "NMC",
    "practice_nurse": "NMC",
    "paramedic": "HCPC",
}


def _register_number(profession: str, n: int) -> str:
    """A register number of the right shape for ``profession`` (services/bank/registers.py)."""
    if profession == "gp":
        return f"7{n:03d}913"
    if profession == "pharmacist":
        return f"2{n:03d}847"
    if profession == "paramedic":
        return f"PA{n:03d}629"
    return f"{n % 100:02d}Q{n:04d}X"  # NMC


def _day(days: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )


class Driver:
    """Plays the world's busy part until stopped."""

    def __init__(self, world: World, seed: int) -> None:
        self.world = world
        self.seed = seed
        self.running = False
        self.tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start posting and answering (in the running event loop)."""
        self.running = True
        w = self.world
        self.tasks = [asyncio.create_task(self._practices(random.Random(self.seed)))]
        self.tasks += [
            asyncio.create_task(self._clinician(c, random.Random(f"{self.seed}-{i}")))
            for i, c in enumerate(w.clinicians)
        ]

    async def stop(self, timeout_s: float = 90) -> None:
        """Stop, letting each actor finish what it is doing (a delivery being retried)."""
        self.running = False
        done, late = await asyncio.wait(self.tasks, timeout=timeout_s)
        for task in late:
            task.cancel()
        for task in done:
            task.result()  # a bug in the driver must not pass silently
        assert not late, f"{len(late)} actors did not stop within {timeout_s} s"

    # Practices -------------------------------------------------------------------

    async def _practices(self, rng: random.Random) -> None:
        async with httpx.AsyncClient(
            base_url=self.world.vacancies, timeout=REQUEST_TIMEOUT_S
        ) as client:
            while self.running:
                roll = rng.random()
                if roll < 0.08:
                    await self._post_batch(client, rng)
                elif roll < 0.16:
                    await self._cancel_one(client, rng)
                else:
                    await self._post_one(client, rng)
                await asyncio.sleep(rng.uniform(0.15, 0.4))

    def _session(self, org: Org, rng: random.Random) -> dict[str, Any]:
        self.world.next_external += 1
        start = _day(rng.choice(DAYS)) + timedelta(hours=rng.randint(7, 16))
        return {
            "external_id": f"rota-{self.seed}-{self.world.next_external}",
            "role": rng.choice(org.roles),
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=4)).isoformat(),
            "urgency": rng.choice(("routine", "urgent")),
        }

    async def _post_one(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        org = rng.choice(self.world.orgs)
        session = self._session(org, rng)
        answer = await self._deliver(client, org, "session.posted", session)
        if answer is not None:
            assert answer.status_code == 202, answer.text
            self._acknowledge(org, session["external_id"], answer.json()["session_id"])

    async def _post_batch(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        org = rng.choice(self.world.orgs)
        sessions = [self._session(org, rng) for _ in range(rng.randint(2, 6))]
        answer = await self._deliver(client, org, "sessions.posted", {"sessions": sessions})
        if answer is None:
            return
        assert answer.status_code == 200, answer.text
        self.world.figures.batches += 1
        for result in answer.json()["results"]:
            assert result["outcome"] == "created", result
            self._acknowledge(org, result["external_id"], result["session_id"])

    def _acknowledge(self, org: Org, external_id: str, session_id: str) -> None:
        self.world.acknowledged[(org.ods, external_id)] = session_id
        self.world.figures.posted += 1

    async def _cancel_one(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        w = self.world
        live = sorted(set(w.acknowledged) - w.cancelled)
        if not live:
            return
        # Mostly sessions on offer or filled: their cancellation races clinicians' answers.
        busy = [k for k in live if w.receiver.heard.get(w.acknowledged[k]) in ("offered", "filled")]
        ods, external_id = rng.choice(busy if busy and rng.random() < 0.7 else live)
        org = next(o for o in w.orgs if o.ods == ods)
        data = {"external_id": external_id, "reason": PRACTICE_REASON}
        answer = await self._deliver(client, org, "session.cancelled", data)
        if answer is not None:
            assert answer.status_code == 200, answer.text
            w.cancelled.add((ods, external_id))
            w.figures.org_cancellations += 1

    async def _deliver(
        self, client: httpx.AsyncClient, org: Org, kind: str, data: dict[str, Any]
    ) -> httpx.Response | None:
        """Post a signed delivery, retrying it (same webhook-id) until it is answered.

        A 5xx or no answer at all is retried, so a post that committed before its
        answer was lost is answered from its receipt: acknowledged once, stored once.
        """
        body = json.dumps({"type": kind, "timestamp": datetime.now(UTC).isoformat(), "data": data})
        msg_id = f"msg_{uuid.uuid4().hex}"
        give_up = time.monotonic() + DELIVERY_GIVE_UP_S
        while True:
            now = datetime.now(UTC)
            headers = {
                "webhook-id": msg_id,
                "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(org.secret).sign(msg_id, now, body),
                "content-type": "application/json",
            }
            try:
                answer = await client.post(f"/webhooks/{org.ods}", content=body, headers=headers)
            except httpx.HTTPError:
                answer = None
            if answer is not None and answer.status_code < 500 and answer.status_code != 429:
                return answer
            self.world.figures.failed_requests += 1
            if time.monotonic() > give_up:
                self.world.figures.unanswered += 1
                return None
            await asyncio.sleep(0.5)

    # Clinicians ------------------------------------------------------------------

    async def _clinician(self, me: Clinician, rng: random.Random) -> None:
        headers = {"Authorization": f"Bearer {me.token}"}
        async with httpx.AsyncClient(
            base_url=self.world.bank, timeout=REQUEST_TIMEOUT_S, headers=headers
        ) as bank:
            await asyncio.sleep(rng.uniform(0, 1))
            while self.running:
                try:
                    await self._answer_offers(bank, rng)
                    if rng.random() < 0.2:
                        await self._give_up_a_booking(bank, rng)
                except (httpx.HTTPError, ValueError):
                    self.world.figures.failed_requests += 1
                await asyncio.sleep(rng.uniform(0.5, 1.5))

    async def _answer_offers(self, bank: httpx.AsyncClient, rng: random.Random) -> None:
        listed = await bank.get("/api/offers")
        if listed.status_code != 200:
            self.world.figures.failed_requests += 1
            return
        f = self.world.figures
        for offer in listed.json():
            roll = rng.random()
            if roll >= 0.85:
                continue  # left to think about
            verb = "accept" if roll < 0.6 else "decline"
            await asyncio.sleep(rng.uniform(0, 0.5))  # reading it: the world moves meanwhile
            answer = await bank.post(f"/api/offers/{offer['offer_id']}/{verb}")
            if answer.status_code == 202:
                if verb == "accept":
                    f.accepted += 1
                else:
                    f.declined += 1
            elif answer.status_code in (404, 409, 410):
                f.answer_refused += 1
            else:
                f.failed_requests += 1

    async def _give_up_a_booking(self, bank: httpx.AsyncClient, rng: random.Random) -> None:
        listed = await bank.get("/api/bookings")
        if listed.status_code != 200:
            self.world.figures.failed_requests += 1
            return
        booked = [b for b in listed.json() if b["status"] == "booked"]
        if not booked or rng.random() >= 0.35:
            return
        choice = rng.choice(booked)
        # Words of their own, each cancellation's different, shared or not with the practice.
        text = f"I am unwell, sorry (note {rng.randrange(16**8):08x})."
        shared = rng.random() < 0.5
        self.world.cancellation_texts[text] = shared
        answer = await bank.post(
            f"/api/bookings/{choice['offer_id']}/cancel",
            json={"category": "illness", "text": text, "share_text_with_practice": shared},
        )
        if answer.status_code == 200:
            self.world.figures.clinician_cancellations += 1
        elif answer.status_code not in (404, 409):
            self.world.figures.failed_requests += 1


@contextlib.contextmanager
def receiving() -> Any:
    """A started :class:`Receiver`, stopped afterwards."""
    receiver = Receiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
