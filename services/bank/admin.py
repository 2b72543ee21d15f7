"""Administration of clinicians, used by the ``fairshare clinician`` commands."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

from services.bank import repository
from services.bank.domain import INVITE_TTL, SESSION_TTL, Clinician, hash_token, new_token
from services.bank.registers import Register, check_registration
from shared.catalogue import foreign_skills
from shared.db.types import Conn


class AdminError(Exception):
    """A request that can't be carried out; the message says why."""


def new_invite_code() -> str:
    """A one-time sign-in code, easy to type from a text message (no 0/O or 1/I)."""
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(10))


async def register_clinician(conn: Conn, clinician: Clinician) -> Clinician:
    """Check the register number's format and store the clinician."""
    if wrong := foreign_skills(clinician.profession, clinician.skills):
        names = ", ".join(k.value for k in wrong)
        msg = f"skills: {names} is not a skill a {clinician.profession.value} holds here"
        raise AdminError(msg)
    if clinician.register is not None and clinician.register_number is not None:
        problem = check_registration(
            clinician.profession, Register(clinician.register), clinician.register_number
        )
        if problem:
            msg = f"register number: {problem}"
            raise AdminError(msg)
    await repository.insert_clinician(conn, clinician)
    return clinician


async def add_clinician(conn: Conn, clinician: Clinician) -> str:
    """Register a clinician; return a sign-in token for the API (shown once)."""
    await register_clinician(conn, clinician)
    token = new_token()
    await repository.add_session(
        conn,
        token_hash=hash_token(token),
        clinician_id=clinician.id,
        expires_at=datetime.now(UTC) + SESSION_TTL,
    )
    return token


async def invite(conn: Conn, clinician_id: uuid.UUID) -> str:
    """A one-time code with which the clinician signs in to the app (valid 3 days)."""
    if not await repository.clinician_exists(conn, clinician_id):
        msg = f"no clinician {clinician_id}"
        raise AdminError(msg)
    code = new_invite_code()
    await repository.add_invite(
        conn,
        code_hash=hash_token(code),
        clinician_id=clinician_id,
        expires_at=datetime.now(UTC) + INVITE_TTL,
    )
    return code
