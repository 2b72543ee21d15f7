"""Administration of clinicians, used by the ``fairshare clinician`` commands."""

from __future__ import annotations

import uuid

from services.bank import repository
from services.bank.domain import Clinician, hash_token, new_token
from shared.catalogue import Profession, Sector, Skill
from shared.db.types import Conn


async def add_clinician(
    conn: Conn,
    *,
    display_name: str,
    profession: Profession,
    home_sector: Sector,
    region: str,
    skills: frozenset[Skill] = frozenset(),
) -> tuple[Clinician, str]:
    """Register a clinician; return them and their sign-in token (shown once)."""
    clinician = Clinician(
        id=uuid.uuid4(),
        display_name=display_name,
        profession=profession,
        home_sector=home_sector,
        region=region,
        skills=skills,
    )
    token = new_token()
    await repository.insert_clinician(conn, clinician, hash_token(token))
    return clinician, token
