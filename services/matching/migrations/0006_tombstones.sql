-- Events of different services race each other (docs/ordering.md). A cancellation
-- or a withdrawal that arrives before what it undoes leaves a tombstone here, so the
-- late arrival cannot bring the session or the window back.
CREATE TABLE withdrawn_windows (
    id           uuid PRIMARY KEY,
    withdrawn_at timestamptz NOT NULL DEFAULT now()
);
