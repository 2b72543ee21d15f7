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
# shared/regions.py names England's 42 ICBs by code; any code of this shape is a region.
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


class Role(StrEnum):
    """Roles a session may need; each may be filled by the professions in ``ROLE_FILLERS``."""

    GP = "gp"
    PRACTICE_NURSE = "practice_nurse"
    ADVANCED_NURSE_PRACTITIONER = "advanced_nurse_practitioner"
    ADVANCED_PRACTITIONER = "advanced_practitioner"
    CLINICAL_PHARMACIST = "clinical_pharmacist"
    COMMUNITY_PHARMACIST = "community_pharmacist"
    PHARMACY_TECHNICIAN = "pharmacy_technician"
    DENTIST = "dentist"
    DENTAL_NURSE = "dental_nurse"
    DENTAL_HYGIENIST = "dental_hygienist"
    OPTOMETRIST = "optometrist"
    DISPENSING_OPTICIAN = "dispensing_optician"
    PARAMEDIC = "paramedic"
    FIRST_CONTACT_PHYSIOTHERAPIST = "first_contact_physiotherapist"
    PHYSICIAN_ASSOCIATE = "physician_associate"
    OCCUPATIONAL_THERAPIST = "occupational_therapist"
    DIETITIAN = "dietitian"
    PODIATRIST = "podiatrist"
    MENTAL_HEALTH_PRACTITIONER = "mental_health_practitioner"
    COMMUNITY_NURSE = "community_nurse"


P = Profession
# Who may fill what: e.g. a pharmacist may fill a clinical-pharmacist (PCN) session or a
# community-pharmacist one; advanced-practitioner sessions are open to several registers.
ROLE_FILLERS: dict[Role, frozenset[Profession]] = {
    Role.GP: frozenset({P.GP}),
    Role.PRACTICE_NURSE: frozenset({P.PRACTICE_NURSE, P.ADVANCED_NURSE_PRACTITIONER}),
    Role.ADVANCED_NURSE_PRACTITIONER: frozenset({P.ADVANCED_NURSE_PRACTITIONER}),
    Role.ADVANCED_PRACTITIONER: frozenset(
        {P.ADVANCED_NURSE_PRACTITIONER, P.PARAMEDIC, P.PHARMACIST, P.PHYSIOTHERAPIST}
    ),
    Role.CLINICAL_PHARMACIST: frozenset({P.PHARMACIST}),
    Role.COMMUNITY_PHARMACIST: frozenset({P.PHARMACIST}),
    Role.PHARMACY_TECHNICIAN: frozenset({P.PHARMACY_TECHNICIAN}),
    Role.DENTIST: frozenset({P.DENTIST}),
    Role.DENTAL_NURSE: frozenset({P.DENTAL_NURSE}),
    Role.DENTAL_HYGIENIST: frozenset({P.DENTAL_HYGIENIST}),
    Role.OPTOMETRIST: frozenset({P.OPTOMETRIST}),
    Role.DISPENSING_OPTICIAN: frozenset({P.DISPENSING_OPTICIAN}),
    Role.PARAMEDIC: frozenset({P.PARAMEDIC}),
    Role.FIRST_CONTACT_PHYSIOTHERAPIST: frozenset({P.PHYSIOTHERAPIST}),
    Role.PHYSICIAN_ASSOCIATE: frozenset({P.PHYSICIAN_ASSOCIATE}),
    Role.OCCUPATIONAL_THERAPIST: frozenset({P.OCCUPATIONAL_THERAPIST}),
    Role.DIETITIAN: frozenset({P.DIETITIAN}),
    Role.PODIATRIST: frozenset({P.PODIATRIST}),
    Role.MENTAL_HEALTH_PRACTITIONER: frozenset({P.MENTAL_HEALTH_PRACTITIONER}),
    Role.COMMUNITY_NURSE: frozenset({P.PRACTICE_NURSE, P.ADVANCED_NURSE_PRACTITIONER}),
}


def may_fill(profession: Profession, role: Role) -> bool:
    """Whether a clinician of ``profession`` may fill a session needing ``role``."""
    return profession in ROLE_FILLERS[role]


class Skill(StrEnum):
    """Skills a session may need and a clinician may hold."""

    INDEPENDENT_PRESCRIBER = "independent_prescriber"
    MINOR_ILLNESS = "minor_illness"
    CERVICAL_SCREENING = "cervical_screening"
    CHILDHOOD_IMMUNISATIONS = "childhood_immunisations"
    LONG_TERM_CONDITIONS = "long_term_conditions"
    TRAVEL_HEALTH = "travel_health"
    WOUND_CARE = "wound_care"
    MEDICATION_REVIEW = "medication_review"
    MINOR_SURGERY = "minor_surgery"
    CONTACT_LENS = "contact_lens"


K = Skill
_NURSING = frozenset(
    {
        K.MINOR_ILLNESS,
        K.CERVICAL_SCREENING,
        K.CHILDHOOD_IMMUNISATIONS,
        K.LONG_TERM_CONDITIONS,
        K.TRAVEL_HEALTH,
        K.WOUND_CARE,
        K.INDEPENDENT_PRESCRIBER,
    }
)
_ALLIED = frozenset({K.INDEPENDENT_PRESCRIBER, K.MINOR_ILLNESS, K.LONG_TERM_CONDITIONS})
# Which skills a profession can hold: the bank refuses, say, cervical screening for an
# optometrist, so a session's skill requirement means what it says.
SKILLS_FOR: dict[Profession, frozenset[Skill]] = {
    P.GP: frozenset(Skill),
    P.PRACTICE_NURSE: _NURSING,
    P.ADVANCED_NURSE_PRACTITIONER: _NURSING | {K.MINOR_SURGERY, K.MEDICATION_REVIEW},
    P.PHARMACIST: frozenset(
        {
            K.INDEPENDENT_PRESCRIBER,
            K.MINOR_ILLNESS,
            K.LONG_TERM_CONDITIONS,
            K.MEDICATION_REVIEW,
            K.TRAVEL_HEALTH,
        }
    ),
    P.PHARMACY_TECHNICIAN: frozenset({K.MEDICATION_REVIEW}),
    P.DENTIST: frozenset({K.MINOR_SURGERY}),
    P.DENTAL_NURSE: frozenset(),
    P.DENTAL_HYGIENIST: frozenset(),
    P.OPTOMETRIST: frozenset({K.INDEPENDENT_PRESCRIBER, K.CONTACT_LENS}),
    P.DISPENSING_OPTICIAN: frozenset({K.CONTACT_LENS}),
    P.PARAMEDIC: _ALLIED | {K.WOUND_CARE},
    P.PHYSIOTHERAPIST: _ALLIED,
    P.PHYSICIAN_ASSOCIATE: frozenset({K.MINOR_ILLNESS, K.LONG_TERM_CONDITIONS, K.WOUND_CARE}),
    P.OCCUPATIONAL_THERAPIST: frozenset({K.LONG_TERM_CONDITIONS}),
    P.DIETITIAN: frozenset({K.INDEPENDENT_PRESCRIBER, K.LONG_TERM_CONDITIONS}),
    P.PODIATRIST: frozenset({K.INDEPENDENT_PRESCRIBER, K.WOUND_CARE, K.MINOR_SURGERY}),
    P.MENTAL_HEALTH_PRACTITIONER: frozenset({K.INDEPENDENT_PRESCRIBER, K.LONG_TERM_CONDITIONS}),
}


def foreign_skills(profession: Profession, skills: frozenset[Skill]) -> list[Skill]:
    """The skills in ``skills`` that ``profession`` can't hold, in catalogue order."""
    return [k for k in Skill if k in skills and k not in SKILLS_FOR[profession]]


class Urgency(StrEnum):
    """How soon the organisation needs the session filled."""

    ROUTINE = "routine"
    URGENT = "urgent"


class Employment(StrEnum):
    """How a clinician works: for an employer, as a locum, or only through the bank."""

    EMPLOYED = "employed"
    LOCUM = "locum"
    BANK_ONLY = "bank_only"
