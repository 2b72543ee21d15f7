-- Which accepted offer a filled session's booking came from, and the offers whose
-- bookings the clinicians gave up. The fill (from matching) and the clinician's
-- cancellation (from the bank) race each other (docs/ordering.md): a fill of an offer
-- already given up must not book its clinician, and a cancellation of an offer that
-- is no longer the booking must not reopen the session.
ALTER TABLE sessions ADD COLUMN offer_id uuid;
CREATE TABLE cancelled_offers (
    offer_id     uuid PRIMARY KEY,
    session_id   uuid NOT NULL,
    cancelled_at timestamptz NOT NULL DEFAULT now()
);
