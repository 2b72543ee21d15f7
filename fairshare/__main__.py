"""``python -m fairshare`` is the ``fairshare`` command."""

from fairshare.cli import app

# Guarded: a spawned worker process (matching plans in one) imports this module again.
if __name__ == "__main__":
    app()
