"""The vacancies service's secret keys, as ``fairshare dev`` and the admin commands find them.

The keys belong with the database whose secrets they seal, and are found the same way:
with ``FAIRSHARE_DATABASE_URL`` set (production, or a database of one's own),
``FAIRSHARE_VACANCIES_SECRET_KEYS`` goes with it; otherwise the commands use the running
dev system's database, and ``fairshare dev`` keeps that database's key beside it in its
data directory, made on first use. So a key in someone's shell never seals the dev
system's secrets, and the dev system's key never seals a real database's.
"""

from __future__ import annotations

import os
from pathlib import Path

import typer

from services.vacancies import secret_box

KEYS_FILE = "vacancies-secret-keys"


def _with_database_url() -> str | None:
    if os.environ.get("FAIRSHARE_DATABASE_URL"):
        return os.environ.get(secret_box.KEYS_SETTING, "").strip() or None
    return None


def dev_keys(data_dir: Path) -> str:
    """The keys ``fairshare dev`` runs the service with: the environment's beside its
    database URL, or the data directory's, made on first use (readable by its owner)."""
    if keys := _with_database_url():
        return keys
    path = data_dir / KEYS_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        # Created 0600 in one step: the key is never readable by others, even briefly.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secret_box.generate_key() + "\n")
    return path.read_text().strip()


def admin_keys(data_dir: Path) -> str | None:
    """The keys an admin command seals and opens secrets with: the environment's beside
    its database URL, or the dev system's; None if there are none."""
    if keys := _with_database_url():
        return keys
    path = data_dir / KEYS_FILE
    return path.read_text().strip() if path.exists() else None


def use_vacancies_keys(data_dir: Path) -> None:
    """Install the admin keys for this process, or exit with what to set."""
    from fairshare.cli import console  # noqa: PLC0415 - cli imports the admin commands

    try:
        secret_box.install(secret_box.SecretBox.from_setting(admin_keys(data_dir)))
    except secret_box.SecretKeyError as exc:
        console.print(
            f"[red]{exc}[/]\nThe admin commands need the vacancies service's keys: set"
            f" {secret_box.KEYS_SETTING} as the service has it, beside FAIRSHARE_DATABASE_URL,"
            f" or run them beside `fairshare dev` (its key is in {data_dir / KEYS_FILE})."
        )
        raise typer.Exit(2) from None
