-- Clinicians' timesheets for the sessions an organisation posted, as the bank sent them,
-- and the organisation's answer: approved, queried (with a reason), or approved
-- automatically once due_at passed without one. One a booking.
CREATE TABLE timesheets (
    id             uuid PRIMARY KEY,
    offer_id       uuid NOT NULL UNIQUE,
    session_id     uuid NOT NULL REFERENCES sessions (id),
    organisation   text NOT NULL REFERENCES organisations (ods_code),
    region         text NOT NULL,
    clinician_id   uuid NOT NULL,
    revision       integer NOT NULL CHECK (revision >= 1),
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz NOT NULL,
    break_minutes  integer NOT NULL CHECK (break_minutes >= 0),
    note           text,
    submitted_at   timestamptz NOT NULL,
    due_at         timestamptz NOT NULL,
    state          text NOT NULL DEFAULT 'submitted'
                   CHECK (state IN ('submitted', 'approved', 'queried')),
    answered_at    timestamptz,
    answered_by    text,
    automatic      boolean NOT NULL DEFAULT false,
    query_reason   text,
    CHECK (ended_at > started_at),
    CHECK (state <> 'queried' OR query_reason IS NOT NULL)
);
CREATE INDEX timesheets_by_organisation ON timesheets (organisation, started_at);
-- The auto-approval sweep's question: which are still waiting past their time.
CREATE INDEX timesheets_due ON timesheets (due_at) WHERE state = 'submitted';
