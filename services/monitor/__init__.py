"""Monitor: the ICB's live view of sessions posted, offered and filled, per sector, and of
the hours moved between sectors against each sector's cap."""

SERVICE = "monitor"
SCHEMA = "monitor"
