"""Kafka plumbing: topics, publishing, and the idempotent consumer."""
