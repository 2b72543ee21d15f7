-- Issue 4: the full clinician record, invites and sign-in sessions, weekly patterns.
ALTER TABLE clinicians
    ADD COLUMN email              text,
    ADD COLUMN phone              text,
    ADD COLUMN register           text,
    ADD COLUMN register_number    text,
    ADD COLUMN home_organisation  text,
    ADD COLUMN employment         text NOT NULL DEFAULT 'bank_only',
    ADD COLUMN latitude           double precision NOT NULL DEFAULT 53.48,
    ADD COLUMN longitude          double precision NOT NULL DEFAULT -2.24,
    ADD COLUMN travel_km          double precision NOT NULL DEFAULT 30 CHECK (travel_km > 0),
    ADD COLUMN wtr_opt_out        boolean NOT NULL DEFAULT false,
    ADD COLUMN self_employed      boolean NOT NULL DEFAULT false,
    ADD COLUMN late_cancellations integer NOT NULL DEFAULT 0;
ALTER TABLE clinicians ALTER COLUMN token_hash DROP NOT NULL;

-- Sign-in: a one-time invite code becomes a session token; both kept only as hashes.
CREATE TABLE invites (
    code_hash    text PRIMARY KEY,
    clinician_id uuid NOT NULL REFERENCES clinicians (id),
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz
);
CREATE TABLE auth_sessions (
    token_hash   text PRIMARY KEY,
    clinician_id uuid NOT NULL REFERENCES clinicians (id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL
);
INSERT INTO auth_sessions (token_hash, clinician_id, expires_at)
    SELECT token_hash, id, now() + interval '365 days' FROM clinicians WHERE token_hash IS NOT NULL;

-- Weekly patterns in London local time, with dates taken out.
CREATE TABLE patterns (
    id           uuid PRIMARY KEY,
    clinician_id uuid NOT NULL REFERENCES clinicians (id),
    weekday      smallint NOT NULL CHECK (weekday BETWEEN 0 AND 6),
    start_time   time NOT NULL,
    end_time     time NOT NULL CHECK (end_time > start_time),
    valid_from   date NOT NULL,
    valid_until  date,
    withdrawn_at timestamptz
);
CREATE TABLE pattern_exceptions (
    pattern_id uuid NOT NULL REFERENCES patterns (id),
    on_date    date NOT NULL,
    PRIMARY KEY (pattern_id, on_date)
);

-- Windows can be withdrawn (kept for history); only live ones may not overlap.
ALTER TABLE availability
    ADD COLUMN pattern_id   uuid REFERENCES patterns (id),
    ADD COLUMN withdrawn_at timestamptz;
DO $$
DECLARE name text;
BEGIN
    SELECT conname INTO name FROM pg_constraint
     WHERE conrelid = 'availability'::regclass AND contype = 'x';
    EXECUTE format('ALTER TABLE availability DROP CONSTRAINT %I', name);
END $$;
ALTER TABLE availability ADD CONSTRAINT availability_no_overlap
    EXCLUDE USING gist (clinician_id WITH =, tstzrange(starts_at, ends_at) WITH &&)
    WHERE (withdrawn_at IS NULL);

ALTER TABLE offers
    ADD COLUMN site_name           text NOT NULL DEFAULT '',
    ADD COLUMN latitude            double precision,
    ADD COLUMN longitude           double precision,
    ADD COLUMN distance_km         double precision,
    ADD COLUMN rate_pence_per_hour integer,
    ADD COLUMN urgency             text NOT NULL DEFAULT 'routine';
