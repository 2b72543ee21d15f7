CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    region       text NOT NULL,
    organisation text NOT NULL,
    sector       text NOT NULL,
    profession   text NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'open',
    CHECK (ends_at > starts_at)
);
CREATE INDEX sessions_open ON sessions (region, starts_at) WHERE status = 'open';

CREATE TABLE availability (
    id           uuid PRIMARY KEY,
    clinician_id uuid NOT NULL,
    region       text NOT NULL,
    profession   text NOT NULL,
    home_sector  text NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    CHECK (ends_at > starts_at)
);
CREATE INDEX availability_by_region ON availability (region, ends_at);

CREATE TABLE offers (
    id                    uuid PRIMARY KEY,
    session_id            uuid NOT NULL REFERENCES sessions (id),
    clinician_id          uuid NOT NULL,
    clinician_home_sector text NOT NULL,
    region                text NOT NULL,
    starts_at             timestamptz NOT NULL,
    ends_at               timestamptz NOT NULL,
    expires_at            timestamptz NOT NULL,
    -- offered -> accepted, or lost (someone else got there first)
    status                text NOT NULL DEFAULT 'offered',
    reasons               jsonb NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    -- A session is on offer to one clinician at a time.
    UNIQUE (session_id, clinician_id)
);
CREATE INDEX offers_live ON offers (region, expires_at) WHERE status = 'offered';

-- The database, not the code, makes double-booking impossible: one booking per
-- session, and no two bookings of one clinician that overlap in time.
CREATE TABLE bookings (
    session_id   uuid PRIMARY KEY REFERENCES sessions (id),
    offer_id     uuid NOT NULL REFERENCES offers (id),
    clinician_id uuid NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    booked_at    timestamptz NOT NULL DEFAULT now(),
    EXCLUDE USING gist (clinician_id WITH =, tstzrange(starts_at, ends_at) WITH &&)
);
