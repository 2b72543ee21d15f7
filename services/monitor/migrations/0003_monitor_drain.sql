-- The ICB's drain picture, from matching's events: the hours moved between sectors,
-- the latest drain alert of each sector and each region's latest policy.

-- One row per move of matching's ledger, keyed by its id, so a move published twice
-- counts once (the inbox already drops a redelivered event). Kept whole rather than
-- summed per day, so the rolling window is exact; a region adds a few rows a day.
CREATE TABLE drain_moves (
    move_id     uuid PRIMARY KEY,
    region      text NOT NULL,
    kind        text NOT NULL,
    from_sector text NOT NULL,
    to_sector   text NOT NULL,
    hours       double precision NOT NULL CHECK (hours > 0),
    at          timestamptz NOT NULL
);
CREATE INDEX drain_moves_window ON drain_moves (region, at);

-- The latest `sector.drain_alert` of each sector; an older one arriving late is ignored.
CREATE TABLE drain_alerts (
    region        text NOT NULL,
    sector        text NOT NULL,
    event_id      uuid NOT NULL,
    net_out_hours double precision NOT NULL,
    offered_hours double precision NOT NULL,
    cap_pct       double precision NOT NULL,
    used_pct      double precision NOT NULL,
    window_days   integer NOT NULL,
    raised_at     timestamptz NOT NULL,
    PRIMARY KEY (region, sector)
);

-- The latest `policy.changed` of each region (who changed it is not kept: the monitor
-- shows figures, not people).
CREATE TABLE drain_policies (
    region      text PRIMARY KEY,
    event_id    uuid NOT NULL,
    cap_pct     jsonb NOT NULL,  -- {"community_pharmacy": 10.0, ...}
    home_first  boolean NOT NULL,
    alert_share double precision NOT NULL,
    changed_at  timestamptz NOT NULL
);
