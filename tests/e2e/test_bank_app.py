"""The clinicians' phone app against the whole system: sign in with an invite code, offer
time in "My week", see an offer arrive live (no reload) when a practice posts a signed
session, accept it, see it booked, open the bookings offline, and take the time back
only after cancelling the booking properly."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import (
    BrowserContext,
    Locator,
    Page,
    ViewportSize,
    async_playwright,
    expect,
)

from services.bank.domain import distance_km
from tests.e2e.system import DevSystem, launch_chromium

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

PHONE: ViewportSize = {"width": 390, "height": 844}
LONDON = ZoneInfo("Europe/London")
REGION = "QE4"
HOME = (53.48, -2.24)  # the CLI's default base for a clinician
SITE = (53.50, -2.20)
# Not London, on purpose: every time the app shows must still be London time.
PHONE_ZONE = "America/New_York"


def invite_pharmacist(system: DevSystem, name: str) -> str:
    """A new pharmacist's one-time sign-in code."""
    out = system.cli(
        "clinician",
        "invite",
        "--name",
        name,
        "--profession",
        "pharmacist",
        "--home-sector",
        "community_pharmacy",
        "--region",
        REGION,
        "--register",
        "GPhC",
        "--register-number",
        "2012345",
    )
    match = re.search(r"invite code: (\S+)", out)
    assert match, out
    return match.group(1)


def add_practice(system: DevSystem, ods: str) -> str:
    """Register Hilltop Surgery; return its web hook secret."""
    out = system.cli(
        "org",
        "add",
        "--ods",
        ods,
        "--name",
        "Hilltop Surgery",
        "--sector",
        "general_practice",
        "--region",
        REGION,
        "--lat",
        str(SITE[0]),
        "--lon",
        str(SITE[1]),
    )
    secret = out.split("webhook secret: ")[1].split()[0]
    assert secret.startswith("whsec_")
    return secret


def post_session(
    system: DevSystem, *, ods: str, secret: str, starts_at: datetime, ends_at: datetime, file: Path
) -> str:
    """The practice posts a clinical-pharmacist session through its signed web hook."""
    file.write_text(
        json.dumps(
            {
                "type": "session.posted",
                "timestamp": datetime.now(UTC).isoformat(),
                "data": {
                    "external_id": f"rota-{uuid.uuid4().hex[:8]}",
                    "role": "clinical_pharmacist",
                    "starts_at": starts_at.isoformat(),
                    "ends_at": ends_at.isoformat(),
                },
            }
        )
    )
    return system.cli(
        "webhook",
        "post",
        "--ods",
        ods,
        "--secret",
        secret,
        "--url",
        system.url("vacancies"),
        str(file),
    )


async def phone(browser_context: BrowserContext, errors: list[str]) -> Page:
    """A page whose uncaught script errors are collected in ``errors``."""
    page = await browser_context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(15_000)
    return page


async def check_screen(page: Page, errors: list[str]) -> None:
    """What every screen must meet: no sideways scrolling at phone width, a name on
    every control, the page's language, and no script errors."""
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"horizontal scroll: {width}px wide"
    unnamed = await page.evaluate(
        """() => [...document.querySelectorAll('button, input, select, textarea, a[href]')]
            .filter((el) => el.getClientRects().length)
            .filter((el) => {
              const labels = el.labels ? [...el.labels].map((l) => l.textContent).join(' ') : '';
              const name = el.getAttribute('aria-label') || labels || el.textContent;
              return !name || !name.trim();
            })
            .map((el) => el.outerHTML.slice(0, 120))"""
    )
    assert unnamed == [], unnamed
    assert await page.evaluate("document.documentElement.lang") == "en"
    assert errors == []


def tab(page: Page, name: str) -> Locator:
    """A link in the bottom tab bar."""
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name)


async def go_to(page: Page, name: str) -> None:
    """Tap a tab and wait for its screen's heading."""
    await tab(page, name).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(name)


async def test_wrong_code_is_explained_beside_the_field(
    system: DevSystem, artifacts_dir: Path
) -> None:
    """A mistyped code is refused with the reason next to the code field, read with it."""
    async with async_playwright() as p:
        browser = await launch_chromium(p)
        context = await browser.new_context(
            viewport=PHONE, is_mobile=True, has_touch=True, locale="en-GB"
        )
        errors: list[str] = []
        page = await phone(context, errors)
        await page.goto(system.url("bank") + "/")
        await expect(page).to_have_url(re.compile(r"/app/#/signin$"))
        code = page.get_by_label("Sign-in code")
        await code.fill("WRONG2CODE")
        # Keyboard users see where they are: focus on the button is drawn.
        await code.press("Tab")
        button = page.get_by_role("button", name="Sign in")
        await expect(button).to_be_focused()
        ring = await button.evaluate("(el) => getComputedStyle(el).boxShadow")
        assert ring != "none"
        await page.keyboard.press("Enter")

        field = page.locator(".field", has=code)
        error = field.locator(".field-error")
        await expect(error).to_be_visible()
        await expect(error).to_contain_text("not valid")
        await expect(code).to_have_attribute("aria-invalid", "true")
        described = await code.get_attribute("aria-describedby") or ""
        assert await error.get_attribute("id") in described.split()
        await expect(code).to_be_focused()
        await check_screen(page, errors)
        await page.screenshot(path=str(artifacts_dir / "bank-app-1-signin-error.png"))
        await browser.close()


async def test_offer_arrives_live_is_accepted_booked_and_given_up_properly(
    system: DevSystem, tmp_path: Path, artifacts_dir: Path
) -> None:
    """Sign in → offer time two days ahead → a signed session appears as an offer without a
    reload → accept → booked → bookings open offline → profile errors beside the field →
    taking the time back is refused until the booking is cancelled with a reason."""
    ods = "A" + str(uuid.uuid4().int)[:5]
    secret = add_practice(system, ods)
    # The pharmacist's move into general practice must fit community pharmacy's cap.
    system.cli("policy", "set", "--region", REGION, "--cap", "community_pharmacy=50")
    code = invite_pharmacist(system, "Priya Shah")

    day = datetime.now(LONDON).date() + timedelta(days=2)
    starts_at = datetime.combine(day, time(9), LONDON)
    ends_at = starts_at + timedelta(hours=4)
    shot = artifacts_dir / "bank-app-{}.png"

    async with async_playwright() as p:
        browser = await launch_chromium(p)
        context = await browser.new_context(
            viewport=PHONE,
            is_mobile=True,
            has_touch=True,
            device_scale_factor=2,
            locale="en-GB",
            timezone_id=PHONE_ZONE,
        )
        errors: list[str] = []
        page = await phone(context, errors)
        await page.goto(system.url("bank") + "/")

        # Sign in with the invite code.
        await page.get_by_label("Sign-in code").fill(code)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("My week")
        await expect(page.locator("#who")).to_have_text("Priya Shah")

        # Offer 08:00 to 18:00 London time on the session's day, through the form.
        await page.get_by_label("Date", exact=True).fill(day.isoformat())
        await page.get_by_label("From", exact=True).first.fill("08:00")
        await page.get_by_label("To", exact=True).first.fill("18:00")
        await page.get_by_role("button", name="Add time", exact=True).click()
        window = page.locator(f'[data-date="{day.isoformat()}"] [data-testid="window"]')
        await expect(window).to_contain_text("08:00–18:00")
        await expect(page.locator(f'[data-date="{day.isoformat()}"] .block.free')).to_have_count(1)
        await check_screen(page, errors)
        await page.screenshot(path=str(shot).format("2-week"))

        # The offers screen is open when the practice posts the session.
        await go_to(page, "Offers")
        await expect(page.locator(".live-status")).to_have_attribute("data-status", "live")
        await expect(page.get_by_role("heading", name="No offers right now")).to_be_visible()
        await page.evaluate("window.__sameDocument = true")
        await page.screenshot(path=str(shot).format("3-offers-waiting"))
        posted = await asyncio.to_thread(
            post_session,
            system,
            ods=ods,
            secret=secret,
            starts_at=starts_at,
            ends_at=ends_at,
            file=tmp_path / "session.json",
        )
        assert posted.startswith("202"), posted

        card = page.get_by_test_id("offer-card")
        await expect(card).to_be_visible(timeout=60_000)
        assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"
        await expect(card.get_by_role("heading", name="Hilltop Surgery")).to_be_visible()
        await expect(card).to_contain_text("General practice")
        await expect(card).to_contain_text("Clinical pharmacist")
        # London time, although the phone's own zone is New York.
        await expect(card.get_by_test_id("when")).to_have_text(
            f"{starts_at:%a} {day.day} {starts_at:%b}, 09:00–13:00"
        )
        expected_km = round(distance_km(*HOME, *SITE), 1)
        distance = await card.get_by_test_id("distance").inner_text()
        shown_km = float(distance.split(" km")[0])
        assert abs(shown_km - expected_km) <= 0.1, distance
        reasons = card.get_by_test_id("reasons").locator("li")
        assert await reasons.count() >= 2
        await expect(reasons.filter(has_text="You are free for the whole session.")).to_have_count(
            1
        )
        await expect(card.locator(".countdown")).to_contain_text("left")
        await expect(card).to_contain_text("Routine")
        await expect(tab(page, "Offers")).to_have_attribute("aria-label", "Offers, 1 waiting")
        await check_screen(page, errors)
        await page.wait_for_timeout(2600)  # let the arrival highlight fade for the picture
        await page.screenshot(path=str(shot).format("4-offer-live"))

        # Accept, after a confirmation that says what it commits to.
        await card.get_by_role("button", name="Accept").click()
        await expect(card.get_by_role("group", name="Confirm accepting")).to_contain_text(
            "Hilltop Surgery"
        )
        await card.get_by_role("button", name="Yes, accept").click()
        answered = page.get_by_test_id("answered-card")
        await expect(answered).to_contain_text("Accepted")
        await check_screen(page, errors)
        await page.screenshot(path=str(shot).format("5-offer-accepted"))

        # Bookings: shown as booked once matching confirms (the screen looks again).
        await go_to(page, "Bookings")
        booking = page.get_by_test_id("booking-card")
        await expect(booking.get_by_test_id("booking-status")).to_have_text(
            "Booked", timeout=60_000
        )
        await expect(booking).to_contain_text("Hilltop Surgery")
        await expect(booking).to_contain_text("09:00–13:00")
        await check_screen(page, errors)
        await page.screenshot(path=str(shot).format("6-bookings"))

        # Offline: the shell and the last-seen bookings still open.
        await page.wait_for_function("navigator.serviceWorker.controller !== null")
        await page.reload()
        await expect(booking.get_by_test_id("booking-status")).to_have_text("Booked")
        await context.set_offline(True)
        await page.reload()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Bookings")
        await expect(booking.get_by_test_id("booking-status")).to_have_text("Booked")
        await expect(page.get_by_test_id("saved-note")).to_contain_text("Offline")
        await expect(page.locator("#offline-banner")).to_be_visible()
        await page.screenshot(path=str(shot).format("7-bookings-offline"))
        await context.set_offline(False)
        await page.reload()
        await expect(page.get_by_test_id("saved-note")).to_be_hidden()

        # Profile: a register number of the wrong shape is explained beside the field.
        await go_to(page, "Profile")
        number = page.get_by_label("Registration number")
        await expect(number).to_have_value("2012345")
        await number.fill("1234567")
        await page.get_by_label("How far you’ll travel (km)").fill("25")
        await page.get_by_role("button", name="Save changes").click()
        number_error = page.locator(".field", has=number).locator(".field-error")
        await expect(number_error).to_contain_text("7 digits starting with 2")
        await expect(number).to_have_attribute("aria-invalid", "true")
        await check_screen(page, errors)
        await number.scroll_into_view_if_needed()
        await page.screenshot(path=str(shot).format("8-profile-register-error"))
        await number.fill("2012346")
        await page.get_by_role("button", name="Save changes").click()
        await expect(page.locator(".saved-note")).to_have_text("Your changes are saved.")
        await expect(number_error).to_be_hidden()

        # My week shows the booking inside the window; taking the window back is refused
        # with the booking named and a way to cancel it properly.
        await go_to(page, "My week")
        day_card = page.locator(f'[data-date="{day.isoformat()}"]')
        await expect(day_card.locator(".block.booked")).to_have_count(1)
        await expect(day_card).to_contain_text("Booked: Hilltop Surgery")
        await day_card.scroll_into_view_if_needed()
        await page.screenshot(path=str(shot).format("9-week-booked"))
        await day_card.get_by_role("button", name=re.compile("^Remove 08:00–18:00")).click()
        await page.get_by_role("dialog").get_by_role("button", name="Remove").click()
        conflict = page.get_by_test_id("conflict")
        await expect(conflict).to_contain_text("You’re booked during this time")
        await expect(conflict).to_contain_text("Hilltop Surgery")
        await check_screen(page, errors)
        await page.screenshot(path=str(shot).format("10-week-conflict"))
        late_before = starts_at - datetime.now(UTC) < timedelta(hours=48)
        await conflict.get_by_role("button", name="Cancel this booking…").click()
        cancel = page.get_by_role("dialog", name="Cancel this booking?")
        await expect(cancel.get_by_role("heading", name="Cancel this booking?")).to_be_visible()
        late = starts_at - datetime.now(UTC) < timedelta(hours=48)
        if late == late_before:  # not run across the 48-hour line itself
            await expect(cancel.get_by_test_id("late-warning")).to_have_count(1 if late else 0)
        await cancel.get_by_role("button", name="Cancel booking").click()
        reason_error = cancel.locator('[data-field="category"] .field-error')
        await expect(reason_error).to_contain_text("Choose a reason")
        await cancel.get_by_label("Why are you cancelling?").select_option("family_emergency")
        await cancel.get_by_label("Anything to add? (optional)").fill("My son is ill")
        share = cancel.get_by_label("Share what I wrote with the practice")
        await expect(share).not_to_be_checked()  # the practice reads the words only if asked
        await check_screen(page, errors)
        await page.screenshot(path=str(shot).format("11-cancel-booking"))
        await cancel.get_by_role("button", name="Cancel booking").click()
        await expect(conflict).to_contain_text("Cancelled")
        await conflict.get_by_role("button", name="Close").click()
        await day_card.get_by_role("button", name=re.compile("^Remove 08:00–18:00")).click()
        await page.get_by_role("dialog").get_by_role("button", name="Remove").click()
        await expect(day_card.get_by_test_id("window")).to_have_count(0)
        await expect(day_card).to_contain_text("No time offered")

        # Signing out forgets this person's saved copies on the phone.
        await go_to(page, "Profile")
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
        await expect(page.get_by_text("You have signed out.")).to_be_visible()
        assert not await page.evaluate("caches.has('fs-api')")
        await check_screen(page, errors)
        await browser.close()
