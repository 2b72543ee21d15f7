"""PostgreSQL plumbing: pools, migrations, the outbox and the inbox."""
