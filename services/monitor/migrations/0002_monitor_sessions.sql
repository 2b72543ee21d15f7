-- Which stages each session has reached, so a session re-offered after an offer
-- lapsed, or filled again after a booking was cancelled, counts once per stage:
-- the counters count sessions, not events. (The inbox already drops redeliveries.)
CREATE TABLE session_stages (
    session_id uuid NOT NULL,
    stage      text NOT NULL CHECK (stage IN ('posted', 'offered', 'filled')),
    PRIMARY KEY (session_id, stage)
);

-- The newest events, for the page's "latest activity" list; pruned as it grows.
CREATE TABLE recent_events (
    event_id    uuid PRIMARY KEY,
    stage       text NOT NULL CHECK (stage IN ('posted', 'offered', 'filled')),
    region      text NOT NULL,
    sector      text NOT NULL,
    occurred_at timestamptz NOT NULL
);
CREATE INDEX recent_events_newest ON recent_events (occurred_at DESC);
