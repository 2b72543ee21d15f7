"""Reference vocabulary every service agrees on: sectors, professions, code formats."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints


class Sector(StrEnum):
    """The primary care sectors an ICB shares staff across."""

    GENERAL_PRACTICE = "general_practice"
    COMMUNITY_PHARMACY = "community_pharmacy"
    DENTISTRY = "dentistry"
    OPTOMETRY = "optometry"
    COMMUNITY_NURSING = "community_nursing"


class Profession(StrEnum):
    """Professions a clinician in the bank may hold (one register each)."""

    GP = "gp"
    PRACTICE_NURSE = "practice_nurse"
    ADVANCED_NURSE_PRACTITIONER = "advanced_nurse_practitioner"
    PHARMACIST = "pharmacist"
    PHARMACY_TECHNICIAN = "pharmacy_technician"
    DENTIST = "dentist"
    DENTAL_NURSE = "dental_nurse"
    DENTAL_HYGIENIST = "dental_hygienist"
    OPTOMETRIST = "optometrist"
    DISPENSING_OPTICIAN = "dispensing_optician"
    PARAMEDIC = "paramedic"
    PHYSIOTHERAPIST = "physiotherapist"
    PHYSICIAN_ASSOCIATE = "physician_associate"
    OCCUPATIONAL_THERAPIST = "occupational_therapist"
    DIETITIAN = "dietitian"
    PODIATRIST = "podiatrist"
    MENTAL_HEALTH_PRACTITIONER = "mental_health_practitioner"


# ICB codes are three characters (e.g. QOP for Greater Manchester); the region key.
REGION_PATTERN = r"^[A-Z0-9]{3}$"
RegionCode = Annotated[
    str,
    StringConstraints(pattern=REGION_PATTERN),
]

# ODS codes: practices A81001, pharmacies FVR79, PCNs U12345, dental V03462.
ODS_PATTERN = r"^[A-Z][A-Z0-9]{2,7}$"
OdsCode = Annotated[str, StringConstraints(pattern=ODS_PATTERN)]

_ODS_RE = re.compile(ODS_PATTERN)


def is_ods_code(value: str) -> bool:
    """Tell whether ``value`` has the shape of an ODS organisation code."""
    return bool(_ODS_RE.match(value))
