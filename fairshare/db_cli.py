"""``fairshare db bootstrap``: the database roles, made by the database's owner.

Compose runs it once per ``up`` (the ``db-roles`` service) before any service starts;
``fairshare dev`` does the same itself. See shared/db/roles.py for what it makes.
"""

from __future__ import annotations

import asyncio
import os

import typer

from fairshare.cli import console

db_app = typer.Typer(help="The database's roles: one per service, and the admin commands'.")


def password_variable(login: str) -> str:
    """The environment variable holding a login's database password."""
    return f"FAIRSHARE_{login.upper()}_DB_PASSWORD"


@db_app.command("bootstrap")
def bootstrap() -> None:
    """As the database's owner (FAIRSHARE_DATABASE_URL), make each service's role own its
    schema and everything in it, and the admin role a member of them, with the passwords
    in FAIRSHARE_<LOGIN>_DB_PASSWORD. Safe to run again; run it again to change one."""
    from fairshare.services import LOGINS, bootstrap_roles  # noqa: PLC0415

    owner_url = os.environ.get("FAIRSHARE_DATABASE_URL", "")
    missing = [name for login in LOGINS if not os.environ.get(name := password_variable(login))]
    if not owner_url:
        missing.insert(0, "FAIRSHARE_DATABASE_URL (the database's owner)")
    if missing:
        console.print(f"[red]Set {', '.join(missing)}.[/]")
        raise typer.Exit(2)
    passwords = {login: os.environ[password_variable(login)] for login in LOGINS}
    try:
        done = asyncio.run(bootstrap_roles(owner_url, passwords)).done
    except ValueError as exc:  # a password unfit for a URL; never printed
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    handed = sum(done.handed_over.values())
    console.print(
        f"Database roles ready ({', '.join(done.created) or 'none'} created now);"
        f" {handed} objects handed over to their service's role."
    )
