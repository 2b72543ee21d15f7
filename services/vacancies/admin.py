"""Administration of organisations, used by the ``fairshare org`` commands."""

from __future__ import annotations

import base64
import secrets

from services.vacancies import repository
from services.vacancies.domain import Organisation
from shared.db.types import Conn


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


async def add_organisation(conn: Conn, organisation: Organisation) -> str:
    """Register ``organisation`` and return its new web hook secret."""
    secret = new_webhook_secret()
    await repository.insert_organisation(conn, organisation, secret=secret)
    return secret
