-- Where sessions are and what they pay; where clinicians are based and how they work.
ALTER TABLE sessions
    ADD COLUMN site_name           text NOT NULL DEFAULT '',
    ADD COLUMN latitude            double precision NOT NULL DEFAULT 0,
    ADD COLUMN longitude           double precision NOT NULL DEFAULT 0,
    ADD COLUMN rate_pence_per_hour integer,
    ADD COLUMN urgency             text NOT NULL DEFAULT 'routine';
ALTER TABLE availability
    ADD COLUMN latitude      double precision NOT NULL DEFAULT 0,
    ADD COLUMN longitude     double precision NOT NULL DEFAULT 0,
    ADD COLUMN travel_km     double precision NOT NULL DEFAULT 30,
    ADD COLUMN employment    text NOT NULL DEFAULT 'bank_only',
    ADD COLUMN wtr_opt_out   boolean NOT NULL DEFAULT false,
    ADD COLUMN self_employed boolean NOT NULL DEFAULT false,
    ADD COLUMN withdrawn     boolean NOT NULL DEFAULT false;
