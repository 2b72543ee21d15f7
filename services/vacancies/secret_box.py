"""Organisations' web hook signing secrets, sealed at rest with Fernet.

A Standard Webhooks secret can't be hashed like an API key: we need it back, to verify
the organisation's posts and to sign its callbacks. So it is stored encrypted (Fernet:
AES-128-CBC with an HMAC-SHA256, from the well-kept ``cryptography`` package) under keys
the database never sees, from ``FAIRSHARE_VACANCIES_SECRET_KEYS``. A dump of the database,
a backup or a role that can read the schema then holds nothing that signs.

Several keys, comma separated (``MultiFernet``): the first seals, every one opens. A key
is rotated by putting a new one first, re-sealing every secret with it (``fairshare org
reencrypt-secrets``), then dropping the old one.

The process has one set of keys, installed by its composition root (the service's app,
the admin commands) before any secret is read: the repository query behind the web hook
is called from the HTTP adapter, which has nothing else to hand them over with.
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

KEYS_SETTING = "FAIRSHARE_VACANCIES_SECRET_KEYS"
HOW_TO_MAKE_A_KEY = (
    "make one with `fairshare org new-secret-key` (or `openssl rand -base64 32 | tr '+/' '-_'`)"
)
NOT_SET = (
    f"{KEYS_SETTING} is not set: the vacancies service keeps organisations' web hook"
    f" signing secrets encrypted with it and will not start without it; {HOW_TO_MAKE_A_KEY}"
    " and keep it safe (losing it loses every organisation's secret)."
)


class SecretKeyError(RuntimeError):
    """No usable key, or a stored secret no configured key opens; the message says why."""


def generate_key() -> str:
    """A new Fernet key: 32 random bytes in URL-safe base64 (44 characters)."""
    return Fernet.generate_key().decode()


class SecretBox:
    """Seals and opens signing secrets with the configured keys (first seals, all open)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretKeyError(NOT_SET)
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except ValueError:
                # The key itself never goes into the message: it may be most of a real one.
                msg = (
                    f"key {position} of {len(keys)} in {KEYS_SETTING} is not a Fernet key"
                    f" (32 bytes in URL-safe base64, 44 characters); {HOW_TO_MAKE_A_KEY}."
                )
                raise SecretKeyError(msg) from None
        self._fernet = MultiFernet(fernets)

    @classmethod
    def from_setting(cls, value: str | None) -> SecretBox:
        """The box for the setting's comma-separated keys; SecretKeyError if none."""
        keys = [k.strip() for k in (value or "").split(",") if k.strip()]
        return cls(keys)

    def seal(self, secret: str) -> str:
        """The secret encrypted with the first key (a Fernet token, ``gAAAAA...``)."""
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, sealed: str) -> str:
        """The secret a token holds; SecretKeyError if no configured key opens it."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(_UNOPENED) from None

    def reseal(self, sealed: str) -> str:
        """The same secret sealed afresh with the first key (for key rotation)."""
        try:
            return self._fernet.rotate(sealed.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(_UNOPENED) from None


_UNOPENED = (
    f"a stored web hook signing secret can't be decrypted with any key in {KEYS_SETTING}:"
    " the key it was sealed with is missing (was an old key dropped before"
    " `fairshare org reencrypt-secrets` ran, or is this another system's key?)."
)

_installed: SecretBox | None = None


def install(box: SecretBox) -> None:
    """Make ``box`` this process's keys (the service at start, the admin commands, tests)."""
    global _installed  # noqa: PLW0603 - one set of keys per process, set by its composition root
    _installed = box


def installed() -> SecretBox:
    """This process's keys; SecretKeyError if none were installed."""
    if _installed is None:
        raise SecretKeyError(NOT_SET)
    return _installed


def for_service(setting: str | None) -> SecretBox:
    """The keys the service runs with: its setting's; without one, those a program that
    embeds the service installed (the tests); with neither, SecretKeyError."""
    if setting is not None and setting.strip():
        return SecretBox.from_setting(setting)
    return installed()
