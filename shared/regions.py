"""England's 42 integrated care boards: the names behind the region codes.

A region is keyed everywhere by its ICB's three-character ODS code (``QOP``), and the
code stays the key: this catalogue only puts a name to it. Any code matching
``shared.catalogue.REGION_PATTERN`` is a valid region whether or not it is listed
here (tests use random codes; a deployment may serve an ICB made after this list),
so ``icb_name`` answers ``None`` for an unknown code and ``region_label`` falls back
to the code itself.

Source, and which list this is:

- The 42 ICBs and their legal names: NHS England, "Integrated care boards in
  England" (https://www.england.nhs.uk/publication/integrated-care-boards-in-england/):
  the statutory list of the Integrated Care Boards (Establishment) Order 2022, in force
  from 1 July 2022, as varied from 1 April 2023 (areas of Surrey Heartlands and Sussex
  changed; no name or code changed).
- Their ODS codes: NHS Digital's Organisation Data Service kept the 42 codes of the
  sustainability and transformation partnerships for the ICBs ("ICB reconfiguration
  guidance", https://digital.nhs.uk/services/organisation-data-service/upcoming-code-changes/reconfiguration-toolkit/icb-reconfiguration-guidance);
  the same codes are the ``ICB22CDH`` column of ONS's "Integrated Care Boards (July
  2022) Names and Codes in England". Codes, legal names and NHS England regions were
  taken from the public copy of that list in github.com/rcpch/rcpch-nhs-organisations
  (``rcpch_nhs_organisations/hospitals/constants/integrated_care_boards.py``, commit
  af9b22c, 31 August 2024; all 42 compared by script) and cross-checked against a
  second public ICB22CD/ICB22CDH/ICB22NM table (24 of the 42 codes, all agreeing).

So this is the list of the 42 ICBs as they stood from 1 July 2022 to 31 March 2026.
The 2025-26 reorganisation changed it: from 1 April 2026 six new ICBs replaced
twelve of these (among them Essex; Norfolk and Suffolk; Surrey and Sussex; Thames
Valley; North West and North Central London), with new ODS codes, and one boundary
moved (ODS "ICB mergers 2026 change summary"; NHSBSA open data portal news, 10 April
2026); more mergers are planned for 1 April 2027. Those new codes are not listed
here: a region keyed by one works as any unknown code does, shown by its code, until
its name is added. Regions already keyed by a code listed here keep it; nothing is
renamed under anyone.

"Name as people say it" is the legal name without "NHS" and "Integrated Care Board",
as the ICBs call themselves ("NHS Greater Manchester" → "Greater Manchester").
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Icb:
    """One integrated care board: its ODS code (the region key), the name people use,
    its legal name and the NHS England region it belongs to."""

    code: str
    name: str
    official_name: str
    nhs_region: str


# NHS England's seven regions, as the ICBs are grouped under them.
LONDON = "London"
SOUTH_WEST = "South West"
SOUTH_EAST = "South East"
MIDLANDS = "Midlands"
EAST = "East of England"
NORTH_WEST = "North West"
NORTH_EAST_YORKSHIRE = "North East and Yorkshire"

_ROWS: tuple[tuple[str, str, str], ...] = (
    # (ODS code, name as people say it, NHS England region); the legal name is
    # "NHS <name> Integrated Care Board" for every one of them.
    ("QOX", "Bath and North East Somerset, Swindon and Wiltshire", SOUTH_WEST),
    ("QHG", "Bedfordshire, Luton and Milton Keynes", EAST),
    ("QHL", "Birmingham and Solihull", MIDLANDS),
    ("QUA", "Black Country", MIDLANDS),
    ("QUY", "Bristol, North Somerset and South Gloucestershire", SOUTH_WEST),
    ("QU9", "Buckinghamshire, Oxfordshire and Berkshire West", SOUTH_EAST),
    ("QUE", "Cambridgeshire and Peterborough", EAST),
    ("QYG", "Cheshire and Merseyside", NORTH_WEST),
    ("QT6", "Cornwall and the Isles of Scilly", SOUTH_WEST),
    ("QWU", "Coventry and Warwickshire", MIDLANDS),
    ("QJ2", "Derby and Derbyshire", MIDLANDS),
    ("QJK", "Devon", SOUTH_WEST),
    ("QVV", "Dorset", SOUTH_WEST),
    ("QNQ", "Frimley", SOUTH_EAST),
    ("QR1", "Gloucestershire", SOUTH_WEST),
    ("QOP", "Greater Manchester", NORTH_WEST),
    ("QRL", "Hampshire and Isle of Wight", SOUTH_EAST),
    ("QGH", "Herefordshire and Worcestershire", MIDLANDS),
    ("QM7", "Hertfordshire and West Essex", EAST),
    ("QOQ", "Humber and North Yorkshire", NORTH_EAST_YORKSHIRE),
    ("QKS", "Kent and Medway", SOUTH_EAST),
    ("QE1", "Lancashire and South Cumbria", NORTH_WEST),
    ("QK1", "Leicester, Leicestershire and Rutland", MIDLANDS),
    ("QJM", "Lincolnshire", MIDLANDS),
    ("QH8", "Mid and South Essex", EAST),
    ("QMM", "Norfolk and Waveney", EAST),
    ("QMJ", "North Central London", LONDON),
    ("QHM", "North East and North Cumbria", NORTH_EAST_YORKSHIRE),
    ("QMF", "North East London", LONDON),
    ("QRV", "North West London", LONDON),
    ("QPM", "Northamptonshire", MIDLANDS),
    ("QT1", "Nottingham and Nottinghamshire", MIDLANDS),
    ("QOC", "Shropshire, Telford and Wrekin", MIDLANDS),
    ("QSL", "Somerset", SOUTH_WEST),
    ("QKK", "South East London", LONDON),
    ("QWE", "South West London", LONDON),
    ("QF7", "South Yorkshire", NORTH_EAST_YORKSHIRE),
    ("QNC", "Staffordshire and Stoke-on-Trent", MIDLANDS),
    ("QJG", "Suffolk and North East Essex", EAST),
    ("QXU", "Surrey Heartlands", SOUTH_EAST),
    ("QNX", "Sussex", SOUTH_EAST),
    ("QWO", "West Yorkshire", NORTH_EAST_YORKSHIRE),
)

# Every ICB by its ODS code, in the order of their names.
ICBS: dict[str, Icb] = {
    code: Icb(code, name, f"NHS {name} Integrated Care Board", nhs_region)
    for code, name, nhs_region in sorted(_ROWS, key=lambda row: row[1].casefold())
}

# The ICBs in the order a chooser lists them: alphabetical by the name people use.
ICB_CHOICES: tuple[Icb, ...] = tuple(ICBS.values())


def icb(code: str) -> Icb | None:
    """The ICB whose ODS code is ``code``, or None for a code not in the catalogue."""
    return ICBS.get(code)


def icb_name(code: str) -> str | None:
    """The name people use for the ICB ``code`` ("Greater Manchester" for ``QOP``), or
    None when the code is not in the catalogue (any three-character code is a valid
    region: the name is a nicety)."""
    found = ICBS.get(code)
    return found.name if found else None


def region_label(code: str) -> str:
    """How to show a region: its ICB's name, or the code itself when it has none."""
    return icb_name(code) or code
