"""Bank: the shared staff bank where clinicians join once and offer their time."""

SERVICE = "bank"
SCHEMA = "bank"
