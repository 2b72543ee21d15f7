"""The ICB catalogue: England's 42 ICBs, keyed by ODS code, named as people say it."""

from __future__ import annotations

import random
import re
import string

from shared.catalogue import REGION_PATTERN
from shared.regions import ICB_CHOICES, ICBS, Icb, icb, icb_name, region_label


def test_the_42_icbs_each_under_a_unique_three_character_code() -> None:
    assert len(ICBS) == 42
    assert len({i.code for i in ICBS.values()}) == 42
    assert len({i.name for i in ICBS.values()}) == 42
    for code, board in ICBS.items():
        assert board.code == code
        assert re.fullmatch(REGION_PATTERN, code), code
        assert board.official_name == f"NHS {board.name} Integrated Care Board"


def test_examples_are_right() -> None:
    """A few boards checked by hand against NHS England's and ODS's lists."""
    assert icb_name("QOP") == "Greater Manchester"
    assert icb("QOP") == Icb(
        "QOP",
        "Greater Manchester",
        "NHS Greater Manchester Integrated Care Board",
        "North West",
    )
    assert icb_name("QE1") == "Lancashire and South Cumbria"
    assert icb_name("QWO") == "West Yorkshire"
    assert icb_name("QMJ") == "North Central London"
    assert icb_name("QH8") == "Mid and South Essex"
    assert icb_name("QXU") == "Surrey Heartlands"
    # Every one of NHS England's seven regions has its ICBs, London five of them.
    regions = {b.nhs_region for b in ICBS.values()}
    assert len(regions) == 7
    assert sum(b.nhs_region == "London" for b in ICBS.values()) == 5


def test_unknown_codes_are_still_regions_shown_by_their_code() -> None:
    """Codes stay the key: a code the catalogue does not know (a test's random one, an
    ICB made after the list) has no name and is shown as itself."""
    rng = random.Random(12)
    alphabet = string.ascii_uppercase + string.digits
    unknown = {"".join(rng.choices(alphabet, k=3)) for _ in range(200)} - set(ICBS)
    for code in unknown:
        assert icb_name(code) is None
        assert icb(code) is None
        assert region_label(code) == code
    assert region_label("QOP") == "Greater Manchester"


def test_the_chooser_lists_every_icb_once_in_name_order() -> None:
    names = [b.name for b in ICB_CHOICES]
    assert names == sorted(names, key=str.casefold)
    assert [b.code for b in ICB_CHOICES] == list(ICBS)
    assert ICB_CHOICES[0].name.startswith("Bath")
