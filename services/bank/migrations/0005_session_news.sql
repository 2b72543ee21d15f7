-- What the organisation last said of a session, for offers that race it (docs/ordering.md):
-- an offer of a cancelled session, or of the session as it stood before an amendment,
-- that reaches the bank after the news is not shown to anyone.
CREATE TABLE session_news (
    session_id uuid PRIMARY KEY,
    cancelled  boolean NOT NULL DEFAULT false,
    starts_at  timestamptz,
    ends_at    timestamptz,
    role       text,
    heard_at   timestamptz NOT NULL DEFAULT now()
);
