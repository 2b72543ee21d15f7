CREATE TABLE sector_counts (
    region  text NOT NULL,
    sector  text NOT NULL,
    posted  integer NOT NULL DEFAULT 0,
    offered integer NOT NULL DEFAULT 0,
    filled  integer NOT NULL DEFAULT 0,
    PRIMARY KEY (region, sector)
);
