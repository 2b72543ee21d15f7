-- The monitor follows matching's ledger as it is now (issue 10): a move reversed
-- (`move.reversed`: its booking was released) no longer counts in the drain picture,
-- and a session whose booking was released is no longer counted filled.

-- When matching reversed the move, if it has. Kept, not deleted, so the move published
-- again (a replay) can't count anew.
ALTER TABLE drain_moves ADD COLUMN reversed_at timestamptz;

-- The fill each session is counted filled by, so a release can take it back.
CREATE TABLE standing_fills (
    session_id   uuid PRIMARY KEY,
    offer_id     uuid NOT NULL,
    clinician_id uuid NOT NULL,
    region       text NOT NULL,
    sector       text NOT NULL
);
-- Events of different services race (docs/ordering.md): a cancellation read before the
-- fill it undoes leaves a tombstone, so the late fill is not counted.
CREATE TABLE undone_fills (
    offer_id uuid PRIMARY KEY
);
CREATE TABLE closed_sessions (
    session_id uuid PRIMARY KEY
);
