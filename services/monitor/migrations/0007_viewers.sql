-- Issue 12/13: ICB viewers sign in to the monitor. A viewer sees one region, or every
-- region if national. Invite codes and session tokens are kept only as SHA-256 hashes.
CREATE TABLE viewers (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    -- The region seen; for a national viewer only their home ICB, if any.
    region     text,
    national   boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CHECK (national OR region IS NOT NULL)
);

CREATE TABLE viewer_invites (
    code_hash  text PRIMARY KEY,
    viewer_id  uuid NOT NULL REFERENCES viewers (id),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);

-- A signed-in browser; signing out or revoking the viewer deletes its rows.
CREATE TABLE viewer_sessions (
    token_hash text PRIMARY KEY,
    viewer_id  uuid NOT NULL REFERENCES viewers (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
CREATE INDEX viewer_sessions_viewer ON viewer_sessions (viewer_id);
CREATE INDEX viewer_sessions_expiry ON viewer_sessions (expires_at);
