-- What the planner weighs: deprivation and place of a session, working-time flags of a
-- window, and the last reason a session was left without an offer.
ALTER TABLE sessions
    ADD COLUMN imd_decile     integer,
    ADD COLUMN place          text,
    ADD COLUMN unmatched_why  text;

-- The ledger of moves across sectors: filled cross-sector sessions and permanent
-- transfers. A session is counted once however often its fill is redelivered.
CREATE TABLE moves (
    id           uuid PRIMARY KEY,
    region       text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('session', 'transfer')),
    clinician_id uuid NOT NULL,
    from_sector  text NOT NULL,
    to_sector    text NOT NULL,
    place        text,
    hours        double precision NOT NULL CHECK (hours > 0),
    at           timestamptz NOT NULL,
    session_id   uuid UNIQUE,
    CHECK (from_sector <> to_sector)
);
CREATE INDEX moves_by_region ON moves (region, at);

-- The ICB's policy per region (absent: the defaults) and per sector cap.
CREATE TABLE policies (
    region      text PRIMARY KEY,
    home_first  boolean NOT NULL DEFAULT true,
    alert_share double precision NOT NULL DEFAULT 0.8 CHECK (alert_share > 0 AND alert_share <= 1),
    changed_at  timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE sector_caps (
    region  text NOT NULL,
    sector  text NOT NULL,
    cap_pct double precision NOT NULL CHECK (cap_pct >= 0 AND cap_pct <= 100),
    PRIMARY KEY (region, sector)
);

-- Sectors currently past their alert share, so an alert is raised once per crossing.
CREATE TABLE drain_alerts (
    region    text NOT NULL,
    sector    text NOT NULL,
    raised_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (region, sector)
);

-- Re-plans asked for by events, debounced per region: a burst of events (a batch of
-- sessions) is planned together once, when the first request falls due. A null span
-- asks for the whole region. Kept in the database so a crash loses no request.
CREATE TABLE plan_requests (
    region     text PRIMARY KEY,
    span_start timestamptz,
    span_end   timestamptz,
    due_at     timestamptz NOT NULL
);
