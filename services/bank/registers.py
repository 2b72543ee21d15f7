"""Professional registers and the shape of their numbers. No I/O.

Only the format is checked: a live check against the GMC, NMC, GPhC, GDC, GOC or HCPC
registers needs their services, which are out of reach offline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from shared.catalogue import Profession


class Register(StrEnum):
    """The UK regulators whose registers clinicians in the bank are on."""

    GMC = "GMC"
    NMC = "NMC"
    GPHC = "GPhC"
    GDC = "GDC"
    GOC = "GOC"
    HCPC = "HCPC"


@dataclass(frozen=True, slots=True)
class NumberFormat:
    """A register number's pattern and how to describe it to a person."""

    pattern: str
    example: str
    words: str


_GPHC_PHARMACIST = NumberFormat(r"2\d{6}", "2012345", "7 digits starting with 2")
_GPHC_TECHNICIAN = NumberFormat(r"5\d{6}", "5012345", "7 digits starting with 5")
_GMC = NumberFormat(r"\d{7}", "1234567", "7 digits")
_NMC = NumberFormat(r"\d{2}[A-Z]\d{4}[A-Z]", "01A2345N", "2 digits, a letter, 4 digits, a letter")
_GDC = NumberFormat(r"\d{1,6}", "123456", "up to 6 digits")
_GOC = NumberFormat(r"(01|D)-\d{4,6}", "01-12345", "01- or D- then digits")


def _hcpc(prefix: str) -> NumberFormat:
    return NumberFormat(rf"{prefix}\d{{1,6}}", f"{prefix}123456", f"{prefix} and up to 6 digits")


P = Profession
FORMATS: dict[Profession, dict[Register, NumberFormat]] = {
    P.GP: {Register.GMC: _GMC},
    P.PHYSICIAN_ASSOCIATE: {Register.GMC: _GMC},
    P.PRACTICE_NURSE: {Register.NMC: _NMC},
    P.ADVANCED_NURSE_PRACTITIONER: {Register.NMC: _NMC},
    P.PHARMACIST: {Register.GPHC: _GPHC_PHARMACIST},
    P.PHARMACY_TECHNICIAN: {Register.GPHC: _GPHC_TECHNICIAN},
    P.DENTIST: {Register.GDC: _GDC},
    P.DENTAL_NURSE: {Register.GDC: _GDC},
    P.DENTAL_HYGIENIST: {Register.GDC: _GDC},
    P.OPTOMETRIST: {Register.GOC: _GOC},
    P.DISPENSING_OPTICIAN: {Register.GOC: _GOC},
    P.PARAMEDIC: {Register.HCPC: _hcpc("PA")},
    P.PHYSIOTHERAPIST: {Register.HCPC: _hcpc("PH")},
    P.OCCUPATIONAL_THERAPIST: {Register.HCPC: _hcpc("OT")},
    P.DIETITIAN: {Register.HCPC: _hcpc("DT")},
    P.PODIATRIST: {Register.HCPC: _hcpc("CH")},
    # Mental health practitioners come from several professions and registers.
    P.MENTAL_HEALTH_PRACTITIONER: {
        Register.NMC: _NMC,
        Register.HCPC: NumberFormat(
            r"(PA|PH|OT|DT|CH|AS|CS|PYL)\d{1,6}", "OT123456", "an HCPC number"
        ),
    },
}


def check_registration(profession: Profession, register: Register, number: str) -> str | None:
    """Why ``number`` on ``register`` can't be right for ``profession``; None if it can."""
    allowed = FORMATS[profession]
    if register not in allowed:
        names = " or ".join(r.value for r in allowed)
        return f"a {profession.value.replace('_', ' ')} is registered with the {names}"
    fmt = allowed[register]
    if not re.fullmatch(fmt.pattern, number.strip().upper()):
        return f"a {register.value} number for this profession is {fmt.words}, e.g. {fmt.example}"
    return None
