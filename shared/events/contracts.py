"""One pydantic model per event's ``data``; each field says what it means.

Events carry pseudonymous ids and only what other services need: names, e-mail
addresses and phone numbers never leave the service that holds them.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from shared.catalogue import Employment, OdsCode, Profession, Role, Sector, Skill, Urgency


class _EventData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Timed(_EventData):
    starts_at: AwareDatetime = Field(description="Start instant, with its UTC offset.")
    ends_at: AwareDatetime = Field(description="End instant, with its UTC offset; after start.")

    @model_validator(mode="after")
    def _ends_after_start(self) -> _Timed:
        if self.ends_at <= self.starts_at:
            msg = "ends_at must be after starts_at"
            raise ValueError(msg)
        return self


class _SessionState(_Timed):
    """Everything matching needs to know of a session, as it now stands."""

    session_id: uuid.UUID = Field(description="Fairshare's id for the session.")
    organisation: OdsCode = Field(description="ODS code of the organisation where it is worked.")
    posted_by: OdsCode = Field(
        description="ODS code of the organisation that posted it (a PCN may post for a member)."
    )
    site_name: str = Field(description="Name of the organisation where it is worked.")
    sector: Sector = Field(description="Sector of the organisation where it is worked.")
    role: Role = Field(description="Role the session needs; the catalogue says who may fill it.")
    skills: list[Skill] = Field(description="Skills the clinician must hold, possibly none.")
    rate_pence_per_hour: int | None = Field(
        ge=0, description="Offered pay in pence per hour, if stated."
    )
    urgency: Urgency = Field(description="How soon the organisation needs it filled.")
    latitude: float = Field(ge=-90, le=90, description="Where the session is worked (WGS84).")
    longitude: float = Field(ge=-180, le=180, description="Where the session is worked (WGS84).")
    imd_decile: int | None = Field(
        default=None,
        ge=1,
        le=10,
        description="IMD decile of the organisation's area, 1 most deprived; matching fills"
        " deprived areas first. Absent when the organisation's area is not recorded.",
    )
    place: str | None = Field(
        default=None, description="The ICB place the organisation belongs to, if recorded."
    )
    pcn: OdsCode | None = Field(
        default=None,
        description="ODS code of the primary care network (PCN) the organisation is a member"
        " of; absent when it is no PCN's member or the membership is not recorded.",
    )


class SessionPosted(_SessionState):
    """A practice posted a vacant session that the bank may fill (v1)."""


class SessionAmended(_SessionState):
    """The organisation changed a session (v1); the fields are its new state."""

    released_clinician_id: uuid.UUID | None = Field(
        description="The clinician whose booking the change released (time or role changed on"
        " a filled session), if any; the session is open again."
    )


class SessionCancelled(_Timed):
    """The organisation cancelled a session (v1)."""

    session_id: uuid.UUID = Field(description="The session cancelled.")
    organisation: OdsCode = Field(description="ODS code of the organisation where it is worked.")
    sector: Sector = Field(description="Sector of the session.")
    reason: str | None = Field(description="Why; required when a clinician was booked.")
    late: bool = Field(description="Cancelled within 48 hours of the start (the ICB counts these).")
    released_clinician_id: uuid.UUID | None = Field(
        description="The booked clinician, who must be told, if the session was filled."
    )


class SessionUnfilled(_Timed):
    """A session's start passed and nobody was booked (v1)."""

    session_id: uuid.UUID = Field(description="The session that went unfilled.")
    organisation: OdsCode = Field(description="ODS code of the organisation where it is worked.")
    sector: Sector = Field(description="Sector of the session.")
    reason: str = Field(description="Why, as far as the vacancies service knows.")
    why: str | None = Field(
        default=None,
        description="Matching's last word on why it had no offer: no_eligible_clinician,"
        " held_by_drain_guard, declined_by_all or clinicians_taken; absent if it never said.",
    )


class CancellationReason(StrEnum):
    """Why a clinician gave a booking up, as a category anyone told may see.

    Coarse on purpose: enough for the practice to plan and the ICB to count, nothing
    about the person. Whatever more the clinician writes stays in the bank unless they
    choose to share it with the practice (``BookingCancelled.reason_text``).
    """

    ILLNESS = "illness"
    """Unwell, or must stay away (e.g. 48 hours after sickness and diarrhoea)."""
    FAMILY_EMERGENCY = "family_emergency"
    """A family or caring emergency: a dependant taken ill, childcare fallen through."""
    TRANSPORT = "transport"
    """Travel: a cancelled train, a broken-down car, roads closed."""
    MAIN_EMPLOYER = "main_employer"
    """Called in by their main (substantive) employer: a rota gap, on call."""
    ANOTHER_COMMITMENT = "another_commitment"
    """Another commitment: training, an appointment, a clash found later."""
    OTHER = "other"
    """None of these."""


CANCELLATION_REASON_WORDS: dict[CancellationReason, str] = {
    CancellationReason.ILLNESS: "Illness",
    CancellationReason.FAMILY_EMERGENCY: "Family or caring emergency",
    CancellationReason.TRANSPORT: "Travel or transport problem",
    CancellationReason.MAIN_EMPLOYER: "Needed by their main employer",
    CancellationReason.ANOTHER_COMMITMENT: "Another commitment",
    CancellationReason.OTHER: "Other reason",
}
"""Each category in plain words, as a practice reads it."""

REASON_TEXT_MAX = 500
"""The most characters of their own words a clinician can give with a cancellation."""


class BookingCancelled(_EventData):
    """A clinician cancelled a booking they held (v1); the session needs filling again.

    Still v1: ``reason_category`` and ``reason_text`` came later, optional with defaults,
    so events published before them still validate. (The catalogue holds one version a
    type and consumers refuse any other: a bump would dead-letter v1 events in flight.)
    """

    offer_id: uuid.UUID = Field(description="The accepted offer that made the booking.")
    session_id: uuid.UUID = Field(description="The session the booking was for.")
    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the clinician cancelling.")
    reason: str | None = Field(
        default=None,
        description="No longer set. Events from before reason categories carried the"
        " clinician's own words here, whether or not they wanted them passed on: consumers"
        " ignore it (the words travel only as reason_text, when the clinician chose so).",
    )
    late: bool = Field(description="Cancelled within 48 hours of the start (counted for the ICB).")
    reason_category: CancellationReason = Field(
        default=CancellationReason.OTHER,
        description="Why, as a category: illness, family_emergency, transport, main_employer"
        " (called in by their main employer), another_commitment or other. Always set by"
        " the bank; an event from before categories reads as other.",
    )
    reason_text: str | None = Field(
        default=None,
        max_length=REASON_TEXT_MAX,
        description="The clinician's own words, only when they chose to share them with the"
        " practice (at most 500 characters); absent otherwise. Only vacancies reads it, to"
        " put it in the practice's callback; nothing logs it.",
    )


class AvailabilityOffered(_Timed):
    """A clinician offered the bank a window of time they are free to work (v1)."""

    availability_id: uuid.UUID = Field(description="Bank's id for this window.")
    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the clinician.")
    profession: Profession = Field(description="The clinician's profession.")
    home_sector: Sector = Field(description="Sector the clinician normally works in.")
    skills: list[Skill] = Field(description="Skills the clinician holds.")
    latitude: float = Field(ge=-90, le=90, description="The clinician's base (WGS84), coarse.")
    longitude: float = Field(ge=-180, le=180, description="The clinician's base (WGS84), coarse.")
    travel_km: float = Field(gt=0, le=500, description="How far they will travel, straight line.")
    employment: Employment = Field(description="Employed, locum or bank only.")
    wtr_opt_out: bool = Field(description="Opted out of the 48-hour week (Working Time Regs).")
    self_employed: bool = Field(
        description="Self-employed: fatigue limits are warnings they may override, not blocks."
    )


class SessionOffered(_Timed):
    """Matching offered a session to one clinician, until the offer expires (v1)."""

    offer_id: uuid.UUID = Field(description="Id of the offer; the clinician accepts this.")
    session_id: uuid.UUID = Field(description="The session on offer.")
    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the clinician offered it.")
    organisation: OdsCode = Field(description="ODS code of the organisation where it is worked.")
    sector: Sector = Field(description="Sector of the session.")
    role: Role = Field(description="Role the session needs.")
    site_name: str = Field(description="Name of the organisation where it is worked.")
    latitude: float = Field(ge=-90, le=90, description="Where it is worked (WGS84).")
    longitude: float = Field(ge=-180, le=180, description="Where it is worked (WGS84).")
    rate_pence_per_hour: int | None = Field(ge=0, description="Offered pay, pence per hour.")
    urgency: Urgency = Field(description="How soon the organisation needs it filled.")
    expires_at: AwareDatetime = Field(description="After this instant the offer can't be taken.")
    reasons: list[str] = Field(description="Plain-words reasons this clinician was chosen.")
    warnings: list[str] = Field(
        default_factory=list,
        description="Working-time limits this would pass, for a self-employed clinician to weigh.",
    )


class OfferAccepted(_EventData):
    """A clinician accepted an offer in the bank (v1); matching confirms or refuses it."""

    offer_id: uuid.UUID = Field(description="The offer accepted.")
    session_id: uuid.UUID = Field(description="The session it is for.")
    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the clinician accepting.")


class OfferRefused(_EventData):
    """Matching could not honour an acceptance (v1); the clinician is not booked."""

    offer_id: uuid.UUID = Field(description="The offer whose acceptance was refused.")
    session_id: uuid.UUID = Field(description="The session it was for.")
    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the clinician refused.")
    reason: str = Field(description="Why, in plain words, to show the clinician.")


class AvailabilityWithdrawn(_EventData):
    """A clinician took back a window of time they had offered (v1)."""

    availability_id: uuid.UUID = Field(description="The window withdrawn.")
    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the clinician.")


class OfferDeclined(_EventData):
    """A clinician said no to an offer (v1); matching offers the session to someone else."""

    offer_id: uuid.UUID = Field(description="The offer declined.")
    session_id: uuid.UUID = Field(description="The session it was for.")
    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the clinician declining.")


class ClinicianTransferred(_EventData):
    """A clinician changed home sector or employer (v1): a permanent move the ICB counts."""

    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the clinician.")
    profession: Profession = Field(description="Their profession.")
    from_sector: Sector = Field(description="Home sector before the move.")
    to_sector: Sector = Field(description="Home sector after the move.")
    from_organisation: OdsCode | None = Field(description="Employer before, if any.")
    to_organisation: OdsCode | None = Field(description="Employer after, if any.")


class SessionFilled(_Timed):
    """Matching booked a clinician into a session (v1): the session is filled."""

    session_id: uuid.UUID = Field(description="The session filled.")
    offer_id: uuid.UUID = Field(description="The accepted offer that filled it.")
    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the booked clinician.")
    organisation: OdsCode = Field(description="ODS code of the organisation where it is worked.")
    sector: Sector = Field(description="Sector of the session.")
    clinician_home_sector: Sector = Field(
        description="Home sector of the clinician; differs from `sector` on a cross-sector move."
    )


class SessionUnmatched(_EventData):
    """Matching left a session without an offer, for the reason given (v1).

    Published when the reason changes, not on every re-plan.
    """

    session_id: uuid.UUID = Field(description="The session without an offer.")
    organisation: OdsCode = Field(description="ODS code of the organisation where it is worked.")
    why: str = Field(
        description="no_eligible_clinician, held_by_drain_guard, declined_by_all or"
        " clinicians_taken."
    )
    detail: str = Field(description="The reason in plain words.")


class MoveRecorded(_EventData):
    """A clinician worked outside their home sector, or moved for good (v1): the ledger."""

    move_id: uuid.UUID = Field(description="Id of the ledger entry.")
    kind: str = Field(description="session (a filled cross-sector session) or transfer.")
    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the clinician who moved.")
    from_sector: Sector = Field(description="The sector the hours moved out of.")
    to_sector: Sector = Field(description="The sector the hours moved into.")
    place: str | None = Field(description="ICB place of the receiving organisation, if known.")
    hours: float = Field(gt=0, description="Hours moved (a transfer counts as the policy says).")
    at: AwareDatetime = Field(description="When the move counts: the session's start.")
    session_id: uuid.UUID | None = Field(description="The session, for a session move.")


class MoveReversed(_EventData):
    """A counted move no longer stands (v1): its booking was released, so its hours come
    back to the sector they had moved out of. The fields repeat the move's."""

    move_id: uuid.UUID = Field(description="Id of the ledger entry reversed.")
    kind: str = Field(description="session (a filled cross-sector session) or transfer.")
    clinician_id: uuid.UUID = Field(description="Pseudonymous id of the clinician who moved.")
    from_sector: Sector = Field(description="The sector the hours had moved out of.")
    to_sector: Sector = Field(description="The sector the hours had moved into.")
    hours: float = Field(gt=0, description="Hours the move had counted, now given back.")
    at: AwareDatetime = Field(description="When the move counted: the session's start.")
    session_id: uuid.UUID | None = Field(description="The session, for a session move.")
    reason: str = Field(
        description="Why it was reversed: session_amended, session_cancelled, session_unfilled,"
        " booking_cancelled, or repaired (a booking found released when the ledger was repaired)."
    )


class SectorDrainAlert(_EventData):
    """A sector's net outflow passed the alert share of its cap (v1)."""

    sector: Sector = Field(description="The sector being drained.")
    net_out_hours: float = Field(description="Hours moved out minus moved in over the window.")
    offered_hours: float = Field(description="Hours its clinicians offered over the window.")
    cap_pct: float = Field(description="The cap, percent of offered hours.")
    used_pct: float = Field(description="Net outflow as a percentage of the cap.")
    window_days: int = Field(description="Length of the rolling window, days.")


class SectorDrainCleared(SectorDrainAlert):
    """A sector with a standing drain alert fell back under the alert share (v1)."""


class PolicyChanged(_EventData):
    """The ICB changed a region's drain-guard policy (v1); the fields are the new policy."""

    cap_pct: dict[Sector, float] = Field(
        description="Net outflow cap per sector, percent of the hours it offered."
    )
    home_first: bool = Field(description="Whether home-sector sessions come first.")
    alert_share: float = Field(description="Share of a cap at which a drain alert is raised.")
    changed_by: str = Field(description="Who made the change (the operator's name).")
    window_days: int = Field(
        default=28,
        gt=0,
        description="Length of the rolling window, days: net outflow and the cap's base (hours"
        " offered) are both counted over the window_days before now and the window_days after.",
    )
    hold_beyond_h: float | None = Field(
        default=None,
        gt=0,
        description="Sessions are offered only once they start within this many hours;"
        " those further ahead wait, and are planned together at the daily planning round"
        " (18:00 UK time) once they come within it. Null: no such hold.",
    )
    cross_sector_within_h: float | None = Field(
        default=None,
        gt=0,
        description="Moves across sectors are offered only for sessions starting within"
        " this many hours, so a clinician's own sector comes first until then. Null: no"
        " such limit.",
    )
