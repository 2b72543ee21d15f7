"""Monitor: the ICB's live view of sessions posted, offered and filled, per sector."""

SERVICE = "monitor"
SCHEMA = "monitor"
