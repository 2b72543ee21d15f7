-- A clinician's timesheet for a worked booking: one a booking (a correction after a query
-- is the same row, one revision later), with the practice's last answer to it.
CREATE TABLE timesheets (
    id             uuid PRIMARY KEY,
    offer_id       uuid NOT NULL UNIQUE REFERENCES offers (id),
    clinician_id   uuid NOT NULL REFERENCES clinicians (id),
    session_id     uuid NOT NULL,
    revision       integer NOT NULL DEFAULT 1 CHECK (revision >= 1),
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz NOT NULL,
    break_minutes  integer NOT NULL CHECK (break_minutes >= 0),
    note           text,
    -- submitted -> approved | queried; queried -> submitted (corrected) | approved
    state          text NOT NULL DEFAULT 'submitted'
                   CHECK (state IN ('submitted', 'approved', 'queried')),
    submitted_at   timestamptz NOT NULL,
    answered_at    timestamptz,
    answered_by    text,
    automatic      boolean NOT NULL DEFAULT false,
    query_reason   text,
    CHECK (ended_at > started_at),
    CHECK (break_minutes * interval '1 minute' < ended_at - started_at)
);
CREATE INDEX timesheets_by_clinician ON timesheets (clinician_id, started_at);
