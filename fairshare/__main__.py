"""``python -m fairshare`` is the ``fairshare`` command."""

from fairshare.cli import app

app()
