-- Commitments are read once each and only as far back as a rule reaches (issue 10):
-- bookings by when they end, each booking's offer, and the offers that hold time
-- (live or accepted) by region and end, so a whole-region plan reads the last 7 days
-- and what is ahead, not every offer ever made.
CREATE INDEX bookings_by_end ON bookings (ends_at);
CREATE INDEX bookings_by_offer ON bookings (offer_id);
CREATE INDEX offers_holding_time ON offers (region, ends_at)
    WHERE status IN ('offered', 'accepted');
