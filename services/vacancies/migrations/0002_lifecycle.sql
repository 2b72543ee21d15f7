-- Issue 3: the complete practice-facing contract.
ALTER TABLE organisations
    ADD COLUMN pcn                    text REFERENCES organisations (ods_code),
    ADD COLUMN callback_url           text,
    ADD COLUMN previous_secret        text,
    ADD COLUMN previous_secret_until  timestamptz,
    ADD COLUMN api_key_hash           text UNIQUE;

ALTER TABLE sessions RENAME COLUMN profession TO role;
ALTER TABLE sessions
    ADD COLUMN site                text REFERENCES organisations (ods_code),
    ADD COLUMN skills              text[] NOT NULL DEFAULT '{}',
    ADD COLUMN rate_pence_per_hour integer CHECK (rate_pence_per_hour >= 0),
    ADD COLUMN urgency             text NOT NULL DEFAULT 'routine',
    ADD COLUMN notes               text,
    ADD COLUMN cancel_reason       text,
    ADD COLUMN cancelled_late      boolean,
    ADD COLUMN cancelled_at        timestamptz;
UPDATE sessions SET site = organisation WHERE site IS NULL;
ALTER TABLE sessions ALTER COLUMN site SET NOT NULL;
ALTER TABLE sessions ADD CONSTRAINT sessions_status_known
    CHECK (status IN ('open', 'offered', 'filled', 'unfilled', 'cancelled'));
-- A session lasts at most 13 hours; the database refuses anything else too.
ALTER TABLE sessions ADD CONSTRAINT sessions_at_most_13_hours
    CHECK (ends_at - starts_at <= interval '13 hours');
CREATE INDEX sessions_by_org ON sessions (organisation, starts_at);
CREATE INDEX sessions_due ON sessions (starts_at) WHERE status IN ('open', 'offered');

-- Signed callbacks to organisations, scheduled here so that a restart loses none.
CREATE TABLE callbacks (
    id              bigserial PRIMARY KEY,
    webhook_id      text NOT NULL UNIQUE,
    organisation    text NOT NULL REFERENCES organisations (ods_code),
    session_id      uuid REFERENCES sessions (id),
    event_type      text NOT NULL,
    payload         jsonb NOT NULL,
    -- pending -> delivered | gone (410: stop) | failed (gave up after the retry window)
    status          text NOT NULL DEFAULT 'pending',
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    give_up_at      timestamptz NOT NULL,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz,
    CHECK (status IN ('pending', 'delivered', 'gone', 'failed'))
);
CREATE INDEX callbacks_due ON callbacks (next_attempt_at) WHERE status = 'pending';
