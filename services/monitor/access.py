"""Who may see which region on the monitor, and the secrets that sign viewers in. No I/O.

An ICB viewer sees one region; a national viewer sees every region. A viewer signs in
once with a one-time invite code (``fairshare icb invite``) and then carries a session
token in a cookie. Codes and tokens are random and kept only as hashes.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

# Typed from a message or a printout: no 0/O or 1/I to confuse. 12 characters of 32
# are 60 bits, against a few guesses a minute per address for a week at most.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 12
INVITE_TTL = timedelta(days=7)
MAX_INVITE_TTL = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Viewer:
    """Someone at an ICB who may look at the monitor.

    ``region`` is the region they see; a national viewer sees every region, and their
    ``region`` (if any) is only their home ICB.
    """

    id: uuid.UUID
    name: str
    region: str | None
    national: bool

    def __post_init__(self) -> None:
        if not self.national and self.region is None:
            msg = "a viewer who is not national needs a region"
            raise ValueError(msg)


def may_see(viewer: Viewer, region: str) -> bool:
    """Whether ``viewer`` may see ``region``'s figures."""
    return viewer.national or viewer.region == region


def scope(viewer: Viewer) -> str | None:
    """The one region ``viewer``'s lists are limited to; None for every region."""
    return None if viewer.national else viewer.region


def new_code() -> str:
    """A one-time invite code, printed in groups of four (``ABCD-EFGH-JKLM``)."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, CODE_LENGTH, 4))


def normalise_code(typed: str) -> str:
    """A code as typed (any case, spaces or dashes) in the form that is hashed."""
    return re.sub(r"[^A-Z0-9]", "", typed.upper())


def new_token() -> str:
    """A session token (256 bits), set as the cookie and stored only as a hash."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The stored form of a code or token. SHA-256 without salt suffices: both are
    random with 60 bits or more, so there is nothing for a dictionary to find."""
    return hashlib.sha256(secret.encode()).hexdigest()


def code_hash(typed: str) -> str:
    """The hash an invite code, as typed, is looked up by."""
    return hash_secret(normalise_code(typed))


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether a form post's ``Origin`` header names this site (``Host``). A browser sends
    Origin with every POST; a missing one (curl, an old client) is let through, since the
    code itself is the credential and the cookie is SameSite=Strict."""
    if origin is None:
        return True
    if host is None or origin == "null":
        return False
    return urlsplit(origin).netloc.lower() == host.lower()
