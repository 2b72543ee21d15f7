"""The clinician's own record: read it, change what is theirs to change."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from services.bank import use_cases
from services.bank.api import SIGNED_IN, WITH_BODY
from services.bank.api.auth import Me, runtime_of
from services.bank.domain import Clinician
from services.bank.registers import FORMATS, Register, check_registration
from shared.catalogue import SKILLS_FOR, OdsCode, Sector, Skill, foreign_skills
from shared.http.problems import Problem
from shared.validation import Text

router = APIRouter(prefix="/api", tags=["profile"], responses=SIGNED_IN)


def profile_json(c: Clinician) -> dict[str, Any]:
    """The record as the app shows it."""
    return {
        "clinician_id": str(c.id),
        "display_name": c.display_name,
        "email": c.email,
        "phone": c.phone,
        "profession": c.profession.value,
        "register": c.register,
        "register_number": c.register_number,
        "register_choices": [r.value for r in FORMATS[c.profession]],
        "home_sector": c.home_sector.value,
        "home_organisation": c.home_organisation,
        "employment": c.employment.value,
        "skills": sorted(k.value for k in c.skills),
        "skill_choices": sorted(k.value for k in SKILLS_FOR[c.profession]),
        "latitude": c.latitude,
        "longitude": c.longitude,
        "travel_km": c.travel_km,
        "wtr_opt_out": c.wtr_opt_out,
        "self_employed": c.self_employed,
        "late_cancellations": c.late_cancellations,
        "region": c.region,
    }


class ProfileChanges(BaseModel):
    """Fields a clinician may change; leave out what stays the same."""

    model_config = ConfigDict(extra="forbid")

    # No NUL either: PostgreSQL text can't hold one (see shared/validation.py's Text,
    # whose pattern this one would replace, so it is written into this one).
    email: str | None = Field(
        default=None,
        pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$",
        max_length=200,
        description="Contact e-mail.",
    )
    phone: str | None = Field(
        default=None, pattern=r"^\+?[0-9 ]{10,15}$", description="Contact phone, digits."
    )
    # Named with a trailing underscore: `register` would shadow a pydantic attribute.
    register_: Register | None = Field(
        default=None, alias="register", description="Your regulator."
    )
    register_number: Text | None = Field(default=None, max_length=20, description="Your number.")
    home_sector: Sector | None = Field(default=None, description="Where you normally work.")
    home_organisation: OdsCode | None = Field(default=None, description="Your employer's ODS code.")
    skills: list[Skill] | None = Field(default=None, max_length=20, description="Skills you hold.")
    latitude: float | None = Field(default=None, ge=49, le=61, description="Your base (UK).")
    longitude: float | None = Field(default=None, ge=-9, le=2, description="Your base (UK).")
    travel_km: float | None = Field(default=None, gt=0, le=200, description="How far you'll go.")
    wtr_opt_out: bool | None = Field(default=None, description="Opted out of the 48-hour week.")
    self_employed: bool | None = Field(default=None, description="Self-employed.")


_CLEARABLE = {"email", "phone", "home_organisation", "register_", "register_number"}


@router.get("/me", summary="My record")
async def me(clinician: Me) -> dict[str, Any]:
    """Everything the bank holds about you."""
    return profile_json(clinician)


@router.patch("/me", summary="Change my record", responses=WITH_BODY)
async def change_me(request: Request, clinician: Me, changes: ProfileChanges) -> dict[str, Any]:
    """Apply your changes; a new home sector or employer is published as a transfer."""
    values = changes.model_dump(exclude_unset=True)
    # Sent as null: clears what may be empty; anything else must have a value.
    must_have = [k for k, v in values.items() if v is None and k not in _CLEARABLE]
    if must_have:
        raise Problem(
            422,
            "Some fields can't be empty.",
            errors=[{"field": k.rstrip("_"), "message": "cannot be empty"} for k in must_have],
        )
    if "register_" in values:
        given = values.pop("register_")
        values["register"] = given.value if given else None
    if "skills" in values:
        values["skills"] = frozenset(values["skills"] or ())
        if wrong := foreign_skills(clinician.profession, values["skills"]):
            raise Problem(
                422,
                "Some skills don't belong to your profession.",
                errors=[
                    {
                        "field": "skills",
                        "message": f"{k.value.replace('_', ' ')} is not a skill"
                        f" of a {clinician.profession.value.replace('_', ' ')}",
                    }
                    for k in wrong
                ],
            )
    register = values.get("register", clinician.register)
    number = values.get("register_number", clinician.register_number)
    if ("register" in values or "register_number" in values) and register and number:
        problem = check_registration(clinician.profession, Register(register), number)
        if problem:
            raise Problem(
                422,
                "The register number is not valid.",
                errors=[{"field": "register_number", "message": problem}],
            )
        values["register_number"] = number.strip().upper()
    runtime = runtime_of(request)
    async with runtime.pool.acquire() as conn, conn.transaction():
        after = await use_cases.update_profile(
            conn, before=clinician, changes=values, emitter=runtime.emitter
        )
    return profile_json(after)
