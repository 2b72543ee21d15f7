"""The ``fairshare`` command: start services, the whole system, and administer it."""
