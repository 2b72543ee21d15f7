-- When offers are made (docs/matching.md, "When it plans"), per region: sessions are
-- offered only once they start within hold_beyond_h hours (held back until then, and
-- planned together at the daily round), and moves across sectors only for sessions
-- starting within cross_sector_within_h hours. Null: no such limit (as before). At
-- most four weeks (672 hours).
ALTER TABLE policies
    ADD COLUMN hold_beyond_h double precision
        CHECK (hold_beyond_h > 0 AND hold_beyond_h <= 672),
    ADD COLUMN cross_sector_within_h double precision
        CHECK (cross_sector_within_h > 0 AND cross_sector_within_h <= 672);
