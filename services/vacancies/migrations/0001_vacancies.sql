CREATE TABLE organisations (
    ods_code       text PRIMARY KEY,
    name           text NOT NULL,
    sector         text NOT NULL,
    region         text NOT NULL,
    latitude       double precision NOT NULL,
    longitude      double precision NOT NULL,
    webhook_secret text NOT NULL,
    active         boolean NOT NULL DEFAULT true,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    id           uuid PRIMARY KEY,
    organisation text NOT NULL REFERENCES organisations (ods_code),
    external_id  text NOT NULL,
    profession   text NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    status       text NOT NULL DEFAULT 'open',
    clinician_id uuid,
    posted_at    timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at),
    -- An organisation's own id names one session, never two.
    UNIQUE (organisation, external_id)
);

-- Every verified web hook delivery, so a retried webhook-id gets its first answer.
CREATE TABLE webhook_receipts (
    organisation text NOT NULL REFERENCES organisations (ods_code),
    webhook_id   text NOT NULL,
    status_code  integer NOT NULL,
    response     jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation, webhook_id)
);
