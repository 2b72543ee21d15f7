-- Issue 13: web hook signing secrets are kept encrypted (Fernet tokens, sealed with the
-- keys in FAIRSHARE_VACANCIES_SECRET_KEYS, which the database never sees).
--
-- SQL can't encrypt without the key, so rows from before this migration keep their
-- plaintext in the renamed legacy_* columns only until the service's start-up (or
-- `fairshare org reencrypt-secrets`) seals it into *_sealed and empties them. Nothing
-- reads the legacy columns but that step.
ALTER TABLE organisations RENAME COLUMN webhook_secret TO legacy_webhook_secret;
ALTER TABLE organisations RENAME COLUMN previous_secret TO legacy_previous_secret;
ALTER TABLE organisations
    ALTER COLUMN legacy_webhook_secret DROP NOT NULL,
    ADD COLUMN webhook_secret_sealed  text,
    ADD COLUMN previous_secret_sealed text,
    -- Every organisation has a secret, sealed or (until sealed) legacy.
    ADD CONSTRAINT organisations_secret_kept
        CHECK (webhook_secret_sealed IS NOT NULL OR legacy_webhook_secret IS NOT NULL),
    -- A Fernet token starts with its version byte and the top of its timestamp, which
    -- base64 writes as "gAAAA": a plaintext whsec_... can't be stored here by mistake.
    ADD CONSTRAINT organisations_secret_sealed
        CHECK (webhook_secret_sealed LIKE 'gAAAA%'),
    ADD CONSTRAINT organisations_previous_sealed
        CHECK (previous_secret_sealed LIKE 'gAAAA%');
