CREATE TABLE clinicians (
    id           uuid PRIMARY KEY,
    -- Personal data stays here; events carry only the id.
    display_name text NOT NULL,
    profession   text NOT NULL,
    home_sector  text NOT NULL,
    region       text NOT NULL,
    -- Only a SHA-256 of the sign-in token is kept, never the token.
    token_hash   text NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE availability (
    id           uuid PRIMARY KEY,
    clinician_id uuid NOT NULL REFERENCES clinicians (id),
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    -- A clinician's windows never overlap one another.
    EXCLUDE USING gist (clinician_id WITH =, tstzrange(starts_at, ends_at) WITH &&)
);

CREATE TABLE offers (
    id           uuid PRIMARY KEY,
    session_id   uuid NOT NULL,
    clinician_id uuid NOT NULL REFERENCES clinicians (id),
    organisation text NOT NULL,
    sector       text NOT NULL,
    profession   text NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    reasons      jsonb NOT NULL,
    -- offered -> accepted (by the clinician) -> booked (confirmed by matching)
    status       text NOT NULL DEFAULT 'offered',
    responded_at timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX offers_by_clinician ON offers (clinician_id, starts_at);
