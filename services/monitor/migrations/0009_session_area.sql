-- Issue 12, equity: where each session is worked, as the ICB plans (services/monitor/
-- equity.py, `area`), kept beside its figures so that fill rates by deprivation
-- quintile, place and PCN are read by column, not from the facts' JSON.
ALTER TABLE session_facts
    ADD COLUMN imd_decile integer CHECK (imd_decile BETWEEN 1 AND 10),
    ADD COLUMN place      text,
    ADD COLUMN pcn        text;
-- Facts kept before this migration hold no area (the monitor did not keep it): these
-- stay null, "not recorded", until `fairshare monitor rebuild` reads the events again.
