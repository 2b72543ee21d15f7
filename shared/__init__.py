"""What every Fairshare service shares: event contracts, settings, logging and plumbing.

Services import from here and never from each other.
"""
