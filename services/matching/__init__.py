"""Matching: fills sessions across sectors from the bank, counting every move."""

SERVICE = "matching"
SCHEMA = "matching"
