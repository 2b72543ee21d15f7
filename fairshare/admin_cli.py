"""``fairshare org|clinician|sessions|callbacks``: administration through the database.

These commands talk to the owning service's schema directly (they are that service's
administration tools), using the running dev system's database unless
FAIRSHARE_DATABASE_URL says otherwise.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from fairshare.cli import DEFAULT_DATA_DIR, DataDir, console, database_url
from fairshare.secret_keys import use_vacancies_keys
from services.bank.domain import Clinician
from services.vacancies.settings import VacanciesSettings
from shared.catalogue import ODS_PATTERN, REGION_PATTERN, Employment, Profession, Sector, Skill
from shared.db.pool import connect
from shared.db.roles import act_as_schema_owner
from shared.db.types import Conn

org_app = typer.Typer(help="Organisations that post sessions (vacancies service).")
clinician_app = typer.Typer(help="Clinicians in the shared bank (bank service).")
sessions_app = typer.Typer(help="Posted sessions (vacancies service).")
callbacks_app = typer.Typer(help="Signed callbacks to organisations (vacancies service).")
T = TypeVar("T")
Ods = Annotated[str, typer.Argument(help="ODS code of the organisation.")]


def _check(value: str, pattern: str, what: str) -> str:
    if not re.match(pattern, value):
        console.print(f"[red]{what} {value!r} is not valid[/] (expected pattern {pattern}).")
        raise typer.Exit(2)
    return value


def run_in_schema(
    data_dir: DataDir,
    schema: str,
    work: Callable[[Conn], Awaitable[T]],
    *,
    refusals: tuple[type[Exception], ...] = (),
) -> T:
    """Run ``work`` in one transaction on ``schema``; admin errors (and ``refusals``)
    exit with their message. Other admin commands (``icb_cli``) call it too."""
    from services.bank.admin import AdminError as BankError  # noqa: PLC0415
    from services.vacancies.admin import AdminError  # noqa: PLC0415
    from services.vacancies.secret_box import SecretKeyError  # noqa: PLC0415

    async def _go() -> T:
        conn = await connect(database_url(data_dir), schema)
        try:
            async with conn.transaction():
                # The admin role is a member of every service's: each command acts as
                # the one service it administers, with its privileges and no more.
                await act_as_schema_owner(conn, schema, local=True)
                return await work(conn)
        finally:
            await conn.close()

    caught: tuple[type[Exception], ...] = (AdminError, BankError, SecretKeyError, *refusals)
    try:
        return asyncio.run(_go())
    except caught as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None


@org_app.command("add")
def org_add(
    ods: Annotated[str, typer.Option(help="ODS code, e.g. A81001 (practice), FVR79 (pharmacy).")],
    name: Annotated[str, typer.Option(help="Organisation name.")],
    sector: Annotated[Sector, typer.Option(help="Sector of the organisation.")],
    region: Annotated[str, typer.Option(help="ICB code of its region, e.g. QOP.")],
    lat: Annotated[float, typer.Option(min=-90, max=90, help="Latitude of the site.")],
    lon: Annotated[float, typer.Option(min=-180, max=180, help="Longitude of the site.")],
    pcn: Annotated[str | None, typer.Option(help="ODS code of its PCN, if a member.")] = None,
    callback_url: Annotated[str | None, typer.Option(help="Where callbacks go.")] = None,
    imd_decile: Annotated[
        int | None,
        typer.Option(min=1, max=10, help="IMD decile of its area, 1 most deprived (filled first)."),
    ] = None,
    place: Annotated[str | None, typer.Option(help="ICB place it belongs to.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Register an organisation; print its web hook signing secret and API key."""
    from services.vacancies import SCHEMA  # noqa: PLC0415
    from services.vacancies.admin import add_organisation, set_callback_url  # noqa: PLC0415
    from services.vacancies.domain import Organisation  # noqa: PLC0415

    _check(ods, ODS_PATTERN, "ODS code")
    _check(region, REGION_PATTERN, "Region code")
    org = Organisation(
        ods,
        name,
        sector,
        region,
        lat,
        lon,
        active=True,
        pcn=pcn,
        imd_decile=imd_decile,
        place=place,
    )

    async def work(conn: Conn) -> tuple[str, str]:
        keys = await add_organisation(conn, org)
        if callback_url:
            await set_callback_url(conn, ods, callback_url)
        return keys

    use_vacancies_keys(data_dir)
    secret, api_key = run_in_schema(data_dir, SCHEMA, work)
    console.print(f"Registered {ods} ({name}). Keep both safe; neither is shown again.")
    print(f"webhook secret: {secret}")
    print(f"API key: {api_key}")


@org_app.command("deactivate")
def org_deactivate(ods: Ods, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Refuse the organisation's posts (403) until reactivated."""
    from services.vacancies import SCHEMA  # noqa: PLC0415
    from services.vacancies.admin import set_active  # noqa: PLC0415

    run_in_schema(data_dir, SCHEMA, lambda conn: set_active(conn, ods, active=False))
    console.print(f"{ods} deactivated.")


@org_app.command("activate")
def org_activate(ods: Ods, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Accept the organisation's posts again."""
    from services.vacancies import SCHEMA  # noqa: PLC0415
    from services.vacancies.admin import set_active  # noqa: PLC0415

    run_in_schema(data_dir, SCHEMA, lambda conn: set_active(conn, ods, active=True))
    console.print(f"{ods} activated.")


@org_app.command("set-callback")
def org_set_callback(
    ods: Ods,
    url: Annotated[str | None, typer.Argument(help="https URL; omit to stop callbacks.")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Set (or clear) where the organisation's signed callbacks go."""
    from services.vacancies import SCHEMA  # noqa: PLC0415
    from services.vacancies.admin import set_callback_url  # noqa: PLC0415

    run_in_schema(data_dir, SCHEMA, lambda conn: set_callback_url(conn, ods, url))
    console.print(f"{ods} callbacks go to {url}." if url else f"{ods} callbacks stopped.")


@org_app.command("rotate-secret")
def org_rotate_secret(
    ods: Ods,
    grace_hours: Annotated[
        float, typer.Option(min=0, help="Hours the old secret stays valid.")
    ] = 24,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Issue a new signing secret; the old one keeps working for the grace period."""
    from services.vacancies import SCHEMA  # noqa: PLC0415
    from services.vacancies.admin import rotate_secret  # noqa: PLC0415

    use_vacancies_keys(data_dir)
    secret = run_in_schema(
        data_dir, SCHEMA, lambda c: rotate_secret(c, ods, grace=timedelta(hours=grace_hours))
    )
    console.print(f"New secret for {ods}; the old one works for {grace_hours:g} more hours.")
    print(f"webhook secret: {secret}")


@org_app.command("reencrypt-secrets")
def org_reencrypt_secrets(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Encrypt every web hook secret afresh with the first key of
    FAIRSHARE_VACANCIES_SECRET_KEYS, so that the keys after it can be dropped."""
    from services.vacancies import SCHEMA  # noqa: PLC0415
    from services.vacancies.admin import reencrypt_secrets  # noqa: PLC0415

    use_vacancies_keys(data_dir)
    done = run_in_schema(data_dir, SCHEMA, reencrypt_secrets)
    console.print(
        f"Re-encrypted the secrets of {done.resealed} organisations with the first key"
        f" ({done.from_plaintext} were still in plaintext). The other keys can now be"
        " dropped from FAIRSHARE_VACANCIES_SECRET_KEYS (then restart the vacancies service)."
    )


@org_app.command("new-secret-key")
def org_new_secret_key() -> None:
    """Print a new key for FAIRSHARE_VACANCIES_SECRET_KEYS (a Fernet key)."""
    from services.vacancies.secret_box import generate_key  # noqa: PLC0415

    print(generate_key())


@org_app.command("rotate-key")
def org_rotate_key(ods: Ods, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Issue a new read-API key; the old one stops working at once."""
    from services.vacancies import SCHEMA  # noqa: PLC0415
    from services.vacancies.admin import rotate_api_key  # noqa: PLC0415

    key = run_in_schema(data_dir, SCHEMA, lambda conn: rotate_api_key(conn, ods))
    print(f"API key: {key}")


@callbacks_app.command("list")
def callbacks_list(
    ods: Annotated[str | None, typer.Option(help="Only this organisation's.")] = None,
    status: Annotated[str | None, typer.Option(help="pending, delivered, gone or failed.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """The callback delivery log, newest first."""
    from services.vacancies import SCHEMA, callback_store  # noqa: PLC0415

    keys = ("id", "organisation", "event_type", "status", "attempts", "last_status", "last_error")

    async def work(conn: Conn) -> list[dict[str, str]]:
        rows = await callback_store.list_callbacks(conn, organisation=ods, status=status)
        return [
            {k: "" if r[k] is None else str(r[k]) for k in (*keys, "next_attempt_at", "webhook_id")}
            for r in rows
        ]

    rows = run_in_schema(data_dir, SCHEMA, work)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(*keys, "next attempt")
    for r in rows:
        table.add_row(*(r[k] for k in keys), r["next_attempt_at"][:19])
    console.print(table)


@callbacks_app.command("replay")
def callbacks_replay(
    callback_id: Annotated[int, typer.Argument(help="Id from `callbacks list`.")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Send a callback again now, whatever became of it before."""
    from services.vacancies import SCHEMA  # noqa: PLC0415
    from services.vacancies.admin import replay_callback  # noqa: PLC0415

    window = timedelta(seconds=VacanciesSettings().callback_window_s)
    run_in_schema(data_dir, SCHEMA, lambda conn: replay_callback(conn, callback_id, window=window))
    console.print(f"Callback {callback_id} will be sent again now.")


def _clinician(
    *,
    name: str,
    profession: Profession,
    home_sector: Sector,
    region: str,
    skills: list[Skill] | None,
    register: str | None,
    register_number: str | None,
    home_org: str | None,
    employment: Employment,
    lat: float,
    lon: float,
    travel_km: float,
    email: str | None,
    phone: str | None,
) -> Clinician:
    _check(region, REGION_PATTERN, "Region code")
    if home_org:
        _check(home_org, ODS_PATTERN, "Home organisation")
    return Clinician(
        id=uuid.uuid4(),
        display_name=name,
        profession=profession,
        home_sector=home_sector,
        region=region,
        skills=frozenset(skills or []),
        email=email,
        phone=phone,
        register=register,
        register_number=register_number.strip().upper() if register_number else None,
        home_organisation=home_org,
        employment=employment,
        latitude=lat,
        longitude=lon,
        travel_km=travel_km,
    )


Name = Annotated[str, typer.Option(help="Name shown to the clinician (kept in the bank).")]
Prof = Annotated[Profession, typer.Option(help="Profession.")]
Home = Annotated[Sector, typer.Option(help="Sector they normally work in.")]
Region = Annotated[str, typer.Option(help="ICB code of their region, e.g. QOP.")]
Skills = Annotated[list[Skill] | None, typer.Option("--skill", help="A skill; repeat for several.")]
Reg = Annotated[str | None, typer.Option(help="Register: GMC, NMC, GPhC, GDC, GOC or HCPC.")]
RegNo = Annotated[str | None, typer.Option(help="Register number (format checked).")]
HomeOrg = Annotated[str | None, typer.Option(help="ODS code of their employer, if any.")]
Emp = Annotated[Employment, typer.Option(help="employed, locum or bank_only.")]
Lat = Annotated[float, typer.Option(min=49, max=61, help="Latitude of their base.")]
Lon = Annotated[float, typer.Option(min=-9, max=2, help="Longitude of their base.")]
Travel = Annotated[float, typer.Option(min=1, max=200, help="How far they will travel, km.")]
Email = Annotated[str | None, typer.Option(help="E-mail (kept in the bank only).")]
Phone = Annotated[str | None, typer.Option(help="Phone (kept in the bank only).")]


def _clinician_command(*, invite_code: bool) -> Callable[..., None]:
    """The `clinician add` and `clinician invite` commands: one signature, two outputs."""

    def command(
        name: Name,
        profession: Prof,
        home_sector: Home,
        region: Region,
        skill: Skills = None,
        register: Reg = None,
        register_number: RegNo = None,
        home_org: HomeOrg = None,
        employment: Emp = Employment.BANK_ONLY,
        lat: Lat = 53.48,
        lon: Lon = -2.24,
        travel_km: Travel = 30,
        email: Email = None,
        phone: Phone = None,
        data_dir: DataDir = DEFAULT_DATA_DIR,
    ) -> None:
        from services.bank import SCHEMA  # noqa: PLC0415
        from services.bank.admin import add_clinician, invite, register_clinician  # noqa: PLC0415

        clinician = _clinician(
            name=name,
            profession=profession,
            home_sector=home_sector,
            region=region,
            skills=skill,
            register=register,
            register_number=register_number,
            home_org=home_org,
            employment=employment,
            lat=lat,
            lon=lon,
            travel_km=travel_km,
            email=email,
            phone=phone,
        )

        async def work(conn: Conn) -> str:
            if not invite_code:
                return await add_clinician(conn, clinician)
            await register_clinician(conn, clinician)
            return await invite(conn, clinician.id)

        secret = run_in_schema(data_dir, SCHEMA, work)
        if invite_code:
            console.print(f"Invited clinician {clinician.id}. One-time code (valid 3 days):")
            print(f"invite code: {secret}")
        else:
            console.print(f"Registered clinician {clinician.id}. Sign-in token (shown once):")
            print(secret)

    command.__doc__ = (
        "Register a clinician and print a one-time code to sign in to the app (3 days)."
        if invite_code
        else "Register a clinician and print an API sign-in token (for scripts and tests)."
    )
    return command


clinician_app.command("add")(_clinician_command(invite_code=False))
clinician_app.command("invite")(_clinician_command(invite_code=True))


@sessions_app.command("list")
def sessions_list(
    ods: Annotated[str | None, typer.Option(help="Only this organisation's.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """List posted sessions and their status."""
    from services.vacancies import SCHEMA  # noqa: PLC0415
    from services.vacancies.repository import list_sessions  # noqa: PLC0415

    keys = ("id", "organisation", "site", "external_id", "role", "starts_at", "ends_at", "status")

    async def work(conn: Conn) -> list[dict[str, str]]:
        rows = await list_sessions(conn, organisation=ods)
        return [{k: str(r[k]) for k in (*keys, "clinician_id")} for r in rows]

    rows = run_in_schema(data_dir, SCHEMA, work)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("session", "org", "site", "external id", "role", "starts", "status")
    for r in rows:
        table.add_row(
            r["id"][:8],
            r["organisation"],
            r["site"],
            r["external_id"],
            r["role"],
            r["starts_at"][:16],
            r["status"],
        )
    console.print(table)
