-- Where an organisation is, as the ICB plans: its deprivation decile and its place.
ALTER TABLE organisations
    ADD COLUMN imd_decile integer CHECK (imd_decile BETWEEN 1 AND 10),
    ADD COLUMN place      text;

-- Matching's last word on why a session has no offer, told when it goes unfilled.
ALTER TABLE sessions
    ADD COLUMN unmatched_why    text,
    ADD COLUMN unmatched_detail text;
